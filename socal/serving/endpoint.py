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

import json
from pathlib import Path
from typing import Any

from socal.training.package import Predictor, decode_trials

CONTENT_TYPE = "application/json"


def model_fn(model_dir: str) -> Predictor:
    """The packaged model in ``model_dir`` (the extracted model.tar.gz), on the GPU if any."""
    return Predictor.load(Path(model_dir))


def input_fn(body: bytes | str, content_type: str = CONTENT_TYPE) -> list[dict[str, Any]]:
    """``[{"id": ..., "frames": [jpeg bytes, ...]}, ...]`` from a JSON request."""
    if content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise ValueError(f"content type {content_type} is not supported: send {CONTENT_TYPE}")
    request = json.loads(body)
    return decode_trials(request.get("trials", [request]))


def predict_fn(data: list[dict[str, Any]], predictor: Predictor) -> list[dict[str, Any]]:
    """Each trial's output, through the run's evaluation clip (``Predictor.predict_frames``)."""
    return predictor.predict_frames(data)


def output_fn(prediction: list[dict[str, Any]], accept: str = CONTENT_TYPE) -> str:
    if accept.split(";")[0].strip() not in (CONTENT_TYPE, "*/*"):
        raise ValueError(f"accept type {accept} is not supported: use {CONTENT_TYPE}")
    return json.dumps({"predictions": prediction})
