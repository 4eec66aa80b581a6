"""The model package as an MLflow ``pyfunc`` model (what ``tracking=mlflow`` logs as ``model``).

``mlflow models serve``, ``mlflow.pyfunc.load_model`` and the Model Registry take it. Its input
is the endpoint's request as a table: one row per trial, ``id`` (string) and ``frames`` (the
trial's frames in order, one per second, as base64 JPEG strings), e.g. over HTTP::

    {"dataframe_records": [{"id": "S201T1", "frames": ["/9j/4AAQ...", ...]}]}

Its output is the endpoint's answer, one row per trial (``Predictor.predict_frames``):
``id, probability, prediction, threshold`` (classification) or ``id, predicted`` (regression).
The model is this file (MLflow's "models from code") and the package folder its artifact
``package``; loading it needs socal installed (``requirements.txt`` names it and its version).
"""

from __future__ import annotations

import base64
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Optional

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, set_model
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from socal.data.index import Trial
from socal.training.package import INFO_FILE, Predictor, decode_trials

# The input example: the first frames of one test trial (it shows the shape; a whole trial
# of full-size JPEGs would be megabytes in every logged model).
EXAMPLE_FRAMES = 2
PACKAGE = "package"
INPUT = Schema([ColSpec(DataType.string, "id"), ColSpec(Array(DataType.string), "frames")])
OUTPUTS = {
    "classification": Schema(
        [
            ColSpec(DataType.string, "id"),
            ColSpec(DataType.double, "probability"),
            ColSpec(DataType.long, "prediction"),
            ColSpec(DataType.double, "threshold"),
        ]
    ),
    "regression": Schema([ColSpec(DataType.string, "id"), ColSpec(DataType.double, "predicted")]),
}


class SocalModel(PythonModel):
    """A socal model package behind MLflow's ``predict``."""

    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.load(Path(context.artifacts[PACKAGE]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: Optional[dict] = None
    ) -> pd.DataFrame:
        trials = decode_trials(model_input.to_dict("records"))
        return pd.DataFrame(self.predictor.predict_frames(trials))


set_model(SocalModel())  # what MLflow runs this file for


def input_example(trial: Trial) -> pd.DataFrame:
    frames = [base64.b64encode(path.read_bytes()).decode() for path in trial.frames]
    return pd.DataFrame({"id": [trial.trial_id], "frames": [frames[:EXAMPLE_FRAMES]]})


def requirements() -> list[str]:
    """socal (its dependencies follow from it) and this mlflow; without a version where socal
    runs from its source rather than an installed distribution (a SageMaker job)."""
    try:
        socal = f"socal=={version('socal')}"
    except PackageNotFoundError:
        socal = "socal"
    return [socal, f"mlflow=={mlflow.__version__}"]


def save(package: Path, dest: Path, example: Trial) -> Path:
    """Write the MLflow model of ``package`` (a run's ``model/``) to ``dest``."""
    task = json.loads((package / INFO_FILE).read_text())["task"]
    mlflow.pyfunc.save_model(
        str(dest),
        python_model=__file__,
        artifacts={PACKAGE: str(package)},
        signature=ModelSignature(INPUT, OUTPUTS[task]),
        input_example=input_example(example),
        pip_requirements=requirements(),
    )
    return dest
