"""Confidence intervals: a bootstrap over surgeons, exact binomial intervals, paired differences.

The bootstrap resamples surgeons (participants), not trials: both trials of one surgeon share
the same hands, so they are not independent. With ``G`` surgeons in the test set, resample ``b``
draws ``G`` surgeons with replacement, ``rng.integers(0, G, (B, G))`` with
``rng = numpy.random.default_rng(seed)`` over the sorted surgeon ids, and takes every trial of
each drawn surgeon. Each metric's interval is the percentile interval of its ``B`` values;
resamples where a metric is undefined (one class only: AUROC, sensitivity, ...) are left out
and counted.

A resample is held as a weight per trial (how often it was drawn), so all resamples are scored
at once with array operations: 2000 resamples of every metric of a model and its baselines take
milliseconds, where calling scikit-learn per resample takes tens of seconds. The tests check
every resample against scikit-learn on the expanded trials.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from socal.report.metrics import bin_index, log_scale

# Metrics with a binomial count behind them: (successes, trials) from the confusion counts.
EXACT = {
    "accuracy": lambda tp, fp, tn, fn: (tp + tn, tp + fp + tn + fn),
    "sensitivity": lambda tp, fp, tn, fn: (tp, tp + fn),
    "specificity": lambda tp, fp, tn, fn: (tn, tn + fp),
    "ppv": lambda tp, fp, tn, fn: (tp, tp + fp),
    "npv": lambda tp, fp, tn, fn: (tn, tn + fn),
}


def resample_weights(groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, trials) counts: how often each trial is in each surgeon-level resample."""
    names, row_group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    picks = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    drawn = np.zeros((resamples, len(names)))
    np.add.at(drawn, (np.arange(resamples)[:, None], picks), 1.0)
    return drawn[:, row_group]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def weighted_classification(
    w: np.ndarray, labels: np.ndarray, probs: np.ndarray, threshold, bins: int = 10
) -> dict[str, np.ndarray]:
    """Every classification metric for each row of weights ``w`` (one value per resample).

    ``threshold``: one number, or one per trial (pooled folds keep each fold's own threshold).
    """
    y = np.asarray(labels).astype(int) == 1
    p = np.asarray(probs, dtype=float)
    pred = p >= threshold
    tp, fn = w @ (y & pred), w @ (y & ~pred)
    tn, fp = w @ (~y & ~pred), w @ (~y & pred)
    n = w.sum(axis=1)
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    # AUROC as the Mann-Whitney statistic: P(score of a success > score of a failure), ties 1/2.
    wins = (p[y][:, None] > p[~y][None, :]) + 0.5 * (p[y][:, None] == p[~y][None, :])
    pairs = w[:, y].sum(axis=1) * w[:, ~y].sum(axis=1)
    auroc = _ratio(np.einsum("bi,ij,bj->b", w[:, y], wins, w[:, ~y]), pairs)
    onehot = np.eye(bins)[bin_index(p, bins)]
    gap = np.abs(w @ (onehot * y[:, None]) - w @ (onehot * p[:, None])).sum(axis=1)
    return {
        "accuracy": _ratio(tp + tn, n),
        "balanced_accuracy": (sens + spec) / 2,
        "auroc": auroc,
        "f1": np.where(2 * tp + fp + fn > 0, _ratio(2 * tp, 2 * tp + fp + fn), 0.0),
        "sensitivity": sens,
        "specificity": spec,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "brier": _ratio(w @ (p - y) ** 2, n),
        "ece": _ratio(gap, n),
    }


def weighted_brier_skill(
    w: np.ndarray, labels: np.ndarray, probs: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """``1 - Brier / Brier_ref`` per row of ``w`` (see socal.report.metrics.brier_skill)."""
    y = np.asarray(labels, dtype=float)
    return 1 - _ratio(w @ (np.asarray(probs, dtype=float) - y) ** 2, w @ (reference - y) ** 2)


def weighted_median(w: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The median of ``values`` repeated by each row of integer counts ``w`` (numpy's median of
    the expanded sample: the mean of the two middle values when the count is even)."""
    order = np.argsort(values)
    sorted_values, cumulative = values[order], np.cumsum(w[:, order], axis=1)
    n = cumulative[:, -1]
    middle = [(cumulative > np.floor(k)[:, None]).argmax(axis=1) for k in ((n - 1) / 2, n / 2)]
    return np.where(n > 0, (sorted_values[middle[0]] + sorted_values[middle[1]]) / 2, np.nan)


def weighted_regression(w: np.ndarray, targets: np.ndarray, preds: np.ndarray) -> dict:
    """Every regression metric (socal.report.metrics.regression_metrics) per row of ``w``."""
    y, yhat = np.asarray(targets, dtype=float), np.asarray(preds, dtype=float)
    e, log_e = yhat - y, log_scale(yhat) - log_scale(y)
    n = w.sum(axis=1)
    total = w @ y**2 - _ratio((w @ y) ** 2, n)
    spread = w @ yhat**2 - _ratio((w @ yhat) ** 2, n)
    covariance = w @ (y * yhat) - _ratio((w @ y) * (w @ yhat), n)
    return {
        "rmse": np.sqrt(_ratio(w @ e**2, n)),
        "mae": _ratio(w @ np.abs(e), n),
        "r2": 1 - _ratio(w @ e**2, np.where(total > 1e-9 * np.maximum(n, 1), total, 0)),
        "median_ae": weighted_median(w, np.abs(e)),
        "rmse_log1p": np.sqrt(_ratio(w @ log_e**2, n)),
        "calibration_slope": _ratio(
            covariance, np.where(spread > 1e-12 * np.maximum(w @ yhat**2, n), spread, 0)
        ),
    }


def percentile_interval(values: np.ndarray, confidence: float) -> list[float] | None:
    """The central ``confidence`` percentile interval of the defined values (None if none)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = (1 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def exact_intervals(labels: np.ndarray, probs: np.ndarray, threshold, confidence: float) -> dict:
    """Clopper-Pearson and Wilson intervals for accuracy, sensitivity, specificity, PPV and NPV.

    These treat trials as independent; the bootstrap over surgeons does not.
    """
    y = np.asarray(labels).astype(int) == 1
    pred = np.asarray(probs) >= threshold
    tp, fp = int((y & pred).sum()), int((~y & pred).sum())
    tn, fn = int((~y & ~pred).sum()), int((y & ~pred).sum())
    out = {}
    for name, count in EXACT.items():
        k, n = count(tp, fp, tn, fn)
        if n == 0:
            continue
        test = binomtest(k, n)
        out[name] = {
            "k": k,
            "n": n,
            **{
                method: list(test.proportion_ci(confidence, method=scipy_name))
                for method, scipy_name in (("clopper_pearson", "exact"), ("wilson", "wilson"))
            },
        }
    return out
