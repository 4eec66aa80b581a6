"""How long ``python -m socal.report`` takes on 100 runs: ``python benchmarks/report.py RUNS``.

RUNS is a ``train.py -m ... split=kfold split.fold=0,1,2,3,4`` folder (real runs). Its folds are
copied into 20 groups that differ in ``optimizer.lr`` (config.yaml edited; checkpoints left out),
100 run folders in all, and the report over them is timed: the whole command as a user runs it
(imports included), and its phases in this process.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from socal.config import EvalConfig
from socal.report.aggregate import group_runs, swept_keys
from socal.report.runs import RUN_FILES, load_runs, run_folders
from socal.report.write import write_report

RUN_EXTRA = ("split.csv", "history.csv")


def copy_runs(source: Path, target: Path, groups: int) -> int:
    folds = run_folders(source)
    n = 0
    for g in range(groups):
        for fold in folds:
            run = target / f"{n:03d}"
            run.mkdir(parents=True)
            for name in RUN_FILES + RUN_EXTRA:
                shutil.copy(fold / name, run / name)
            config = yaml.safe_load((run / "config.yaml").read_text())
            config["optimizer"]["lr"] = config["optimizer"]["lr"] * (g + 1)
            (run / "config.yaml").write_text(yaml.safe_dump(config))
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a train.py -m k-fold multirun folder")
    parser.add_argument("--groups", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        n = copy_runs(args.runs, runs, args.groups)
        start = time.perf_counter()
        command = [sys.executable, "-m", "socal.report", str(runs), "--out", f"{tmp}/cli"]
        subprocess.run(command, check=True, capture_output=True)
        total = time.perf_counter() - start
        timings = {}
        start = time.perf_counter()
        loaded = load_runs([str(runs)], Path(tmp) / "jobs", progress=False)
        timings["read runs"] = time.perf_counter() - start
        start = time.perf_counter()
        groups = group_runs(loaded, EvalConfig())
        timings["group + pool + 2000 bootstrap resamples per group"] = time.perf_counter() - start
        start = time.perf_counter()
        written = write_report(groups, swept_keys(loaded), Path(tmp) / "out", "benchmark")
        timings[f"write report.md, summaries, {len(written) - 3} plots"] = (
            time.perf_counter() - start
        )
    predictions = sum(len(run.test) for run in loaded)
    print(f"{n} runs in {len(groups)} groups, {predictions} test predictions")
    print(f"{'python -m socal.report (whole command)':<58}{total:8.2f} s")
    for name, seconds in timings.items():
        print(f"  {name:<56}{seconds:8.2f} s")


if __name__ == "__main__":
    main()
