"""The model package: everything needed to predict exactly as a run's evaluation did.

A run writes it to ``<run>/model/`` (and SageMaker's ``model.tar.gz``, and MLflow's ``model``
artifact, hold the same files): the best weights as a ``save_pretrained`` folder, plus
``socal.json`` with the resolved run config (window, frame count, normalisation, precision),
the task, the decision threshold and the regression target's scale. ``Predictor`` loads it and
runs the run's own evaluation path (``ClipDataset`` without augmentation, ``Engine.predict``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import VideoMAEForVideoClassification
from transformers.utils import logging as transformers_logging

from socal.config import Precision, TrainConfig, fingerprint
from socal.data.dataset import ClipDataset
from socal.data.index import Trial
from socal.errors import UserError
from socal.training.engine import Engine, Predictions
from socal.training.runtime import resolve_device, resolve_precision

log = logging.getLogger(__name__)

MODEL_DIR = "model"  # inside a run folder
INFO_FILE = "socal.json"
FORMAT = 1


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bar for reading or writing one local weights file."""
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()


def decision_threshold(result: dict) -> float:
    """The threshold a run's metrics.json reports (a number or ``{"value": ...}``), else 0.5."""
    threshold = result.get("threshold")
    if isinstance(threshold, dict):
        threshold = threshold.get("value")
    return float(threshold) if isinstance(threshold, (int, float)) else 0.5


def save(
    model: torch.nn.Module,
    cfg: DictConfig,
    result: dict,
    target_scale: tuple[float, float],
    directory: Path,
) -> Path:
    """Write the package of a finished run (``model``: its best weights) to ``directory``."""
    with _quiet():
        model.save_pretrained(directory)
    info = {
        "format": FORMAT,
        "task": result["task"],
        "target": result["target"],
        "threshold": decision_threshold(result),
        "target_scale": [float(v) for v in target_scale],
        "config_fingerprint": fingerprint(cfg),
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
    }
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2))
    return directory


def find(directory: Path) -> Path:
    """The package folder in ``directory``: itself, or its ``model/`` (a run folder)."""
    for candidate in (directory, directory / MODEL_DIR):
        if (candidate / INFO_FILE).is_file():
            return candidate
    raise UserError(
        f"{directory} holds no socal model ({INFO_FILE}): give a run folder, a model.tar.gz "
        "or an MLflow model URI written by socal"
    )


@dataclass
class Predictor:
    """A packaged model on a device, predicting trials the way its run evaluated them."""

    engine: Engine
    config: DictConfig
    threshold: float

    @property
    def task(self) -> str:
        return self.engine.task

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> Predictor:
        directory = find(Path(directory))
        info: dict[str, Any] = json.loads((directory / INFO_FILE).read_text())
        if info.get("format") != FORMAT:
            raise UserError(f"{directory / INFO_FILE}: unknown package format {info.get('format')}")
        config = OmegaConf.merge(OmegaConf.structured(TrainConfig), info["config"])
        with _quiet():
            model = VideoMAEForVideoClassification.from_pretrained(directory)
        torch_device = resolve_device(device)
        precision = resolve_precision(Precision(config.trainer.precision), torch_device)
        engine = Engine(
            model, None, None, config.trainer, torch_device, precision, info["task"],
            tuple(info["target_scale"]), directory, {},
        )  # fmt: skip
        log.info(
            "model %s (config %s, threshold %.4f)",
            directory, info["config_fingerprint"], info["threshold"],
        )  # fmt: skip
        return cls(engine, config, info["threshold"])

    def predict(
        self,
        trials: list[Trial],
        root: Path,
        batch_size: int = 8,
        cache: str = "off",
        loader: Optional[dict] = None,
    ) -> Predictions:
        """Outputs for ``trials`` (frames under ``root``), through the run's evaluation clips.

        ``cache``: ``data.cache`` for ``root`` (auto uses a frame cache prepared there);
        ``loader``: DataLoader keyword arguments (workers).
        """
        data = OmegaConf.merge(
            self.config.data, {"root": str(root), "cache": cache, "cache_dir": None}
        )
        image_size = self.engine.module.config.image_size
        dataset = ClipDataset(trials, data, image_size, False, self.config.trainer.seed)
        return self.engine.predict(DataLoader(dataset, batch_size=batch_size, **(loader or {})))
