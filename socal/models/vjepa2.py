"""The ``vjepa2`` family (transformers ``VJEPA2ForVideoClassification``).

``model.source`` is a classification checkpoint (``facebook/vjepa2-vitl-fpc16-256-ssv2``: its
attentive pooler is kept, its classifier replaced) or a self-supervised encoder
(``facebook/vjepa2-vitl-fpc64-256``: pooler and classifier new). 256 px; 3-D rotary positions,
so any even frame count. The self-supervised predictor is not used for classification: it is
frozen, so it is neither trained nor in the optimizer.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from omegaconf import DictConfig
from transformers import VJEPA2Config, VJEPA2ForVideoClassification

from socal.config import Normalization
from socal.models.hf_video import HFVideoFamily, encoder_groups
from socal.models.spec import FamilySpec, FrameRule, LayerGroup, Layout


class VJEPA2(HFVideoFamily):
    name = "vjepa2"
    config_class = VJEPA2Config
    model_class = VJEPA2ForVideoClassification
    head = ("pooler.", "classifier.")
    dropout_keys = ("attention_probs_dropout_prob",)

    def spec(self, cfg: DictConfig) -> FamilySpec:
        config = self.hub_config(cfg)
        return FamilySpec(
            layout=Layout.BTCHW,
            image_size=int(config.crop_size),
            frames=FrameRule(multiple_of=int(config.tubelet_size)),
            normalization=Normalization.imagenet,  # VJEPA2VideoProcessor's mean and std
            gradient_checkpointing=True,
        )

    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        net: Any = super().build(cfg, num_frames, dropout)
        net.vjepa2.predictor.requires_grad_(False)
        return net

    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        return net(pixel_values_videos=clips).logits.squeeze(-1)

    def layer_groups(self, net: Any) -> list[LayerGroup]:
        encoder = net.vjepa2.encoder
        head = [encoder.layernorm, net.pooler, net.classifier]
        return encoder_groups(encoder.embeddings, list(encoder.layer), head)
