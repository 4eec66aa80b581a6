"""Shared helpers for the tests: compose configs, make synthetic folders, run train.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torchvision.transforms import v2

from socal.config import AugmentConfig, Normalization, register
from socal.data.synthetic import SyntheticSpec, ensure_synthetic
from socal.data.transforms import MEAN_STD

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
register()


def compose_train(overrides: list[str], config_name: str = "train") -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def synthetic_folder(base: Path, **spec: object) -> Path:
    """A synthetic SOCAL folder under ``base``, reused across tests with the same spec."""
    spec_obj = SyntheticSpec(**spec)
    name = "-".join(f"{k}{v}" for k, v in sorted(spec.items())) or "default"
    return ensure_synthetic(base / f"syn-{name}", spec_obj, progress=False)


# Small and fast: 4 frames of 32 px, a few epochs; used by the end-to-end tests.
TINY = [
    "model=videomae_tiny",
    "model.arch.image_size=32",
    "data.num_frames=4",
    "trainer.device=cpu",
    "trainer.num_workers=0",
    "trainer.batch_size=4",
    "trainer.progress=false",
    "optimizer.lr=1e-3",
]


# A one-epoch CPU job as the launcher tests send it (hyperparameters keep the default lr).
TINY_JOB = [
    "model=videomae_tiny",
    "data.num_frames=8",
    "trainer.epochs=1",
    "trainer.batch_size=8",
    "trainer.num_workers=0",
    "trainer.device=cpu",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_train(
    run_dir: Path, overrides: list[str], check: bool = True, multirun: bool = False
) -> subprocess.CompletedProcess:
    """``python train.py`` in a subprocess, as a user runs it (``-m`` with ``multirun``)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    where = f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *(["-m"] if multirun else []), where, *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def reference_transform(
    size: int, normalization: Normalization, augment: AugmentConfig | None
) -> v2.Compose:
    """The textbook torchvision.transforms.v2 pipeline socal's split augmentation must match.

    Frames at ``size`` on the short side -> normalised float clip of ``size`` square;
    ``augment=None`` is the deterministic evaluation transform (centre crop).
    """
    mean, std = MEAN_STD[Normalization(normalization)]
    if augment is None or not augment.enabled:
        spatial = [v2.CenterCrop(size)]
    else:
        spatial = [
            v2.RandomResizedCrop(size, scale=(augment.crop_scale_min, 1.0), antialias=True),
            v2.RandomHorizontalFlip(augment.hflip),
            v2.ColorJitter(
                brightness=augment.brightness,
                contrast=augment.contrast,
                saturation=augment.saturation,
                hue=augment.hue,
            ),
        ]
    return v2.Compose([*spatial, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
