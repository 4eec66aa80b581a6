"""Data-pipeline benchmark: ``python benchmarks/data.py [--mapping CSV]`` (not a test).

Generates a synthetic SOCAL-shaped folder at the real resolutions (1920x1080 and 1280x720,
JPEG quality 90), then measures clips per second from JPEG files to a normalised, augmented
float batch of 16x224x224 clips, on one core, for three pipelines side by side:

1. the prototype's: full PIL decode, per-frame torchvision ColorJitter (with hue) and flip on
   PIL images, then transformers' VideoMAEImageProcessor (implemented here as the reference);
2. socal without cache: scaled JPEG decode, clip-level crop in uint8, ``finish_clips``;
3. socal with the prepared frame cache (memory-mapped uint8).

socal's augmentation is on (flip, random resized crop, brightness, contrast, saturation). It
then prints the cache size for the real SOCAL frame counts, the build time per frame, the
loaders' throughput and peak resident memory with 1 and 2 workers, and as its last line
``speedup uncached=<ratio> cached=<ratio>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from socal.config import CacheMode, DataConfig, WindowConfig
from socal.data.clips import clip_positions
from socal.data.dataset import ClipDataset
from socal.data.decode import short_side_size
from socal.data.frame_cache import frame_range, prepare
from socal.data.index import Trial, index_folder
from socal.data.jpeg import DECODER
from socal.data.synthetic import SyntheticSpec, ensure_synthetic
from socal.data.transforms import finish_clips

SIZE, FRAMES, BATCH = 224, 16, 4
# Without --mapping: the SOCAL release as documented in shared/SOCAL.md, 147 trials with video,
# 31,443 frames, of which all but a few of the shortest trials (min 43 frames) fill a 60 s window.
ESTIMATE_TRIALS, ESTIMATE_FRAMES, ESTIMATE_SHORTEST = 147, 31_443, 43


def prototype_clip(trial: Trial, positions: np.ndarray) -> list[Image.Image]:
    """The prototype's per-frame work: full decode, then jitter and flip drawn per PIL frame."""
    from torchvision import transforms as T

    jitter = T.Compose([T.ColorJitter(0.2, 0.2, 0.2, hue=0.1), T.RandomHorizontalFlip()])
    return [jitter(Image.open(trial.frames[int(p)]).convert("RGB")) for p in positions]


def time_prototype(trials: list[Trial], clips: int) -> float:
    """Seconds per clip of the prototype's pipeline, batch of BATCH clips."""
    from transformers import VideoMAEImageProcessor

    processor = VideoMAEImageProcessor()
    window = WindowConfig()

    def batch(start: int) -> torch.Tensor:
        videos = []
        for k in range(start, start + BATCH):
            trial = trials[k % len(trials)]
            positions = clip_positions(trial.n_frames, FRAMES, 0, window.length_s)
            videos.append(prototype_clip(trial, positions))
        return processor(videos, return_tensors="pt")["pixel_values"]

    return _per_clip(batch, clips)


def _per_clip(batch: Callable[[int], torch.Tensor], clips: int) -> float:
    out = batch(0)  # warm-up: imports, caches, allocator
    assert out.shape[1:] == (FRAMES, 3, SIZE, SIZE) and out.dtype == torch.float32, out.shape
    start = time.perf_counter()
    for first in range(BATCH, BATCH + clips, BATCH):
        batch(first)
    return (time.perf_counter() - start) / clips


def socal_data(root: Path, cache: CacheMode) -> DataConfig:
    return OmegaConf.structured(DataConfig(root=str(root), num_frames=FRAMES, cache=cache))


