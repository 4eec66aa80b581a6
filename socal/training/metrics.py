"""Test metrics computed from predictions with scikit-learn, and the baselines beside them.

Two baselines run on the same test trials as the model: the majority class (the training mean
for regression), and trial length alone, a one-feature fit on the training trials. On SOCAL the
video stops at hemostasis, so length is a strong, uninteresting predictor: a model that does not
beat it has learned nothing about surgical skill.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from socal.data.index import Trial

HEADLINE = {"classification": "accuracy", "regression": "rmse"}


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, AUROC, F1, sensitivity, specificity and confusion matrix."""
    labels = np.asarray(labels).astype(int)
    preds = (np.asarray(probs) >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": accuracy_score(labels, preds),
        "balanced_accuracy": balanced_accuracy_score(labels, preds),
        "auroc": roc_auc_score(labels, probs) if both_classes else math.nan,
        "f1": f1_score(labels, preds, zero_division=0),
        "sensitivity": recall_score(labels, preds, pos_label=1, zero_division=0),
        "specificity": recall_score(labels, preds, pos_label=0, zero_division=0),
        "confusion_matrix": confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
    }


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict:
    """RMSE, MAE and R^2 in the target's units (mL for blood loss)."""
    return {
        "rmse": root_mean_squared_error(targets, preds),
        "mae": mean_absolute_error(targets, preds),
        "r2": r2_score(targets, preds) if len(targets) > 1 else math.nan,
    }


def task_metrics(task: str, labels: np.ndarray, outputs: np.ndarray) -> dict:
    if task == "classification":
        return classification_metrics(labels, outputs)
    return regression_metrics(labels, outputs)


def baselines(task: str, train: list[Trial], test: list[Trial]) -> dict[str, dict]:
    """Majority-class (or mean) and trial-length baselines, fitted on train, scored on test."""
    y_train = np.array([t.label for t in train])
    y_test = np.array([t.label for t in test])
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
    return {
        "majority": task_metrics(task, y_test, constant),
        "trial_length": task_metrics(task, y_test, by_length),
    }


def results_table(
    task: str, model: dict, reference: dict[str, dict], intervals: Optional[dict] = None
) -> str:
    """The model's test metrics beside the baselines, with a verdict when length wins.

    ``intervals`` (metric -> text such as ``[0.71, 0.93]``) adds a 95% CI column when given.
    """
    keys = [k for k, v in model.items() if not isinstance(v, list)]
    rows = {"model": model, **reference}
    width = max(len(k) for k in keys) + 2
    ci = f"{'95% CI':>18}" if intervals else ""
    lines = [" " * width + f"{'model':>14}" + ci + "".join(f"{name:>14}" for name in reference)]
    for key in keys:
        cells = [f"{row[key]:>14.4f}" for row in rows.values()]
        if intervals:
            cells.insert(1, f"{intervals.get(key, ''):>18}")
        lines.append(f"{key:<{width}}" + "".join(cells))
    headline = HEADLINE[task]
    better = (lambda a, b: a > b) if task == "classification" else (lambda a, b: a < b)
    if better(reference["trial_length"][headline], model[headline]):
        lines.append(
            f"NOTE: trial length alone beats the model on test {headline}: the model has not "
            "learned more than how long the video is"
        )
    return "\n".join(lines)
