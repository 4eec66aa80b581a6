"""The ``frame_encoder`` family: a 2-D image model on every frame, then a temporal head.

The encoder is any torchvision classification model (``model.source``: a weights name such as
``IMAGENET1K_V2``, or a ``state_dict`` file) or any timm model (``model.source``: ``pretrained``
for timm's default weights, an ``hf-hub:`` id such as a surgical encoder's, or a weights file).
The head turns the per-frame features into one output: their mean, the last state of an LSTM
(SOCALNet, Pangal et al. 2022) or a small transformer over the frames. Any frame count: the
whole 60-second window at 1 fps fits.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import timm
import torch
from omegaconf import DictConfig
from torchvision.models import get_model

from socal.config import EncoderLibrary, Normalization, TemporalHead
from socal.errors import UserError
from socal.models.spec import Family, FamilySpec, FrameRule, LayerGroup, Layout
from socal.models.weights import (
    is_local,
    load_weights_file,
    ordered_groups,
    set_stochastic_depth,
    torchvision_weights,
)

log = logging.getLogger(__name__)
# Where torchvision's classification models keep their classifier (the last Linear of it).
CLASSIFIERS = ("fc", "classifier", "heads", "head")


class FrameEncoderNet(torch.nn.Module):
    """Per-frame features (with ``tools`` presence values appended when it takes them, as
    SOCALNet does), a temporal head over the frames, one output."""

    def __init__(
        self, encoder: torch.nn.Module, features: int, arch: DictConfig, frames: int, dropout: float
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.settings = (features, arch, frames, dropout)
        self.tools = 0
        self._heads(features)

    def _heads(self, width: int) -> None:
        _, arch, frames, dropout = self.settings
        self.temporal = _temporal_head(width, arch, frames, dropout)
        size = width if arch.head == TemporalHead.mean else arch.head_size
        self.output = torch.nn.Linear(size, 1)

    def take_tools(self, count: int) -> None:
        """A new temporal head over the frame features and ``count`` tool values per frame."""
        self.tools = count
        self._heads(self.settings[0] + count)

    def forward(self, clips: torch.Tensor, tools: Optional[torch.Tensor] = None) -> torch.Tensor:
        batch, frames = clips.shape[:2]
        features = self.encoder(clips.flatten(0, 1)).reshape(batch, frames, -1)
        if tools is not None:
            features = torch.cat([features, tools.to(features.dtype)], dim=-1)
        return self.output(self.temporal(features)).squeeze(-1)


class MeanHead(torch.nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.dropout(features.mean(1))


class LSTMHead(torch.nn.Module):
    def __init__(self, features: int, size: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(features, size, layers, batch_first=True)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(features)
        return self.dropout(hidden[-1])


class TransformerHead(torch.nn.Module):
    """A learned position per frame, self-attention over the frames, then their mean."""

    def __init__(self, features: int, size: int, layers: int, frames: int, dropout: float):
        super().__init__()
        self.project = torch.nn.Linear(features, size)
        self.position = torch.nn.Parameter(torch.zeros(1, frames, size))
        heads = max(h for h in (8, 4, 2, 1) if size % h == 0)
        layer = torch.nn.TransformerEncoderLayer(size, heads, 2 * size, dropout, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.project(features) + self.position).mean(1)


class FrameEncoder(Family):
    name = "frame_encoder"

    def spec(self, cfg: DictConfig) -> FamilySpec:
        return FamilySpec(
            layout=Layout.BTCHW,
            image_size=int(cfg.arch.image_size),
            frames=FrameRule(),
            normalization=Normalization.imagenet,
            gradient_checkpointing=False,
        )

    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        if cfg.gradient_checkpointing:
            raise UserError("model.family=frame_encoder has no gradient checkpointing")
        arch = cfg.arch
        encoder, features = (
            _timm_encoder(arch.name, cfg.source, cfg.drop_path)
            if arch.library == EncoderLibrary.timm
            else _torchvision_encoder(arch.name, cfg.source)
        )
        if arch.library == EncoderLibrary.torchvision:
            set_stochastic_depth(encoder, cfg.drop_path, arch.name)
        return FrameEncoderNet(encoder, features, arch, num_frames, dropout or 0.0)

    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        return net(clips)

    def add_tool_inputs(self, net: torch.nn.Module, count: int) -> None:
        assert isinstance(net, FrameEncoderNet)
        net.take_tools(count)

    def forward_with_tools(
        self, net: torch.nn.Module, clips: torch.Tensor, tools: torch.Tensor
    ) -> torch.Tensor:
        return net(clips, tools)

    def gradcam_layer(self, net: torch.nn.Module) -> Optional[torch.nn.Module]:
        return getattr(net.encoder, "layer4", None)  # ResNets (torchvision's and timm's)

    def layer_groups(self, net: torch.nn.Module) -> list[LayerGroup]:
        assert isinstance(net, FrameEncoderNet)
        encoder = net.encoder
        if hasattr(encoder, "group_matcher"):  # timm's
            groups = _timm_groups(encoder)
        else:
            groups = ordered_groups(encoder, head=(), expand=("features", "encoder"))[:-1]
        head = [*net.temporal.parameters(), *net.output.parameters()]
        return groups + [LayerGroup("head", head, len(groups))]


def _temporal_head(features: int, arch: DictConfig, frames: int, dropout: float) -> torch.nn.Module:
    kind = TemporalHead(arch.head)
    if kind == TemporalHead.mean:
        return MeanHead(dropout)
    if kind == TemporalHead.lstm:
        return LSTMHead(features, arch.head_size, arch.head_layers, dropout)
    return TransformerHead(features, arch.head_size, arch.head_layers, frames, dropout)


def _torchvision_encoder(name: str, source: Optional[str]) -> tuple[torch.nn.Module, int]:
    """A torchvision classifier with its last Linear removed: its features per image."""
    if source and not is_local(source):
        net = get_model(name, weights=torchvision_weights(name, source))
    else:
        try:
            net = get_model(name)
        except ValueError as err:
            raise UserError(f"torchvision has no model {name}") from err
    attribute = next((a for a in CLASSIFIERS if hasattr(net, a)), None)
    if attribute is None:
        raise UserError(f"model.arch.name={name}: no classifier found to replace")
    if source and is_local(source):
        load_weights_file(net, source, head=(f"{attribute}.",))
    classifier = getattr(net, attribute)
    if isinstance(classifier, torch.nn.Linear):
        setattr(net, attribute, torch.nn.Identity())
        return net, classifier.in_features
    last = len(classifier) - 1  # a Sequential ending in the Linear (convnext, efficientnet, vit)
    features = classifier[last].in_features
    classifier[last] = torch.nn.Identity()
    return net, features


def _timm_encoder(
    name: str, source: Optional[str], drop_path: Optional[float]
) -> tuple[torch.nn.Module, int]:
    """A timm model without its classifier (``num_classes=0``: pooled features); ``drop_path``
    is timm's own ``drop_path_rate``."""
    weights_file = source if source and is_local(source) else None
    remote = source is not None and weights_file is None
    hub_id = source if remote and source != "pretrained" else None
    depth: dict[str, Any] = {} if drop_path is None else {"drop_path_rate": drop_path}
    try:
        net: Any = timm.create_model(hub_id or name, pretrained=remote, **depth)
    except TypeError as err:  # the model's constructor has no drop_path_rate
        raise UserError(
            f"model.drop_path={drop_path}: timm's {name} has no stochastic depth"
        ) from err
    except (RuntimeError, OSError) as err:
        first = str(err).splitlines()[0]
        raise UserError(f"cannot build timm model {source or name}: {first}") from err
    if weights_file:
        classifier = net.default_cfg.get("classifier", "head")
        load_weights_file(net, weights_file, head=(f"{classifier}.",))
    net.reset_classifier(0)
    return net, int(net.num_features)


def _timm_groups(encoder: Any) -> list[LayerGroup]:
    """timm's own grouping of a model's parameters (stem, then each block)."""
    by_name = dict(encoder.named_parameters())
    layers = timm.models.group_parameters(encoder, encoder.group_matcher(coarse=False))
    return [
        LayerGroup(f"group.{depth}", [by_name[n] for n in names], depth)
        for depth, (_, names) in enumerate(sorted(layers.items()))
    ]
