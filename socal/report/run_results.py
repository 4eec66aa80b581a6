"""What a run reports beyond its point metrics: threshold, intervals, calibration, differences.

``published_results`` works on a predictions table (one row per test trial, the columns of
``predictions.csv``), so the report across runs applies it unchanged to pooled folds.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from socal.report.clustered import auroc_intervals, clustered_proportions, degenerate
from socal.report.compare import paired_tests
from socal.report.intervals import (
    exact_intervals,
    percentile_interval,
    resample_weights,
    weighted_brier_skill,
    weighted_classification,
    weighted_regression,
)
from socal.report.metrics import (
    DECISION_THRESHOLDS,
    YOUDEN,
    brier_skill,
    calibration_metrics,
    isotonic_calibration,
    logistic_recalibration,
    net_benefit,
    parse_threshold,
    recalibration_fits,
    reliability,
    task_metrics,
    youden_threshold,
)

log = logging.getLogger(__name__)

BASELINE_PREFIX = "baseline_"
# The majority baseline's output is the training prevalence (socal.training.metrics).
PREVALENCE_COLUMN = BASELINE_PREFIX + "majority"
# Calibration figures beside the test metrics in the results tables.
CALIBRATION_ROWS = ("brier", "brier_skill", "ece", "calibration_intercept", "calibration_slope")
# The model-minus-baseline differences reported, per task.
DIFFERENCES = {"classification": ("auroc", "accuracy"), "regression": ("rmse", "mae")}


def output_column(task: str) -> str:
    return "probability" if task == "classification" else "predicted"


def choose_threshold(
    task: str, settings: Any, val_labels: np.ndarray, val_probs: np.ndarray
) -> Optional[dict]:
    """The decision threshold from ``eval.threshold`` (None for regression)."""
    if task != "classification":
        return None
    rule = parse_threshold(settings.threshold)
    if rule != YOUDEN:
        return {"rule": "fixed", "value": rule}
    if len(np.unique(val_labels)) < 2:
        log.warning("validation has one class only: Youden's J is undefined, threshold 0.5 used")
        return {"rule": "0.5 (validation has one class)", "value": 0.5}
    value, j = youden_threshold(val_labels, val_probs)
    log.info("threshold=%.4f (Youden's J on validation %.4f)", value, j)
    return {"rule": YOUDEN, "value": value, "val_youden_j": j}


def baseline_thresholds(task: str, settings: Any, val: pd.DataFrame) -> dict[str, float]:
    """Each baseline's threshold, chosen on the validation rows by the model's rule.

    A baseline constant on validation (the majority class: the training prevalence) keeps 0.5,
    so it predicts the training majority class; so does any baseline when validation has one
    class (Youden's J is undefined). Empty for regression.
    """
    if task != "classification":
        return {}
    rule = parse_threshold(settings.threshold)
    labels = val["label"].to_numpy(float)
    out = {}
    for name, scores in _baselines(val).items():
        if rule != YOUDEN:
            out[name] = rule
        elif np.ptp(scores) == 0 or len(np.unique(labels)) < 2:
            out[name] = 0.5
        else:
            out[name] = youden_threshold(labels, scores)[0]
    return out


def _baselines(test: pd.DataFrame) -> dict[str, np.ndarray]:
    cols = [c for c in test.columns if c.startswith(BASELINE_PREFIX)]
    return {c.removeprefix(BASELINE_PREFIX): test[c].to_numpy(float) for c in cols}


def _weighted(task: str, w: np.ndarray, labels, outputs, threshold, bins: int) -> dict:
    if task == "classification":
        return weighted_classification(w, labels, outputs, threshold, bins)
    return weighted_regression(w, labels, outputs)


def calibration(test: pd.DataFrame, labels: np.ndarray, probs: np.ndarray, bins: int) -> dict:
    """Brier score, its skill against the training prevalence (the majority baseline's
    output, per row: pooled folds keep their own), ECE, the reliability table, logistic
    recalibration and the isotonic calibration curve."""
    skill = (
        brier_skill(labels, probs, test[PREVALENCE_COLUMN].to_numpy(float))
        if PREVALENCE_COLUMN in test
        else math.nan
    )
    return {
        **calibration_metrics(labels, probs, bins),
        "brier_skill": skill,
        **logistic_recalibration(labels, probs),
        "bins": bins,
        "reliability": reliability(labels, probs, bins),
        "curve": isotonic_calibration(labels, probs),
    }


def bland_altman(targets: np.ndarray, preds: np.ndarray) -> dict:
    """Bias (mean of predicted - actual) and 95% limits of agreement (bias +- 1.96 sd)."""
    difference = np.asarray(preds, dtype=float) - np.asarray(targets, dtype=float)
    bias = float(difference.mean())
    sd = float(difference.std(ddof=1)) if len(difference) > 1 else math.nan
    return {"bias": bias, "sd": sd, "limits": [bias - 1.96 * sd, bias + 1.96 * sd]}


def published_results(
    task: str,
    test: pd.DataFrame,
    threshold,
    settings: Any,
    baseline_threshold: Optional[dict] = None,
) -> dict:
    """Test metrics at ``threshold`` (a number or one per row) with every interval around them,
    and the baselines' metrics at theirs (``baseline_threshold``: name -> a number or one per
    row, see ``baseline_thresholds``; 0.5 for a baseline not named).

    ``test``: label, probability|predicted, participant, and baseline_<name> columns.
    ``settings``: the ``eval`` config (bootstrap, confidence, bins, seed).
    """
    baseline_threshold = baseline_threshold or {}
    labels = test["label"].to_numpy(float)
    outputs = test[output_column(task)].to_numpy(float)
    baselines = _baselines(test)
    classification = task == "classification"
    result: dict[str, Any] = {"test": task_metrics(task, labels, outputs, threshold)}
    if classification:
        result["test_at_0.5"] = task_metrics(task, labels, outputs)
        result["prevalence"] = {"test": float(labels.mean())}
        result["calibration"] = calibration(test, labels, outputs, settings.bins)
        if PREVALENCE_COLUMN in test:
            result["prevalence"]["train"] = float(test[PREVALENCE_COLUMN].mean())
        # The event acted on is failure (label 0), its risk 1 - p: who to coach or assist.
        result["decision_curve"] = {
            "event": "failure",
            **net_benefit(labels == 0, 1 - outputs, DECISION_THRESHOLDS),
        }
    else:
        result["agreement"] = bland_altman(labels, outputs)
    intervals: dict[str, Any] = {
        "confidence": settings.confidence,
        "unit": "participant",
        "participants": int(test["participant"].nunique()),
        "resamples": settings.bootstrap,
        "seed": settings.seed,
    }
    # Row 0: every trial once (the point estimate); then one row per surgeon-level resample.
    w = np.ones((1, len(labels)))
    if settings.bootstrap > 0:
        participants = test["participant"].to_numpy()
        w = np.vstack([w, resample_weights(participants, settings.bootstrap, settings.seed)])
    model = _weighted(task, w, labels, outputs, threshold, settings.bins)
    if classification:
        model.update(recalibration_fits(w, labels, outputs))
        if PREVALENCE_COLUMN in test:
            prevalence = test[PREVALENCE_COLUMN].to_numpy(float)
            model["brier_skill"] = weighted_brier_skill(w, labels, outputs, prevalence)
    level = settings.confidence
    intervals["bootstrap"] = {k: percentile_interval(v[1:], level) for k, v in model.items()}
    intervals["defined_resamples"] = {k: int(np.isfinite(v[1:]).sum()) for k, v in model.items()}
    if settings.bootstrap > 0:
        intervals["degenerate"] = [k for k, v in intervals["bootstrap"].items() if degenerate(v)]
    if classification:
        participants = test["participant"].to_numpy()
        intervals["exact"] = exact_intervals(labels, outputs, threshold, level)
        intervals["clustered"] = clustered_proportions(
            labels, outputs, participants, threshold, level
        )
        intervals["auroc"] = auroc_intervals(labels, outputs, participants, level)
    differences, result["baselines"] = {}, {}
    for name, base in baselines.items():
        cut = baseline_threshold.get(name, 0.5)
        result["baselines"][name] = task_metrics(task, labels, base, cut)
        reference = _weighted(task, w, labels, base, cut, settings.bins)
        differences[name] = {
            key: {
                "value": float(model[key][0] - reference[key][0]),
                "ci": percentile_interval(model[key][1:] - reference[key][1:], level),
            }
            for key in DIFFERENCES[task]
        }
        if classification:
            differences[name]["tests"] = paired_tests(
                labels, test["participant"].to_numpy(), outputs, threshold, base, cut
            )
    result["intervals"] = intervals
    result["differences"] = differences
    return result


def test_summary(tests: dict) -> str:
    """The paired tests' p-values in one line."""
    return (
        f"AUROC DeLong p={tests['auroc_delong']['p']:.4f}, clustered DeLong "
        f"p={tests['auroc_clustered_delong']['p']:.4f}; accuracy McNemar exact "
        f"p={tests['accuracy_mcnemar']['p']:.4f}"
    )


