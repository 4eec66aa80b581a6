"""The SageMaker endpoint handler for a socal ``model.tar.gz`` (PyTorch serving container).

The archive's ``code/inference.py`` re-exports these four functions and ``code/socal`` holds this
package, so an endpoint predicts through the same clip and model path as ``predict.py`` and the
run's evaluation. A request is JSON: one trial's frames in order, one per second, as base64
JPEGs (the first ``data.window`` seconds are enough), or ``{"trials": [...]}`` for several::

    {"id": "S201T1", "frames": ["/9j/4AAQ...", "/9j/4AAQ...", ...]}

A model trained with tool input (``data.tools``) also needs each frame's tool boxes, as
``socal.csv`` has them (the frame's own pixels; an empty list: no tool in view)::

    {"id": "S201T1", "frames": [...], "tools": [[[410, 220, 780, 900, "suction"]], [], ...]}

The response holds, per trial, the probability of success and the decision at the run's
threshold (classification) or the predicted value (regression).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from socal.data.index import DataReport, Trial, readable_frames
from socal.data.tools import ToolAnnotations, frame_sizes, read_tools
from socal.training.package import Predictor

CONTENT_TYPE = "application/json"
log = logging.getLogger(__name__)


def model_fn(model_dir: str) -> Predictor:
    """The packaged model in ``model_dir`` (the extracted model.tar.gz), on the GPU if any."""
    return Predictor.load(Path(model_dir))


def input_fn(body: bytes | str, content_type: str = CONTENT_TYPE) -> list[dict[str, Any]]:
    """``[{"id": ..., "frames": [jpeg bytes, ...]}, ...]`` from a JSON request."""
    if content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise ValueError(f"content type {content_type} is not supported: send {CONTENT_TYPE}")
    request = json.loads(body)
    trials = request.get("trials", [request])
    return [
        {
            "id": str(trial.get("id", f"trial-{i}")),
            "frames": [base64.b64decode(frame) for frame in trial["frames"]],
            "tools": trial.get("tools"),
        }
        for i, trial in enumerate(trials)
    ]


def predict_fn(data: list[dict[str, Any]], predictor: Predictor) -> list[dict[str, Any]]:
    """Each trial's output, through the run's evaluation clip (window, frames, normalisation).

    Frames are checked as ``predict.py`` checks them: a bad one is replaced by its nearest good
    neighbour; a trial without any decodable frame is an error for the request, not a guess.
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
        tools = _tools(data, trials, seconds, Path(tmp), predictor)
        result = predictor.predict(trials, Path(tmp), batch_size=len(trials), tools=tools)
    outputs = dict(zip(result.indices.tolist(), result.outputs.tolist(), strict=True))
    if predictor.task != "classification":
        return [{"id": t.trial_id, "predicted": outputs[i]} for i, t in enumerate(trials)]
    return [
        {
            "id": t.trial_id,
            "probability": outputs[i],
            "prediction": int(outputs[i] >= predictor.threshold),
            "threshold": predictor.threshold,
        }
        for i, t in enumerate(trials)
    ]


def _tools(
    data: list[dict[str, Any]],
    trials: list[Trial],
    seconds: list[tuple[str, str, int]],
    folder: Path,
    predictor: Predictor,
) -> Optional[ToolAnnotations]:
    """The request's tool boxes, read as ``socal.csv`` is; None for a model without tools."""
    classes = predictor.tool_classes
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
    path = folder / "socal.csv"
    path.write_text("\n".join(lines) + "\n")
    table = pd.DataFrame(seconds, columns=["frame", "trial_id", "second"])
    return read_tools(path, table, frame_sizes(trials))


def output_fn(prediction: list[dict[str, Any]], accept: str = CONTENT_TYPE) -> str:
    if accept.split(";")[0].strip() not in (CONTENT_TYPE, "*/*"):
        raise ValueError(f"accept type {accept} is not supported: use {CONTENT_TYPE}")
    return json.dumps({"predictions": prediction})
