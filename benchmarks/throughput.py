"""Training throughput, socal's engine beside HF ``transformers.Trainer``: ``python
benchmarks/throughput.py [--model videomae_tiny] [--precision 32] [-o key=value ...]``.

For one model option and precision, on the same model (same initial weights), in-memory data,
batch and optimizer, one after the other in one run: clips/s, the step time split into data
wait / forward+backward / optimizer, peak memory, FLOPs per step counted by
``torch.utils.flop_counter.FlopCounterMode`` and MFU against the device's peak (the table
below; on the CPU against a matmul peak measured in the same run), then the ratio.

Split points: socal's own pieces of ``Engine.train_epoch`` (clipping is in the optimizer
part); HF's callbacks (``on_step_begin``, ``on_pre_optimizer_step``, ``on_step_end``:
clipping is in its forward+backward part). Clips/s come from socal's real loop and from HF's.

Then the data path: the share of step time socal's loop waits for data at the instance's
worker count (``--instance``), decoding JPEGs and from the prepared frame cache, on a
synthetic folder of real-size frames (1920x1080 and 1280x720).

``--gpu-matrix``: VideoMAE-B, V-JEPA 2-L, r2plus1d_18 and a ResNet-50 frame encoder (random
weights, real sizes) at 32 / bf16 / 16-mixed, sdpa and eager, compile off and on, on a GPU.
Needs ``accelerate`` (the dev extra) for HF Trainer.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from socal.config import Precision, compose_train
from socal.data.check import checked_trials
from socal.data.dataset import ClipDataset
from socal.data.prepare import run as prepare_cache
from socal.data.sampling import EpochSampler
from socal.data.synthetic import SyntheticSpec, ensure_synthetic
from socal.models import build_model
from socal.training.engine import Engine
from socal.training.optim import build_optimizer
from socal.training.precision import resolve_precision
from socal.training.runtime import resolve_device

REPO = Path(__file__).resolve().parent.parent
# Dense peak TFLOPS (no sparsity) per precision; "32" is TF32 where the GPU has it (socal turns
# it on). Sources (NVIDIA datasheets, not opened from the machine that wrote this table):
#   T4    https://www.nvidia.com/en-us/data-center/tesla-t4/       fp32 8.1, fp16 65
#   V100  https://www.nvidia.com/en-us/data-center/v100/           SXM2 fp32 15.7, fp16 125
#   A10G  no datasheet; measured by others (shared/DESIGN.md): fp32 23, TF32 35, bf16/fp16 70
#   L4    https://www.nvidia.com/en-us/data-center/l4/             TF32 60, bf16/fp16 121
#   A100  https://www.nvidia.com/en-us/data-center/a100/           TF32 156, bf16/fp16 312
#   H100 / H200 SXM  https://www.nvidia.com/en-us/data-center/h100/  TF32 495, bf16/fp16 989
GPU_PEAKS = {
    "T4": {"32": 8.1, "16-mixed": 65.0},
    "V100": {"32": 15.7, "16-mixed": 125.0},
    "A10G": {"32": 35.0, "bf16": 70.0, "16-mixed": 70.0},
    "L4": {"32": 60.0, "bf16": 121.0, "16-mixed": 121.0},
    "A100": {"32": 156.0, "bf16": 312.0, "16-mixed": 312.0},
    "H100": {"32": 495.0, "bf16": 989.0, "16-mixed": 989.0},
    "H200": {"32": 495.0, "bf16": 989.0, "16-mixed": 989.0},
}
# The GPU matrix: real-size options with random weights (nothing is downloaded).
MATRIX_OPTIONS = {
    "videomae_base": ["model=videomae_base", "model.source=null", "data.num_frames=16"],
    "vjepa2_vitl": ["model=vjepa2_vitl", "model.source=null", "data.num_frames=16"],
    "r2plus1d_18": ["model=r2plus1d_18", "model.source=null", "data.num_frames=16"],
    "resnet50_mean": ["model=resnet50_mean", "model.source=null", "data.num_frames=16"],
}
TRANSFORMERS_FAMILIES = ("videomae", "vjepa2", "timesformer")


class Clips(Dataset):
    """Random normalised clips and labels, in memory: the model's work only."""

    def __init__(self, n: int, frames: int, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.pixels = torch.randn(n, frames, 3, size, size, generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        # "label"/"index" for socal's engine, "labels" for HF Trainer.
        return {"pixel_values": self.pixels[i], "label": self.labels[i], "labels": self.labels[i],
                "index": i}  # fmt: skip


class WithLoss(torch.nn.Module):
    """The same model for HF Trainer, which wants the loss from ``forward``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor, **_: object) -> dict:
        logits = self.model(pixel_values)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        return {"loss": loss, "logits": logits}


@dataclass
class Row:
    engine: str
    clips_per_s: float
    data_ms: float
    compute_ms: float  # forward + backward
    optimizer_ms: float
    peak_mib: float


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    """Peak GPU memory allocated; on the CPU the process's peak RSS so far (both engines')."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def socal_engine(cfg: DictConfig, device: torch.device, workdir: Path) -> Engine:
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.num_frames)
    precision = resolve_precision(cfg.trainer.precision, device)
    return Engine(
        model, build_optimizer(cfg.optimizer, model, device), None, cfg.trainer, device,
        precision, "classification", (0.0, 1.0), workdir, {},
    )  # fmt: skip


