"""The model: mean-pooling head on every checkpoint kind, weights really loaded, overrides."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import (
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    ViTConfig,
    ViTModel,
)

from socal.config import VideoMAEArch, VideoMAEModelConfig
from socal.errors import UserError
from socal.models.videomae import VideoMAE

ARCH = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
}
TINY = {**ARCH, "num_frames": 4}


def build_model(
    cfg: VideoMAEModelConfig, num_frames: int, dropout: float | None = None
) -> VideoMAEForVideoClassification:
    return VideoMAE().build(cfg, num_frames, dropout)


def model_config(**kwargs: object) -> VideoMAEModelConfig:
    return OmegaConf.structured(VideoMAEModelConfig(**kwargs))


def clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def mean_pooled_logits(model: VideoMAEForVideoClassification, x: torch.Tensor) -> torch.Tensor:
    """The fine-tuning recipe's head, written out: mean of all tokens, fc_norm, linear."""
    tokens = model.videomae(x).last_hidden_state
    return model.classifier(model.fc_norm(tokens.mean(1)))


@pytest.fixture(scope="module")
def pretraining_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A self-supervised VideoMAE saved as MCG-NJU/videomae-base is: use_mean_pooling=False."""
    config = VideoMAEConfig(
        **TINY, use_mean_pooling=False, decoder_num_hidden_layers=1, decoder_hidden_size=32,
        decoder_num_attention_heads=2, decoder_intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(1)
    model = VideoMAEForPreTraining(config)
    path = tmp_path_factory.mktemp("pretrained") / "videomae-pretraining"
    model.save_pretrained(path)
    return path, {k: v.clone() for k, v in model.videomae.state_dict().items()}


def test_a_pretraining_checkpoint_loads_its_encoder_and_classifies_from_the_mean_token(
    pretraining_checkpoint: tuple[Path, dict], caplog: pytest.LogCaptureFixture
) -> None:
    path, saved = pretraining_checkpoint
    with caplog.at_level(logging.INFO, logger="socal.models.hf_video"):
        model = build_model(model_config(source=str(path)), num_frames=4).eval()
    assert model.config.use_mean_pooling and model.fc_norm is not None
    loaded = model.videomae.state_dict()
    encoder = {k: v for k, v in saved.items() if not k.startswith("layernorm.")}
    assert encoder and set(encoder) <= set(loaded)
    for key, value in encoder.items():
        assert torch.equal(loaded[key], value), key
    assert (
        "new (randomly initialised): classifier.bias, classifier.weight, fc_norm.bias, "
        "fc_norm.weight" in caplog.text
    )
    with torch.no_grad():
        x = clip()
        assert torch.allclose(model(pixel_values=x).logits, mean_pooled_logits(model, x))


def test_a_finetuned_checkpoint_keeps_its_fc_norm_and_gets_a_new_one_output_classifier(
    tmp_path: Path,
) -> None:
    torch.manual_seed(2)
    kinetics = VideoMAEForVideoClassification(VideoMAEConfig(**TINY, num_labels=400))
    with torch.no_grad():
        kinetics.fc_norm.weight.uniform_(0.5, 1.5)
    kinetics.save_pretrained(tmp_path / "kinetics")
    model = build_model(model_config(source=str(tmp_path / "kinetics")), num_frames=4)
    assert model.classifier.out_features == 1
    assert torch.equal(model.fc_norm.weight, kinetics.fc_norm.weight)
    for key, value in kinetics.videomae.state_dict().items():
        assert torch.equal(model.videomae.state_dict()[key], value), key


def test_random_init_uses_the_same_head() -> None:
    model = build_model(model_config(arch=VideoMAEArch(**ARCH)), 4)
    with torch.no_grad():
        x = clip()
        assert torch.allclose(model(pixel_values=x).logits, mean_pooled_logits(model, x))


def test_a_checkpoint_without_the_encoder_weights_is_refused(tmp_path: Path) -> None:
    ViTModel(ViTConfig(**ARCH)).save_pretrained(tmp_path / "other")
    with pytest.raises(UserError, match="lacks .* encoder weights"):
        build_model(model_config(source=str(tmp_path / "other")), num_frames=4)


def test_the_dropout_override_reaches_every_dropout_layer() -> None:
    arch = VideoMAEArch(**ARCH)
    model = build_model(model_config(arch=arch), 4, dropout=0.3)
    assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == 0.3
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and set(dropouts) == {0.3}
    model.train()
    x = clip()
    assert not torch.equal(model(pixel_values=x).logits, model(pixel_values=x).logits)
    assert build_model(model_config(arch=arch), 4).config.hidden_dropout_prob == 0.0


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    arch = VideoMAEArch(**ARCH)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model(model_config(arch=arch, gradient_checkpointing=checkpointing), 4)
        model.train()
        layers = model.videomae.encoder.layer
        assert all(layer.gradient_checkpointing is checkpointing for layer in layers)
        model(pixel_values=clip()).logits.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
