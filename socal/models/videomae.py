"""The ``videomae`` family: from the hub, from a local folder, or randomly initialised.

Every option gets the head of the VideoMAE fine-tuning recipe: the mean of all patch tokens,
``fc_norm``, then one linear output. A self-supervised checkpoint such as
``MCG-NJU/videomae-base`` is saved with ``use_mean_pooling=False``; loaded as it is, the
classifier would read the first tubelet's token only (VideoMAE has no CLS token), which is not
what its encoder was trained to summarise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.config import Normalization
from socal.errors import UserError
from socal.models.spec import Family, FamilySpec, FrameRule, LayerGroup, Layout, VideoModel

log = logging.getLogger(__name__)
HEAD = ("fc_norm.", "classifier.")  # what is new in a model loaded from an encoder checkpoint


class VideoMAE(Family):
    name = "videomae"

    def spec(self, cfg: DictConfig) -> FamilySpec:
        tubelet = cfg.arch.tubelet_size or (
            _hub_config(cfg.source).tubelet_size if cfg.source else VideoMAEConfig().tubelet_size
        )
        return FamilySpec(
            layout=Layout.BTCHW,
            image_size=_image_size(cfg),
            frames=FrameRule(multiple_of=int(tubelet)),
            normalization=Normalization.imagenet,  # what the MCG-NJU checkpoints were trained on
            gradient_checkpointing=True,
        )

    def build(
        self, cfg: DictConfig, num_frames: int, dropout: Optional[float]
    ) -> VideoMAEForVideoClassification:
        return build_videomae(cfg, num_frames, dropout)

    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        return net(pixel_values=clips).logits.squeeze(-1)

    def layer_groups(self, net: torch.nn.Module) -> list[LayerGroup]:
        encoder = net.videomae
        layers = list(encoder.encoder.layer)
        groups = [LayerGroup("embeddings", list(encoder.embeddings.parameters()), 0)]
        groups += [
            LayerGroup(f"layer.{i}", list(layer.parameters()), i + 1)
            for i, layer in enumerate(layers)
        ]
        head = [p for m in (net.fc_norm, net.classifier) if m is not None for p in m.parameters()]
        if encoder.layernorm is not None:
            head += list(encoder.layernorm.parameters())
        return groups + [LayerGroup("head", head, len(layers) + 1)]

    def architecture(self, net: torch.nn.Module) -> dict:
        return net.config.to_dict()

    def rebuild(self, cfg: DictConfig, architecture: dict, num_frames: int) -> torch.nn.Module:
        return VideoMAEForVideoClassification(VideoMAEConfig.from_dict(architecture))


def load_format1(directory: Path) -> VideoModel:
    """A package written before the model seam: a VideoMAE ``save_pretrained`` folder."""
    net = VideoMAEForVideoClassification.from_pretrained(directory)
    spec = FamilySpec(
        layout=Layout.BTCHW,
        image_size=int(net.config.image_size),
        frames=FrameRule(multiple_of=int(net.config.tubelet_size)),
        normalization=Normalization.imagenet,
        gradient_checkpointing=True,
    )
    return VideoModel(VideoMAE(), net, spec)


def _hub_config(source: str) -> VideoMAEConfig:
    try:
        return VideoMAEConfig.from_pretrained(source)
    except OSError:
        log.warning("cannot read %s's config: assuming VideoMAE-base's", source)
        return VideoMAEConfig()


def _image_size(cfg: DictConfig) -> int:
    """The frame size the option takes, without building it (224 for the hub VideoMAEs)."""
    if cfg.arch.image_size:
        return int(cfg.arch.image_size)
    return int((_hub_config(cfg.source) if cfg.source else VideoMAEConfig()).image_size)


def build_videomae(
    cfg: DictConfig, num_frames: int, dropout: Optional[float] = None
) -> VideoMAEForVideoClassification:
    """A VideoMAE with one output (a logit for success, or a value for regression).

    VideoMAE's position embeddings are fixed sinusoids, so a pretrained model accepts any
    ``num_frames``; a pretrained classification head (Kinetics' 400 classes) is replaced.
    """
    overrides: dict = {"num_labels": 1, "num_frames": num_frames, "use_mean_pooling": True}
    if dropout is not None:
        overrides |= {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    if cfg.source is None:
        arch = {key: value for key, value in cfg.arch.items() if value is not None}
        model = VideoMAEForVideoClassification(VideoMAEConfig(**arch, **overrides))
        log.info("model: randomly initialised VideoMAE %s", arch)
    else:
        model = _from_pretrained(cfg.source, overrides)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def _from_pretrained(source: str, overrides: dict) -> VideoMAEForVideoClassification:
    is_path = source.startswith((".", "/", "~")) or Path(source).expanduser().exists()
    if is_path and not Path(source).expanduser().is_dir():
        raise UserError(f"model.source={source} is not a directory saved with save_pretrained")
    try:
        model, info = VideoMAEForVideoClassification.from_pretrained(
            str(Path(source).expanduser()) if is_path else source,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **overrides,
        )
    except OSError as err:
        raise UserError(
            f"cannot load model '{source}': {str(err).splitlines()[0]} -- check the name, your "
            "network or HF cache, or set model.source to a directory saved with save_pretrained"
        ) from err
    new = sorted({*info["missing_keys"], *(key for key, *_ in info["mismatched_keys"])})
    not_head = [key for key in new if not key.startswith(HEAD)]
    if not_head:
        shown = ", ".join(not_head[:3]) + (", ..." if len(not_head) > 3 else "")
        raise UserError(
            f"model.source={source} lacks {len(not_head)} encoder weights ({shown}): "
            "not a VideoMAE checkpoint of this shape"
        )
    log.info("model: %s; new (randomly initialised): %s", source, ", ".join(new) or "nothing")
    return model
