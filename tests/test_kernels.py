"""The fast kernels of the GPU path, decided on a faked device: TF32 matmuls and fused
optimizers only on CUDA, and the attention implementation as a model setting."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import is_flash_attn_2_available

from socal.errors import UserError
from socal.models import build_model
from socal.training.optim import build_optimizer
from socal.training.runtime import use_tf32

from support import compose_train

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def matmul_precision():
    """The process-wide matmul setting as it was, back after the test."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def test_tf32_matmuls_are_asked_for_on_cuda_only(matmul_precision) -> None:
    assert not use_tf32(CPU)
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert use_tf32(CUDA)
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.get_float32_matmul_precision() == "high"  # what torch.compile's cache reads


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_optimizer_is_fused_on_cuda_only(optimizer: str) -> None:
    cfg = compose_train(["model=videomae_tiny", f"optimizer={optimizer}"])
    model = build_model(cfg.model, cfg.data.num_frames)
    assert build_optimizer(cfg.optimizer, model, CUDA).defaults["fused"] is True
    assert not build_optimizer(cfg.optimizer, model, CPU).defaults["fused"]
    assert not build_optimizer(cfg.optimizer, model).defaults["fused"]


@pytest.mark.parametrize(
    ("option", "setting", "used"),
    [
        ("videomae_tiny", "null", "sdpa"),
        ("videomae_tiny", "eager", "eager"),
        ("vjepa2_tiny", "null", "sdpa"),
        ("vjepa2_tiny", "eager", "eager"),
        ("timesformer_tiny", "null", "eager"),  # transformers' TimeSformer has no sdpa
    ],
)
def test_the_attention_setting_reaches_transformers(option: str, setting: str, used: str) -> None:
    cfg = compose_train([f"model={option}", f"model.attention={setting}"])
    assert build_model(cfg.model, cfg.data.num_frames).net.config._attn_implementation == used


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=timesformer_tiny", "model.attention=sdpa"], "transformers' timesformer has eager"),
        (["model=r2plus1d_tiny", "model.attention=eager"], "model.family=torchvision_video has no"),
        pytest.param(
            ["model=videomae_tiny", "model.attention=flash_attention_2"],
            "needs the flash-attn",
            marks=pytest.mark.skipif(is_flash_attn_2_available(), reason="flash-attn is here"),
        ),
    ],
)
def test_an_attention_the_family_cannot_run_is_a_one_line_error(
    overrides: list[str], message: str
) -> None:
    cfg = compose_train(overrides)
    with pytest.raises(UserError, match=message):
        build_model(cfg.model, cfg.data.num_frames)


def test_a_misspelt_attention_fails_at_compose_time() -> None:
    with pytest.raises(Exception, match="spda"):
        compose_train(["model=videomae_tiny", "model.attention=spda"])
