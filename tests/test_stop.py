"""Stops as SageMaker delivers them: SIGTERM to process 1 of the container, or no signal at all.

The container command chain runs as process 1 of its own PID namespace (``unshare``, as Docker
does), built by the SDK itself (``sm_train.sh``, its environment script and driver); process 1
gets SIGTERM as on a stop, a spot interruption or ``max_run``, and SIGKILL after a grace period.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from socal.data.synthetic import SyntheticSpec, generate
from socal.sagemaker import local_container, source_archive, submit

from support import TINY_JOB, local_plan, stop_process_1

pytestmark = pytest.mark.slow

# Batch size 1 and many epochs: the job is still training when it is stopped.
JOB = [
    *TINY_JOB, "trainer.batch_size=1", "trainer.epochs=1000",
    "trainer.early_stopping.patience=1000", "trainer.progress=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Enough trials that an epoch (~45 steps) outlasts the time-checkpoint interval below.
    spec = SyntheticSpec(trials=64, min_frames=60, max_frames=90)
    return generate(tmp_path_factory.mktemp("data") / "SOCAL", spec, progress=False)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_archive.build(
        tmp_path_factory.mktemp("src"), "socal/requirements/instance.txt", 5
    )


def test_sigterm_to_process_1_reaches_train_py_which_saves_and_exits(
    tmp_path: Path, data: Path, archive: Path
) -> None:
    local = local_container.prepare(local_plan(JOB), archive, data, tmp_path / "opt_ml")
    stopped = stop_process_1(
        local.command, local.env, local.root, local.checkpoint_dir, "epoch=1", 1.0, 60
    )
    assert "exec_driver: exec" in stopped.output  # sm_train.sh -> exec_driver -> train.py
    assert stopped.exited_after_s is not None, stopped.output[-3000:]
    assert stopped.exited_after_s < 20
    assert "stopped by SIGTERM" in stopped.output
    assert stopped.lost_s == 0  # the newest checkpoint was written after the signal


def test_when_the_signal_is_lost_time_checkpoints_bound_the_work_lost(
    tmp_path: Path, data: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's plain driver chain (what jobs ran before): process 1 drops SIGTERM, the job
    trains on until it is killed, and only the time-based checkpoints limit the loss."""
    monkeypatch.setattr(submit, "COMMAND", None)
    job = local_plan([*JOB, "trainer.checkpoint_every_minutes=0.003"])  # every 0.18 s
    local = local_container.prepare(job, archive, data, tmp_path / "opt_ml")
    stopped = stop_process_1(
        local.command, local.env, local.root, local.checkpoint_dir, "epoch=1", 1.0, 8
    )
    assert "exec_driver" not in stopped.output
    assert stopped.exited_after_s is None  # SIGTERM never reached train.py: killed
    assert "stopped by SIGTERM" not in stopped.output
    saves = re.findall(r"checkpoint step-\d+\.pt: \d+ epochs \+ (\d+) batches done", stopped.output)
    assert any(int(batches) for batches in saves), stopped.output[-3000:]  # mid-epoch, by the clock
    assert 0 < stopped.lost_s < 0.18 + 4, stopped.lost_s  # the interval, a step (a busy machine)
