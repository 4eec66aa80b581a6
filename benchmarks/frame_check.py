"""The data check's cost on the real release's frame count, the old rule beside the new one.

    python benchmarks/frame_check.py [--frames 31443] [--dir .cache/bench-frame-check]

Writes a folder of ``--frames`` 1280x720 q90 frames in 147 trials (hard links to 64 distinct
encoded frames: the same opens, stats and reads as distinct files, from the page cache), then
times, in one run: the old rule (header, then the last two bytes must be FFD9, then Pillow's
header parse), the new structure check (``socal.data.index.frame_problem``) on the same frames
and on the same frames with 37 zero bytes after their end marker (the slow path: the whole file
is read and searched), and the whole ``index_folder`` (CSVs, the check, one decode per trial).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from socal.data.index import FRAMES_DIR, OUTCOMES_CSV, frame_problem, index_folder

TRIALS, POOL = 147, 64


def last_bytes_rule(path: Path) -> bool:
    """The check before issue 20: usable when it starts FFD8, ends FFD9 and Pillow says JPEG."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(2)
        handle.seek(max(size - 2, 0))
        if head != b"\xff\xd8" or handle.read(2) != b"\xff\xd9":
            return False
        handle.seek(0)
        with Image.open(handle) as image:
            return image.format == "JPEG"


def pool(folder: Path, padding: bytes) -> list[Path]:
    """``POOL`` distinct smooth, textured 1280x720 frames (like video, unlike noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (18, 32, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((1280, 720), Image.Resampling.BICUBIC))
    paths = []
    for i in range(POOL):
        path = folder / f"pool_{i:03d}.jpeg"
        if not path.exists():
            pixels = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
            path.write_bytes(path.read_bytes() + padding)
        paths.append(path)
    return paths


def folder(root: Path, frames: int, padding: bytes) -> Path:
    """A SOCAL-shaped folder of ``frames`` frames in ``TRIALS`` trials (file-name order)."""
    images = root / FRAMES_DIR
    if not images.is_dir():
        sources = pool(root / "pool", padding)
        images.mkdir(parents=True)
        per_trial = -(-frames // TRIALS)
        for k in range(frames):
            trial, index = divmod(k, per_trial)
            name = f"S{100 + trial}T1_frame_{index + 1:08d}.jpeg"
            os.link(sources[k % POOL], images / name)
        ids = [f"S{100 + t}T1" for t in range(TRIALS)]
        outcomes = {"trial_id": ids, "participant_id": range(100, 100 + TRIALS),
                    "success": [t % 2 for t in range(TRIALS)]}  # fmt: skip
        pd.DataFrame(outcomes).to_csv(root / OUTCOMES_CSV, index=False)
    return root


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=31_443)
    parser.add_argument("--dir", type=Path, default=Path(".cache/bench-frame-check"))
    args = parser.parse_args(argv)
    plain = folder(args.dir / "plain", args.frames, b"")
    padded = folder(args.dir / "padded", args.frames, b"\x00" * 37)
    paths = sorted((plain / FRAMES_DIR).iterdir())
    padded_paths = sorted((padded / FRAMES_DIR).iterdir())
    for path in [*paths, *padded_paths]:  # warm the page cache, as at a second run
        path.read_bytes()
    rows = [
        ("old rule: FFD9 last, Pillow header", lambda: [last_bytes_rule(p) for p in paths]),
        ("new: structure check", lambda: [frame_problem(p) for p in paths]),
        ("new: structure check, 37 B after EOI", lambda: [frame_problem(p) for p in padded_paths]),
        ("new: index_folder (CSVs, check, 1 decode/trial)", lambda: index_folder(plain)),
    ]
    print(f"{len(paths)} frames of 1280x720, {TRIALS} trials")
    for name, run in rows:
        seconds = timed(run)
        print(f"{name:<50} {seconds:6.2f} s  {1e6 * seconds / len(paths):6.1f} us/frame")
    old = sum(last_bytes_rule(p) for p in padded_paths)
    new = sum(frame_problem(p).problem is None for p in padded_paths)
    print(f"padded frames usable: old rule {old}, new check {new} of {len(padded_paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
