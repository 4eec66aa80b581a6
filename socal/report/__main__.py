"""``python -m socal.report PATH [PATH ...] [--out DIR]``: one report across runs (see README)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

from socal.config import EvalConfig
from socal.errors import exit_on_user_error
from socal.report.aggregate import group_runs, swept_keys
from socal.report.runs import load_runs
from socal.report.write import write_report

log = logging.getLogger("socal.report")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m socal.report",
        description="Summarise runs: group by swept config keys, mean ± sd, pooled k-fold "
        "metrics with bootstrap intervals; writes report.md, summary.csv, summary.json, plots.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH",
        help="run folder, train.py -m multirun folder, launch.py -m sweep folder with the jobs' "
        "outputs downloaded, or s3://bucket/prefix of SageMaker job outputs",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("report"), help="default: ./report")
    parser.add_argument(
        "--by", action="append", default=[], metavar="KEY",
        help="also group by this config key (e.g. trainer.seed); repeatable",
    )  # fmt: skip
    defaults = EvalConfig()
    parser.add_argument("--bootstrap", type=int, default=defaults.bootstrap)
    parser.add_argument("--confidence", type=float, default=defaults.confidence)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--bins", type=int, default=defaults.bins)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = EvalConfig(
        bootstrap=args.bootstrap, confidence=args.confidence, seed=args.seed, bins=args.bins
    )
    with exit_on_user_error():
        runs = load_runs(args.paths, args.out / "jobs", args.progress)
        groups = group_runs(runs, settings, tuple(args.by))
        command = "python -m socal.report " + shlex.join(argv)
        written = write_report(groups, swept_keys(runs), args.out, command)
    log.info("%d runs, %d group(s): %s", len(runs), len(groups), ", ".join(map(str, written)))


if __name__ == "__main__":
    main(sys.argv[1:])
