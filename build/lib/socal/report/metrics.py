"""Metrics computed from predictions: discrimination, calibration, and the decision threshold.

Everything here works on plain arrays (labels, probabilities or predicted values), so a run and
the report across runs compute the same numbers the same way.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from socal.errors import UserError

YOUDEN = "val_youden"


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


def task_metrics(
    task: str, labels: np.ndarray, outputs: np.ndarray, threshold: float = 0.5
) -> dict:
    if task == "classification":
        return classification_metrics(labels, outputs, threshold)
    return regression_metrics(labels, outputs)


def bin_index(probs: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins as scikit-learn's calibration_curve has them: (a, b], the first [0, b]."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], probs)


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width probability bins: count, mean predicted probability, observed success rate."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = bin_index(probs, bins)
    rows = []
    for i in range(bins):
        inside = which == i
        n = int(inside.sum())
        rows.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "count": n,
                "mean_predicted": float(probs[inside].mean()) if n else math.nan,
                "observed": float(labels[inside].mean()) if n else math.nan,
            }
        )
    return rows


def calibration_metrics(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict:
    """Brier score and expected calibration error (bin-count-weighted |observed - predicted|)."""
    table = reliability(labels, probs, bins)
    total = sum(row["count"] for row in table)
    ece = sum(
        row["count"] / total * abs(row["observed"] - row["mean_predicted"])
        for row in table
        if row["count"]
    )
    return {"brier": brier_score_loss(np.asarray(labels).astype(int), probs), "ece": ece}


def parse_threshold(setting: str) -> str | float:
    """``eval.threshold``: ``val_youden`` or a probability in (0, 1)."""
    if str(setting) == YOUDEN:
        return YOUDEN
    try:
        value = float(setting)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise UserError(
            f"eval.threshold={setting} must be {YOUDEN} (chosen on validation) or a number "
            "between 0 and 1, e.g. eval.threshold=0.5"
        )
    return value


def youden_threshold(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises Youden's J (sensitivity + specificity - 1), and that J.

    Candidates lie halfway between neighbouring distinct scores (predict success when
    probability >= threshold); among equal J the highest threshold wins. Needs both classes.
    """
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=float)
    scores = np.unique(probs)[::-1]  # distinct, descending
    positives, negatives = (labels == 1).sum(), (labels == 0).sum()
    best_j, best_k = -math.inf, 0
    for k, score in enumerate(scores):
        predicted = probs >= score
        j = (predicted & (labels == 1)).sum() / positives - (
            predicted & (labels == 0)
        ).sum() / negatives
        if j > best_j + 1e-12:
            best_j, best_k = j, k
    upper = scores[best_k]
    lower = scores[best_k + 1] if best_k + 1 < len(scores) else upper
    return float((upper + lower) / 2), float(best_j)
