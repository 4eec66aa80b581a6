"""``python train.py`` end to end, as a user runs it, on synthetic SOCAL folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
    roc_auc_score,
)
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.data.index import index_folder
from socal.training.checkpoint import step_files

from support import TINY, read_metrics, run_train, synthetic_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("train"), trials=32, seed=1)


def small_run(tmp_path: Path, data_root: Path, *extra: str) -> Path:
    run_dir = tmp_path / "run"
    run_train(run_dir, [f"data.root={data_root}", *TINY, "trainer.epochs=2", *extra])
    return run_dir


def test_a_run_writes_every_result(tmp_path: Path, data_root: Path) -> None:
    run_dir = small_run(tmp_path, data_root)
    results = ("config.yaml", "split.csv", "history.csv", "predictions.csv", "metrics.json")
    for name in (*results, "tools.csv", "apms.csv"):  # the synthetic data has socal.csv
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert step_files(run_dir / "checkpoints")
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2] and {"train_loss", "val_loss", "val_auroc"} <= set(
        history
    )
    metrics = read_metrics(run_dir)
    expected = {"accuracy", "balanced_accuracy", "auroc", "f1", "sensitivity", "specificity"}
    assert expected <= set(metrics["test"]) and len(metrics["test"]["confusion_matrix"]) == 2
    assert set(metrics["baselines"]) == {"majority", "trial_length", "trial_length_window", "tools"}
    assert metrics["tools"]["annotations"] and metrics["tools"]["model_input"] == []
    assert set(metrics["val"]) == {"loss"} | set(metrics["test"])
    split = pd.read_csv(run_dir / "split.csv")
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test_trials = sorted(split[split.subset == "test"].trial)
    assert sorted(predictions[predictions.subset == "test"].trial) == test_trials
    assert predictions.probability.between(0, 1).all()
    log = (run_dir / "train.log").read_text()
    assert "test_accuracy=" in log and "val_loss=" in log


def test_metrics_json_is_what_scikit_learn_computes_from_predictions_csv_at_the_best_epoch(
    tmp_path: Path, data_root: Path
) -> None:
    """Recomputed independently: test and validation metrics from predictions.csv, and the
    tested weights (best.pt) are those of the epoch with the highest val_auroc in history.csv."""
    run_dir = small_run(
        tmp_path, data_root, "trainer.epochs=4", "trainer.early_stopping.metric=val_auroc"
    )
    metrics = read_metrics(run_dir)
    predictions = pd.read_csv(run_dir / "predictions.csv")
    threshold = metrics["threshold"]["value"]  # chosen on validation (eval.threshold=val_youden)
    # Test at that threshold and at 0.5; validation as history.csv has it (at 0.5).
    for subset, key, cut in (("test", "test", threshold), ("test", "test_at_0.5", 0.5),
                             ("val", "val", 0.5)):  # fmt: skip
        rows = predictions[predictions.subset == subset]
        y, p = rows.label.astype(int), rows.probability
        assert (rows.prediction == (p >= threshold)).all()
        hard = (p >= cut).astype(int)
        expected = {
            "accuracy": accuracy_score(y, hard),
            "balanced_accuracy": balanced_accuracy_score(y, hard),
            "auroc": roc_auc_score(y, p),
            "f1": f1_score(y, hard),
            "sensitivity": recall_score(y, hard),
            "specificity": recall_score(1 - y, 1 - hard),
        }
        assert {k: metrics[key][k] for k in expected} == pytest.approx(expected), key
        assert metrics[key]["confusion_matrix"] == confusion_matrix(y, hard, labels=[0, 1]).tolist()
    history = pd.read_csv(run_dir / "history.csv")
    best = history.loc[history.val_auroc.idxmax()]  # the first of equal values, as the engine
    assert metrics["best_val"] == {"val_auroc": pytest.approx(best.val_auroc)}
    for key in ("loss", "accuracy", "auroc", "f1"):
        assert metrics["val"][key] == pytest.approx(best[f"val_{key}"]), key
    log = (run_dir / "train.log").read_text()
    assert f"best_val_auroc={metrics['best_val']['val_auroc']:.6g}" in log


def test_same_seed_gives_the_same_metrics(tmp_path: Path, data_root: Path) -> None:
    first = read_metrics(small_run(tmp_path / "a", data_root))
    second = read_metrics(small_run(tmp_path / "b", data_root))
    assert first == second
    other = small_run(tmp_path / "c", data_root, "trainer.seed=5")
    history = (tmp_path / "a" / "run" / "history.csv").read_text()
    assert (other / "history.csv").read_text() != history  # the seed matters


def test_blood_loss_regression_learns_a_learnable_target(tmp_path: Path) -> None:
    """Synthetic blood loss follows the visual signal: the regressor beats the training mean,
    and its predictions stay within the range of the training targets."""
    root = synthetic_folder(tmp_path, trials=64, seed=0)
    run_dir = tmp_path / "run"
    run_train(run_dir, [
        f"data.root={root}", *TINY, "trainer.epochs=8", "data.target=blood_loss",
        "trainer.early_stopping.metric=val_rmse",
    ])  # fmt: skip
    metrics = read_metrics(run_dir)
    expected = {"rmse", "mae", "r2", "median_ae", "rmse_log1p", "calibration_slope"}
    assert metrics["task"] == "regression" and expected == set(metrics["test"])
    assert metrics["test"]["rmse"] < 0.8 * metrics["baselines"]["majority"]["rmse"]
    predictions = pd.read_csv(run_dir / "predictions.csv")
    split = pd.read_csv(run_dir / "split.csv")
    train = split[split.subset == "train"].label
    assert predictions.predicted.between(train.min(), train.max()).all()
    test = predictions[predictions.subset == "test"]
    rmse = float(np.sqrt(np.mean((test.predicted - test.label) ** 2)))
    assert metrics["test"]["rmse"] == pytest.approx(rmse)


def test_model_from_a_local_save_pretrained_directory(tmp_path: Path, data_root: Path) -> None:
    saved = tmp_path / "my-videomae"
    config = VideoMAEConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        num_frames=4,
        num_labels=400,
    )
    VideoMAEForVideoClassification(config).save_pretrained(saved)
    run_dir = small_run(tmp_path, data_root, f"model.source={saved}")
    assert read_metrics(run_dir)["n_trials"]["test"] > 0
    log = (run_dir / "train.log").read_text()
    # Only the one-output classifier is new: the encoder and fc_norm come from the directory
    # (tensor by tensor in test_model.py).
    new = "new (randomly initialised): classifier.bias, classifier.weight\n"
    assert f"model: {saved}; {new}" in log


def test_a_zero_byte_frame_is_reported_and_training_runs(tmp_path: Path, data_root: Path) -> None:
    """The crash this issue began with: one empty JPEG (an interrupted copy) in the folder."""
    root = Path(shutil.copytree(data_root, tmp_path / "socal"))
    empty = index_folder(root)[0][0].frames[7]
    empty.write_bytes(b"")
    run_dir = small_run(tmp_path, root, "trainer.epochs=1")
    assert f"not jpeg frames: 1 ({empty.name})" in (run_dir / "train.log").read_text()


def test_the_demo_learns_the_signal_on_held_out_trials(tmp_path: Path) -> None:
    """The README's demo command, as written, beats the majority class on unseen surgeons."""
    os.environ["SOCAL_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        run_train(tmp_path / "demo", ["experiment=demo", "trainer.progress=false"])
    finally:
        del os.environ["SOCAL_CACHE_DIR"]
    metrics = read_metrics(tmp_path / "demo")
    majority = metrics["baselines"]["majority"]["accuracy"]
    assert metrics["n_trials"]["test"] >= 20
    assert metrics["test"]["accuracy"] >= majority + 0.15
    assert metrics["test"]["auroc"] >= 0.85


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "data.root must be set"),
        (["data.root=/no/such/folder"], "is not a directory"),
        (["model=videomae_base", "DATA"], "cannot load model 'MCG-NJU/videomae-base'"),
        (["model.source=./no-such-model", "DATA"], "is not a directory saved with save_pretrained"),
        (["experiment=demo", "trainer.precision=64"], "trainer.precision=64 is not one of"),
        (["optimizer=adam"], "Could not find 'optimizer/adam'"),
        (["trainer.epocs=3"], "Could not override 'trainer.epocs'"),
        (
            ["DATA", "trainer.epochs=0"],
            "trainer.batch_size and trainer.grad_accum_steps must be >= 1",
        ),
        (
            ["DATA", *TINY, "optimizer=sgd", "optimizer.lr=1e12", "trainer.grad_clip=null"],
            "training diverged",
        ),
        (
            ["DATA", "trainer.early_stopping.metric=val_auroc", "trainer.early_stopping.mode=min"],
            "trainer.early_stopping.mode=min contradicts trainer.early_stopping.metric=val_auroc",
        ),
    ],
)
def test_bad_input_ends_with_one_clear_line(
    tmp_path: Path, data_root: Path, overrides: list[str], message: str
) -> None:
    overrides = [f"data.root={data_root}" if o == "DATA" else o for o in overrides]
    proc = run_train(tmp_path / "run", overrides, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_outcomes_csv_without_success_column(tmp_path: Path, data_root: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "JPEGImages").mkdir(parents=True)
    table = pd.read_csv(data_root / "socal_trial_outcomes.csv").drop(columns="success")
    table.to_csv(broken / "socal_trial_outcomes.csv", index=False)
    proc = run_train(tmp_path / "run", [f"data.root={broken}", *TINY], check=False)
    assert proc.returncode == 2
    assert "lacks column(s) success" in proc.stdout + proc.stderr
