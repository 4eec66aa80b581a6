"""Intervals that hold with few surgeons: cluster-adjusted binomial intervals and DeLong AUROC.

A percentile bootstrap over 10 surgeons under-covers and collapses to a point at a perfect
score (11/11 successes found gives [1, 1]). Here instead:

- proportions (accuracy, sensitivity, specificity): Clopper-Pearson and Wilson on the
  effective sample size ``n / design effect``, the design effect ``1 + (m - 1) * ICC`` from
  the within-surgeon correlation of the per-trial outcome (correct or not; one-way ANOVA
  estimator, negative values set to 0, ``m`` the size-weighted mean trials per surgeon);
- AUROC: DeLong's variance (trials independent) and its clustered form (Obuchowski 1997,
  surgeons as clusters), a Wald interval with Student's t on ``surgeons - 1`` degrees of
  freedom for the clustered one, clipped to [0, 1].

An interval of zero width carries no information: ``degenerate`` says so, and the report
prints it as such.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm
from scipy.stats import t as student_t

from socal.report.intervals import EXACT


def degenerate(bounds: list[float] | None) -> bool:
    """True for a missing interval or one of (numerically) zero width."""
    return bounds is None or not bounds[1] - bounds[0] > 1e-12


def intraclass_correlation(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA ICC of ``values`` within ``groups`` (0 when undefined or negative)."""
    names, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n, g = len(values), len(names)
    if g < 2 or n <= g:
        return 0.0
    sizes = np.bincount(index, minlength=g)
    means = np.bincount(index, weights=values, minlength=g) / sizes
    between = (sizes * (means - values.mean()) ** 2).sum() / (g - 1)
    within = ((values - means[index]) ** 2).sum() / (n - g)
    n0 = (n - (sizes**2).sum() / n) / (g - 1)
    denominator = between + (n0 - 1) * within
    return 0.0 if denominator <= 0 else max(0.0, float((between - within) / denominator))


def proportion_intervals(hits: np.ndarray, groups: np.ndarray, confidence: float) -> dict:
    """Clopper-Pearson and Wilson intervals of mean(hits) on the cluster-adjusted n."""
    hits = np.asarray(hits, dtype=float)
    n = len(hits)
    _, sizes = np.unique(np.asarray(groups).astype(str), return_counts=True)
    icc = intraclass_correlation(hits, groups)
    design_effect = 1 + ((sizes**2).sum() / n - 1) * icc
    n_eff = n / design_effect
    p = hits.mean()
    k_eff = p * n_eff
    alpha = 1 - confidence
    low = 0.0 if k_eff <= 0 else float(beta.ppf(alpha / 2, k_eff, n_eff - k_eff + 1))
    high = 1.0 if k_eff >= n_eff else float(beta.ppf(1 - alpha / 2, k_eff + 1, n_eff - k_eff))
    z = norm.ppf(1 - alpha / 2)
    centre = (p + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z / (1 + z**2 / n_eff) * math.sqrt(p * (1 - p) / n_eff + z**2 / (4 * n_eff**2))
    return {
        "k": int(hits.sum()),
        "n": n,
        "icc": icc,
        "design_effect": float(design_effect),
        "effective_n": float(n_eff),
        "clopper_pearson": [low, high],
        "wilson": [float(centre - half), float(centre + half)],
    }


def clustered_proportions(
    labels: np.ndarray, probs: np.ndarray, groups: np.ndarray, threshold, confidence: float
) -> dict:
    """Cluster-adjusted intervals of accuracy (all trials), sensitivity, specificity (the
    successes, the failures), PPV and NPV (the trials called successes, called failures)."""
    y = np.asarray(labels).astype(int) == 1
    predicted = np.asarray(probs) >= threshold
    correct = predicted == y
    groups = np.asarray(groups)
    subsets = {"accuracy": np.ones_like(y), "sensitivity": y, "specificity": ~y,
               "ppv": predicted, "npv": ~predicted}  # fmt: skip
    return {
        name: proportion_intervals(correct[rows], groups[rows], confidence)
        for name, rows in subsets.items()
        if name in EXACT and rows.any()
    }


def delong_components(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """AUROC and each trial's placement value (V10 for a success, V01 for a failure)."""
    y = np.asarray(labels).astype(int) == 1
    s = np.asarray(scores, dtype=float)
    psi = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
    placement = np.empty(len(s))
    placement[y], placement[~y] = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), placement


def auc_covariance(
    labels: np.ndarray, scores: list[np.ndarray], groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs of several score columns on the same trials and their covariance.

    ``groups=None``: DeLong et al. (1988), trials independent. With surgeons as ``groups``:
    Obuchowski (1997), each surgeon a cluster of correlated successes and failures.
    """
    y = np.asarray(labels).astype(int) == 1
    m, n = y.sum(), (~y).sum()
    aucs, centred = [], []
    for column in scores:
        auc, placement = delong_components(labels, column)
        aucs.append(auc)
        centred.append(placement - auc)
    centred = np.array(centred)
    if groups is None:
        s10 = np.atleast_2d(np.cov(centred[:, y]))
        s01 = np.atleast_2d(np.cov(centred[:, ~y]))
        return np.array(aucs), s10 / m + s01 / n
    _, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    clusters = index.max() + 1
    v10, v01 = (
        np.array([np.bincount(index, weights=np.where(rows, c, 0.0), minlength=clusters)
                  for c in centred])
        for rows in (y, ~y)
    )  # fmt: skip
    scale = clusters / (clusters - 1)
    s10, s01, s11 = scale * v10 @ v10.T / m, scale * v01 @ v01.T / n, scale * v10 @ v01.T
    return np.array(aucs), s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def auroc_intervals(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, confidence: float
) -> dict | None:
    """DeLong and clustered-DeLong intervals of AUROC (None with one class only)."""
    y = np.asarray(labels).astype(int)
    if len(np.unique(y)) < 2 or min((y == 1).sum(), (y == 0).sum()) < 2:
        return None
    surgeons = len(np.unique(np.asarray(groups).astype(str)))
    out: dict = {"surgeons": surgeons}
    for name, units, quantile in (
        ("delong", None, norm.ppf((1 + confidence) / 2)),
        ("clustered_delong", groups, student_t.ppf((1 + confidence) / 2, max(surgeons - 1, 1))),
    ):
        auc, covariance = auc_covariance(y, [scores], units)
        se = math.sqrt(max(float(covariance[0, 0]), 0.0))
        out[name] = {
            "se": se,
            "ci": [
                float(max(0.0, auc[0] - quantile * se)),
                float(min(1.0, auc[0] + quantile * se)),
            ],
        }
    return out
