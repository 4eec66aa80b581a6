"""Check a SOCAL folder before training: ``python -m socal.check data.root=PATH``.

Training runs the same checks at its start. Problems that leave usable trials are counted
warnings; only a folder with nothing to train on is an error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from socal.config import register
from socal.errors import exit_on_user_error
from socal.index import DataReport, Trial, index_folder

log = logging.getLogger("socal.check")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


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


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    register()
    with exit_on_user_error():
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=argv)
        trials, report = index_folder(Path(cfg.data.root), cfg.data.target.value)
        for line in summary(trials, report, cfg.data.target.value):
            log.info(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
