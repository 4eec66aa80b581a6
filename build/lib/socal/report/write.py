"""Write a report across runs: report.md, summary.csv, summary.json and its plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from socal.report import plots
from socal.report.aggregate import REPLICATE_KEYS, Group, run_metrics, summary
from socal.report.run_results import DIFFERENCES, interval, number, results_rows

HEADLINE = {"classification": ("auroc", "accuracy"), "regression": ("rmse", "mae")}


def _num(value: Optional[float]) -> str:
    return number(value, 3)


def _ci(bounds: Optional[list]) -> str:
    return "" if not bounds else interval(bounds, 3)


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
                    "run": run.name,
                    **{key: run.config.get(key) for key in keys},
                    f"best_{monitor}": best,
                    "threshold": threshold,
                    **{f"test_{k}": v for k, v in run_metrics(run).items()},
                }
            )
    return pd.DataFrame(rows)


def _group_lines(group: Group, rank: int) -> list[str]:
    stats = summary(group)
    lines = [f"### {rank}. {group.label}", ""]
    names = ", ".join(run.name for run in group.runs)
    lines += [f"{len(group.runs)} run(s): {names}", ""]
    pooled = group.pooled
    if pooled is None and len(group.runs) == 1:  # one run: its own intervals
        lines += ["| test metric | value | 95% CI | exact 95% CI |", "|---|---|---|---|"]
        lines += [
            f"| {r['metric']} | {_num(r['value'])} | {_ci(r['ci'])} | {_ci(r['exact_ci'])} |"
            for r in results_rows(group.runs[0].metrics)
        ]
        return [*lines, ""]
    if pooled is None:
        lines += ["| test metric | mean ± sd |", "|---|---|"]
        lines += [f"| {k} | {_num(v)} ± {_num(stats['sd'][k])} |" for k, v in stats["mean"].items()]
        return [*lines, ""]
    cover = group.coverage
    lines += [
        f"Pooled out-of-fold test predictions: {cover['test_trials']} trials from folds "
        f"{cover['folds']} of {cover['of_folds']}"
        + (f" ({cover['trials']} trials in the data)." if cover["trials"] else "."),
        f"Intervals: {pooled['intervals']['confidence']:.0%} bootstrap over "
        f"{pooled['intervals']['participants']} surgeons ({pooled['intervals']['resamples']} "
        "resamples); exact: Clopper-Pearson. Each fold keeps its own validation threshold.",
        "",
    ]
    baselines = list(pooled["baselines"])
    lines.append(
        "| test metric | mean ± sd over folds | pooled | 95% CI | exact 95% CI | "
        + " | ".join(f"pooled {b}" for b in baselines)
        + " |"
    )
    lines.append("|---" * (5 + len(baselines)) + "|")
    for row in results_rows(pooled):
        name = row["metric"]
        base = [_num(pooled["baselines"][b].get(name)) for b in baselines]
        lines.append(
            f"| {name} | {_num(stats['mean'].get(name))} ± {_num(stats['sd'].get(name))} "
            f"| {_num(row['value'])} | {_ci(row['ci'])} | {_ci(row['exact_ci'])} | "
            + " | ".join(base)
            + " |"
        )
    lines.append("")
    for name, diffs in pooled["differences"].items():
        for key in DIFFERENCES[group.task]:
            diff = diffs[key]
            lines.append(f"- model − {name}, {key}: {_num(diff['value'])} {_ci(diff.get('ci'))}")
    return [*lines, ""]


def report_markdown(groups: list[Group], keys: list[str], command: str) -> str:
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
    lines.append(
        f"| # | group | runs | {monitor} (val) | "
        + " | ".join(f"test {m} mean ± sd | pooled {m} [95% CI]" for m in headline)
        + " |"
    )
    lines.append("|---" * (4 + 2 * len(headline)) + "|")
    for rank, group in enumerate(groups, 1):
        stats = summary(group)
        cells = []
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
    lines += ["", "## Groups", ""]
    for rank, group in enumerate(groups, 1):
        lines += _group_lines(group, rank)
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
    return paths


def write_report(groups: list[Group], keys: list[str], out: Path, command: str) -> list[Path]:
    """report.md, summary.csv, summary.json and plots/ in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    summary_table(groups, keys).to_csv(out / "summary.csv", index=False)
    document = {
        "command": command,
        "swept_keys": keys,
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
            }
            for rank, group in enumerate(groups, 1)
        ],
    }
    (out / "summary.json").write_text(json.dumps(_json_ready(document), indent=2))
    (out / "report.md").write_text(report_markdown(groups, keys, command))
    written = [out / "report.md", out / "summary.csv", out / "summary.json"]
    return written + report_plots(groups, out)
