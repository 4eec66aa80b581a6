"""The model seam: every registered family behind one protocol (clips in, one output per clip)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torchvision.models.video import resnet
from transformers import (
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VJEPA2Config,
    VJEPA2Model,
)

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


def option(name: str, *overrides: str) -> OmegaConf:
    return compose_train([f"model={name}", *overrides]).model


def test_a_video_resnet_state_dict_saved_by_torchvision_loads(tmp_path: Path) -> None:
    torch.manual_seed(3)
    saved = resnet.VideoResNet(
        resnet.BasicBlock, [resnet.Conv2Plus1D] * 4, [1, 1, 1, 1], resnet.R2Plus1dStem
    )
    torch.save(saved.state_dict(), tmp_path / "r2plus1d.pth")
    model = build_model(option("r2plus1d_tiny", f"model.source={tmp_path / 'r2plus1d.pth'}"), 4)
    loaded = model.net.state_dict()
    body = {k: v for k, v in saved.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], v) for k, v in body.items())
    assert loaded["fc.weight"].shape == (1, 512)  # Kinetics' 400 classes replaced by one output


def test_a_checkpoint_of_another_architecture_is_a_one_line_error(tmp_path: Path) -> None:
    r3d = resnet.VideoResNet(
        resnet.BasicBlock, [resnet.Conv3DSimple] * 4, [1, 1, 1, 1], resnet.BasicStem
    )
    torch.save(r3d.state_dict(), tmp_path / "r3d.pth")
    with pytest.raises(UserError, match=r"lacks \d+ and mis-shapes \d+ of the model's") as err:
        build_model(option("r2plus1d_tiny", f"model.source={tmp_path / 'r3d.pth'}"), 4)
    assert "\n" not in str(err.value) and "stem." in str(err.value)
    with pytest.raises(UserError, match="KINETICS400_V1, DEFAULT"):
        build_model(option("r2plus1d_18", "model.source=IMAGENET1K_V1"), 4)


def test_frame_encoders_load_torchvision_and_timm_state_dicts(tmp_path: Path) -> None:
    torch.manual_seed(4)
    resnet18 = torchvision.models.resnet18()
    torch.save(resnet18.state_dict(), tmp_path / "resnet18.pth")
    tv = option("frame_encoder_tiny", "model.arch.library=torchvision", "model.arch.name=resnet18")
    model = build_model(OmegaConf.merge(tv, {"source": str(tmp_path / "resnet18.pth")}), 4)
    assert torch.equal(model.net.encoder.conv1.weight, resnet18.conv1.weight)
    net = timm.create_model("test_resnet")
    save_file(net.state_dict(), tmp_path / "test_resnet.safetensors")
    model = build_model(
        option("frame_encoder_tiny", f"model.source={tmp_path / 'test_resnet.safetensors'}"), 4
    )
    encoder = model.net.encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in net.state_dict().items() if k in encoder)
    assert set(encoder) == {k for k in net.state_dict() if not k.startswith("fc.")}
    with pytest.raises(UserError, match="mis-shapes"):
        build_model(OmegaConf.merge(tv, {"source": str(tmp_path / "test_resnet.safetensors")}), 4)


TIMESFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
TIMESFORMER |= {"intermediate_size": 64, "image_size": 32, "patch_size": 16, "num_frames": 4}
VJEPA2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "crop_size": 32}
VJEPA2 |= {"patch_size": 16, "frames_per_clip": 4, "pred_hidden_size": 32}
VJEPA2 |= {"pred_num_hidden_layers": 1, "pred_num_attention_heads": 2, "num_pooler_layers": 1}


@pytest.mark.parametrize(
    ("name", "saved"),
    [
        # A Kinetics-style classifier: its 400-class head is replaced.
        ("timesformer_tiny", lambda: TimesformerForVideoClassification(
            TimesformerConfig(**TIMESFORMER, num_labels=400))),
        # The self-supervised encoder + predictor: pooler and classifier are new.
        ("vjepa2_tiny", lambda: VJEPA2Model(VJEPA2Config(**VJEPA2))),
    ],
)  # fmt: skip
def test_transformers_checkpoints_saved_with_save_pretrained_load(
    tmp_path: Path, name: str, saved: object
) -> None:
    torch.manual_seed(5)
    reference = saved()  # type: ignore[operator]
    reference.save_pretrained(tmp_path / "saved")
    model = build_model(option(name, f"model.source={tmp_path / 'saved'}"), 4)
    loaded = model.net.state_dict()
    prefix = model.net.base_model_prefix + "."
    encoder = {k: v for k, v in reference.state_dict().items() if not k.startswith("classifier.")}
    encoder = {k if k.startswith(prefix) else prefix + k: v for k, v in encoder.items()}
    assert encoder and all(torch.equal(loaded[k], v) for k, v in encoder.items())
    assert model(torch.randn(2, 4, 3, 32, 32)).shape == (2,)

    # Another family's checkpoint of the same width: its weights do not fit this encoder.
    other = VideoMAEForVideoClassification(VideoMAEConfig(**ARCH, num_frames=4))
    other.save_pretrained(tmp_path / "videomae")
    with pytest.raises(UserError, match=r"lacks \d+ encoder weights .*checkpoint of this shape"):
        build_model(option(name, f"model.source={tmp_path / 'videomae'}"), 4)
