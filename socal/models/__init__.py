"""Model families behind one seam (see ``socal.models.spec``); one module per family.

``build_model(cfg.model, num_frames, dropout)`` gives a ``VideoModel``; ``model_spec(cfg.model)``
gives the option's spec (image size, normalisation, ...) without building it. A new family is
one module with a ``Family`` subclass, added to ``FAMILIES``, and its config schema in
``socal.config.MODEL_SCHEMAS``.
"""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from socal.errors import UserError
from socal.models.frame_encoder import FrameEncoder
from socal.models.spec import Family, FamilySpec, VideoModel, spec_from_dict, spec_to_dict
from socal.models.timesformer import TimeSformer
from socal.models.torchvision_video import TorchvisionVideo
from socal.models.videomae import VideoMAE
from socal.models.vjepa2 import VJEPA2

__all__ = ["FAMILIES", "build_model", "family_of", "model_spec", "spec_from_dict", "spec_to_dict"]
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (VideoMAE(), VJEPA2(), TimeSformer(), TorchvisionVideo(), FrameEncoder())
}


def family_of(cfg: DictConfig) -> Family:
    return FAMILIES[cfg.family]


def model_spec(cfg: DictConfig) -> FamilySpec:
    return family_of(cfg).spec(cfg)


def build_model(
    cfg: DictConfig,
    num_frames: int,
    dropout: Optional[float] = None,
    tool_classes: tuple[str, ...] = (),
) -> VideoModel:
    """The option ``cfg`` (a ``model`` config node) as a ``VideoModel`` for ``num_frames``,
    taking the presence of ``tool_classes`` with each clip when there are any."""
    family = family_of(cfg)
    spec = family.spec(cfg)
    spec.frames.check(num_frames, family.name)
    family.attention(cfg)  # a setting the family cannot take fails before anything is built
    net = family.build(cfg, num_frames, dropout)
    if tool_classes:
        family.add_tool_inputs(net, len(tool_classes))
    model = VideoModel(family, net, spec, tool_classes)
    freeze(model, str(cfg.freeze))
    return model


def freeze(model: VideoModel, setting: str) -> None:
    """``model.freeze``: ``none``, ``encoder`` (all but the head) or ``N`` (the input group and
    the next N). Frozen parameters get no gradient, so the optimizer never holds them."""
    groups = model.layer_groups()
    if setting == "none":
        return
    if setting == "encoder":
        count = len(groups) - 1
    elif setting.isdigit() and int(setting) + 1 < len(groups):
        count = int(setting) + 1
    else:
        raise UserError(
            f"model.freeze={setting}: none, encoder, or a number of layer groups below "
            f"{len(groups) - 1} ({', '.join(g.name for g in groups)})"
        )
    for group in groups[:count]:
        for param in group.params:
            param.requires_grad_(False)
