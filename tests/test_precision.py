"""trainer.precision=auto and explicit bf16 for faked GPU capabilities (T4, V100, A10G, A100)."""

import pytest
import torch

from socal.config import Precision
from socal.training import precision as precision_module
from socal.training.precision import resolve_precision

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("capability", "auto", "bf16"),
    [
        ((7, 5), Precision.fp16_mixed, Precision.fp16_mixed),  # T4
        ((7, 0), Precision.fp16_mixed, Precision.fp16_mixed),  # V100
        ((8, 6), Precision.bf16, Precision.bf16),  # A10G
        ((8, 0), Precision.bf16, Precision.bf16),  # A100
    ],
)
def test_gpu_precision_follows_native_bf16(monkeypatch, capability, auto, bf16):
    monkeypatch.setattr(precision_module, "cuda_capability", lambda device: capability)
    assert resolve_precision("auto", CUDA) is auto
    assert resolve_precision("bf16", CUDA) is bf16
    assert resolve_precision("32", CUDA) is Precision.fp32


def test_cpu_trains_in_fp32_unless_bf16_asked():
    assert resolve_precision("auto", CPU) is Precision.fp32
    assert resolve_precision("16-mixed", CPU) is Precision.fp32
    assert resolve_precision("bf16", CPU) is Precision.bf16
