"""``python -m socal.report`` across runs, on run folders written by the per-run code.

The runs here are made without training (predictions drawn at random, metrics.json written by
the same functions train.py uses), so each test takes about a second; test_report_cv.py runs
the real thing. Every pooled figure is recomputed from the CSVs with scikit-learn.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from socal.config import EvalConfig
from socal.report.__main__ import main
from socal.report.metrics import task_metrics
from socal.report.plots import run_plots
from socal.report.run_results import choose_threshold, published_results

from stats_support import percentiles, resamples, sklearn_classification

REPO = Path(__file__).resolve().parent.parent
SURGEONS = [f"{200 + i}" for i in range(20)]
FOLDS = 5


def _fold_of(split_seed: int) -> dict[str, int]:
    order = np.random.default_rng(split_seed).permutation(SURGEONS)
    return {surgeon: i % FOLDS for i, surgeon in enumerate(order)}


def write_run(
    folder: Path, fold: int, lr: float, split_seed: int = 0, seed: int = 0, skill: float = 0.3
) -> Path:
    """A k-fold run folder (config.yaml, split.csv, predictions.csv, metrics.json, history.csv)."""
    rng = np.random.default_rng([fold, int(lr * 1e6), split_seed, seed])
    fold_of = _fold_of(split_seed)
    rows = []
    for surgeon in SURGEONS:
        distance = (fold_of[surgeon] - fold) % FOLDS
        subset = {0: "test", 1: "val"}.get(distance, "train")
        for t in (1, 2):
            label = float(rng.random() < 0.6)
            rows.append((f"S{surgeon}T{t}", surgeon, label, subset))
    split = pd.DataFrame(rows, columns=["trial", "participant", "label", "subset"])
    scored = split[split.subset != "train"].copy()
    noise = rng.normal(0, 0.2, len(scored))
    scored["probability"] = np.clip(skill * scored["label"] + 0.35 + noise, 0.01, 0.99)
    scored["baseline_majority"] = 1.0
    scored["baseline_trial_length"] = np.clip(
        scored["label"] * 0.6 + rng.random(len(scored)) * 0.4, 0, 1
    )
    settings = EvalConfig(bootstrap=50)
    val, test = scored[scored.subset == "val"], scored[scored.subset == "test"]
    threshold = choose_threshold("classification", settings, val["label"], val["probability"])
    scored["prediction"] = (scored["probability"] >= threshold["value"]).astype(int)
    published = published_results("classification", test, threshold["value"], settings)
    labels = test["label"].to_numpy()
    metrics = {
        "task": "classification",
        "target": "success",
        "test": published.pop("test"),
        "baselines": {
            name: task_metrics("classification", labels, test[f"baseline_{name}"].to_numpy())
            for name in ("majority", "trial_length")
        },
        "n_trials": split["subset"].value_counts().to_dict(),
        "epochs_trained": 2,
        # The validation objective prefers a small lr whatever the test says.
        "best_val": {"val_auroc": 0.9 - lr * 100 + rng.normal(0, 0.01)},
        "config_fingerprint": "0" * 16,
        "threshold": threshold,
        **published,
    }
    config = {
        "data": {"root": f"/data/copy-{fold}", "target": "success", "num_frames": 4},
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": lr},
        "split": {"strategy": "kfold", "seed": split_seed, "folds": FOLDS, "fold": fold},
        # Settings that change no reported figure: differing, they must not split a group.
        "eval": {"explain": fold % 2 == 0, "plots": fold % 2 == 1},
        "trainer": {
            "seed": seed,
            "num_workers": fold,
            "early_stopping": {"metric": "val_auroc", "mode": None},
        },
    }
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    split.to_csv(folder / "split.csv", index=False)
    columns = ["trial", "participant", "label", "probability", "prediction", "subset"]
    scored[columns + ["baseline_majority", "baseline_trial_length"]].to_csv(
        folder / "predictions.csv", index=False
    )
    (folder / "metrics.json").write_text(json.dumps(metrics))
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.7, 0.6], "val_loss": [0.7, 0.65],
                            "val_auroc": [0.6, 0.7], "lr": [lr, lr / 2]})  # fmt: skip
    history.to_csv(folder / "history.csv", index=False)
    return folder


def sweep(base: Path, lrs=(1e-4, 1e-3), **kw) -> Path:
    """A train.py -m multirun folder: one numbered run per (lr, fold)."""
    n = 0
    for lr in lrs:
        for fold in range(FOLDS):
            write_run(base / str(n), fold, lr, **kw)
            n += 1
    return base


def report(tmp_path: Path, *args: str) -> dict:
    main(
        [*map(str, args), "--out", str(tmp_path / "report"), "--bootstrap", "150", "--no-progress"]
    )
    return json.loads((tmp_path / "report" / "summary.json").read_text())


def test_folds_are_pooled_and_every_figure_matches_sklearn_on_the_csvs(tmp_path: Path) -> None:
    runs = sweep(tmp_path / "multirun")
    summary = report(tmp_path, runs)
    assert summary["swept_keys"] == ["optimizer.lr", "split.fold"]
    groups = summary["groups"]
    # Sorted by the validation objective (small lr wins there), never by test.
    assert [g["keys"]["optimizer.lr"] for g in groups] == [1e-4, 1e-3]
    for group in groups:
        folders = [
            tmp_path / "report" / ".." / "multirun" / Path(name).name for name in group["runs"]
        ]
        tests, metrics = [], []
        for folder in folders:
            predictions = pd.read_csv(folder / "predictions.csv")
            run_metrics = json.loads((folder / "metrics.json").read_text())
            threshold = run_metrics["threshold"]["value"]
            tests.append(predictions[predictions.subset == "test"].assign(threshold=threshold))
            metrics.append(sklearn_classification(
                tests[-1]["label"].to_numpy(), tests[-1]["probability"].to_numpy(), threshold, 10
            ))  # fmt: skip
        pooled = pd.concat(tests, ignore_index=True)
        # Every trial of the data exactly once.
        assert sorted(pooled["trial"]) == sorted(f"S{s}T{t}" for s in SURGEONS for t in (1, 2))
        assert group["coverage"]["test_trials"] == 40 and group["coverage"]["folds"] == [
            0,
            1,
            2,
            3,
            4,
        ]
        y, p, thr = (pooled[c].to_numpy() for c in ("label", "probability", "threshold"))
        expected = sklearn_classification(y, p, thr, 10)
        for key, value in expected.items():
            actual = group["pooled"]["test"].get(
                key, group["pooled"].get("calibration", {}).get(key)
            )
            assert actual == pytest.approx(value), key
        assert group["pooled"]["test"]["accuracy"] == pytest.approx(
            (pooled["prediction"] == y).mean()
        )
        majority = group["pooled"]["baselines"]["majority"]
        assert majority["accuracy"] == pytest.approx(y.mean())
        length_auroc = roc_auc_score(y, pooled["baseline_trial_length"])
        assert group["pooled"]["baselines"]["trial_length"]["auroc"] == pytest.approx(length_auroc)
        # Bootstrap over surgeons of the pooled predictions, resample by resample.
        per_resample: dict[str, list[float]] = {}
        for rows in resamples(pooled["participant"], 150, 0):
            for key, value in sklearn_classification(y[rows], p[rows], thr[rows], 10).items():
                per_resample.setdefault(key, []).append(value)
        for key, values in per_resample.items():
            assert group["pooled"]["intervals"]["bootstrap"][key] == pytest.approx(
                percentiles(values, 0.95)
            ), key
        # Paired differences from the pooled baselines, on the same resamples.
        length = pooled["baseline_trial_length"].to_numpy()
        diffs = [
            roc_auc_score(y[rows], p[rows]) - roc_auc_score(y[rows], length[rows])
            for rows in resamples(pooled["participant"], 150, 0)
            if len(np.unique(y[rows])) == 2
        ]
        difference = group["pooled"]["differences"]["trial_length"]["auroc"]
        assert difference["ci"] == pytest.approx(percentiles(diffs, 0.95))
        assert difference["value"] == pytest.approx(roc_auc_score(y, p) - length_auroc)
        # Exact interval of the pooled accuracy: Clopper-Pearson from the beta distribution.
        k, n = int(((p >= thr) == y).sum()), len(y)
        exact = group["pooled"]["intervals"]["exact"]["accuracy"]
        assert (exact["k"], exact["n"]) == (k, n)
        low = beta.ppf(0.025, k, n - k + 1) if k else 0.0
        high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        assert exact["clopper_pearson"] == pytest.approx([low, high])
        # Mean and sd over the folds of the runs' own figures.
        table = pd.DataFrame(metrics)
        for key in ("accuracy", "auroc", "brier"):
            assert group["mean"][key] == pytest.approx(table[key].mean())
            assert group["sd"][key] == pytest.approx(table[key].std(ddof=1))
    out = tmp_path / "report"
    csv = pd.read_csv(out / "summary.csv")
    assert len(csv) == 10 and {"optimizer.lr", "split.fold", "best_val_auroc", "test_auroc"} <= set(
        csv
    )
    assert list(csv["group"]) == [1] * 5 + [2] * 5
    text = (out / "report.md").read_text()
    assert (
        "optimizer.lr=0.0001" in text and "Pooled out-of-fold test predictions: 40 trials" in text
    )
    for png in ("auroc_vs_optimizer.lr.png", "accuracy_vs_optimizer.lr.png", "pooled_roc.png"):
        assert Image.open(out / "plots" / png).size[0] > 100


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda base: [write_run(base / f"{s}-{f}", f, 1e-3, split_seed=s)
                       for s in (0, 1) for f in range(FOLDS)],
         "cannot pool the folds of all runs: its folds come from different split.seed (0, 1)"),
        (lambda base: [write_run(base / f"{s}-{f}", f, 1e-3, seed=s)
                       for s in (0, 1) for f in range(FOLDS)],
         "appears in"),
    ],
)  # fmt: skip
def test_pooling_that_would_be_wrong_is_refused_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
    make,
    message: str,
) -> None:
    make(tmp_path / "runs")
    with pytest.raises(SystemExit) as exit_info:
        report(tmp_path, tmp_path / "runs")
    assert exit_info.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "report" / "report.md").exists()


def test_repeats_are_pooled_apart_when_grouped_by_their_seed(tmp_path: Path) -> None:
    for s in (0, 1):
        for f in range(FOLDS):
            write_run(tmp_path / "runs" / f"{s}-{f}", f, 1e-3, seed=s)
    summary = report(tmp_path, tmp_path / "runs", "--by", "trainer.seed")
    assert [g["keys"] for g in summary["groups"]] in (
        [{"trainer.seed": 0}, {"trainer.seed": 1}],
        [{"trainer.seed": 1}, {"trainer.seed": 0}],
    )
    assert all(g["coverage"]["test_trials"] == 40 for g in summary["groups"])
    with pytest.raises(SystemExit):
        report(tmp_path, tmp_path / "runs", "--by", "trainer.sed")


def test_a_launch_sweep_folder_with_downloaded_jobs_counts_each_run_once(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multirun" / "launch" / "2026-11-30" / "10-00-00"
    for i, lr in enumerate((1e-4, 1e-3)):
        job = write_run(sweep_dir / f"socal-{i}-2026-11-30-10-00-0{i}", 0, lr)
        config = yaml.safe_load((job / "config.yaml").read_text())
        config["split"]["strategy"] = "surgeon"  # one held-out test set, nothing to pool
        (job / "config.yaml").write_text(yaml.safe_dump(config))
        model = job / "model"  # what instance=local also leaves: no predictions.csv
        model.mkdir()
        for name in ("config.yaml", "metrics.json"):
            (model / name).write_bytes((job / name).read_bytes())
    (sweep_dir / "sweep.csv").write_text("job,overrides\n")
    summary = report(tmp_path, sweep_dir, sweep_dir / "socal-0-2026-11-30-10-00-00")
    assert sum(len(g["runs"]) for g in summary["groups"]) == 2
    assert [g["keys"] for g in summary["groups"]] == [
        {"optimizer.lr": 1e-4},
        {"optimizer.lr": 1e-3},
    ]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| test metric | value | 95% CI | exact 95% CI |" in text  # one run: its own intervals


def test_s3_job_outputs_give_the_same_report_as_the_local_folders(
    tmp_path: Path, bucket: str
) -> None:
    import boto3

    runs = sweep(tmp_path / "jobs", lrs=(1e-3,))
    s3 = boto3.client("s3")
    for folder in sorted(runs.iterdir()):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for file in folder.iterdir():
                archive.add(file, arcname=file.name)
        key = f"socal/output/socal-{folder.name}-2026-11-30-10-00-00/output/output.tar.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="socal/output/other/output/model.tar.gz", Body=b"x")
    remote = report(tmp_path / "remote", f"s3://{bucket}/socal/output")
    local = report(tmp_path / "local", runs)
    assert len(remote["groups"][0]["runs"]) == FOLDS
    assert remote["groups"][0]["pooled"] == local["groups"][0]["pooled"]
    assert remote["groups"][0]["mean"] == local["groups"][0]["mean"]


def test_the_report_runs_without_torch(tmp_path: Path) -> None:
    runs = sweep(tmp_path / "runs", lrs=(1e-3,))
    blocker = tmp_path / "no-torch"
    for name in ("torch", "torchvision", "transformers"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    command = [sys.executable, "-m", "socal.report", str(runs), "--out", str(tmp_path / "out")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "report.md").is_file()
    assert "reading runs" in proc.stderr  # the progress bar


def test_run_plots_for_classification_and_regression(tmp_path: Path) -> None:
    run = write_run(tmp_path / "cls", 0, 1e-3)
    names = {p.name for p in run_plots(run)}
    assert names == {"training_curves.png", "roc.png", "reliability.png", "confusion_matrix.png",
                     "decision_curve.png"}  # fmt: skip
    regression = tmp_path / "reg"
    regression.mkdir()
    rng = np.random.default_rng(0)
    target = rng.gamma(2, 200, 12)
    predictions = {"trial": [f"S{i}T1" for i in range(12)], "participant": range(12),
                   "label": target, "predicted": target + rng.normal(0, 100, 12),
                   "subset": "test"}  # fmt: skip
    pd.DataFrame(predictions).to_csv(regression / "predictions.csv", index=False)
    results = published_results(
        "regression", pd.DataFrame(predictions), None, EvalConfig(bootstrap=0)
    )
    (regression / "metrics.json").write_text(
        json.dumps({"task": "regression", "best_val": {"val_rmse": 1}, **results})
    )
    names = {p.name for p in run_plots(regression)}
    assert names == {"predicted_vs_actual.png", "residuals.png", "bland_altman.png"}
    for png in (regression / "plots").iterdir():
        assert Image.open(png).format == "PNG"
