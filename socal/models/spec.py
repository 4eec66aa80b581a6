"""What every model family declares, and the one module the engine sees.

A family is one module in ``socal.models`` with a ``Family`` subclass: it builds its library's
model from the ``model`` config node (``source``: pretrained weights, or null for a random
initialisation from the option's architecture settings), declares a ``FamilySpec`` (input
layout, image size, frame rule, default normalisation, gradient checkpointing) and its layer
groups, and adapts the engine's float clips ``(B, T, C, H, W)`` to its own layout.
``VideoModel`` wraps the library model so the engine, DDP and checkpoints see one protocol:
``VideoModel(clips) -> (B,)`` one output per clip.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from enum import Enum
from typing import ClassVar, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from socal.config import Attention, Normalization
from socal.errors import UserError


class Layout(str, Enum):
    """The tensor layout a family's library model takes."""

    BTCHW = "BTCHW"  # transformers video models, per-frame encoders
    BCTHW = "BCTHW"  # torchvision video CNNs


@dataclass(frozen=True)
class FrameRule:
    """The clip lengths a family accepts: ``fixed`` frames, or any multiple of ``multiple_of``."""

    fixed: Optional[int] = None
    multiple_of: int = 1

    def check(self, num_frames: int, family: str) -> None:
        """A one-line UserError for a ``data.num_frames`` the family cannot take."""
        if self.fixed is not None and num_frames != self.fixed:
            raise UserError(f"model.family={family} takes data.num_frames={self.fixed} exactly")
        if num_frames % self.multiple_of:
            raise UserError(
                f"model.family={family} takes data.num_frames in multiples of "
                f"{self.multiple_of}, not {num_frames}"
            )


@dataclass(frozen=True)
class FamilySpec:
    layout: Layout
    image_size: int
    frames: FrameRule
    # Used when data.normalization is left null: the statistics the weights were trained with.
    normalization: Normalization
    gradient_checkpointing: bool


def spec_to_dict(spec: FamilySpec) -> dict:
    """JSON-ready (a model package's socal.json)."""
    return json.loads(json.dumps(asdict(spec), default=lambda value: value.value))


def spec_from_dict(data: dict) -> FamilySpec:
    return FamilySpec(
        layout=Layout(data["layout"]),
        image_size=int(data["image_size"]),
        frames=FrameRule(**data["frames"]),
        normalization=Normalization(data["normalization"]),
        gradient_checkpointing=bool(data["gradient_checkpointing"]),
    )


@dataclass
class LayerGroup:
    """Parameters at one depth: 0 is the input (embeddings), the largest depth the head."""

    name: str
    params: list[torch.nn.Parameter]
    depth: int


class Family(ABC):
    """One model family; registered in ``socal.models.FAMILIES`` under ``name``."""

    name: ClassVar[str]

    @abstractmethod
    def spec(self, cfg: DictConfig) -> FamilySpec:
        """The spec of the option ``cfg`` (without building or downloading weights)."""

    @abstractmethod
    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        """The library model with one output, loaded from ``cfg.source`` (null: random)."""

    @abstractmethod
    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        """Normalised float clips ``(B, T, C, H, W)`` -> ``(B,)`` raw outputs (logits)."""

    @abstractmethod
    def layer_groups(self, net: torch.nn.Module) -> list[LayerGroup]:
        """Every trainable parameter once, by depth (layer-wise learning rates, freezing)."""

    def attention(self, cfg: DictConfig) -> Optional[Attention]:
        """``model.attention`` for this family: families without transformers' attention
        implementations take none (a one-line error when one is set)."""
        if cfg.get("attention") is not None:
            raise UserError(
                f"model.attention={Attention(cfg.attention).value}: model.family={self.name} has "
                "no attention implementation to choose (transformers families only)"
            )
        return None

    def architecture(self, net: torch.nn.Module) -> dict:
        """What a model package needs beyond the option to rebuild ``net`` offline (a hub
        model's config); the option's own settings are enough for most families."""
        return {}

    def rebuild(self, cfg: DictConfig, architecture: dict, num_frames: int) -> torch.nn.Module:
        """An untrained ``net`` of the packaged shape, for its saved weights (no download)."""
        return self.build(OmegaConf.merge(cfg, {"source": None}), num_frames, None)

    def add_tool_inputs(self, net: torch.nn.Module, count: int) -> None:
        """Widen ``net`` to take ``count`` tool-presence values per frame (``data.tools``)."""
        raise UserError(
            f"data.tools=true: model.family={self.name} takes no tool input; a per-frame model "
            "does (model.family=frame_encoder, e.g. model=socalnet)"
        )

    def forward_with_tools(
        self, net: torch.nn.Module, clips: torch.Tensor, tools: torch.Tensor
    ) -> torch.Tensor:
        """As ``forward``, with ``(B, T, classes)`` tool presence beside the clips."""
        raise NotImplementedError(f"model.family={self.name} takes no tool input")

    def gradcam_layer(self, net: torch.nn.Module) -> Optional[torch.nn.Module]:
        """The convolutional stage whose activations Grad-CAM weighs (the last one), or None
        where the family has none (its explanations use integrated gradients instead)."""
        return None


class VideoModel(torch.nn.Module):
    """A family's library model behind the engine's protocol: clips in, one output per clip.

    ``tool_classes``: the tool classes whose per-second presence the model takes with each
    clip (``data.tools``); empty for a model of frames alone.
    """

    def __init__(
        self,
        family: Family,
        net: torch.nn.Module,
        spec: FamilySpec,
        tool_classes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.family = family
        self.spec = spec
        self.net = net
        self.tool_classes = tool_classes

    def forward(self, clips: torch.Tensor, tools: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.tool_classes:
            return self.family.forward(self.net, clips)
        if tools is None:
            raise UserError(
                "this model was trained with tool input (data.tools): give each trial's tool "
                f"annotations ({', '.join(self.tool_classes)})"
            )
        return self.family.forward_with_tools(self.net, clips, tools)

    def layer_groups(self) -> list[LayerGroup]:
        return self.family.layer_groups(self.net)
