"""The ``torchvision_video`` family: torchvision's Kinetics-400 video models.

``model.arch.name`` is ``r2plus1d_18``, ``r3d_18``, ``mvit_v2_s`` or ``swin3d_t``;
``model.source`` a weights name (``DEFAULT``, ``KINETICS400_V1``), a ``state_dict`` file saved
from the same torchvision model, or null (random). They take ``(B, C, T, H, W)`` and were
trained with their own mean and std (``data.normalization=kinetics``).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
from omegaconf import DictConfig
from torchvision.models import get_model
from torchvision.models.video import resnet

from socal.config import Normalization
from socal.errors import UserError
from socal.models.spec import Family, FamilySpec, FrameRule, LayerGroup, Layout
from socal.models.weights import (
    is_local,
    load_weights_file,
    one_output,
    ordered_groups,
    set_stochastic_depth,
    torchvision_weights,
)

log = logging.getLogger(__name__)
# name -> (the attribute holding the classifier, Kinetics image size, frame rule)
MODELS = {
    "r2plus1d_18": ("fc", 112, FrameRule()),
    "r3d_18": ("fc", 112, FrameRule()),
    # MViT's relative position tables are sized for 16 frames; Swin3D's patches are 2 frames deep.
    "mvit_v2_s": ("head", 224, FrameRule(fixed=16)),
    "swin3d_t": ("head", 224, FrameRule(multiple_of=2)),
}
RESNET_BLOCKS = {
    "r2plus1d_18": (resnet.Conv2Plus1D, resnet.R2Plus1dStem),
    "r3d_18": (resnet.Conv3DSimple, resnet.BasicStem),
}


class TorchvisionVideo(Family):
    name = "torchvision_video"

    def spec(self, cfg: DictConfig) -> FamilySpec:
        _, size, frames = _model(cfg.arch.name)
        return FamilySpec(
            layout=Layout.BCTHW,
            image_size=int(cfg.arch.image_size or size),
            frames=frames,
            normalization=Normalization.kinetics,
            gradient_checkpointing=False,
        )

    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        if cfg.gradient_checkpointing:
            raise UserError("model.family=torchvision_video has no gradient checkpointing")
        name = cfg.arch.name
        head, *_ = _model(name)
        if cfg.source and not is_local(cfg.source):
            net = get_model(name, weights=torchvision_weights(name, cfg.source))
            log.info("model: %s with torchvision's %s weights", name, cfg.source)
        else:
            net = _random(name, cfg.arch.layers)
            if cfg.source:
                load_weights_file(net, cfg.source, head=(f"{head}.",))
        old = getattr(net, head)
        linear = old if isinstance(old, torch.nn.Linear) else old[-1]  # mvit: (dropout, linear)
        setattr(net, head, one_output(linear, dropout))
        set_stochastic_depth(net, cfg.drop_path, name)
        return net

    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        return net(clips.transpose(1, 2)).squeeze(-1)

    def layer_groups(self, net: torch.nn.Module) -> list[LayerGroup]:
        head = "fc" if isinstance(net, resnet.VideoResNet) else "head"
        return ordered_groups(net, head=(head,), expand=("features", "blocks"))


def _model(name: str) -> tuple[str, int, FrameRule]:
    if name not in MODELS:
        raise UserError(f"model.arch.name={name} is not one of {', '.join(MODELS)}")
    return MODELS[name]


def _random(name: str, layers: Optional[list[int]]) -> torch.nn.Module:
    """The library's model with random weights; ``layers`` shrinks a ResNet (tiny options)."""
    if layers is None:
        return get_model(name)
    if name not in RESNET_BLOCKS:
        raise UserError(f"model.arch.layers applies to {', '.join(RESNET_BLOCKS)} only")
    conv, stem = RESNET_BLOCKS[name]
    return resnet.VideoResNet(resnet.BasicBlock, [conv] * 4, list(layers), stem)
