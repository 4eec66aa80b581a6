"""Train and evaluate one VideoMAE run: ``python train.py data.root=./SOCAL`` (see README)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from socal.config import register
from socal.errors import exit_on_user_error
from socal.run import run

register()


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    with exit_on_user_error():
        metrics = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return metrics["test"]["accuracy" if metrics["task"] == "classification" else "rmse"]


if __name__ == "__main__":
    main()