def timed_split(engine: Engine, batches: Iterator[dict], steps: int) -> tuple[float, ...]:
    """Mean ms of data wait, forward+backward and optimizer over ``steps`` steps, from the
    engine's own pieces (one batch per optimizer step)."""
    device, parts = engine.device, []
    engine.model.train()
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        labels = batch["label"].to(device, dtype=torch.float32)
        losses = engine._loss(engine._forward(batch), labels)
        engine.scaler.scale(losses.sum() / len(labels)).backward()
        engine.group_samples = engine._full_group
        sync(device)
        computed = time.perf_counter()
        engine._optimizer_step()
        sync(device)
        parts.append((fetched - start, computed - fetched, time.perf_counter() - computed))
    return tuple(1000 * statistics.mean(p[i] for p in parts) for i in range(3))


def measure_socal(cfg: DictConfig, data: Clips, device: torch.device, steps: int) -> Row:
    batch = cfg.trainer.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        engine = socal_engine(cfg, device, Path(tmp))
        loader = DataLoader(data, batch_size=batch, sampler=EpochSampler(len(data), True, 0))
        engine.train_epoch(islice_loader(loader, 3))  # warm-up (and compilation)
        reset_peak(device)
        timed = islice_loader(loader, steps)
        sync(device)
        start = time.perf_counter()
        engine.train_epoch(timed)
        sync(device)
        rate = steps * batch / (time.perf_counter() - start)
        split = timed_split(engine, iter(islice_loader(loader, steps)), steps)
        return Row("socal Engine", rate, *split, peak_mib(device))


class islice_loader:  # noqa: N801 -- reads like itertools.islice
    """The first ``n`` batches of ``loader``, with a length (the engine's epoch needs one)."""

    def __init__(self, loader: DataLoader, n: int) -> None:
        self.loader, self.n = loader, min(n, len(loader))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[dict]:
        for i, batch in enumerate(self.loader):
            if i == self.n:
                return
            yield batch


