"""The prepared frame cache: each trial's window frames decoded once, as memory-mapped uint8.

Layout: ``<cache_dir>/<variant>/<trial_id>.<key>.npy``, one ``(F, H, W, 3)`` array per trial.
``variant`` names what the arrays were made for (short side and window), so caches for two
windows can sit side by side; ``key`` hashes the cache format, the short side, the frame range
and the names and byte sizes of the source JPEGs, so a file is valid for a run exactly when its
name is the name that run expects. Sizes rather than mtimes: copying a folder to and from S3
resets mtimes but keeps sizes, and a re-encoded or truncated JPEG changes its size.

A trial file is written under a temporary name and renamed into place, so an interrupted
``python -m socal.prepare`` leaves only whole files and the next run resumes where it stopped.
The arrays are exactly what the uncached path decodes (``socal.data.decode``), so a cached and an
uncached clip are equal, and 143 files of ~16 MB travel to S3 better than 31k small JPEGs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from socal.config import CACHE_DIR_NAME, WindowConfig
from socal.data.decode import decode_with_fallback, resize_clip, short_side_size
from socal.data.index import Trial
from socal.errors import UserError

log = logging.getLogger(__name__)
FORMAT = 2  # bump when the decode or the layout changes: every key changes with it
CHUNK = 32  # frames decoded and resized together while building
_said_no_cache = False


def default_dir(root: str | Path) -> Path:
    return Path(root).expanduser() / CACHE_DIR_NAME


def variant_name(short_side: int, window: WindowConfig) -> str:
    length = "all" if window.length_s is None else window.length_s
    return f"s{short_side}-w{window.start_s}-{length}"


def frame_range(n_frames: int, window: WindowConfig) -> tuple[int, int]:
    """``[lo, hi)``: every position ``clip_positions`` can return for this window, any jitter."""
    lo = min(window.start_s, n_frames - 1)
    hi = n_frames if window.length_s is None else min(window.start_s + window.length_s, n_frames)
    return lo, max(hi, lo + 1)


def trial_key(trial: Trial, lo: int, hi: int, short_side: int) -> str:
    """Hash of what a trial's cached array depends on (stats the source files, reads none)."""
    digest = hashlib.sha256(f"{FORMAT}|{short_side}|{lo}|{hi}".encode())
    for path in trial.frames[lo:hi]:
        digest.update(f"|{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _existing(directory: Path) -> dict[str, list[str]]:
    """Trial id -> cached file names present in ``directory``."""
    found: dict[str, list[str]] = {}
    if directory.is_dir():
        for name in os.listdir(directory):
            if name.endswith(".npy"):
                found.setdefault(name.split(".", 1)[0], []).append(name)
    return found


@dataclass
class FrameCache:
    """Reads clips from the cached arrays of one variant; holds no open file between reads."""

    files: dict[str, tuple[Path, int]]  # trial id -> (array file, first frame position in it)

    def clip(self, trial_id: str, positions: Sequence[int]) -> torch.Tensor:
        """``(T, 3, H, W)`` uint8 (channels-last memory), the same clip ``decode_clip`` gives.

        The array is memory-mapped for this read only: the worker's resident memory holds the
        frames of the clip, not the whole cache.
        """
        path, first = self.files[trial_id]
        frames = np.load(path, mmap_mode="r")
        clip = np.take(frames, np.asarray(positions, dtype=np.int64) - first, axis=0)
        del frames
        return torch.from_numpy(clip).permute(0, 3, 1, 2)


def open_cache(
    trials: Sequence[Trial], window: WindowConfig, short_side: int, cache_dir: Path
) -> Optional[FrameCache]:
    """The valid cache for these trials, or None when there is none (the JPEGs are decoded).

    A cache that exists for this variant but does not match every trial (source frames changed,
    or an interrupted build) is refused with the command that fixes it; never used.
    """
    global _said_no_cache
    directory = cache_dir / variant_name(short_side, window)
    existing = _existing(directory)
    if not existing:
        others = sorted(p.name for p in cache_dir.glob("*/") if p.is_dir())
        if others:
            log.warning(
                "frame cache %s has %s but not %s (this run's short side and data.window): "
                "decoding JPEGs; build it with python -m socal.prepare and the same overrides",
                cache_dir, ", ".join(others), directory.name,
            )  # fmt: skip
        elif not _said_no_cache:
            log.info("no frame cache at %s: decoding JPEGs (python -m socal.prepare builds one)",
                     cache_dir)  # fmt: skip
        _said_no_cache = True
        return None
    files, stale, missing = {}, [], []
    for trial in trials:
        lo, hi = frame_range(trial.n_frames, window)
        name = f"{trial.trial_id}.{trial_key(trial, lo, hi, short_side)}.npy"
        if name in existing.get(trial.trial_id, ()):
            files[trial.trial_id] = (directory / name, lo)
        else:
            (stale if trial.trial_id in existing else missing).append(trial.trial_id)
    if stale or missing:
        problems = []
        if stale:
            problems.append(f"{len(stale)} trials whose frames changed ({', '.join(stale[:5])})")
        if missing:
            problems.append(f"{len(missing)} trials it lacks ({', '.join(missing[:5])})")
        raise UserError(
            f"frame cache {directory} does not match the data: {' and '.join(problems)}. "
            "Rebuild it with python -m socal.prepare data.root=... (with this run's overrides; "
            "it redoes only those trials) or set data.cache=off"
        )
    log.info("frame cache: %s (%d trials)", directory, len(files))
    return FrameCache(files)


@dataclass
class PrepareReport:
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    removed: int = 0
    frames: int = 0
    replaced_frames: int = 0  # frames that failed to decode and use their nearest neighbour
    bytes: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        per_frame = 1000 * self.seconds / max(self.frames, 1)
        return [
            f"trials built {len(self.built)}, already valid {len(self.reused)}, "
            f"stale files removed {self.removed}",
            f"frames decoded {self.frames} in {self.seconds:.1f} s ({per_frame:.1f} ms/frame); "
            f"unreadable frames replaced by a neighbour {self.replaced_frames}",
            f"cache size {self.bytes / 2**20:.1f} MiB",
        ]


def build_trial(trial: Trial, window: WindowConfig, short_side: int, path: Path) -> tuple[int, int]:
    """Write ``trial``'s window frames to ``path`` atomically; (frames, replaced frames)."""
    lo, hi = frame_range(trial.n_frames, window)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    replaced, out, size = 0, None, None
    try:
        for start in range(lo, hi, CHUNK):
            decoded = [
                decode_with_fallback(trial.frames, p, short_side)
                for p in range(start, min(start + CHUNK, hi))
            ]
            if any(d.stand_in for d in decoded):  # never cache black frames as the trial
                raise UserError(
                    f"{trial.trial_id}: no frame decodes any more (since the data check): "
                    "fix or remove its frames, then prepare the cache again"
                )
            replaced += sum(d.replaced for d in decoded)
            size = size or short_side_size(*decoded[0].full_size, short_side)
            chunk = resize_clip([d.pixels for d in decoded], size).permute(0, 2, 3, 1).numpy()
            if out is None:
                shape = (hi - lo, *chunk.shape[1:])
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            out[start - lo : start - lo + len(chunk)] = chunk
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return hi - lo, replaced


def prepare(
    trials: Iterable[Trial],
    window: WindowConfig,
    short_side: int,
    cache_dir: Path,
    progress: bool = True,
) -> PrepareReport:
    """Build (or complete, or refresh) the cache of one variant for ``trials``."""
    directory = cache_dir / variant_name(short_side, window)
    directory.mkdir(parents=True, exist_ok=True)
    existing = _existing(directory)
    report = PrepareReport()
    start = time.perf_counter()
    for trial in tqdm(list(trials), desc="frame cache", disable=not progress):
        lo, hi = frame_range(trial.n_frames, window)
        name = f"{trial.trial_id}.{trial_key(trial, lo, hi, short_side)}.npy"
        if name in existing.get(trial.trial_id, ()):
            report.reused.append(trial.trial_id)
        else:
            frames, replaced = build_trial(trial, window, short_side, directory / name)
            report.built.append(trial.trial_id)
            report.frames += frames
            report.replaced_frames += replaced
        for old in existing.get(trial.trial_id, ()):
            if old != name:
                (directory / old).unlink(missing_ok=True)
                report.removed += 1
        report.bytes += (directory / name).stat().st_size
    report.seconds = time.perf_counter() - start
    return report
