"""Build the VideoMAE classifier: from the hub, from a local folder, or randomly initialised.

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

from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.config import ModelConfig
from socal.errors import UserError

log = logging.getLogger(__name__)
HEAD = ("fc_norm.", "classifier.")  # what is new in a model loaded from an encoder checkpoint


def build_model(
    cfg: ModelConfig, num_frames: int, dropout: Optional[float] = None
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
