"""``socal-train`` / ``python train.py``: train and evaluate one run (see README).

Also what SageMaker runs: the source archive's ``train.py`` calls ``main``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from socal import console
from socal.config import CONFIG_PATH, register
from socal.errors import exit_on_user_error
from socal.explain.trials import explain_run
from socal.sagemaker import container
from socal.training.run import run

register()


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def train(cfg: DictConfig) -> float:
    """Returns the best validation value of the early-stopping metric: what a sweeper optimises."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    console.route(machine=container.active())  # epoch lines on the terminal, name=value in the log
    with exit_on_user_error(), container.report_failure():
        metrics = run(cfg, run_dir)
        if metrics is None:  # stopped by SIGTERM / Ctrl-C after saving a checkpoint
            sys.exit(0)  # and a sweep stops too, rather than starting its next job
        if cfg.eval.explain and os.environ.get("RANK", "0") == "0":
            explain_run(run_dir, cfg)  # into <run>/explanations, before publishing
        container.publish(cfg, run_dir)  # SageMaker only: model, config, metrics -> SM_MODEL_DIR
    return metrics["best_val"][cfg.trainer.early_stopping.metric]


def main() -> None:
    container.prepare_argv()  # SageMaker only: `--key value` pairs -> verified Hydra overrides
    train()
