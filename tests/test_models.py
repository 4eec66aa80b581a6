"""The model seam: every registered family behind one protocol (clips in, one output per clip)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.config import compose_train
from socal.errors import UserError
from socal.models import build_model, model_spec

ARCH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
ARCH |= {"intermediate_size": 64, "image_size": 32}


def tiny_videomae() -> OmegaConf:
    overrides = [f"model.arch.{key}={value}" for key, value in ARCH.items()]
    return compose_train(["model=videomae_tiny", *overrides]).model


def test_videomae_through_the_seam_is_the_transformers_model_it_was() -> None:
    """Same seed, same weights, same outputs as the VideoMAE socal built before the seam."""
    torch.manual_seed(0)
    model = build_model(tiny_videomae(), num_frames=4).eval()
    torch.manual_seed(0)
    config = VideoMAEConfig(**ARCH, patch_size=16, tubelet_size=2, num_frames=4, num_labels=1)
    config.use_mean_pooling = True
    reference = VideoMAEForVideoClassification(config).eval()
    clips = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=clips).logits.squeeze(-1)
        assert torch.equal(model(clips), expected)
    assert model(clips).shape == (3,)


def test_layer_groups_hold_every_parameter_once_by_depth() -> None:
    model = build_model(tiny_videomae(), num_frames=4)
    groups = model.layer_groups()
    assert [g.depth for g in groups] == sorted(g.depth for g in groups)
    assert [g.name for g in groups] == ["embeddings", "layer.0", "layer.1", "head"]
    ids = [id(p) for g in groups for p in g.params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


def test_the_spec_comes_from_the_config_without_building() -> None:
    spec = model_spec(tiny_videomae())
    assert (spec.image_size, spec.frames.multiple_of, spec.layout.value) == (32, 2, "BTCHW")


def test_a_frame_count_the_family_cannot_take_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match="multiples of 2, not 5"):
        build_model(tiny_videomae(), num_frames=5)


def test_a_misspelt_family_setting_fails_at_compose_time() -> None:
    with pytest.raises(Exception, match="hiden_size"):
        compose_train(["model=videomae_tiny", "model.arch.hiden_size=3"])
    with pytest.raises(Exception, match="hidden_size"):
        compose_train(["model=videomae_tiny", "model.arch.hidden_size=wide"])
