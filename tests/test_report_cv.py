"""A real 5-fold cross-validation of the demo, then ``python -m socal.report`` over it.

Shrunk to stay quick (40 trials, 2 epochs, 4 frames of 32 px); the per-run figures in each
metrics.json and the pooled ones in the report are recomputed from the CSVs with scikit-learn.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_curve

from stats_support import sklearn_classification
from support import REPO

pytestmark = pytest.mark.slow

SHRUNK = [
    "data.synthetic.trials=40",
    "trainer.epochs=2",
    "model.arch.image_size=32",
    "data.num_frames=4",
    "trainer.num_workers=0",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def cv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cv")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SOCAL_CACHE_DIR": str(base / "cache")}
    command = [
        sys.executable, str(REPO / "train.py"), "-m", "experiment=demo", "split=kfold",
        "split.fold=0,1,2,3,4", *SHRUNK, f"hydra.sweep.dir={base / 'multirun'}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base / "multirun"


def test_each_fold_reports_at_its_validation_threshold(cv: Path) -> None:
    for fold in range(5):
        run = cv / str(fold)
        metrics = json.loads((run / "metrics.json").read_text())
        predictions = pd.read_csv(run / "predictions.csv")
        val = predictions[predictions.subset == "val"]
        test = predictions[predictions.subset == "test"]
        threshold = metrics["threshold"]
        if val["label"].nunique() == 2:
            fpr, tpr, _ = roc_curve(val["label"], val["probability"])
            assert threshold["rule"] == "val_youden"
            assert threshold["val_youden_j"] == pytest.approx(np.max(tpr - fpr))
            chosen = val["probability"] >= threshold["value"]
            sens = (chosen & (val["label"] == 1)).sum() / (val["label"] == 1).sum()
            spec = (~chosen & (val["label"] == 0)).sum() / (val["label"] == 0).sum()
            assert sens + spec - 1 == pytest.approx(threshold["val_youden_j"])
        value = threshold["value"]
        assert (predictions["prediction"] == (predictions["probability"] >= value)).all()
        y, p = test["label"].to_numpy(), test["probability"].to_numpy()
        for name, expected in sklearn_classification(y, p, value, 10).items():
            actual = metrics["test"].get(name, metrics["calibration"].get(name))
            assert actual == pytest.approx(expected, nan_ok=True), (fold, name)
        assert metrics["test_at_0.5"]["accuracy"] == pytest.approx(((p >= 0.5) == y).mean())
        names = {"training_curves", "roc", "reliability", "confusion_matrix"}
        for name in names if test["label"].nunique() == 2 else names - {"roc"}:
            assert Image.open(run / "plots" / f"{name}.png").format == "PNG"


def test_the_report_pools_every_trial_exactly_once(cv: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "socal.report", str(cv), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    [group] = summary["groups"]
    splits = [pd.read_csv(cv / str(fold) / "split.csv") for fold in range(5)]
    tests = [pd.read_csv(cv / str(fold) / "predictions.csv") for fold in range(5)]
    pooled = pd.concat([t[t.subset == "test"] for t in tests])
    every_trial = set(splits[0]["trial"])
    assert sorted(pooled["trial"]) == sorted(every_trial)  # each trial exactly once
    assert group["coverage"] == {
        "folds": [0, 1, 2, 3, 4], "of_folds": 5, "missing_folds": [], "test_trials": 40,
        "trials": 40,
    }  # fmt: skip
    y = pooled["label"].to_numpy()
    assert group["pooled"]["test"]["accuracy"] == pytest.approx((pooled["prediction"] == y).mean())
    assert group["pooled"]["test"]["confusion_matrix"] == [
        [int(((pooled.prediction == p) & (y == a)).sum()) for p in (0, 1)] for a in (0, 1)
    ]
    assert "Pooled out-of-fold test predictions: 40 trials" in (out / "report.md").read_text()


def test_a_finished_run_is_re_evaluated_with_other_eval_settings_without_training(
    cv: Path, tmp_path: Path
) -> None:
    run = tmp_path / "fold0"
    shutil.copytree(cv / "0", run)
    before = json.loads((run / "metrics.json").read_text())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SOCAL_CACHE_DIR": str(cv.parent / "cache")}
    command = [
        sys.executable, str(REPO / "train.py"), "experiment=demo", "split=kfold", "split.fold=0",
        *SHRUNK, "eval.threshold=0.3", f"hydra.run.dir={run}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "resuming from" in log and "epoch=" not in log  # nothing trained again
    after = json.loads((run / "metrics.json").read_text())
    assert after["threshold"] == {"rule": "fixed", "value": 0.3}
    assert after["test_at_0.5"] == before["test_at_0.5"]  # the same model
    predictions = pd.read_csv(run / "predictions.csv")
    assert (predictions["prediction"] == (predictions["probability"] >= 0.3)).all()
