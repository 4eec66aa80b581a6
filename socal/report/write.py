"""Write a report across runs: report.md, summary.csv, summary.json and its plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from socal.report import plots
from socal.report.aggregate import (
    REPLICATE_KEYS,
    Group,
    compare_groups,
    run_metrics,
    scored_trials,
    summary,
)
from socal.report.checklist import checklist_lines
from socal.report.explain_plots import groups_figure, read_explanations
from socal.report.published import SOURCE, is_published, published_comparison
from socal.report.run_results import (
    DIFFERENCES,
    bootstrap_cell,
    interval,
    notes,
    number,
    results_rows,
    test_summary,
)

HEADLINE = {"classification": ("auroc", "accuracy"), "regression": ("rmse", "mae")}
# What each of report_plots' figures shows, by a part of its file name (report.md lists them).
FIGURES = {
    "_vs_": "a headline test metric against a swept key (mean ± sd over each group's runs)",
    "pooled_roc": "ROC curve per group, pooled out-of-fold predictions",
    "calibration": "isotonic calibration curve per group (intercept and slope: the group tables)",
    "decision_curve": "decision curve per group: net benefit of acting on predicted failure "
    "over risk thresholds, beside treat-all and treat-none",
    "bland_altman": "Bland-Altman plot of the group its name numbers: predicted - actual against "
    "their mean, bias and 95% limits of agreement",
    "explanations": "mean attribution per second of the explained successes and failures, per "
    "group, over its runs (eval.explain=true or explain.py into each run's explanations/)",
}


def _num(value: Optional[float]) -> str:
    return number(value, 3)


def _ci(bounds: Optional[list]) -> str:
    return "" if not bounds else interval(bounds, 3)


def _boot(row: dict) -> str:
    return "" if not row["ci"] else bootstrap_cell(row, 3)


def _mean_sd(stats: dict, name: str, runs: int) -> str:
    """``mean ± sd`` over the runs where the metric is defined, with that count when short."""
    text = f"{_num(stats['mean'].get(name))} ± {_num(stats['sd'].get(name))}"
    defined = stats["defined"].get(name, runs)
    return text if defined == runs else f"{text} ({defined} of {runs} defined)"


def summary_table(groups: list[Group], keys: list[str]) -> pd.DataFrame:
    """One row per run: group, swept keys, validation objective, test metrics (report order)."""
    rows = []
    for rank, group in enumerate(groups, 1):
        for run in group.runs:
            monitor, best = run.monitor
            threshold = (run.metrics.get("threshold") or {}).get("value")
            rows.append(
                {
                    "group": rank,
                    "missing_folds": " ".join(map(str, group.missing_folds)),
                    "run": run.name,
                    **{key: run.config.get(key) for key in keys},
                    f"best_{monitor}": best,
                    "threshold": threshold,
                    **{f"test_{k}": v for k, v in run_metrics(run).items()},
                }
            )
    return pd.DataFrame(rows)


def _protocol(group: Group) -> list[str]:
    """The split strategy, the clip window and the length baseline that applies to it."""
    config = group.runs[0].config
    start, length = config.get("data.window.start_s"), config.get("data.window.length_s")
    if length is None:
        window, baseline = "whole trials (the length leaks the outcome)", "trial_length"
    else:
        window, baseline = f"clips from seconds {start} to {start + length}", "trial_length_window"
    return [
        f"split: {config.get('split.strategy', 'unknown')}; {window}",
        f"the length baseline that applies: {baseline}; baselines are thresholded on validation",
    ]


def group_result(group: Group) -> Optional[dict]:
    """The results a group is reported by: its pooled folds', or its one run's metrics.json."""
    if group.pooled is not None:
        return group.pooled
    return group.runs[0].metrics if len(group.runs) == 1 else None


def published_comparisons(group: Group) -> list[dict]:
    """Each run of a ``split=published`` group against the published figures (or refused)."""
    if not is_published(group.runs[0].config):
        return []
    return [
        published_comparison(group.task, run.name, list(run.test["trial"]), run.metrics)
        for run in group.runs
    ]


def _published_lines(group: Group) -> list[str]:
    """A table of the complete runs beside the published figures; a NOTE for each other run."""
    found = published_comparisons(group)
    lines = [f"- NOTE: {c['refused']}" for c in found if "refused" in c]
    complete = [c for c in found if "figures" in c]
    if not complete:
        return lines
    names = list(complete[0]["figures"])
    lines += [
        "",
        f"The published 20 test trials, beside {SOURCE} (95% intervals: few-surgeon for "
        "proportions, surgeon bootstrap for blood loss):",
        "",
        "| test metric | published | " + " | ".join(c["run"] for c in complete) + " |",
        "|---" * (2 + len(complete)) + "|",
    ]
    lines += [
        f"| {name} | {_num(complete[0]['figures'][name]['published'])} | "
        + " | ".join(
            f"{_num(c['figures'][name]['run'])} {_ci(c['figures'][name]['ci'])}" for c in complete
        )
        + " |"
        for name in names
    ]
    return [*lines, ""]


def _group_lines(group: Group, rank: int) -> list[str]:
    stats = summary(group)
    lines = [f"### {rank}. {group.label}", ""]
    names = ", ".join(run.name for run in group.runs)
    lines += [f"{len(group.runs)} run(s): {names}", ""]
    lines += [f"- NOTE: {note}" for run in group.runs for note in run.caveats]
    if group.missing_folds:
        lines.append(
            f"- NOTE: folds {group.missing_folds} of {group.coverage['of_folds']} are missing: "
            "the pooled figures cover part of the data only, and the group is ranked last"
        )
    lines += [f"- {setting}" for setting in _protocol(group)]
    result = group_result(group)
    lines += [f"- {note}" for note in notes(result or {})]
    lines += [*_published_lines(group), ""]
    pooled = group.pooled
    if pooled is None and len(group.runs) == 1:  # one run: its own intervals
        lines += [
            "| test metric | value | 95% CI | exact 95% CI | few-surgeon 95% CI |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['metric']} | {_num(r['value'])} | {_boot(r)} | {_ci(r['exact_ci'])} "
            f"| {_ci(r['clustered_ci'])} |"
            for r in results_rows(group.runs[0].metrics)
        ]
        return [*lines, ""]
    if pooled is None:
        lines += ["| test metric | mean ± sd |", "|---|---|"]
        lines += [f"| {k} | {_mean_sd(stats, k, len(group.runs))} |" for k in stats["mean"]]
        return [*lines, ""]
    cover = group.coverage
    lines += [
        f"Pooled out-of-fold test predictions: {cover['test_trials']} trials from folds "
        f"{cover['folds']} of {cover['of_folds']}"
        + (f" ({cover['trials']} trials in the data)." if cover["trials"] else "."),
        f"Intervals: {pooled['intervals']['confidence']:.0%} bootstrap over "
        f"{pooled['intervals']['participants']} surgeons ({pooled['intervals']['resamples']} "
        "resamples); exact: Clopper-Pearson (trials independent); few-surgeon: Clopper-Pearson "
        "on the design-effect-adjusted n, clustered DeLong for AUROC. Each fold keeps its own "
        "validation threshold.",
        "",
    ]
    if pooled.get("fold_mean_auroc"):
        headline_auroc = pooled["fold_mean_auroc"]
        lines += [
            f"Headline AUROC, the mean of the {headline_auroc['folds']} folds' AUROCs: "
            f"{_num(headline_auroc['value'])} {_ci(headline_auroc['ci'])} (surgeon bootstrap "
            "stratified by fold); the pooled AUROC below ranks all folds' trials together.",
            "",
        ]
    baselines = list(pooled["baselines"])
    lines.append(
        "| test metric | mean ± sd over folds | pooled | 95% CI | exact 95% CI | "
        "few-surgeon 95% CI | " + " | ".join(f"pooled {b}" for b in baselines) + " |"
    )
    lines.append("|---" * (6 + len(baselines)) + "|")
    for row in results_rows(pooled):
        name = row["metric"]
        base = [_num(pooled["baselines"][b].get(name)) for b in baselines]
        lines.append(
            f"| {name} | {_mean_sd(stats, name, len(group.runs))} "
            f"| {_num(row['value'])} | {_boot(row)} | {_ci(row['exact_ci'])} "
            f"| {_ci(row['clustered_ci'])} | " + " | ".join(base) + " |"
        )
    lines.append("")
    for name, diffs in pooled["differences"].items():
        for key in DIFFERENCES[group.task]:
            diff = diffs[key]
            lines.append(f"- model − {name}, {key}: {_num(diff['value'])} {_ci(diff.get('ci'))}")
        if diffs.get("tests"):
            lines.append(f"- model vs {name}: {test_summary(diffs['tests'])}")
    return [*lines, ""]


def report_markdown(
    groups: list[Group], keys: list[str], command: str, figures: tuple[str, ...] = ()
) -> str:
    """report.md; ``figures``: the plots written, relative to the report folder."""
    task = groups[0].task
    monitor = groups[0].monitor
    n_runs = sum(len(g.runs) for g in groups)
    lines = [
        "# socal report",
        "",
        f"`{command}`",
        "",
        f"{n_runs} runs in {len(groups)} group(s); swept keys: {', '.join(keys) or 'none'}. "
        f"Groups are sorted by validation {monitor} (mean over their runs), never by a test "
        "figure. Replicates (" + ", ".join(REPLICATE_KEYS) + ") are summarised within a group.",
        "",
    ]
    headline = HEADLINE[task]
    fold_mean = task == "classification" and any(g.pooled for g in groups)
    lines.append(
        f"| # | group | runs | {monitor} (val) | "
        + ("fold-mean auroc [95% CI] | " if fold_mean else "")
        + " | ".join(f"test {m} mean ± sd | pooled {m} [95% CI]" for m in headline)
        + " |"
    )
    lines.append("|---" * (4 + fold_mean + 2 * len(headline)) + "|")
    for rank, group in enumerate(groups, 1):
        stats = summary(group)
        cells = []
        if fold_mean:
            headline_auroc = (group.pooled or {}).get("fold_mean_auroc")
            cells.append(
                f"{_num(headline_auroc['value'])} {_ci(headline_auroc['ci'])}"
                if headline_auroc
                else ""
            )
        for m in headline:
            cells.append(f"{_num(stats['mean'].get(m))} ± {_num(stats['sd'].get(m))}")
            if group.pooled:
                bounds = group.pooled["intervals"].get("bootstrap", {}).get(m)
                cells.append(f"{_num(group.pooled['test'][m])} {_ci(bounds)}")
            else:
                cells.append("")
        lines.append(
            f"| {rank} | {group.label} | {len(group.runs)} | {_num(group.objective)} | "
            + " | ".join(cells)
            + " |"
        )
    best = groups[0]
    lines += [
        "",
        f"Selection: group 1 ({best.label}) is the best of {len(groups)} configuration(s) "
        f"({n_runs} runs) by validation {monitor}; its test figures are those of the winner of "
        f"{len(groups)} tries, optimistic by that selection.",
    ]
    comparisons = compare_groups(groups)
    if comparisons:
        lines += [
            "",
            "## Model vs model (same test trials)",
            "",
            "AUROC difference a − b with DeLong's and the clustered (surgeon) DeLong test; "
            "accuracy with McNemar's exact test (each at its own thresholds).",
            "",
            "| a | b | trials | auroc a − b | DeLong p | clustered DeLong p | McNemar p |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['a']} | {c['b']} | {c['trials']} | {_num(c['auroc_delong']['difference'])} "
            f"| {number(c['auroc_delong']['p'])} | {number(c['auroc_clustered_delong']['p'])} "
            f"| {number(c['accuracy_mcnemar']['p'])} |"
            for c in comparisons
        ]
    if fold_mean:
        lines += [
            "",
            "Headline AUROC: the mean of the folds' AUROCs (each fold's model ranks its own test "
            "trials), 95% surgeon bootstrap stratified by fold. The pooled AUROC ranks trials "
            "across differently calibrated fold models: it measures one ranking the folds never "
            "made together, and can be lower. Thresholded metrics are pooled (each fold at its "
            "own validation threshold).",
        ]
    if figures:
        lines += ["", "Figures (pooled out-of-fold predictions, or the group's one run):", ""]
        lines += [
            f"- `{path}`: " + next(text for part, text in FIGURES.items() if part in path)
            for path in figures
        ]
    lines += ["", "## Groups", ""]
    for rank, group in enumerate(groups, 1):
        lines += _group_lines(group, rank)
    lines += checklist_lines(groups, keys)
    return "\n".join(lines) + "\n"


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def report_plots(groups: list[Group], out: Path) -> list[Path]:
    """Headline metrics against each swept key (error bars: sd over runs); pooled ROC curves."""
    paths = []
    rows = []
    for group in groups:
        stats = summary(group)
        rows.append(
            {
                **group.keys,
                **{f"{k}_mean": v for k, v in stats["mean"].items()},
                **{f"{k}_sd": v for k, v in stats["sd"].items()},
            }
        )
    table = pd.DataFrame(rows)
    keys = list(groups[0].keys)
    for key in keys:
        if table[key].isna().any():
            continue
        others = [k for k in keys if k != key]
        for metric in HEADLINE[groups[0].task]:
            path = out / "plots" / f"{metric}_vs_{key}.png"
            paths.append(plots.metric_vs_value(table, key, metric, others, path))
    curves = {
        f"{rank}. {g.label}": g.pooled_test
        for rank, g in enumerate(groups, 1)
        if g.pooled and g.task == "classification"
    }
    if curves:
        paths.append(plots.pooled_roc(curves, out / "plots" / "pooled_roc.png"))
    explained = {
        f"{rank}. {g.label}": tables
        for rank, g in enumerate(groups, 1)
        if (tables := read_explanations([run.folder for run in g.runs]))
    }
    if explained:
        paths.append(groups_figure(explained, out / "plots" / "explanations.png"))
    return paths + _result_plots(groups, out / "plots")


def _result_plots(groups: list[Group], folder: Path) -> list[Path]:
    """Calibration and decision curves (classification), Bland-Altman plots (regression)."""
    found = [(rank, g, group_result(g)) for rank, g in enumerate(groups, 1)]
    results = [(rank, g, r) for rank, g, r in found if r]
    if groups[0].task == "regression":
        return [
            plots.bland_altman(
                scored_trials(g), r["agreement"], folder / f"bland_altman_{rank}.png"
            )
            for rank, g, r in results
            if "agreement" in r and scored_trials(g) is not None
        ]
    calibration = {f"{rank}. {g.label}": r["calibration"]["curve"] for rank, g, r in results
                   if "curve" in r.get("calibration", {})}  # fmt: skip
    decision = {f"{rank}. {g.label}": r["decision_curve"] for rank, g, r in results
                if "decision_curve" in r}  # fmt: skip
    paths = []
    if calibration:
        paths.append(plots.calibration_curves(calibration, folder / "calibration.png"))
    if decision:
        paths.append(plots.decision_curves(decision, folder / "decision_curve.png"))
    return paths


def write_report(groups: list[Group], keys: list[str], out: Path, command: str) -> list[Path]:
    """report.md, summary.csv, summary.json and plots/ in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    summary_table(groups, keys).to_csv(out / "summary.csv", index=False)
    document = {
        "command": command,
        "swept_keys": keys,
        "comparisons": compare_groups(groups),
        "groups": [
            {
                "rank": rank,
                "label": group.label,
                "keys": group.keys,
                "runs": [run.name for run in group.runs],
                "validation": {"metric": group.monitor, "mean": group.objective},
                **summary(group),
                "pooled": group.pooled,
                "coverage": group.coverage,
                "published_comparison": published_comparisons(group),
            }
            for rank, group in enumerate(groups, 1)
        ],
    }
    (out / "summary.json").write_text(json.dumps(_json_ready(document), indent=2))
    figures = report_plots(groups, out)
    names = tuple(path.relative_to(out).as_posix() for path in figures)
    (out / "report.md").write_text(report_markdown(groups, keys, command, names))
    return [out / "report.md", out / "summary.csv", out / "summary.json", *figures]