def number(value: Optional[float], digits: int = 4) -> str:
    undefined = value is None or (isinstance(value, float) and math.isnan(value))
    return "n/a" if undefined else f"{value:.{digits}f}"


def interval(bounds: Optional[list], digits: int = 4) -> str:
    return "n/a" if not bounds else f"[{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def clustered_interval(intervals: dict, name: str) -> Optional[list]:
    """The few-surgeon interval of a metric: cluster-adjusted Clopper-Pearson for proportions,
    clustered DeLong for AUROC; None for the others."""
    if name == "auroc":
        return ((intervals.get("auroc") or {}).get("clustered_delong") or {}).get("ci")
    return intervals.get("clustered", {}).get(name, {}).get("clopper_pearson")


def results_rows(result: dict) -> list[dict]:
    """One row per test metric: name, value, bootstrap, exact and clustered intervals, at 0.5.

    A zero-width bootstrap interval is flagged (``ci_degenerate``), not passed on as a number.
    """
    intervals = result.get("intervals", {})
    rows = []
    test = {k: v for k, v in result["test"].items() if not isinstance(v, list)}
    calibrated = result.get("calibration", {})
    test.update({k: calibrated[k] for k in CALIBRATION_ROWS if k in calibrated})
    for name, value in test.items():
        exact = intervals.get("exact", {}).get(name, {})
        rows.append(
            {
                "metric": name,
                "value": value,
                "ci": intervals.get("bootstrap", {}).get(name),
                "ci_degenerate": name in intervals.get("degenerate", ()),
                "exact_ci": exact.get("clopper_pearson"),
                "clustered_ci": clustered_interval(intervals, name),
                "at_0.5": result.get("test_at_0.5", {}).get(name),
            }
        )
    return rows


