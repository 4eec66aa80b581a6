"""The ``videomae`` family: from the hub, from a local folder, or randomly initialised.

Every option gets the head of the VideoMAE fine-tuning recipe: the mean of all patch tokens,
``fc_norm``, then one linear output. A self-supervised checkpoint such as
``MCG-NJU/videomae-base`` is saved with ``use_mean_pooling=False``; loaded as it is, the
classifier would read the first tubelet's token only (VideoMAE has no CLS token), which is not
what its encoder was trained to summarise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.config import Normalization
from socal.models.hf_video import HFVideoFamily, encoder_groups
from socal.models.spec import FamilySpec, FrameRule, LayerGroup, Layout, VideoModel


class VideoMAE(HFVideoFamily):
    name = "videomae"
    config_class = VideoMAEConfig
    model_class = VideoMAEForVideoClassification
    head = ("fc_norm.", "classifier.")
    drop_path_key = None

    def spec(self, cfg: DictConfig) -> FamilySpec:
        config = self.hub_config(cfg)
        return FamilySpec(
            layout=Layout.BTCHW,
            image_size=int(config.image_size),
            frames=FrameRule(multiple_of=int(config.tubelet_size)),
            normalization=Normalization.imagenet,  # what the MCG-NJU checkpoints were trained on
            gradient_checkpointing=True,
        )

    def overrides(self, cfg: DictConfig, num_frames: int) -> dict:
        # VideoMAE's position embeddings are fixed sinusoids: a pretrained model takes any
        # num_frames. A pretrained classification head (Kinetics' 400 classes) is replaced.
        return {"num_frames": num_frames, "use_mean_pooling": True}

    def layer_groups(self, net: Any) -> list[LayerGroup]:
        encoder = net.videomae
        head = [net.fc_norm, net.classifier, encoder.layernorm]
        return encoder_groups(encoder.embeddings, list(encoder.encoder.layer), head)


def load_format1(directory: Path) -> VideoModel:
    """A package written before the model seam: a VideoMAE ``save_pretrained`` folder."""
    net = VideoMAEForVideoClassification.from_pretrained(directory)
    family = VideoMAE()
    return VideoModel(family, net, family.spec(OmegaConf.create({"source": str(directory)})))
