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
    differences: dict[str, dict] = {name: {} for name in baselines}
    if settings.bootstrap > 0:
        w = resample_weights(test["participant"].to_numpy(), settings.bootstrap, settings.seed)
        model = _weighted(task, w, labels, outputs, threshold, settings.bins)
        intervals["bootstrap"] = {
            k: percentile_interval(v, settings.confidence) for k, v in model.items()
        }
        intervals["defined_resamples"] = {k: int(np.isfinite(v).sum()) for k, v in model.items()}
        for name, base in baselines.items():
            reference = _weighted(task, w, labels, base, 0.5, settings.bins)
            for key in DIFFERENCES[task]:
                differences[name][key] = {
                    "ci": percentile_interval(model[key] - reference[key], settings.confidence)
                }
    if classification:
        intervals["exact"] = exact_intervals(labels, outputs, threshold, settings.confidence)
    everything = np.ones((1, len(labels)))  # the point estimates: every trial once
    model_point = _weighted(task, everything, labels, outputs, threshold, settings.bins)
    for name, base in baselines.items():
        reference = _weighted(task, everything, labels, base, 0.5, settings.bins)
        for key in DIFFERENCES[task]:
            value = float(model_point[key][0] - reference[key][0])
            differences[name].setdefault(key, {})["value"] = value
    result["intervals"] = intervals
    result["differences"] = differences
    return result


def _fmt(value: Optional[float]) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


def _interval(bounds: Optional[list]) -> str:
    return "n/a" if not bounds else f"[{_fmt(bounds[0])}, {_fmt(bounds[1])}]"


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
    threshold = result.get("threshold")
    lines = []
    if threshold:
        lines.append(f"threshold {threshold['value']:.4f} ({threshold['rule']})")
    header = f"bootstrap {level} CI ({intervals.get('participants', '?')} surgeons)"
    lines.append(f"{'metric':<18}{'value':>8}  {header:<34}{'exact (C-P)':<20}{'at 0.5':>8}")
    for row in results_rows(result):
        at_half = "" if row["at_0.5"] is None else _fmt(row["at_0.5"])
        lines.append(
            f"{row['metric']:<18}{_fmt(row['value']):>8}  {_interval(row['ci']):<34}"
            f"{_interval(row['exact_ci']) if row['exact_ci'] else '':<20}{at_half:>8}"
        )
    for name, diffs in result.get("differences", {}).items():
        for key, diff in diffs.items():
            lines.append(f"model - {name} {key}: {_fmt(diff['value'])} {_interval(diff.get('ci'))}")
    return "\n".join(lines)
