"""Device, autocast and seeding: settings that cannot work here are replaced, and said so."""

from __future__ import annotations

import contextlib
import logging
import platform
import random
from contextlib import AbstractContextManager
from typing import cast

import numpy as np
import torch

from socal.config import Device, Precision

log = logging.getLogger(__name__)


def resolve_device(device: Device | str) -> torch.device:
    device = Device(device)
    if device is Device.cuda and not torch.cuda.is_available():
        log.warning("trainer.device=cuda but no GPU is visible: training on the CPU")
        return torch.device("cpu")
    if device is Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device.value)


def use_tf32(device: torch.device) -> bool:
    """TF32 tensor cores for float32 matmuls on a CUDA ``device`` only (Ampere and newer; older
    GPUs ignore it; cuDNN convolutions already default to TF32); whether it was asked for.

    Process-wide. Through ``set_float32_matmul_precision``, which sets the newer
    ``torch.backends.cuda.matmul.fp32_precision`` too: setting only the newer one makes
    ``torch.get_float32_matmul_precision()``, which torch.compile's cache still reads, raise.
    """
    if device.type != "cuda":
        return False
    torch.set_float32_matmul_precision("high")
    log.info("float32 matmuls: TF32 where the GPU has it")
    return True


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``trainer.compile``: ``torch.compile`` of ``model`` (the DDP wrapper, when there is one,
    so its graph breaks at the gradient buckets). The wrapper shares ``model``'s parameters."""
    log.info("trainer.compile=true: the first steps compile the model")
    return cast(torch.nn.Module, torch.compile(model))


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager:
    if precision is Precision.fp32:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision is Precision.bf16 else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG this process draws from, as tensors and plain values (weights_only-loadable)."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": numpy_state["state"]["pos"],
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# What a run's results depend on besides the code and the config (recorded in metrics.json).
RECORDED_PACKAGES = (
    "transformers", "numpy", "pandas", "scikit-learn", "scipy", "pillow", "simplejpeg",
    "hydra-core", "omegaconf", "huggingface_hub", "safetensors", "tokenizers",
)  # fmt: skip


def installed_versions() -> dict[str, str]:
    """Python, CUDA, torch and torchvision (with their build tag, e.g. 2.8.0+cu128) and the
    versions of RECORDED_PACKAGES installed here ("-" if absent)."""
    from importlib import metadata

    import torchvision

    found = {"python": platform.python_version(), "cuda": torch.version.cuda or "-"}
    # With the build tag (2.8.0+cu128): package metadata leaves it out.
    found.update(torch=torch.__version__, torchvision=torchvision.__version__)
    for name in RECORDED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found
