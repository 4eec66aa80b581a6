"""The SageMaker endpoint handler for a socal ``model.tar.gz`` (PyTorch serving container).

The archive's ``code/inference.py`` re-exports these four functions and ``code/socal`` holds this
package, so an endpoint predicts through the same clip and model path as ``predict.py`` and the
run's evaluation. A request is JSON: one trial's frames in order, one per second, as base64
JPEGs (the first ``data.window`` seconds are enough), or ``{"trials": [...]}`` for several::

    {"id": "S201T1", "frames": ["/9j/4AAQ...", "/9j/4AAQ...", ...]}

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
from typing import Any

from socal.data.index import DataReport, Trial, readable_frames
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
        }
        for i, trial in enumerate(trials)
    ]


def predict_fn(data: list[dict[str, Any]], predictor: Predictor) -> list[dict[str, Any]]:
    """Each trial's output, through the run's evaluation clip (window, frames, normalisation).

    Frames are checked as ``predict.py`` checks them: a bad one is replaced by its nearest good
    neighbour; a trial without any decodable frame is an error for the request, not a guess.
    """
    with tempfile.TemporaryDirectory() as tmp:
        trials = []
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
        result = predictor.predict(trials, Path(tmp), batch_size=len(trials))
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


def output_fn(prediction: list[dict[str, Any]], accept: str = CONTENT_TYPE) -> str:
    if accept.split(";")[0].strip() not in (CONTENT_TYPE, "*/*"):
        raise ValueError(f"accept type {accept} is not supported: use {CONTENT_TYPE}")
    return json.dumps({"predictions": prediction})
