"""Paired tests of two classifiers scored on the same trials: AUROC (DeLong) and accuracy (McNemar).

- AUROC: DeLong et al. (1988) for trials taken as independent, and Obuchowski's (1997)
  clustered form with surgeons as clusters (Student's t on ``surgeons - 1`` degrees of freedom,
  as for the clustered interval); two-sided p-values of the difference ``a - b``.
- Accuracy: McNemar's exact test, a two-sided binomial test on the discordant trials (those
  one classifier gets right and the other wrong).

The tests check both against reference implementations (MLstatkit, statsmodels) to 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from socal.report.clustered import auc_covariance


def delong_difference(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, groups: np.ndarray | None
) -> dict:
    """AUROC(a) - AUROC(b), its standard error and two-sided p (clustered when ``groups``)."""
    aucs, cov = auc_covariance(labels, [scores_a, scores_b], groups)
    difference = float(aucs[0] - aucs[1])
    se = math.sqrt(max(float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), 0.0))
    if se == 0:
        p = 1.0 if difference == 0 else 0.0
    elif groups is None:
        p = float(2 * norm.sf(abs(difference) / se))
    else:
        surgeons = len(np.unique(np.asarray(groups).astype(str)))
        p = float(2 * student_t.sf(abs(difference) / se, max(surgeons - 1, 1)))
    return {"difference": difference, "se": se, "p": p}


def mcnemar_exact(labels: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray) -> dict:
    """Discordant counts and McNemar's exact two-sided p for the accuracies of a and b."""
    y = np.asarray(labels).astype(int)
    right_a, right_b = np.asarray(predicted_a) == y, np.asarray(predicted_b) == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    total = only_a + only_b
    p = 1.0 if total == 0 else float(binomtest(min(only_a, only_b), total, 0.5).pvalue)
    return {"only_a_right": only_a, "only_b_right": only_b, "p": p}


def paired_tests(
    labels: np.ndarray,
    groups: np.ndarray,
    scores_a: np.ndarray,
    threshold_a,
    scores_b: np.ndarray,
    threshold_b,
) -> dict | None:
    """DeLong, clustered DeLong and McNemar for a vs b (None with one class only)."""
    y = np.asarray(labels).astype(int)
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        return None
    return {
        "auroc_delong": delong_difference(y, scores_a, scores_b, None),
        "auroc_clustered_delong": delong_difference(y, scores_a, scores_b, groups),
        "accuracy_mcnemar": mcnemar_exact(
            y, np.asarray(scores_a) >= threshold_a, np.asarray(scores_b) >= threshold_b
        ),
    }
