"""A TRIPOD+AI-style checklist (Collins et al., BMJ 2024) for ``report.md``.

Filled from what the run folders record (split.csv, config.yaml, train.log's data-check lines,
metrics.json); where only the authors can answer (sample size, external validation, intended
use), the item is an explicit blank, never left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from socal.config import Normalization
from socal.data.splits import SUBSETS
from socal.report.aggregate import REPLICATE_KEYS, Group

BLANK = "_to be written by the authors_"
SPLITS = {"random": "trials split at random: a surgeon's two trials can be in train and test"}
DATA_CHECK = "data check: "  # the prefix of socal.data.check's lines in train.log
LOG = "train.log"
NORMALISATION = {
    Normalization.imagenet.value: "ImageNet mean and sd (the pretrained checkpoints'): fixed "
    "constants, nothing fitted on SOCAL",
    Normalization.videomae.value: "0.5 / 0.5 per channel: fixed constants, nothing fitted",
    Normalization.socal_release.value: "constants measured once on the frames of the whole "
    "public release, test trials included (not refitted on the training split)",
    Normalization.kinetics.value: "Kinetics-400 mean and sd (torchvision's video weights'): "
    "fixed constants, nothing fitted on SOCAL",
}


def _outcome(labels: pd.Series, task: str) -> str:
    if task == "classification":
        return f"{int(labels.sum())} success / {int((labels == 0).sum())} failure"
    return f"mean {labels.mean():.0f}, median {labels.median():.0f}"


def subset_table(group: Group) -> list[str]:
    """Trials, surgeons and outcomes per subset of each of the group's runs (split.csv)."""
    lines = ["| run | subset | trials | surgeons | outcome |", "|---|---|---|---|---|"]
    for run in group.runs:
        if run.split is None:
            lines.append(f"| {run.name} | split.csv not in the run folder | | | |")
            continue
        for subset in SUBSETS:
            rows = run.split[run.split["subset"] == subset]
            lines.append(
                f"| {run.name} | {subset} | {len(rows)} | {rows['participant'].nunique()} "
                f"| {_outcome(rows['label'], group.task)} |"
            )
    return lines


def data_check_lines(folders: list[Path]) -> list[str]:
    """The data check's summary and problem lines (what it kept and excluded, and why), as
    train.log records them; the same lines from several runs appear once."""
    seen: dict[str, None] = {}
    for folder in folders:
        log = folder / LOG
        if log.is_file():
            for line in log.read_text(errors="replace").splitlines():
                if DATA_CHECK in line:
                    seen.setdefault(line.split(DATA_CHECK, 1)[1].strip())
    return list(seen)


def search_space(groups: list[Group], keys: list[str]) -> str:
    """The swept keys and the values tried across all runs."""
    swept = [k for k in keys if k not in REPLICATE_KEYS]
    if not swept:
        return "one configuration (nothing swept)"
    values = {
        key: sorted({repr(run.config.get(key)) for g in groups for run in g.runs}) for key in swept
    }
    return "; ".join(f"`{key}` in {{{', '.join(v)}}}" for key, v in values.items())


def _model(config: dict[str, Any]) -> str:
    family = config.get("model.family") or "not recorded"
    source, length = config.get("model.source"), config.get("data.window.length_s")
    start = config.get("data.window.start_s", 0)
    window = "the whole trial" if length is None else f"seconds {start} to {start + length}"
    weights = f"weights from {source}" if source else "randomly initialised"
    return f"{family} ({weights}); {config.get('data.num_frames')} frames per clip from {window}"


def checklist_lines(groups: list[Group], keys: list[str]) -> list[str]:
    """The checklist section of report.md, about group 1 (the selected configuration)."""
    best = groups[0]
    config = best.runs[0].config
    n_runs = sum(len(g.runs) for g in groups)
    checks = data_check_lines([run.folder for run in best.runs])
    normalization = str(config.get("data.normalization"))
    strategy = str(config.get("split.strategy"))
    threshold = (best.runs[0].metrics.get("threshold") or {}).get("rule", "none (regression)")
    lines = [
        "## TRIPOD+AI checklist",
        "",
        "Filled from the run folders of group 1 where they record the answer; the blanks are "
        "the authors' to write.",
        "",
        f"- **Data source**: SOCAL, outcome `{config.get('data.target')}` "
        f"(`data.root` {config.get('data.root')}).",
        f"- **Model and inputs**: {_model(config)}.",
        f"- **Normalisation**: `data.normalization={normalization}`: "
        f"{NORMALISATION.get(normalization, 'not recorded')}.",
        "- **Exclusions by the data check**: "
        + ("; ".join(checks) if checks else f"not recorded in the run folders (no {LOG})")
        + ".",
        f"- **Search space**: {search_space(groups, keys)}; {len(groups)} configuration(s), "
        f"{n_runs} runs.",
        f"- **How the winner was chosen**: the best mean validation {best.monitor} "
        f"(early stopping on the same metric), never a test figure; decision threshold: "
        f"{threshold}.",
        f"- **Validation**: internal validation only (`split={strategy}`, "
        f"{SPLITS.get(strategy, 'surgeons kept apart')}, one dataset); no external validation.",
        f"- **Sample size**: {BLANK}.",
        f"- **External validation**: {BLANK}.",
        f"- **Intended use and users**: {BLANK}.",
        f"- **Subgroups and fairness** (e.g. surgeon experience): {BLANK}.",
        f"- **Limitations**: {BLANK}.",
        "",
        "Trials, surgeons and outcomes per subset (split.csv):",
        "",
        *subset_table(best),
        "",
    ]
    return lines
