"""Benchmark the training loop's own overhead and memory: ``python benchmarks/train_loop.py``.

1. Steps per second of ``Engine.train_epoch`` next to a bare forward + backward + optimizer
   step on the same in-memory batches (tiny VideoMAE, CPU), so the loop's overhead is visible.
2. Peak resident memory of a whole ``train.py`` run of 1 epoch next to one of 3 epochs on the
   same synthetic data: a loop that keeps tensors across steps grows with epochs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from socal.config import Precision, TrainerConfig, VideoMAEArch, VideoMAEModelConfig
from socal.models import build_model
from socal.training.engine import Engine

REPO = Path(__file__).resolve().parent.parent


def _batches(n: int, batch: int, frames: int, size: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "pixel_values": torch.randn(batch, frames, 3, size, size, generator=generator),
            "label": torch.randint(0, 2, (batch,), generator=generator).float(),
            "index": torch.arange(batch),
        }
        for _ in range(n)
    ]


def _model_and_optimizer(frames: int, size: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    arch = VideoMAEArch(64, 2, 2, 128, size, 16, 2)
    model = build_model(OmegaConf.structured(VideoMAEModelConfig(arch=arch)), frames)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def bare_steps_per_second(batches: list[dict], frames: int, size: int) -> float:
    model, optimizer = _model_and_optimizer(frames, size)
    model.train()
    start = time.perf_counter()
    for batch in batches:
        logits = model(batch["pixel_values"])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(batches) / (time.perf_counter() - start)


def engine_steps_per_second(batches: list[dict], frames: int, size: int, workdir: Path) -> float:
    model, optimizer = _model_and_optimizer(frames, size)
    trainer = OmegaConf.structured(TrainerConfig(epochs=1, progress=True))
    engine = Engine(
        model, optimizer, None, trainer, torch.device("cpu"), Precision.fp32, "classification",
        (0.0, 1.0), workdir, {},
    )  # fmt: skip
    start = time.perf_counter()
    engine.train_epoch(batches)
    return len(batches) / (time.perf_counter() - start)


def peak_rss_mb(epochs: int, data_root: Path, workdir: Path) -> float:
    """Peak RSS of a child ``train.py`` run (measured by a fresh process, in MiB)."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cmd = [
        sys.executable, "-c", probe, sys.executable, str(REPO / "train.py"), "experiment=demo",
        f"data.root={data_root}", "data.synthetic.trials=48", f"trainer.epochs={epochs}",
        "trainer.progress=false", "trainer.num_workers=0", "trainer.early_stopping.patience=99",
        f"hydra.run.dir={workdir / f'rss-{epochs}'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024 if sys.platform != "darwin" else int(out.split()[-1]) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    frames, size = 8, 64
    batches = _batches(args.steps, args.batch_size, frames, size)
    bare, loop = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for _ in range(args.rounds):  # interleaved, so drifts in machine load hit both alike
            bare.append(bare_steps_per_second(batches, frames, size))
            loop.append(engine_steps_per_second(batches, frames, size, workdir / "ck"))
        one, three = (peak_rss_mb(n, workdir / "data", workdir) for n in (1, 3))
    bare_rate, loop_rate = statistics.median(bare), statistics.median(loop)
    overhead = 100 * (bare_rate - loop_rate) / bare_rate
    print(f"tiny VideoMAE, CPU, batch {args.batch_size}x{frames}x3x{size}x{size}, "
          f"{args.steps} steps, median of {args.rounds} rounds")  # fmt: skip
    print(f"{'bare forward+backward+step':<32}{bare_rate:>10.2f} steps/s")
    print(f"{'socal Engine.train_epoch':<32}{loop_rate:>10.2f} steps/s")
    print(f"{'loop overhead':<32}{overhead:>10.2f} %   (target < 5 %)")
    print(f"{'peak RSS, train.py 1 epoch':<32}{one:>10.1f} MiB")
    growth = f"(growth {three - one:+.1f} MiB)"
    print(f"{'peak RSS, train.py 3 epochs':<32}{three:>10.1f} MiB   {growth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
