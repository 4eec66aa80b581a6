"""Build the VideoMAE classifier: from the hub, from a local folder, or randomly initialised."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.config import ModelConfig
from socal.errors import UserError

log = logging.getLogger(__name__)


def build_model(
    cfg: ModelConfig, num_frames: int, dropout: Optional[float] = None
) -> VideoMAEForVideoClassification:
    """A VideoMAE with one output (a logit for success, or a value for regression).

    VideoMAE's position embeddings are fixed sinusoids, so a pretrained model accepts any
    ``num_frames``; a pretrained classification head (Kinetics' 400 classes) is replaced.
    """
    overrides: dict = {"num_labels": 1, "num_frames": num_frames}
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
        model = VideoMAEForVideoClassification.from_pretrained(
            str(Path(source).expanduser()) if is_path else source,
            ignore_mismatched_sizes=True,
            **overrides,
        )
    except OSError as err:
        raise UserError(
            f"cannot load model '{source}': {str(err).splitlines()[0]} -- check the name, your "
            "network or HF cache, or set model.source to a directory saved with save_pretrained"
        ) from err
    log.info("model: %s", source)
    return model
