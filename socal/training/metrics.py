"""Test metrics computed from predictions with scikit-learn, and the baselines beside them.

Baselines run on the same test trials as the model: the majority class (a constant probability,
the training prevalence; the training mean for regression), and trial length alone, a
one-feature fit on the training trials. Every baseline outputs a probability, so it has an AUROC
and a Brier score, and is thresholded on validation like the model (socal.report.run_results).
On SOCAL the video stops at hemostasis, so length is a strong, uninteresting predictor: a model
that does not beat it has learned nothing about surgical skill.

Length comes twice. ``trial_length`` fits the full length, which a clip drawn from the whole
trial can see (its stride) and which shows how much the outcome leaks. ``trial_length_window``
fits ``min(length, window end)``: all a model drawn from a window can learn about length is
whether the trial ended inside the window (the padding with its last frame). The verdict under
the table compares the model with the one that applies to the run, and names it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression

from socal.config import WindowConfig
from socal.data.index import Trial

# The metrics themselves live in socal.report (torch-free, shared with the report across runs).
from socal.report.metrics import (  # noqa: F401  (re-exported)
    classification_metrics,
    regression_metrics,
    task_metrics,
)
from socal.report.run_results import output_column

HEADLINE = {"classification": "accuracy", "regression": "rmse"}


def _length_fit(task: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray):
    """Outputs of a one-feature fit (logistic or linear) on the training trials."""
    x_train, x_test = x_train[:, None].astype(float), x_test[:, None].astype(float)
    if task == "regression":
        return LinearRegression().fit(x_train, y_train).predict(x_test)
    if len(np.unique(y_train)) < 2 or len(np.unique(x_train)) < 2:
        return np.full(len(x_test), float(np.mean(y_train)))  # nothing to fit on: the prevalence
    return LogisticRegression().fit(x_train, y_train.astype(int)).predict_proba(x_test)[:, 1]


def window_end(window: Optional[WindowConfig]) -> Optional[int]:
    """The last second a clip can see, exclusive; None when clips span the whole trial."""
    if window is None or window.length_s is None:
        return None
    return int(window.start_s + window.length_s)


def applicable_length_baseline(window: Optional[WindowConfig]) -> str:
    return "trial_length" if window_end(window) is None else "trial_length_window"


def predictions_table(
    trials: list[Trial],
    outputs: np.ndarray,
    labels: np.ndarray,
    task: str,
    threshold: Optional[float],
) -> pd.DataFrame:
    """The columns of predictions.csv that a run and ``predict.py`` write, one row per trial:
    ``prediction`` at ``threshold`` (classification) or the predicted value (None: regression)."""
    return pd.DataFrame(
        {
            "trial": [t.trial_id for t in trials],
            "participant": [t.participant for t in trials],
            "label": labels,
            output_column(task): outputs,
            "prediction": outputs if threshold is None else (outputs >= threshold).astype(int),
        }
    )


def baseline_outputs(
    task: str, train: list[Trial], test: list[Trial], window: Optional[WindowConfig] = None
) -> dict[str, np.ndarray]:
    """Each baseline's per-trial output on ``test`` (probability or value), fitted on train.

    ``trial_length_window`` uses ``min(length, window end)`` (the full length when clips span
    the whole trial).
    """
    y_train = np.array([t.label for t in train])
    lengths = {name: np.array([t.n_frames for t in trials]) for name, trials in
               (("train", train), ("test", test))}  # fmt: skip
    end = window_end(window)
    seen = {k: v if end is None else np.minimum(v, end) for k, v in lengths.items()}
    return {
        "majority": np.full(len(test), float(y_train.mean())),
        "trial_length": _length_fit(task, lengths["train"], y_train, lengths["test"]),
        "trial_length_window": _length_fit(task, seen["train"], y_train, seen["test"]),
    }


def baselines(
    task: str, train: list[Trial], test: list[Trial], window: Optional[WindowConfig] = None
) -> dict[str, dict]:
    """Majority-class (or mean) and both trial-length baselines, fitted on train, scored on test."""
    y_test = np.array([t.label for t in test])
    outputs = baseline_outputs(task, train, test, window)
    return {name: task_metrics(task, y_test, out) for name, out in outputs.items()}


def results_table(
    task: str,
    model: dict,
    reference: dict[str, dict],
    window: Optional[WindowConfig] = None,
    intervals: Optional[dict] = None,
) -> str:
    """The model's test metrics beside the baselines, with a verdict when the length baseline
    that applies to this run's clips (see the module docstring) wins.

    ``intervals`` (metric -> text such as ``[0.71, 0.93]``) adds a 95% CI column when given.
    """
    keys = [k for k, v in model.items() if not isinstance(v, list)]
    rows = {"model": model, **reference}
    width, column = max(len(k) for k in keys) + 2, max(14, *(len(n) + 2 for n in rows))
    ci = f"{'95% CI':>20}" if intervals else ""
    lines = [" " * width + f"{'model':>{column}}" + ci]
    lines[0] += "".join(f"{name:>{column}}" for name in reference)
    for key in keys:
        cells = [f"{row[key]:>{column}.4f}" for row in rows.values()]
        if intervals:
            cells.insert(1, f"{intervals.get(key, ''):>20}")
        lines.append(f"{key:<{width}}" + "".join(cells))
    headline = HEADLINE[task]
    better = (lambda a, b: a > b) if task == "classification" else (lambda a, b: a < b)
    applicable = applicable_length_baseline(window)
    if better(reference[applicable][headline], model[headline]):
        fitted, learned = (
            ("the full length", "how long the video is")
            if applicable == "trial_length"
            else (
                f"min(length, {window_end(window)} s), what this run's clips show",
                f"whether the video ends within {window_end(window)} s",
            )
        )
        lines.append(
            f"NOTE: trial length alone ({applicable}: {fitted}) beats the model on test "
            f"{headline}: the model has not shown it learned more than {learned}"
        )
    return "\n".join(lines)
