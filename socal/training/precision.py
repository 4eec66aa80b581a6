"""Which precision a run trains at: ``auto`` picks the fastest one the device runs natively.

``torch.cuda.is_bf16_supported()`` counts emulation, so a T4 or V100 reports bf16 and runs it
slowly (cuDNN lacks bf16 3-D convolutions below compute capability 8.0): the choice reads the
capability instead.
"""

from __future__ import annotations

import logging

import torch

from socal.config import Precision

log = logging.getLogger(__name__)

NATIVE_BF16_CAPABILITY = (8, 0)


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of a CUDA ``device`` (tests fake this one function)."""
    return torch.cuda.get_device_capability(device)


def resolve_precision(precision: Precision | str, device: torch.device) -> Precision:
    """The precision to train at on ``device``: auto is bf16 on Ampere and newer, 16-mixed on
    older GPUs, 32 on the CPU; settings the device cannot run are replaced, with a warning."""
    precision = Precision(precision)
    if device.type != "cuda":
        if precision is Precision.fp16_mixed:
            log.warning("trainer.precision=16-mixed needs a GPU: using 32 on %s", device)
            return Precision.fp32
        if precision is Precision.auto:
            log.info("trainer.precision=auto: 32 on %s", device)
            return Precision.fp32
        return precision
    native_bf16 = cuda_capability(device) >= NATIVE_BF16_CAPABILITY
    if precision is Precision.auto:
        chosen = Precision.bf16 if native_bf16 else Precision.fp16_mixed
        log.info("trainer.precision=auto: %s (native bf16: %s)", chosen.value, native_bf16)
        return chosen
    if precision is Precision.bf16 and not native_bf16:
        log.warning("trainer.precision=bf16 has no native kernels on this GPU: using 16-mixed")
        return Precision.fp16_mixed
    return precision
