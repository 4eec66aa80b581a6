"""The ``timesformer`` family (transformers ``TimesformerForVideoClassification``).

``facebook/timesformer-base-finetuned-k400`` takes 8 frames at 224 px; its learned time
embeddings are interpolated by transformers for other frame counts, so any count runs, but
the weights know 8. Divided space-time attention, written without SDPA in transformers: expect
more memory than a VideoMAE of the same width.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from omegaconf import DictConfig
from transformers import TimesformerConfig, TimesformerForVideoClassification
from transformers.models.timesformer.modeling_timesformer import TimesformerDropPath

from socal.config import Normalization
from socal.models.hf_video import HFVideoFamily, encoder_groups
from socal.models.spec import FamilySpec, FrameRule, LayerGroup, Layout


class TimeSformer(HFVideoFamily):
    name = "timesformer"
    config_class = TimesformerConfig
    model_class = TimesformerForVideoClassification
    head = ("classifier.",)

    def spec(self, cfg: DictConfig) -> FamilySpec:
        return FamilySpec(
            layout=Layout.BTCHW,
            image_size=int(self.hub_config(cfg).image_size),
            frames=FrameRule(),
            normalization=Normalization.timesformer,
            gradient_checkpointing=True,
        )

    def overrides(self, cfg: DictConfig, num_frames: int) -> dict:
        # A random model's time embeddings are sized for the run; a pretrained one keeps its own.
        return {"num_frames": num_frames} if cfg.source is None else {}

    def drop_path_overrides(self, rate: float) -> dict:
        # transformers types TimesformerConfig.drop_path_rate as an int (0.1 fails validation):
        # build sets the rate on the layers instead, by the config's own rule (linear from 0).
        return {}

    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        net: Any = super().build(cfg, num_frames, dropout)
        if (rate := cfg.drop_path) is not None:
            layers = net.timesformer.encoder.layer
            for i, layer in enumerate(layers):
                p = rate * i / max(len(layers) - 1, 1)
                layer.drop_path = TimesformerDropPath(p) if p > 0 else torch.nn.Identity()
        return net

    def layer_groups(self, net: Any) -> list[LayerGroup]:
        encoder = net.timesformer
        head = [encoder.layernorm, net.classifier]
        return encoder_groups(encoder.embeddings, list(encoder.encoder.layer), head)
