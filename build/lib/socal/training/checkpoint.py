"""Checkpoints: written once under a new name, read as data (never code), refused when the
config differs.

``step-000123.pt`` holds everything needed to continue (model, optimizer, scheduler, counters,
RNG, history, config). Each save writes one new file and then deletes all but the newest two, so
a folder mirrored to S3 (SageMaker's checkpoint sync) uploads exactly one file per save, and a
file cut short by a kill falls back to the one before it. ``best.pt`` holds the best model's
weights only; ``finished.json`` marks a run that trained and tested to the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Optional

import torch

from socal.config import config_differences
from socal.errors import UserError

log = logging.getLogger(__name__)

BEST, FINISHED = "best.pt", "finished.json"
STEP_NAME = re.compile(r"^step-(\d{6,})\.pt$")
KEEP = 2
# Inside a SageMaker training job (the platform sets this variable; instance=local imitates it)
# a checkpoint is also written every this many minutes unless trainer.checkpoint_every_minutes
# says otherwise: a stop or spot interruption then loses at most that much work.
SAGEMAKER_JOB_ENV = "TRAINING_JOB_NAME"
SAGEMAKER_DEFAULT_MINUTES = 10.0


def step_name(step: int) -> str:
    return f"step-{step:06d}.pt"


def step_files(directory: Path) -> list[Path]:
    """The step checkpoints in ``directory``, newest (highest step) first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file, fsync, then rename: a kill mid-write leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_step(state: dict, directory: Path, step: int) -> Path:
    """Write ``step-NNNNNN.pt`` once, in place, then keep only the newest ``KEEP`` of them.

    No temporary file and no rename: a synced folder would upload both. A file cut short by a
    kill is unreadable, and loading falls back to the previous one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / step_name(step)
    with open(path, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    for old in step_files(directory)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def clear(directory: Path) -> None:
    """``trainer.resume=false``: remove what an earlier run left, so nothing of it is reused."""
    named = [directory / name for name in (BEST, FINISHED)]
    old = step_files(directory) + [p for p in named if p.exists()]
    if old:
        log.warning("trainer.resume=false: removing %s", ", ".join(str(p) for p in old))
    for path in old:
        path.unlink()


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def find_resumable(directory: Path, config: dict) -> Optional[dict]:
    """The newest readable checkpoint of this config, None if there is none.

    A checkpoint of another config is refused with the differences named; an unreadable one is
    skipped with a warning.
    """
    for path in step_files(directory):
        try:
            state = load(path)
        except Exception as err:  # a truncated or corrupt file: fall back, never crash
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, err)
            continue
        diffs = config_differences(state["config"], config)
        if diffs:
            raise UserError(
                f"{directory} holds a checkpoint of a different config ({'; '.join(diffs[:5])}); "
                "use another trainer.checkpoint_dir, or trainer.resume=false to start fresh"
            )
        return state
    return None


def mark_finished(directory: Path, fingerprint: str) -> None:
    """Say in the checkpoint folder that this run trained and tested to the end.

    A launcher that finds it refuses to relaunch the run as if it were new (see socal.sagemaker).
    """
    record = {"config_fingerprint": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FINISHED).write_text(json.dumps(record) + "\n")


def interval_seconds(minutes: Optional[float]) -> Optional[float]:
    """Seconds between time-based checkpoints: ``minutes``, or SageMaker's default when null.

    0 turns them off; null means 10 minutes inside a SageMaker job and off elsewhere.
    """
    if minutes is None:
        minutes = SAGEMAKER_DEFAULT_MINUTES if SAGEMAKER_JOB_ENV in os.environ else 0.0
    return minutes * 60 if minutes > 0 else None


class SaveClock:
    """Says when a time-based checkpoint is due; reset by every save."""

    def __init__(self, minutes: Optional[float]) -> None:
        self.interval = interval_seconds(minutes)
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.interval is not None and time.monotonic() - self.last >= self.interval

    def reset(self) -> None:
        self.last = time.monotonic()
