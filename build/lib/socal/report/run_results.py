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

from socal.report.intervals import (
    exact_intervals,
    percentile_interval,
    resample_weights,
    weighted_classification,
    weighted_regression,
)
from socal.report.metrics import (
    YOUDEN,
    calibration_metrics,
    parse_threshold,
    reliability,
    task_metrics,
    youden_threshold,
)

log = logging.getLogger(__name__)

BASELINE_PREFIX = "baseline_"
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


def _baselines(test: pd.DataFrame) -> dict[str, np.ndarray]:
    cols = [c for c in test.columns if c.startswith(BASELINE_PREFIX)]
    return {c.removeprefix(BASELINE_PREFIX): test[c].to_numpy(float) for c in cols}


def _weighted(task: str, w: np.ndarray, labels, outputs, threshold, bins: int) -> dict:
    if task == "classification":
        return weighted_classification(w, labels, outputs, threshold, bins)
    return weighted_regression(w, labels, outputs)


def published_results(task: str, test: pd.DataFrame, threshold, settings: Any) -> dict:
    """Test metrics at ``threshold`` (a number or one per row) with every interval around them.

    ``test``: label, probability|predicted, participant, and baseline_<name> columns.
    ``settings``: the ``eval`` config (bootstrap, confidence, bins, seed).
    """
    labels = test["label"].to_numpy(float)
    outputs = test[output_column(task)].to_numpy(float)
    baselines = _baselines(test)
    classification = task == "classification"
    result: dict[str, Any] = {"test": task_metrics(task, labels, outputs, threshold)}
    if classification:
        result["test_at_0.5"] = task_metrics(task, labels, outputs)
        result["calibration"] = {
            **calibration_metrics(labels, outputs, settings.bins),
            "bins": settings.bins,
            "reliability": reliability(labels, outputs, settings.bins),
        }
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
    level = settings.confidence
    intervals["bootstrap"] = {k: percentile_interval(v[1:], level) for k, v in model.items()}
    intervals["defined_resamples"] = {k: int(np.isfinite(v[1:]).sum()) for k, v in model.items()}
    if classification:
        intervals["exact"] = exact_intervals(labels, outputs, threshold, level)
    differences = {}
    for name, base in baselines.items():
        reference = _weighted(task, w, labels, base, 0.5, settings.bins)
        differences[name] = {
            key: {
                "value": float(model[key][0] - reference[key][0]),
                "ci": percentile_interval(model[key][1:] - reference[key][1:], level),
            }
            for key in DIFFERENCES[task]
        }
    result["intervals"] = intervals
    result["differences"] = differences
    return result


def number(value: Optional[float], digits: int = 4) -> str:
    undefined = value is None or (isinstance(value, float) and math.isnan(value))
    return "n/a" if undefined else f"{value:.{digits}f}"


def interval(bounds: Optional[list], digits: int = 4) -> str:
    return "n/a" if not bounds else f"[{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def results_rows(result: dict) -> list[dict]:
    """One row per test metric: name, value, bootstrap interval, exact interval, value at 0.5."""
    intervals = result.get("intervals", {})
    rows = []
    test = {k: v for k, v in result["test"].items() if not isinstance(v, list)}
    test.update({k: v for k, v in result.get("calibration", {}).items() if k in ("brier", "ece")})
    for name, value in test.items():
        exact = intervals.get("exact", {}).get(name, {})
        rows.append(
            {
                "metric": name,
                "value": value,
                "ci": intervals.get("bootstrap", {}).get(name),
                "exact_ci": exact.get("clopper_pearson"),
                "at_0.5": result.get("test_at_0.5", {}).get(name),
            }
        )
    return rows


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
    extra = f"{'exact (C-P)':<20}{'at 0.5':>8}" if classification else ""
    lines.append(f"{'metric':<18}{'value':>10}  {header:<34}{extra}")
    for row in results_rows(result):
        extra = ""
        if classification:
            exact = interval(row["exact_ci"]) if row["exact_ci"] else ""
            extra = f"{exact:<20}{'' if row['at_0.5'] is None else number(row['at_0.5']):>8}"
        lines.append(
            f"{row['metric']:<18}{number(row['value']):>10}  {interval(row['ci']):<34}{extra}"
        )
    for name, diffs in result.get("differences", {}).items():
        for key, diff in diffs.items():
            lines.append(f"model - {name} {key}: {number(diff['value'])} {interval(diff['ci'])}")
    return "\n".join(line.rstrip() for line in lines)
