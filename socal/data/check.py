"""Check a SOCAL folder before training: ``python -m socal.check data.root=PATH``.

Training runs the same checks at its start. Problems that leave usable trials are counted
warnings; only a folder with nothing to train on is an error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from socal.config import compose_train
from socal.data.index import DataReport, Trial, index_folder
from socal.data.tools import TOOLS_CSV, ToolAnnotations, load_tools
from socal.errors import exit_on_user_error

log = logging.getLogger("socal.data.check")


def summary(trials: list[Trial], report: DataReport, target: str) -> list[str]:
    """What training will use, then one line per problem found."""
    labels = np.array([t.label for t in trials])
    participants = len({t.participant for t in trials})
    lengths = np.array([t.n_frames for t in trials])
    if target == "success":
        outcome = f"{int(labels.sum())} success / {int((labels == 0).sum())} failure"
    else:
        outcome = f"{target} mean {labels.mean():.1f} sd {labels.std():.1f}"
    lines = [
        f"usable trials: {len(trials)} from {participants} surgeons ({outcome}); "
        f"frames per trial min {lengths.min()} median {int(np.median(lengths))} max {lengths.max()}"
    ]
    problems = report.lines()
    return lines + (problems or ["no problems found"])


def checked_trials(root: Path, target: str) -> list[Trial]:
    """Index ``root`` and log the summary of what is usable and what is wrong."""
    trials, report = index_folder(root, target)
    for line in summary(trials, report, target):
        log.info("data check: %s", line)
    return trials


def checked_tools(root: Path, trials: list[Trial], classes: list[str]) -> Optional[ToolAnnotations]:
    """``root``'s tool annotations for ``trials`` (None without ``socal.csv``), their coverage
    and problems logged."""
    annotations = load_tools(root, trials)
    if annotations is None:
        log.info("data check: no tool annotations (%s): the tool baseline is off", TOOLS_CSV)
        return None
    for line in annotations.report.lines(classes):
        log.info("data check: %s", line)
    return annotations


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error():
        cfg = compose_train(sys.argv[1:] if argv is None else argv)
        root = Path(cfg.data.root).expanduser()
        trials = checked_trials(root, cfg.data.target.value)
        checked_tools(root, trials, list(cfg.data.tool_classes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
