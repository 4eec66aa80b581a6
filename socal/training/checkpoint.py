"""Checkpoints: written atomically, read as data (never code), refused when the config differs.

``last.pt`` holds everything needed to continue (model, optimizer, scheduler, counters, RNG,
history, config); the one before it is kept as ``previous.pt`` so a file cut short by a kill
falls back to the earlier one. ``best.pt`` holds the best model's weights only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

from socal.config import config_differences
from socal.errors import UserError

log = logging.getLogger(__name__)

LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file, fsync, then rename: a kill mid-write leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_last(state: dict, directory: Path) -> None:
    """Save ``last.pt``, keeping the one it replaces as ``previous.pt``."""
    tmp = directory / (LAST + ".new")
    atomic_save(state, tmp)
    if (directory / LAST).exists():
        os.replace(directory / LAST, directory / PREVIOUS)
    os.replace(tmp, directory / LAST)


def clear(directory: Path) -> None:
    """``trainer.resume=false``: remove what an earlier run left, so nothing of it is reused."""
    old = [directory / name for name in (LAST, PREVIOUS, BEST) if (directory / name).exists()]
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
    for name in (LAST, PREVIOUS):
        path = directory / name
        if not path.exists():
            continue
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
