"""Metrics computed from predictions: discrimination, calibration, and the decision threshold.

Everything here works on plain arrays (labels, probabilities or predicted values), so a run and
the report across runs compute the same numbers the same way.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    median_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from socal.errors import UserError

YOUDEN = "val_youden"
# Probabilities are clipped to [EPS, 1 - EPS] before their logit (a float32 sigmoid can give 1).
EPS = 1e-6
# Risk thresholds of the decision curve.
DECISION_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, AUROC, F1, sensitivity, specificity, PPV, NPV and the
    confusion matrix. PPV and NPV hold at the prevalence of the trials scored (the test set's).

    A metric without a denominator (specificity on a fold with no failure) is NaN, never 0:
    a zero would enter a mean over folds as if it had been measured.
    """
    labels = np.asarray(labels).astype(int)
    preds = (np.asarray(probs) >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": accuracy_score(labels, preds),
        "balanced_accuracy": balanced_accuracy_score(labels, preds),
        "auroc": roc_auc_score(labels, probs) if both_classes else math.nan,
        "f1": f1_score(labels, preds, zero_division=0),
        "sensitivity": recall_score(labels, preds, pos_label=1, zero_division=np.nan),
        "specificity": recall_score(labels, preds, pos_label=0, zero_division=np.nan),
        "ppv": precision_score(labels, preds, pos_label=1, zero_division=np.nan),
        "npv": precision_score(labels, preds, pos_label=0, zero_division=np.nan),
        "confusion_matrix": confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
    }


def log_scale(values: np.ndarray) -> np.ndarray:
    """``log1p`` of a non-negative quantity (blood loss, mL); a negative prediction counts as 0."""
    return np.log1p(np.maximum(np.asarray(values, dtype=float), 0.0))


