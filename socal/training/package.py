"""The model package: everything needed to predict exactly as a run's evaluation did.

A run writes it to ``<run>/model/`` (SageMaker's ``model.tar.gz`` holds the same files, and
MLflow's ``model`` artifact holds them under ``artifacts/``): the best weights as a
``save_pretrained`` folder, plus ``socal.json`` with the resolved run config (window, frame
count, normalisation, precision), the task, the decision threshold and the regression target's
scale. ``Predictor`` loads it and
runs the run's own evaluation path (``ClipDataset`` without augmentation, ``Engine.predict``).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_model, save_model
from torch.utils.data import DataLoader

from socal.config import Precision, TrainConfig, fingerprint
from socal.data.dataset import ClipDataset
from socal.data.index import DataReport, Trial, readable_frames
from socal.data.tools import (
    TOOLS_CSV,
    ToolAnnotations,
    frame_sizes,
    load_tools,
    read_tools,
    tool_features,
)
from socal.errors import UserError
from socal.models import VideoModel, family_of, spec_from_dict, spec_to_dict
from socal.models.videomae import load_format1
from socal.training.engine import Engine, Predictions
from socal.training.precision import resolve_precision
from socal.training.runtime import resolve_device

log = logging.getLogger(__name__)

MODEL_DIR = "model"  # inside a run folder
INFO_FILE = "socal.json"
WEIGHTS_FILE = "model.safetensors"
# 2: any family (safetensors of the family's model + the spec and architecture in socal.json);
# 1: a VideoMAE save_pretrained folder (written before the model seam), still loaded.
FORMAT = 2


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
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model.net, str(directory / WEIGHTS_FILE))
    info = {
        "format": FORMAT,
        "family": model.family.name,
        "spec": spec_to_dict(model.spec),
        "architecture": model.family.architecture(model.net),
        "tool_classes": list(model.tool_classes),  # data.tools: what each clip comes with
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
    """The package folder in ``directory``: itself, its ``model/`` (a run folder) or the one
    under its ``artifacts/`` (an MLflow model, ``socal.training.mlflow_model``)."""
    mlflow_artifacts = sorted((directory / "artifacts").glob("*"))
    for candidate in (directory, directory / MODEL_DIR, *mlflow_artifacts):
        if (candidate / INFO_FILE).is_file():
            return candidate
    raise UserError(
        f"{directory} holds no socal model ({INFO_FILE}): give a run folder, a model.tar.gz "
        "or an MLflow model URI written by socal"
    )


def _load_model(directory: Path, config: DictConfig, info: dict) -> VideoModel:
    """The packaged model: rebuilt from the saved config, then its weights (all of them)."""
    family = family_of(config.model)
    net = family.rebuild(config.model, info["architecture"], config.data.num_frames)
    tool_classes = tuple(info.get("tool_classes", ()))
    if tool_classes:
        family.add_tool_inputs(net, len(tool_classes))
    try:
        load_model(net, str(directory / WEIGHTS_FILE))
    except RuntimeError as err:
        raise UserError(
            f"{directory / WEIGHTS_FILE} does not fit model.family={family.name}: "
            + " ".join(str(err).split())[:300]
        ) from err
    return VideoModel(family, net, spec_from_dict(info["spec"]), tool_classes)


def decode_trials(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{"id": ..., "frames": [jpeg bytes, ...]}, ...]`` from trials whose frames are base64
    JPEG strings, in order (a request to the endpoint or to the MLflow model)."""
    return [
        {
            "id": str(trial.get("id", f"trial-{i}")),
            "frames": [base64.b64decode(frame) for frame in trial["frames"]],
            "tools": trial.get("tools"),  # per frame, its [x1, y1, x2, y2, class] boxes
        }
        for i, trial in enumerate(trials)
    ]


