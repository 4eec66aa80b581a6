"""``python train.py`` end to end, as a user runs it, on synthetic SOCAL folders."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

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
    for name in ("config.yaml", "split.csv", "history.csv", "predictions.csv", "metrics.json"):
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
    assert set(metrics["baselines"]) == {"majority", "trial_length"}
    split = pd.read_csv(run_dir / "split.csv")
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test_trials = sorted(split[split.subset == "test"].trial)
    assert sorted(predictions[predictions.subset == "test"].trial) == test_trials
    assert predictions.probability.between(0, 1).all()
    log = (run_dir / "train.log").read_text()
    assert "test_accuracy=" in log and "val_loss=" in log


def test_same_seed_gives_the_same_metrics(tmp_path: Path, data_root: Path) -> None:
    first = read_metrics(small_run(tmp_path / "a", data_root))
    second = read_metrics(small_run(tmp_path / "b", data_root))
    assert first == second
    other = small_run(tmp_path / "c", data_root, "trainer.seed=5")
    history = (tmp_path / "a" / "run" / "history.csv").read_text()
    assert (other / "history.csv").read_text() != history  # the seed matters


def test_blood_loss_regression_reports_ml_errors(tmp_path: Path, data_root: Path) -> None:
    run_dir = small_run(
        tmp_path, data_root, "data.target=blood_loss", "trainer.early_stopping.metric=val_rmse"
    )
    metrics = read_metrics(run_dir)
    assert metrics["task"] == "regression"
    assert {"rmse", "mae", "r2"} == set(metrics["test"])
    assert metrics["test"]["rmse"] > 0
    assert "predicted" in pd.read_csv(run_dir / "predictions.csv")


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
    assert "model: " + str(saved) in (run_dir / "train.log").read_text()


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
