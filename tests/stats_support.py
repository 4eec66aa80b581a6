"""Independent recomputation of socal.report's statistics with scikit-learn (for the tests).

Resamples are drawn by the documented rule (``rng.integers(0, G, (B, G))`` over the sorted
surgeon ids), expanded into their trials, and scored with scikit-learn one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    recall_score,
    roc_auc_score,
)

from socal.report.run_results import output_column


def resamples(groups: pd.Series, count: int, seed: int) -> list[np.ndarray]:
    names = sorted(groups.astype(str).unique())
    rows = {name: np.flatnonzero(groups.astype(str).to_numpy() == name) for name in names}
    picks = np.random.default_rng(seed).integers(0, len(names), size=(count, len(names)))
    return [np.concatenate([rows[names[i]] for i in pick]) for pick in picks]


def ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    cells = pd.cut(p, np.linspace(0, 1, bins + 1), right=True, include_lowest=True)
    frame = pd.DataFrame({"y": y, "p": p, "bin": cells}).groupby("bin", observed=True)
    return float((frame.size() * (frame["y"].mean() - frame["p"].mean()).abs()).sum() / len(y))


def sklearn_classification(y: np.ndarray, p: np.ndarray, threshold, bins: int) -> dict:
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred) if both else math.nan,
        "auroc": roc_auc_score(y, p) if both else math.nan,
        "f1": f1_score(y, pred, zero_division=0),
        "sensitivity": recall_score(y, pred, zero_division=0) if (y == 1).any() else math.nan,
        "specificity": recall_score(y, pred, pos_label=0) if (y == 0).any() else math.nan,
        "brier": brier_score_loss(y, p),
        "ece": ece(y, p, bins),
    }


def percentiles(values: list[float], confidence: float) -> list[float]:
    values = np.array(values, dtype=float)
    tail = (1 - confidence) / 2 * 100
    return list(np.percentile(values[~np.isnan(values)], [tail, 100 - tail]))


def predictions_frame(
    participant: np.ndarray,
    label: np.ndarray,
    output: np.ndarray,
    task: str,
    majority: float | np.ndarray,
    length: np.ndarray,
) -> pd.DataFrame:
    """A predictions.csv-shaped table: each surgeon's two trials in a row (``S<id>T1``,
    ``S<id>T2``), the model's output and the majority and trial-length baselines'."""
    return pd.DataFrame(
        {
            "trial": [f"S{p}T{i % 2 + 1}" for i, p in enumerate(participant)],
            "participant": participant,
            "label": label,
            output_column(task): output,
            "baseline_majority": majority,
            "baseline_trial_length": length,
        }
    )
