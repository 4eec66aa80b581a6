"""Interruption and scale-out: SIGKILL, SIGTERM, damaged checkpoints, torchrun on two CPUs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from socal.config import semantic_config
from socal.training.checkpoint import find_resumable, load, step_files
from socal.training.distributed import Dist
from socal.training.engine import Engine
from socal.training.interrupt import StopSignal
from socal.training.metrics import task_metrics
from socal.training.run import build_engine, load_trials

from support import (
    REPO,
    TINY,
    compose_train,
    read_metrics,
    run_train,
    same_results,
    start,
    synthetic_folder,
    wait_for_line,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("resume"), trials=32, seed=2)


def overrides(data_root: Path) -> list[str]:
    # Batch size 1 makes epochs long enough (tens of steps) to be interrupted inside one.
    return [
        f"data.root={data_root}", *TINY, "trainer.batch_size=1", "trainer.epochs=4",
        "trainer.checkpoint_every_steps=4", "trainer.early_stopping.patience=10",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """An uninterrupted run with the same seed."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_train(run_dir, overrides(data_root))
    return run_dir


def test_sigkill_mid_epoch_then_restart_equals_uninterrupted(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, overrides(data_root))
    wait_for_line(proc, "epoch 1/")  # epoch 1 done; its checkpoint follows the line
    deadline = time.time() + 60
    while not step_files(run_dir / "checkpoints") and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)  # kill during epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The kill may land inside a save (every 4 steps): resume then falls back to the one before.
    config = semantic_config(compose_train(overrides(data_root)))
    state = find_resumable(run_dir / "checkpoints", config)
    assert state is not None and state["epoch"] < 4, "the run finished before it could be killed"
    restarted = run_train(run_dir, overrides(data_root))
    assert "resuming from" in restarted.stdout
    same_results(run_dir, reference)


def test_sigterm_saves_a_checkpoint_exits_0_promptly_and_resumes_exactly(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, overrides(data_root))
    wait_for_line(proc, "epoch 1/")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[0]
    elapsed = time.monotonic() - sent
    assert proc.returncode == 0, rest[-3000:]
    assert elapsed < 15, f"took {elapsed:.1f}s to stop"
    assert "stopped by SIGTERM" in rest and "to resume" in rest
    state = load(step_files(run_dir / "checkpoints")[0])
    assert state["epoch"] >= 1 and not (run_dir / "metrics.json").exists()
    run_train(run_dir, overrides(data_root))
    same_results(run_dir, reference)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    run_dir = tmp_path / "run"
    args = overrides(data_root)
    run_train(run_dir, [*args, "trainer.epochs=2"], check=True)
    # Same config as the reference except epochs: start over with epochs=4 needs the same config,
    # so produce the damaged state with the reference's config instead.
    run_dir = tmp_path / "run4"
    proc = start(run_dir, args)
    wait_for_line(proc, "epoch 2/")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    checkpoints = run_dir / "checkpoints"
    # The newest two are kept (three when the kill landed between a save and the pruning).
    newest, previous = step_files(checkpoints)[:2]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])
    resumed = run_train(run_dir, args)
    assert "is unreadable" in resumed.stdout and "resuming from" in resumed.stdout
    same_results(run_dir, reference)


def test_no_readable_checkpoint_starts_fresh_with_a_warning(
    tmp_path: Path, data_root: Path
) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "step-000100.pt").write_bytes(b"not a checkpoint")
    proc = run_train(run_dir, [*overrides(data_root), "trainer.epochs=1"])
    assert "is unreadable" in proc.stdout and "resuming from" not in proc.stdout
    assert read_metrics(run_dir)["epochs_trained"] == 1