def measure_hf(cfg: DictConfig, data: Clips, device: torch.device, steps: int) -> Row:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    warmup = 3
    marks: list[tuple[str, float]] = []

    class Clock(TrainerCallback):
        def _mark(self, name: str, state) -> None:
            if state.global_step >= warmup:
                sync(device)
                marks.append((name, time.perf_counter()))

        def on_step_begin(self, args, state, control, **kwargs):
            self._mark("begin", state)

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self._mark("optimizer", state)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                reset_peak(device)
            self._mark("end", state)

    precision = resolve_precision(cfg.trainer.precision, device)
    engine = socal_engine(cfg, device, Path(tempfile.mkdtemp()))  # same weights, optimizer
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.trainer.batch_size,
            max_steps=warmup + steps + 1, max_grad_norm=cfg.trainer.grad_clip or 0.0,
            bf16=precision is Precision.bf16, fp16=precision is Precision.fp16_mixed,
            use_cpu=device.type == "cpu", torch_compile=cfg.trainer.compile, report_to=[],
            logging_strategy="no", save_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, seed=0,
        )  # fmt: skip
        trainer = Trainer(
            model=WithLoss(engine.module), args=args, train_dataset=data,
            optimizers=(engine.optimizer, None), callbacks=[Clock()],
        )  # fmt: skip
        trainer.train()
    ends = [t for name, t in marks if name == "end"]
    rate = (len(ends) - 1) * cfg.trainer.batch_size / (ends[-1] - ends[0])
    data_ms, compute_ms, optimizer_ms = [], [], []
    windows = zip(marks, marks[1:], marks[2:], marks[3:], strict=False)
    for (n0, t0), (n1, t1), (n2, t2), (n3, t3) in windows:
        if (n0, n1, n2, n3) == ("end", "begin", "optimizer", "end"):
            data_ms.append(t1 - t0)
            compute_ms.append(t2 - t1)
            optimizer_ms.append(t3 - t2)
    split = (1000 * statistics.mean(v) for v in (data_ms, compute_ms, optimizer_ms))
    return Row("HF Trainer", rate, *split, peak_mib(device))


def flops_per_step(cfg: DictConfig, data: Clips, device: torch.device) -> float:
    """Forward + backward FLOPs of one batch (the optimizer's are negligible beside them)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.num_frames).to(device)
    pixels = data.pixels[: cfg.trainer.batch_size].to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(pixels).sum().backward()
    return float(counter.get_total_flops())


def peak_tflops(device: torch.device, precision: Precision) -> tuple[float, str]:
    """The device's peak for ``precision`` and where it comes from (CPU: measured here)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for gpu, peaks in GPU_PEAKS.items():
            if gpu in name.replace(" ", "") and precision.value in peaks:
                return peaks[precision.value], f"{gpu} datasheet ({precision.value})"
        return float("nan"), f"{name}: not in GPU_PEAKS"
    dtype = torch.bfloat16 if precision is Precision.bf16 else torch.float32
    n, reps = 1024, 20
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    measured = 2 * n**3 * reps / (time.perf_counter() - start) / 1e12
    return measured, f"CPU {dtype} {n}x{n} matmul, measured now"


def model_table(cfg: DictConfig, device: torch.device, steps: int) -> list[str]:
    precision = resolve_precision(cfg.trainer.precision, device)
    image = int(build_model(cfg.model, cfg.data.num_frames).spec.image_size)
    data = Clips((steps + 4) * cfg.trainer.batch_size, cfg.data.num_frames, image)
    flops = flops_per_step(cfg, data, device)
    peak, source = peak_tflops(device, precision)
    rows = [measure_socal(cfg, data, device, steps), measure_hf(cfg, data, device, steps)]
    lines = [
        f"{cfg.model.family}, {precision.value}, batch {cfg.trainer.batch_size}x"
        f"{cfg.data.num_frames}x3x{image}x{image}, {steps} timed steps, compile "
        f"{cfg.trainer.compile}, {device}; {flops / 1e9:.3f} GFLOP per step; peak "
        f"{peak:.3f} TFLOPS ({source})",
        f"{'engine':<14}{'clips/s':>9}{'data ms':>9}{'fwd+bwd':>9}{'optim ms':>9}"
        f"{'peak MiB':>10}{'MFU %':>8}",
    ]
    for row in rows:
        mfu = 100 * flops * row.clips_per_s / cfg.trainer.batch_size / (peak * 1e12)
        lines.append(
            f"{row.engine:<14}{row.clips_per_s:>9.2f}{row.data_ms:>9.2f}{row.compute_ms:>9.2f}"
            f"{row.optimizer_ms:>9.2f}{row.peak_mib:>10.0f}{mfu:>8.2f}"
        )
    lines.append(
        f"ratio socal / HF Trainer clips/s: {rows[0].clips_per_s / rows[1].clips_per_s:.3f}"
    )
    return lines