@dataclass
class Predictor:
    """A packaged model on a device, predicting trials the way its run evaluated them."""

    engine: Engine
    config: DictConfig
    threshold: float

    @property
    def task(self) -> str:
        return self.engine.task.name

    @property
    def tool_classes(self) -> tuple[str, ...]:
        """The tool classes the model takes with each clip (empty: frames alone)."""
        return tuple(getattr(self.engine.module, "tool_classes", ()))

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> Predictor:
        directory = find(Path(directory))
        info: dict[str, Any] = json.loads((directory / INFO_FILE).read_text())
        if info.get("format") not in (1, FORMAT):
            raise UserError(f"{directory / INFO_FILE}: unknown package format {info.get('format')}")
        if info["format"] == 1:
            model = load_format1(directory)
            info["config"]["model"]["family"] = model.family.name
        config = OmegaConf.merge(OmegaConf.structured(TrainConfig), info["config"])
        if info["format"] == FORMAT:
            model = _load_model(directory, config, info)
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
        tools: Optional[ToolAnnotations] = None,
    ) -> Predictions:
        """Outputs for ``trials`` (frames under ``root``), through the run's evaluation clips.

        ``cache``: ``data.cache`` for ``root`` (auto uses a frame cache prepared there);
        ``loader``: DataLoader keyword arguments (workers); ``tools``: the trials' tool
        annotations, for a model trained with them (default: ``root``'s ``socal.csv``).
        """
        data = {"root": str(root), "cache": cache, "cache_dir": None}
        config = OmegaConf.merge(self.config, {"data": data})
        presence = self.tool_presence(trials, root, tools)
        module = self.engine.module
        dataset = ClipDataset.of_run(trials, config, module.spec.image_size, False, presence)
        return self.engine.predict(DataLoader(dataset, batch_size=batch_size, **(loader or {})))

    def tool_presence(
        self, trials: list[Trial], root: Path, tools: Optional[ToolAnnotations] = None
    ) -> Optional[dict]:
        """Each trial's tool presence for a model that takes it; None for one that does not."""
        classes = self.tool_classes
        if not classes:
            return None
        tools = tools or load_tools(root, trials)
        if tools is None:
            raise UserError(
                f"this model was trained with tool input (data.tools: {', '.join(classes)}): "
                f"{root} has no {TOOLS_CSV} for its trials"
            )
        log.info("tool input for %d trials: %s", len(trials), ", ".join(classes))
        return tool_features(tools, trials, self.config.data.window, classes).presence

    def predict_frames(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each trial's output from its frames in memory (``decode_trials``), through the run's
        evaluation clip: the endpoint's and the MLflow model's answer.

        Frames are checked as ``predict.py`` checks them: a bad one is replaced by its nearest
        good neighbour; a trial without any decodable frame is an error for the request, not a
        guess.
        """
        with tempfile.TemporaryDirectory() as tmp:
            trials, seconds = [], []
            for k, item in enumerate(data):
                paths = []
                for i, frame in enumerate(item["frames"]):
                    path = Path(tmp) / f"{k:04d}_{i:08d}.jpeg"
                    path.write_bytes(frame)
                    paths.append(path)
                report = DataReport()
                usable = readable_frames(item["id"], paths, report)  # the data check's rule
                if usable is None:
                    raise ValueError(f"trial {item['id']}: no frame is a complete JPEG")
                for line in report.lines():
                    log.warning("trial %s: %s", item["id"], line)
                trials.append(Trial(item["id"], item["id"], math.nan, tuple(usable)))
                seconds += [(path.name, item["id"], i) for i, path in enumerate(paths)]
            tools = self._request_tools(data, trials, seconds, Path(tmp))
            result = self.predict(trials, Path(tmp), batch_size=len(trials), tools=tools)
        outputs = dict(zip(result.indices.tolist(), result.outputs.tolist(), strict=True))
        if self.task != "classification":
            return [{"id": t.trial_id, "predicted": outputs[i]} for i, t in enumerate(trials)]
        return [
            {
                "id": t.trial_id,
                "probability": outputs[i],
                "prediction": int(outputs[i] >= self.threshold),
                "threshold": self.threshold,
            }
            for i, t in enumerate(trials)
        ]

    def _request_tools(
        self,
        data: list[dict[str, Any]],
        trials: list[Trial],
        seconds: list[tuple[str, str, int]],
        folder: Path,
    ) -> Optional[ToolAnnotations]:
        """The request's tool boxes, read as ``socal.csv`` is; None for a model without tools."""
        classes = self.tool_classes
        if not classes:
            return None
        lines = []
        for item in data:
            boxes = item.get("tools")
            if boxes is None or len(boxes) != len(item["frames"]):
                raise ValueError(
                    f"trial {item['id']}: this model takes tool annotations (data.tools: "
                    f'{", ".join(classes)}): send "tools", one list of '
                    "[x1, y1, x2, y2, class] boxes per frame"
                )
            names = [name for name, trial_id, _ in seconds if trial_id == item["id"]]
            for name, frame_boxes in zip(names, boxes, strict=True):
                rows = [",".join(str(v) for v in box) for box in frame_boxes] or [",,,,"]
                lines += [f"{name},{row}" for row in rows]
        path = folder / TOOLS_CSV
        path.write_text("\n".join(lines) + "\n")
        table = pd.DataFrame(seconds, columns=["frame", "trial_id", "second"])
        return read_tools(path, table, frame_sizes(trials))