def calibration_slope(targets: np.ndarray, preds: np.ndarray) -> float:
    """Slope of the least-squares line of observed on predicted: 1 when predictions are neither
    too spread (< 1) nor too shrunk (> 1); NaN when the predictions are constant."""
    preds = np.asarray(preds, dtype=float)
    spread = np.var(preds)
    if len(preds) < 2 or spread <= 1e-12 * max(1.0, float(np.mean(preds**2))):
        return math.nan
    return float(np.cov(preds, np.asarray(targets, dtype=float), bias=True)[0, 1] / spread)


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict:
    """RMSE, MAE and R^2 in the target's units (mL for blood loss); for a heavy-tailed target
    also the median absolute error, the RMSE of log1p (a relative error, robust to the few
    very large losses) and the calibration slope."""
    return {
        "rmse": root_mean_squared_error(targets, preds),
        "mae": mean_absolute_error(targets, preds),
        "r2": r2_score(targets, preds) if len(targets) > 1 else math.nan,
        "median_ae": median_absolute_error(targets, preds),
        "rmse_log1p": root_mean_squared_error(log_scale(targets), log_scale(preds)),
        "calibration_slope": calibration_slope(targets, preds),
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


def logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def recalibration_fits(
    w: np.ndarray, labels: np.ndarray, probs: np.ndarray, iterations: int = 100
) -> dict[str, np.ndarray]:
    """Calibration-in-the-large and the calibration slope (logistic recalibration, Cox 1958),
    one value per row of trial weights ``w`` (a bootstrap resample; a row of ones: the data).

    ``calibration_intercept``: ``a`` in ``logit P(y=1) = a + logit(p)`` (``logit(p)`` an offset),
    0 when the mean predicted probability matches the observed rate, > 0 when the model
    under-predicts success. ``calibration_slope``: ``b`` in ``logit P(y=1) = a' + b logit(p)``,
    1 for well-spread predictions, < 1 when they are too extreme (overfitting), > 1 too modest.
    Weighted maximum likelihood, every row at once: the intercept by bisection of its score
    (monotone in ``a``, with a root whenever both classes are drawn; Newton's steps overshoot
    when predictions are confidently wrong), the slope by Newton's method. Both NaN with one
    class; the slope NaN when the scores separate the classes (no maximum-likelihood estimate
    exists: a perfect ranking has an unbounded slope) or when Newton did not converge.
    """
    y = np.asarray(labels, dtype=float)
    z = logit(probs)
    w = np.atleast_2d(np.asarray(w, dtype=float))
    drawn = w > 0
    successes, failures = drawn & (y == 1), drawn & (y == 0)
    both = successes.any(axis=1) & failures.any(axis=1)
    separated = (np.where(failures, z, -np.inf).max(axis=1)
                 <= np.where(successes, z, np.inf).min(axis=1)) | (
        np.where(successes, z, -np.inf).max(axis=1) <= np.where(failures, z, np.inf).min(axis=1)
    )  # fmt: skip
    intercept = _intercept_root(w, y, z)
    coef = np.zeros((len(w), 2))  # a', b
    design = np.stack([np.ones_like(z), z])  # (2, trials)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(iterations):
            mu = expit(coef @ design)
            gradient = (w * (y - mu)) @ design.T
            v = w * mu * (1 - mu)  # the information: [[h00, h01], [h01, h11]] per row
            h00, h01, h11 = v.sum(axis=1), v @ z, v @ z**2
            det = h00 * h11 - h01**2  # 0 for a row that cannot be fitted: NaN, masked below
            g0, g1 = gradient[:, 0], gradient[:, 1]
            coef += np.stack([h11 * g0 - h01 * g1, h00 * g1 - h01 * g0], axis=1) / det[:, None]
        mu = expit(coef @ design)
        converged = np.abs((w * (y - mu)) @ design.T).max(axis=1) < 1e-8 * w.sum(axis=1)
    return {
        "calibration_intercept": np.where(both, intercept, np.nan),
        "calibration_slope": np.where(both & ~separated & converged, coef[:, 1], np.nan),
    }


def _intercept_root(
    w: np.ndarray, y: np.ndarray, z: np.ndarray, bound: float = 200.0
) -> np.ndarray:
    """The ``a`` of each row where ``sum w (y - expit(a + z)) = 0``, by bisection on
    [-bound, bound] (``z`` is clipped to about +-28; the root of any resample lies well inside)."""
    low, high = np.full(len(w), -bound), np.full(len(w), bound)
    target = w @ y
    for _ in range(80):  # 400 / 2**80: below float resolution
        middle = (low + high) / 2
        above = (w * expit(middle[:, None] + z)).sum(axis=1) > target  # a too large
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    return (low + high) / 2


def logistic_recalibration(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Calibration intercept and slope of the trials scored (see ``recalibration_fits``)."""
    fits = recalibration_fits(np.ones((1, len(probs))), labels, probs)
    return {name: float(values[0]) for name, values in fits.items()}


def isotonic_calibration(labels: np.ndarray, probs: np.ndarray) -> list[dict]:
    """A smoothed calibration curve without bins or bandwidth to choose: the isotonic (PAV)
    regression of the outcome on the probability, as in the CORP reliability diagram
    (Dimitriadis, Gneiting & Jordan 2021). One point per distinct probability, sorted."""
    p = np.asarray(probs, dtype=float)
    fit = IsotonicRegression(y_min=0.0, y_max=1.0).fit(p, np.asarray(labels, dtype=float))
    grid = np.unique(p)
    return [
        {"predicted": float(x), "observed": float(v)}
        for x, v in zip(grid, fit.predict(grid), strict=True)
    ]


def brier_skill(labels: np.ndarray, probs: np.ndarray, reference: np.ndarray) -> float:
    """``1 - Brier / Brier_ref``, the reference a constant prediction per trial (the training
    prevalence of its run): > 0 when the model beats predicting that prevalence."""
    y = np.asarray(labels, dtype=float)
    ref = float(np.mean((np.broadcast_to(reference, y.shape) - y) ** 2))
    model = float(np.mean((np.asarray(probs, dtype=float) - y) ** 2))
    return math.nan if ref <= 0 else 1 - model / ref


def net_benefit(events: np.ndarray, risk: np.ndarray, thresholds: np.ndarray) -> dict:
    """Decision-curve analysis (Vickers & Elkin 2006): at each risk threshold ``t``, acting on
    trials with ``risk >= t`` has net benefit ``TP/n - FP/n * t / (1 - t)``; acting on every
    trial ``prevalence - (1 - prevalence) * t / (1 - t)``; acting on none, 0."""
    events = np.asarray(events, dtype=bool)
    act = np.asarray(risk, dtype=float)[None, :] >= thresholds[:, None]
    n, odds = len(events), thresholds / (1 - thresholds)
    prevalence = events.mean()
    return {
        "thresholds": thresholds.tolist(),
        "model": ((act & events).sum(axis=1) / n - (act & ~events).sum(axis=1) / n * odds).tolist(),
        "treat_all": (prevalence - (1 - prevalence) * odds).tolist(),
        "treat_none": np.zeros(len(thresholds)).tolist(),
    }


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

    Candidate cuts lie halfway between neighbouring distinct scores (predict success when
    probability >= threshold); the cut that calls every trial a success lies halfway between
    the lowest score and 0, below every validation score. When several cuts tie, the middle of
    the tied plateau wins, favouring neither sensitivity nor specificity. Needs both classes.
    """
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=float)
    scores = np.unique(probs)[::-1]  # distinct, descending
    positives, negatives = (labels == 1).sum(), (labels == 0).sum()
    predicted = probs[None, :] >= scores[:, None]  # row k: success when >= scores[k]
    j = (predicted & (labels == 1)).sum(axis=1) / positives - (predicted & (labels == 0)).sum(
        axis=1
    ) / negatives
    cuts = (scores + np.append(scores[1:], 0.0)) / 2
    tied = np.flatnonzero(j >= j.max() - 1e-12)
    runs = np.split(tied, np.flatnonzero(np.diff(tied) > 1) + 1)  # contiguous plateaus
    middle = tied[(len(tied) - 1) // 2]
    plateau = next(run for run in runs if middle in run)
    return float((cuts[plateau[0]] + cuts[plateau[-1]]) / 2), float(j.max())