def data_wait_table(overrides: list[str], instance: str, steps: int, workdir: Path) -> list[str]:
    """The share of socal's step time spent waiting for data, uncached and cached."""
    workers = OmegaConf.load(REPO / "socal" / "conf" / "instance" / f"{instance}.yaml")
    count = int(workers.trainer.num_workers)
    root = ensure_synthetic(workdir / "full", SyntheticSpec(trials=8, size="full", seed=0), False)
    lines = [
        f"data wait: {instance}'s {count} workers, synthetic frames 1920x1080 / 1280x720",
        f"{'frames from':<16}{'step ms':>9}{'data ms':>9}{'data wait %':>13}",
    ]
    for cache in ("off", "auto"):
        cfg = compose_train(
            [*overrides, f"data.root={root}", f"trainer.num_workers={count}", f"data.cache={cache}"]
        )
        if cache == "auto":
            prepare_cache(cfg, progress=False)
        trials = checked_trials(root, "success")
        image = build_model(cfg.model, cfg.data.num_frames).spec.image_size
        dataset = ClipDataset.of_run(trials, cfg, image, True)
        sampler = EpochSampler(len(dataset), True, 0)
        settings = ClipDataset.loader_settings(cfg.trainer)
        loader = DataLoader(dataset, batch_size=cfg.trainer.batch_size, sampler=sampler, **settings)
        device = resolve_device(cfg.trainer.device)
        engine = socal_engine(cfg, device, workdir / "ck")
        batches = (batch for _ in range(1000) for batch in loader)
        timed_split(engine, batches, 2)  # workers started, first batches made
        data_ms, compute_ms, optimizer_ms = timed_split(engine, batches, steps)
        step = data_ms + compute_ms + optimizer_ms
        name = "JPEG decode" if cache == "off" else "frame cache"
        lines.append(f"{name:<16}{step:>9.2f}{data_ms:>9.2f}{100 * data_ms / step:>13.1f}")
    return lines


def gpu_matrix(steps: int) -> list[str]:
    """Every option x precision at the default attention, eager for transformers families,
    and compile on at bf16: the table the README keeps (about 5 minutes on one GPU)."""
    lines: list[str] = []
    for option, overrides in MATRIX_OPTIONS.items():
        base = [*overrides, "trainer.device=cuda", "trainer.batch_size=8"]
        runs = [[f"trainer.precision={p}"] for p in ("32", "bf16", "16-mixed")]
        if compose_train(base).model.family in TRANSFORMERS_FAMILIES:
            runs.append(["trainer.precision=bf16", "model.attention=eager"])
        runs.append(["trainer.precision=bf16", "trainer.compile=true"])
        for extra in runs:
            lines += [f"== {option} {' '.join(extra)}", *model_table(compose_train([*base, *extra]),
                      torch.device("cuda"), steps)]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="videomae_tiny")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--instance", default="g5_xlarge")
    parser.add_argument("-o", "--override", action="append", default=[], help="key=value")
    parser.add_argument("--gpu-matrix", action="store_true")
    args = parser.parse_args(argv)
    if args.gpu_matrix:
        print("\n".join(gpu_matrix(args.steps)))
        return 0
    overrides = [
        f"model={args.model}", f"trainer.precision={args.precision}",
        f"trainer.batch_size={args.batch_size}", "trainer.progress=false", *args.override,
    ]  # fmt: skip
    cfg = compose_train(overrides)
    device = resolve_device(cfg.trainer.device)
    print("\n".join(model_table(cfg, device, args.steps)))
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(data_wait_table(overrides, args.instance, args.steps, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
