"""``hydra/sweeper=sagemaker``: the whole search space as one SageMaker tuning job.

Reads the same sweep overrides as ``hydra/sweeper=optuna`` and hands them, with the composed
launch config, to socal.sagemaker.tuning_launch; no task function runs on this machine.
"""

from __future__ import annotations

from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from socal.errors import exit_on_user_error


class SageMakerSweeper(Sweeper):
    def __init__(self) -> None:
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.config = hydra_context, config

    def sweep(self, arguments: list[str]) -> Any:
        from socal.sagemaker import tuning_launch

        assert self.hydra_context is not None and self.config is not None
        with exit_on_user_error():
            return tuning_launch.run(self.hydra_context.config_loader, self.config, arguments)
