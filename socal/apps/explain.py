"""``socal-explain`` / ``python explain.py run=PATH data.root=FOLDER``: what moved each prediction.

PATH as for predict.py: a run folder, a ``model.tar.gz`` (local or ``s3://``) or an MLflow model
URI. Writes temporal.csv, trials.csv, a figure per trial and summary.png (socal.explain).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from socal.config import CONFIG_PATH, register
from socal.errors import exit_on_user_error
from socal.explain.trials import explain_folder

register()


@hydra.main(config_path=CONFIG_PATH, config_name="explain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        explain_folder(cfg, Path(HydraConfig.get().runtime.output_dir))
