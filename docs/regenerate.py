"""Regenerate the result plots in docs/ from real demo runs: ``python docs/regenerate.py``.

``report``: the k-fold learning-rate comparison of docs/reports.md (10 demo runs, about 35
minutes on 2 CPU cores), reported with socal.report. ``explanations``: two demo runs with
``eval.explain=true``, windowed (the first 60 s) and whole-trial (``data.window.length_s=null``),
whose summaries the README and docs/reports.md show side by side (about 10 minutes). The plots
the pages show are copied into docs/. ``--epochs`` and ``--folds`` shorten the report part for a
quick look (the pages quote the full run).
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
# Demo runs explained at their end: name -> overrides.
EXPLAINED = {"windowed": [], "whole_trial": ["data.window.length_s=null"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "docs-runs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("parts", nargs="*", choices=["report", "explanations"])
    args = parser.parse_args(argv)
    parts = args.parts or ["report", "explanations"]
    if "report" in parts:
        regenerate_report(args.work, args.epochs, args.folds)
    if "explanations" in parts:
        regenerate_explanations(args.work)


def regenerate_explanations(work: Path) -> None:
    for name, overrides in EXPLAINED.items():
        run_dir = work / f"explain-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        subprocess.run(
            [sys.executable, str(ROOT / "train.py"), "experiment=demo", "eval.explain=true",
             *overrides, f"hydra.run.dir={run_dir}"],
            cwd=ROOT, check=True,
        )  # fmt: skip
        shown = DOCS / f"explain_{name}.png"
        shutil.copy(run_dir / "explanations" / "summary.png", shown)
        print(f"{shown} <- {run_dir / 'explanations' / 'summary.png'}")


def regenerate_report(work: Path, epochs: int, folds: str) -> None:
    sweep, report = work / "lr-cv", work / "lr-report"
    shutil.rmtree(sweep, ignore_errors=True)
    shutil.rmtree(report, ignore_errors=True)
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "experiment=demo", "split=kfold",
         f"split.fold={folds}", "optimizer.lr=1e-3,1e-4", f"trainer.epochs={epochs}",
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
