"""Test metrics computed from predictions with scikit-learn, and the baselines beside them.

Two baselines run on the same test trials as the model: the majority class (the training mean
for regression), and trial length alone, a one-feature fit on the training trials. On SOCAL the
video stops at hemostasis, so length is a strong, uninteresting predictor: a model that does not
beat it has learned nothing about surgical skill.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression

from socal.data.index import Trial

# The metrics themselves live in socal.report (torch-free, shared with the report across runs).
from socal.report.metrics import (  # noqa: F401  (re-exported)
    classification_metrics,
    regression_metrics,
    task_metrics,
)

HEADLINE = {"classification": "accuracy", "regression": "rmse"}


def baseline_outputs(task: str, train: list[Trial], test: list[Trial]) -> dict[str, np.ndarray]:
    """Each baseline's per-trial output on ``test`` (probability or value), fitted on train."""
    y_train = np.array([t.label for t in train])
    length_train = np.array([[t.n_frames] for t in train], dtype=float)
    length_test = np.array([[t.n_frames] for t in test], dtype=float)
    if task == "classification":
        majority = float(np.mean(y_train) >= 0.5)
        constant = np.full(len(test), majority)
        if len(np.unique(y_train)) == 2:
            fit = LogisticRegression().fit(length_train, y_train.astype(int))
            by_length = fit.predict_proba(length_test)[:, 1]
        else:
            by_length = constant
    else:
        constant = np.full(len(test), y_train.mean())
        by_length = LinearRegression().fit(length_train, y_train).predict(length_test)
    return {"majority": constant, "trial_length": by_length}


def baselines(task: str, train: list[Trial], test: list[Trial]) -> dict[str, dict]:
    """Majority-class (or mean) and trial-length baselines, fitted on train, scored on test."""
    y_test = np.array([t.label for t in test])
    outputs = baseline_outputs(task, train, test)
    return {name: task_metrics(task, y_test, out) for name, out in outputs.items()}


def results_table(task: str, model: dict, reference: dict[str, dict]) -> str:
    """The model's test metrics beside the baselines, with a verdict when length wins."""
    keys = [k for k, v in model.items() if not isinstance(v, list)]
    rows = {"model": model, **reference}
    width = max(len(k) for k in keys) + 2
    lines = [" " * width + "".join(f"{name:>14}" for name in rows)]
    for key in keys:
        lines.append(f"{key:<{width}}" + "".join(f"{row[key]:>14.4f}" for row in rows.values()))
    headline = HEADLINE[task]
    better = (lambda a, b: a > b) if task == "classification" else (lambda a, b: a < b)
    if better(reference["trial_length"][headline], model[headline]):
        lines.append(
            f"NOTE: trial length alone beats the model on test {headline}: the model has not "
            "learned more than how long the video is"
        )
    return "\n".join(lines)
