"""Group runs by what differs between their configs; summarise and pool each group.

Keys that differ between the runs' ``config.yaml`` files are the swept keys. Replicate keys
(``split.fold``, ``trainer.seed``, ``split.seed``) and keys that never change results (paths,
workers: socal.config.NON_SEMANTIC_KEYS) do not form groups: a group's runs are the folds or
seeds of one setting, summarised as mean +- sd. The folds of a k-fold cross-validation are also
pooled: their out-of-fold test predictions are scored together, with intervals, which is the
number to publish; pooling is refused when it would be wrong.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from socal.config import NON_SEMANTIC_KEYS
from socal.errors import UserError
from socal.monitor import maximised
from socal.report.compare import paired_tests
from socal.report.intervals import percentile_interval, resample_weights, weighted_classification
from socal.report.run_results import CALIBRATION_ROWS, baseline_thresholds, published_results
from socal.report.runs import Run

REPLICATE_KEYS = ("split.fold", "trainer.seed", "split.seed")
THRESHOLD_PREFIX = "threshold_"  # pooled rows: each baseline's threshold in its fold
# Results-only keys that change the reported figures (eval.threshold, eval.bootstrap, ...) are
# kept: runs evaluated differently differ. Plots and explanations change no figure.
IGNORED = (
    *(k for k in NON_SEMANTIC_KEYS if not k.startswith("eval.")),
    "eval.plots",
    "eval.explain",
)


@dataclass
class Group:
    keys: dict[str, Any]
    runs: list[Run]
    pooled: Optional[dict] = None  # published_results of the pooled folds, with "baselines"
    pooled_test: Optional[pd.DataFrame] = None  # the folds' test predictions, concatenated
    coverage: dict = field(default_factory=dict)

    @property
    def missing_folds(self) -> list[int]:
        return self.coverage.get("missing_folds", [])

    @property
    def label(self) -> str:
        """The group's swept values; an incomplete k-fold group says which folds it lacks."""
        text = ", ".join(f"{k}={v}" for k, v in self.keys.items()) or "all runs"
        if self.missing_folds:
            text += (
                f" [INCOMPLETE: folds {self.missing_folds} of {self.coverage['of_folds']} missing]"
            )
        return text

    @property
    def task(self) -> str:
        return self.runs[0].metrics["task"]

    @property
    def monitor(self) -> str:
        return self.runs[0].monitor[0]

    @property
    def objective(self) -> float:
        """Mean best validation value of the early-stopping metric over the group's runs."""
        return float(np.mean([run.monitor[1] for run in self.runs]))

    @property
    def maximize(self) -> bool:
        """The metric's own direction (a contrary early-stopping mode is refused)."""
        return maximised(self.monitor)


def swept_keys(runs: list[Run]) -> list[str]:
    """Config keys whose values differ between runs (paths and workers left out)."""
    keys = sorted(set().union(*(run.config for run in runs)))
    return [
        key
        for key in keys
        if not key.startswith(IGNORED) and len({repr(run.config.get(key)) for run in runs}) > 1
    ]


def run_metrics(run: Run) -> dict[str, float]:
    """A run's scalar test metrics, calibration included."""
    scalars = {k: v for k, v in run.metrics["test"].items() if not isinstance(v, list)}
    calibration = run.metrics.get("calibration", {})
    scalars.update({k: calibration[k] for k in CALIBRATION_ROWS if k in calibration})
    return scalars


def _threshold(run: Run) -> float:
    return (run.metrics.get("threshold") or {}).get("value", 0.5)


def pooling_problem(group: Group) -> Optional[str]:
    """Why the group's folds cannot be pooled, or None."""
    for key in ("split.seed", "split.folds"):
        values = sorted({str(run.config.get(key)) for run in group.runs})
        if len(values) > 1:
            return (
                f"its folds come from different {key} ({', '.join(values)}): different partitions "
                f"of the surgeons; report them apart with --by {key}"
            )
    trials = [set(run.split["trial"]) for run in group.runs if run.split is not None]
    if any(t != trials[0] for t in trials):
        return "its runs were split from different sets of trials (different data)"
    seen: dict[str, str] = {}
    for run in group.runs:
        for trial in run.test["trial"]:
            if trial in seen:
                return (
                    f"test trial {trial} appears in {seen[trial]} and {run.name}: each fold must "
                    "appear once (separate repeats with --by trainer.seed)"
                )
            seen[trial] = run.name
    return None


def fold_mean_auroc(pooled: pd.DataFrame, fold: np.ndarray, settings: Any) -> dict:
    """The mean of the folds' AUROCs, each fold's model ranking only its own test trials, with
    a surgeon bootstrap stratified by fold (every resample redraws each fold's surgeons within
    that fold; resamples where a fold has one class are left out)."""
    per_fold = []
    for i, value in enumerate(np.unique(fold)):
        rows = pooled[fold == value]
        w = np.ones((1, len(rows)))
        if settings.bootstrap > 0:
            draws = resample_weights(
                rows["participant"].to_numpy(), settings.bootstrap, settings.seed + i
            )
            w = np.vstack([w, draws])
        scored = weighted_classification(
            w, rows["label"].to_numpy(), rows["probability"].to_numpy(), 0.5
        )
        per_fold.append(scored["auroc"])
    means = np.mean(per_fold, axis=0)
    return {
        "value": float(means[0]),
        "ci": percentile_interval(means[1:], settings.confidence) if len(means) > 1 else None,
        "folds": len(per_fold),
    }