def test_a_checkpoint_of_another_config_is_refused_naming_the_difference(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    checkpoints = tmp_path / "ck"
    shutil.copytree(reference / "checkpoints", checkpoints)
    other = [*overrides(data_root), "optimizer.lr=0.5", f"trainer.checkpoint_dir={checkpoints}"]
    proc = run_train(tmp_path / "refused", other, check=False)
    assert proc.returncode == 2
    assert "optimizer.lr: 0.001 -> 0.5" in proc.stdout
    fresh = run_train(tmp_path / "fresh", [*other, "trainer.epochs=1", "trainer.resume=false"])
    assert "trainer.resume=false: removing" in fresh.stdout and "resuming" not in fresh.stdout
    assert load(step_files(checkpoints)[0])["epoch"] == 1
    assert all(load(path)["config"]["optimizer"]["lr"] == 0.5 for path in step_files(checkpoints))


def test_interrupted_on_the_last_step_of_an_epoch_resumes_exactly(tmp_path: Path, data_root: Path):
    """A batch size that does not divide the epoch, and a stop on its very last step."""
    cfg = compose_train([f"data.root={data_root}", *TINY, "trainer.batch_size=5",
                         "trainer.epochs=3", "trainer.early_stopping.patience=10"])  # fmt: skip

    class StopAtEpochEnd(StopSignal):
        """SIGTERM arriving during the last step of the first epoch."""

        engine: Engine | None = None

        def __bool__(self) -> bool:
            engine = self.engine
            done = engine is not None and engine.epoch == 0
            return done and engine.batches_done == len(engine_loaders["train"])

    def fit(run_dir: Path, stop: StopSignal) -> Engine:
        subsets = load_trials(cfg, run_dir, Dist())
        engine, loaders = build_engine(cfg, subsets, run_dir, Dist(), stop, torch.device("cpu"))
        engine_loaders.update(loaders)
        stop.engine = engine
        engine.fit(loaders["train"], loaders["val"])
        return engine

    engine_loaders: dict = {}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stop = StopAtEpochEnd()
    interrupted = fit(tmp_path / "a", stop)
    assert interrupted.interrupted and interrupted.epoch == 0
    assert len(engine_loaders["train"].dataset) % 5, "the batch size must not divide the epoch"
    resumed = fit(tmp_path / "a", StopSignal())
    uninterrupted = fit(tmp_path / "b", StopSignal())
    assert resumed.history == uninterrupted.history and len(resumed.history) == 3


def test_torchrun_two_cpu_processes(tmp_path: Path, data_root: Path) -> None:
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(REPO / "train.py"), f"hydra.run.dir={run_dir}", f"data.root={data_root}", *TINY,
        "trainer.epochs=2",
    ]  # fmt: skip
    # Its own session, so that a hang kills torchrun's workers too, not only torchrun.
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-3000:]
    split = pd.read_csv(run_dir / "split.csv")
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test = predictions[predictions.subset == "test"]
    assert sorted(test.trial) == sorted(split[split.subset == "test"].trial)
    assert test.trial.is_unique
    metrics = read_metrics(run_dir)
    assert metrics["n_trials"]["test"] == len(test)
    assert len(pd.read_csv(run_dir / "history.csv")) == 2
    assert (run_dir / "train.log").read_text().count("test_accuracy=") == 1
    # The metrics gathered from two ranks equal one process evaluating the same weights.
    cfg = compose_train([f"data.root={data_root}", *TINY, "trainer.epochs=2"])
    single = tmp_path / "single"
    single.mkdir()
    subsets = load_trials(cfg, single, Dist())
    engine, loaders = build_engine(cfg, subsets, single, Dist(), StopSignal(), torch.device("cpu"))
    engine.module.load_state_dict(load(run_dir / "checkpoints" / "best.pt"))
    alone_test = engine.predict(loaders["test"])
    threshold = metrics["threshold"]["value"]  # chosen on validation by the ranks' run
    expected = task_metrics("classification", alone_test.labels, alone_test.outputs, threshold)
    assert metrics["test"].pop("confusion_matrix") == expected.pop("confusion_matrix")
    assert metrics["test"] == pytest.approx(expected)
    # Its checkpoint holds two ranks' state: one process cannot continue it exactly.
    alone = run_train(
        run_dir, [f"data.root={data_root}", *TINY, "trainer.epochs=2"], check=False
    )  # fmt: skip
    assert alone.returncode == 2 and "written by 2 training process(es)" in alone.stdout
