"""Checkpoint files: written once under a new name, two kept; when time-based saves are due."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from socal.training import checkpoint


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()
    }


def test_each_save_adds_one_new_file_and_never_rewrites_one(tmp_path: Path) -> None:
    """What a folder mirrored to S3 uploads per save: new or changed files (here: one)."""
    before = snapshot(tmp_path)
    for step in (5, 10, 15, 20):
        checkpoint.save_step({"step": step, "w": torch.arange(step)}, tmp_path, step)
        after = snapshot(tmp_path)
        new = set(after) - set(before)
        changed = {name for name in set(after) & set(before) if after[name] != before[name]}
        assert new == {checkpoint.step_name(step)} and not changed
        before = after
    assert sorted(before) == ["step-000015.pt", "step-000020.pt"]
    assert [p.name for p in checkpoint.step_files(tmp_path)] == ["step-000020.pt", "step-000015.pt"]
    assert checkpoint.load(tmp_path / "step-000020.pt")["step"] == 20


def test_step_files_sort_by_number_not_by_text(tmp_path: Path) -> None:
    for step in (999999, 1000000, 7):
        (tmp_path / checkpoint.step_name(step)).write_bytes(b"")
    (tmp_path / "best.pt").write_bytes(b"")
    names = [p.name for p in checkpoint.step_files(tmp_path)]
    assert names == ["step-1000000.pt", "step-999999.pt", "step-000007.pt"]


@pytest.mark.parametrize(
    ("minutes", "on_sagemaker", "seconds"),
    [(None, True, 600.0), (None, False, None), (0, True, None), (2.5, False, 150.0)],
)
def test_time_based_checkpoints_default_on_inside_a_sagemaker_job(
    monkeypatch: pytest.MonkeyPatch, minutes, on_sagemaker: bool, seconds
) -> None:
    monkeypatch.delenv(checkpoint.SAGEMAKER_JOB_ENV, raising=False)
    if on_sagemaker:
        monkeypatch.setenv(checkpoint.SAGEMAKER_JOB_ENV, "socal-20260101000000")
    assert checkpoint.interval_seconds(minutes) == seconds
    clock = checkpoint.SaveClock(minutes)
    assert not clock.due()
    clock.last -= 10_000
    assert clock.due() is (seconds is not None)
    clock.reset()
    assert not clock.due()