def pool(group: Group, settings: Any) -> None:
    """Score the group's out-of-fold test predictions together (k-fold groups only)."""
    if any(run.config.get("split.strategy") != "kfold" for run in group.runs):
        return
    problem = pooling_problem(group)
    if problem:
        raise UserError(f"cannot pool the folds of {group.label}: {problem}")
    tests = []
    for run in group.runs:  # each fold keeps its own thresholds, the baselines' included
        val = run.predictions[run.predictions["subset"] == "val"]
        cuts = baseline_thresholds(group.task, settings, val)
        tests.append(
            run.test.assign(
                threshold=_threshold(run), **{THRESHOLD_PREFIX + k: v for k, v in cuts.items()}
            )
        )
    pooled = pd.concat(tests, ignore_index=True)
    cuts = {
        col.removeprefix(THRESHOLD_PREFIX): pooled[col].to_numpy()
        for col in pooled.columns
        if col.startswith(THRESHOLD_PREFIX)
    }
    group.pooled = published_results(
        group.task, pooled, pooled["threshold"].to_numpy(), settings, cuts
    )
    group.pooled_test = pooled
    if group.task == "classification":
        fold = np.repeat([r.config.get("split.fold", i) for i, r in enumerate(group.runs)],
                         [len(t) for t in tests])  # fmt: skip
        group.pooled["fold_mean_auroc"] = fold_mean_auroc(pooled, fold, settings)
    folds = sorted(int(run.config.get("split.fold", -1)) for run in group.runs)
    of_folds = int(group.runs[0].config.get("split.folds", len(folds)))
    split = group.runs[0].split
    group.coverage = {
        "folds": folds,
        "of_folds": of_folds,
        "missing_folds": sorted(set(range(of_folds)) - set(folds)),
        "test_trials": len(pooled),
        "trials": None if split is None else int(split["trial"].nunique()),
    }


def scored_trials(group: Group) -> Optional[pd.DataFrame]:
    """The group's test predictions with a threshold per row: pooled folds, or its one run."""
    if group.pooled_test is not None:
        return group.pooled_test
    if len(group.runs) == 1:
        return group.runs[0].test.assign(threshold=_threshold(group.runs[0]))
    return None


def compare_groups(groups: list[Group]) -> list[dict]:
    """Paired tests of every two ranked groups whose test predictions cover the same trials."""
    if groups[0].task != "classification":
        return []
    tables = [scored_trials(g) for g in groups]
    out = []
    for i, j in itertools.combinations(range(len(groups)), 2):
        a, b = tables[i], tables[j]
        if a is None or b is None or sorted(a["trial"]) != sorted(b["trial"]):
            continue
        b = b.set_index("trial").loc[a["trial"]]
        tests = paired_tests(
            a["label"].to_numpy(), a["participant"].to_numpy(),
            a["probability"].to_numpy(), a["threshold"].to_numpy(),
            b["probability"].to_numpy(), b["threshold"].to_numpy(),
        )  # fmt: skip
        if tests:
            out.append({"a": i + 1, "b": j + 1, "trials": len(a), **tests})
    return out


def summary(group: Group) -> dict[str, dict[str, float]]:
    """Mean and sample sd over the group's runs of every test metric, and in how many runs it
    is defined: an undefined value (NaN, e.g. specificity on a fold without failures) is left
    out of the mean, never counted as 0."""
    table = pd.DataFrame([run_metrics(run) for run in group.runs]).astype(float)
    return {
        "mean": table.mean().to_dict(),
        "sd": table.std(ddof=1).to_dict() if len(table) > 1 else dict.fromkeys(table, math.nan),
        "defined": {k: int(v) for k, v in table.count().items()},
    }


def group_runs(runs: list[Run], settings: Any, by: tuple[str, ...] = ()) -> list[Group]:
    """Groups sorted by their validation objective (never by test), each pooled when k-fold;
    a k-fold group that lacks folds is ranked after the complete ones (and labelled so)."""
    tasks = {run.metrics["task"] for run in runs}
    if len(tasks) > 1:
        raise UserError(f"the runs mix tasks ({', '.join(sorted(tasks))}): report them apart")
    monitors = {run.monitor[0] for run in runs}
    if len(monitors) > 1:
        raise UserError(
            f"the runs early-stopped on different metrics ({', '.join(sorted(monitors))}): their "
            "validation objectives cannot be ranked together; report them apart"
        )
    unknown = [key for key in by if all(key not in run.config for run in runs)]
    if unknown:
        raise UserError(f"--by {', '.join(unknown)}: no such key in the runs' config.yaml")
    swept = swept_keys(runs)
    keys = [k for k in swept if k not in REPLICATE_KEYS or k in by]
    keys += [k for k in by if k not in keys]
    groups: dict[tuple, Group] = {}
    for run in runs:
        values = {k: run.config.get(k) for k in keys}
        groups.setdefault(tuple(map(repr, values.values())), Group(values, [])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.config.get("split.fold", 0), r.name))
        pool(group, settings)
    return sorted(
        groups.values(),
        key=lambda g: (
            bool(g.missing_folds),
            math.isnan(g.objective),
            -g.objective if g.maximize else g.objective,
        ),
    )