def bootstrap_cell(row: dict, digits: int = 4) -> str:
    """The bootstrap interval as printed: a zero-width one is called degenerate."""
    return "degenerate (zero width)" if row["ci_degenerate"] else interval(row["ci"], digits)


def format_results(result: dict) -> str:
    """The test metrics with their 95% intervals and the model-minus-baseline differences."""
    intervals = result.get("intervals", {})
    level = f"{intervals.get('confidence', 0.95):.0%}"
    classification = result["task"] == "classification"
    lines = []
    if result.get("threshold"):
        lines.append(
            f"threshold {result['threshold']['value']:.4f} ({result['threshold']['rule']})"
        )
    header = f"bootstrap {level} CI ({intervals.get('participants', '?')} surgeons)"
    extra = f"{'exact (C-P)':<20}{'clustered':<20}{'at 0.5':>8}" if classification else ""
    lines.append(f"{'metric':<22}{'value':>10}  {header:<34}{extra}")
    for row in results_rows(result):
        extra = ""
        if classification:
            exact = interval(row["exact_ci"]) if row["exact_ci"] else ""
            clustered = interval(row["clustered_ci"]) if row["clustered_ci"] else ""
            at_half = "" if row["at_0.5"] is None else number(row["at_0.5"])
            extra = f"{exact:<20}{clustered:<20}{at_half:>8}"
        lines.append(
            f"{row['metric']:<22}{number(row['value']):>10}  {bootstrap_cell(row):<34}{extra}"
        )
    lines += notes(result)
    for name, diffs in result.get("differences", {}).items():
        for key in DIFFERENCES[result["task"]]:
            diff = diffs[key]
            lines.append(f"model - {name} {key}: {number(diff['value'])} {interval(diff['ci'])}")
        if diffs.get("tests"):
            lines.append(f"model vs {name}: {test_summary(diffs['tests'])}")
    return "\n".join(line.rstrip() for line in lines)


def notes(result: dict, digits: int = 4) -> list[str]:
    """What the PPV / NPV, the Brier skill score and the limits of agreement are relative to."""
    prevalence = result.get("prevalence")
    lines = []
    if prevalence:
        train = prevalence.get("train")
        lines.append(
            f"PPV and NPV hold at the test prevalence of success, {number(prevalence['test'], 3)}; "
            "they change with it. Brier skill: against predicting the training prevalence"
            + (f" ({number(train, 3)})" if train is not None else " (not recorded: n/a)")
        )
    agreement = result.get("agreement")
    if agreement:
        lines.append(
            f"Bland-Altman (predicted - actual): bias {number(agreement['bias'], digits)}, "
            f"95% limits of agreement {interval(agreement['limits'], digits)}"
        )
    return lines
