"""Regenerate the result plots in docs/ from real demo runs: ``python docs/regenerate.py``.

Runs the k-fold learning-rate comparison of docs/reports.md (10 demo runs, about 35 minutes on
2 CPU cores), reports it with socal.report and copies the plots the pages show into docs/.
``--epochs`` and ``--folds`` shorten it for a quick look (the pages quote the full run).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# (file the report writes, relative to its --out folder) -> file the docs show.
PLOTS = {"plots/pooled_roc.png": "report_pooled_roc.png"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "docs-runs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--folds", default="0,1,2,3,4")
    args = parser.parse_args(argv)
    sweep, report = args.work / "lr-cv", args.work / "lr-report"
    shutil.rmtree(args.work, ignore_errors=True)
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "experiment=demo", "split=kfold",
         f"split.fold={args.folds}", "optimizer.lr=1e-3,1e-4", f"trainer.epochs={args.epochs}",
         f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "socal.report", str(sweep), "--out", str(report)],
        cwd=ROOT, check=True,
    )  # fmt: skip
    for made, shown in PLOTS.items():
        shutil.copy(report / made, DOCS / shown)
        print(f"{DOCS / shown} <- {report / made}")
    print(f"the tables of docs/reports.md: {report / 'report.md'}")


if __name__ == "__main__":
    main()
