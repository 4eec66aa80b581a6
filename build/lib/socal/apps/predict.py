"""``socal-predict`` / ``python predict.py run=PATH data.root=FOLDER``: predict new trials.

PATH: a run folder, a SageMaker ``model.tar.gz`` (local or ``s3://``), or an MLflow model URI
(``runs:/<run id>/model``). Writes predictions.csv (and metrics.json when FOLDER has outcomes).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from socal.config import CONFIG_PATH, register
from socal.errors import exit_on_user_error
from socal.serving.predict import predict

register()


@hydra.main(config_path=CONFIG_PATH, config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        predict(cfg, Path(HydraConfig.get().runtime.output_dir))
