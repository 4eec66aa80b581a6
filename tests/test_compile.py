"""trainer.compile=true on the CPU: it trains, resumes exactly after a SIGTERM, and its
checkpoints and package hold the plain model's weights (predict.py reproduces the run)."""

from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from socal.training.checkpoint import BEST, load, step_files

from support import (
    TINY,
    assert_reproduces,
    expected_rows,
    predict,
    run_train,
    same_results,
    start,
    synthetic_folder,
    wait_for_line,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("compile"), trials=24, seed=4)


def overrides(data_root: Path) -> list[str]:
    # Batches of one: every batch has the same shape, so the model compiles once per mode.
    return [
        f"data.root={data_root}", *TINY, "trainer.compile=true", "trainer.batch_size=1",
        "trainer.epochs=3", "trainer.checkpoint_every_steps=4",
        "trainer.early_stopping.patience=10",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = run_train(run_dir, overrides(data_root))
    assert "trainer.compile=true" in proc.stdout + proc.stderr
    return run_dir


def test_checkpoints_and_the_package_hold_the_plain_models_keys(reference: Path) -> None:
    checkpoints = reference / "checkpoints"
    keys = [
        *load(step_files(checkpoints)[0])["model"],
        *load(checkpoints / BEST),
        *load_file(reference / "model" / "model.safetensors"),
    ]
    assert keys and not [key for key in keys if "_orig_mod" in key]


def test_a_compiled_run_resumes_exactly_after_sigterm(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, overrides(data_root))
    wait_for_line(proc, "epoch 1/")
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and "stopped by SIGTERM" in rest, rest[-3000:]
    resumed = run_train(run_dir, overrides(data_root))
    assert "resuming from" in resumed.stdout + resumed.stderr
    same_results(run_dir, reference)


def test_predict_reproduces_the_compiled_runs_predictions(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    predict(tmp_path / "out", f"run={reference}", f"data.root={data_root}")
    assert_reproduces(pd.read_csv(tmp_path / "out" / "predictions.csv"), expected_rows(reference))