def time_socal(trials: list[Trial], data: DataConfig, clips: int) -> float:
    """Seconds per clip: ClipDataset -> collate -> finish_clips, all in this process."""
    dataset = ClipDataset(trials, data, SIZE, train=True, seed=0)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=False, num_workers=0)

    def batch(first: int) -> torch.Tensor:
        dataset.set_epoch(first // len(trials))
        items = [dataset[(first + k) % len(trials)] for k in range(BATCH)]
        raw = loader.collate_fn(items)
        return finish_clips(raw["pixel_values"], raw["augment"])

    return _per_clip(batch, clips)


class _MemoryDataset(torch.utils.data.Dataset):
    """A ClipDataset whose samples also carry their process's memory (RSS and USS, KiB)."""

    def __init__(self, inner: ClipDataset, epochs: int) -> None:
        self.inner, self.epochs = inner, epochs

    def __len__(self) -> int:
        return len(self.inner) * self.epochs

    def __getitem__(self, index: int) -> dict:
        item = self.inner[index % len(self.inner)]
        item["memory_kib"] = torch.tensor(_memory_kib())
        return item


def _memory_kib() -> tuple[int, int]:
    """(resident, private) memory of this process. A forked worker's resident memory counts the
    pages it shares with its parent; private (USS) is what the worker itself adds."""
    fields = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields.get("Rss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def time_workers(trials: list[Trial], data: DataConfig, workers: int, clips: int) -> tuple:
    """(clips/s, peak RSS MiB, peak USS MiB) of the workers of a DataLoader feeding this
    process, which runs ``finish_clips`` on each batch (the training device's work)."""
    dataset = _MemoryDataset(ClipDataset(trials, data, SIZE, train=True, seed=0), -(-clips // 4))
    trainer = OmegaConf.create({"num_workers": workers, "prefetch_factor": 4})
    loader = DataLoader(dataset, batch_size=BATCH, **ClipDataset.loader_settings(trainer))
    peak, done = torch.zeros(2, dtype=torch.int64), 0
    iterator = iter(loader)
    next(iterator)  # workers started and warm
    start = time.perf_counter()
    for batch in iterator:
        finish_clips(batch["pixel_values"], batch["augment"])
        peak = torch.maximum(peak, batch["memory_kib"].max(0).values)
        done += len(batch["index"])
        if done >= clips:
            break
    rate = done / (time.perf_counter() - start)
    del iterator, loader
    return rate, *(peak / 1024).tolist()


def cache_sizes(mapping: Path | None) -> list[str]:
    """Lines on the cache size for the real SOCAL frame counts (60 s window, whole trial)."""
    frame_bytes = 3 * int(np.prod(short_side_size(1080, 1920, SIZE)))
    if mapping is not None:
        counts = pd.read_csv(mapping).groupby("trial_id").size().to_numpy()
        source = f"{mapping} ({len(counts)} trials, {counts.sum()} frames)"
    else:
        counts = np.full(ESTIMATE_TRIALS, ESTIMATE_FRAMES // ESTIMATE_TRIALS)
        counts[0] = ESTIMATE_SHORTEST
        source = (
            f"estimate ({ESTIMATE_TRIALS} trials, {ESTIMATE_FRAMES} frames, pass --mapping "
            "frame_to_trial_mapping.csv for the real counts)"
        )
    window = np.array([np.subtract(*frame_range(int(n), WindowConfig())[::-1]) for n in counts])
    mib = frame_bytes / 2**20
    lines = [
        f"cache for real SOCAL, from {source}: {frame_bytes / 1024:.0f} KiB per frame",
        f"  data.window 0-60 s: per trial {window.min() * mib:.1f}-{window.max() * mib:.1f} MiB"
        f" (median {np.median(window) * mib:.1f}), total {window.sum() * mib / 1024:.2f} GiB",
        f"  whole trials (length_s=null): per trial {np.median(counts) * mib:.0f} MiB median, "
        f"total {counts.sum() * mib / 1024:.2f} GiB",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mapping", type=Path, help="SOCAL's frame_to_trial_mapping.csv")
    parser.add_argument("--work", type=Path, default=Path(".cache/bench-data"))
    parser.add_argument("--trials", type=int, default=6, help="synthetic trials (~40 s each)")
    parser.add_argument("--clips", type=int, default=16, help="clips timed for the prototype")
    args = parser.parse_args(argv)

    root = args.work / f"socal-full-t{args.trials}"
    spec = SyntheticSpec(trials=args.trials, seed=7, size="full", min_frames=62, max_frames=90)
    print(f"synthetic SOCAL at {root} (1920x1080 and 1280x720, q{spec.quality})", flush=True)
    ensure_synthetic(root, spec, progress=False)
    trials, _ = index_folder(root)
    shapes = [Image.open(t.frames[0]).size for t in trials]
    print(f"  {len(trials)} trials: " + ", ".join(f"{shapes.count(s)}x {s[0]}x{s[1]}"
                                                  for s in sorted(set(shapes))))  # fmt: skip
    cache_dir = args.work / f"cache-t{args.trials}"
    shutil.rmtree(cache_dir, ignore_errors=True)  # built anew each run: its time is measured
    report = prepare(trials, WindowConfig(), SIZE, cache_dir, progress=False)
    cached = socal_data(root, CacheMode.auto)
    cached.cache_dir = str(cache_dir)
    uncached = socal_data(root, CacheMode.off)

    torch.set_num_threads(1)
    print(f"DataLoader on {os.cpu_count()} cores ...", flush=True)
    loaders = [
        (name, workers, *time_workers(trials, data, workers, clips))
        for name, data, clips in (("uncached", uncached, 48), ("cached", cached, 400))
        for workers in (1, 2)
    ]
    all_cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cores)})
    print(f"timing on one core, {FRAMES} frames x {SIZE}px, batch {BATCH} ...", flush=True)
    proto = time_prototype(trials, args.clips)
    plain = time_socal(trials, uncached, 4 * args.clips)
    fast = time_socal(trials, cached, 40 * args.clips)
    os.sched_setaffinity(0, all_cores)

    rows = [
        ("prototype: PIL, per-frame jitter+hue+flip, VideoMAEImageProcessor", proto),
        (f"socal uncached: {DECODER} scaled decode, clip crop, finish_clips", plain),
        ("socal cached: memory-mapped uint8, clip crop, finish_clips", fast),
    ]
    print(f"\n| pipeline (1 core, {FRAMES}x{SIZE}x{SIZE}, batch {BATCH}) "
          "| ms/clip | clips/s | vs prototype |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.1f} | {1 / seconds:.2f} | {proto / seconds:.1f}x |")

    print()
    for line in cache_sizes(args.mapping):
        print(line)
    per_frame = report.seconds * 1000 / report.frames
    print(f"cache build: {per_frame:.1f} ms/frame (one process, {report.frames} frames, written)")
    print(f"bench cache: {report.bytes / 2**20:.0f} MiB for {len(trials)} trials")

    print(f"\n| DataLoader ({os.cpu_count()} cores; finish_clips in the main process, 1 thread) "
          "| workers | clips/s | peak RSS per worker | of which private |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for name, workers, rate, rss, uss in loaders:
        print(f"| {name} | {workers} | {rate:.1f} | {rss:.0f} MiB | {uss:.0f} MiB |")
    print(f"speedup uncached={proto / plain:.1f} cached={proto / fast:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
