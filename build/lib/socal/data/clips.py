"""Which frames of a trial make a clip.

Frames are one per second, so a window of seconds is a window of frame positions. Positions are
spread evenly over the window itself, not over the trial: a trial shorter than the window is
padded with its last frame, and the frames chosen never depend on anything after the window.
That matters on SOCAL, where the video stops at hemostasis and trial length predicts the label.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)
_warned_whole_trial = False


def clip_positions(
    n_frames: int,
    num_frames: int,
    start_s: int,
    length_s: Optional[int],
    offset: float = 0.5,
) -> np.ndarray:
    """Frame indices for one clip.

    ``offset`` in [0, 1) places each sample inside its stride: 0.5 (the centre) for evaluation,
    a random draw per clip for training jitter. ``length_s=None`` spreads the clip over the whole
    trial, which lets its stride encode the trial length (logged once).
    """
    global _warned_whole_trial
    if length_s is None:
        if not _warned_whole_trial:
            log.warning(
                "data.window.length_s=null samples the whole trial: on SOCAL the video stops at "
                "hemostasis, so the clip's stride and last frames leak the outcome"
            )
            _warned_whole_trial = True
        length = max(n_frames - start_s, 1)
    else:
        length = length_s
    positions = start_s + (np.arange(num_frames) + offset) * (length / num_frames)
    return np.clip(np.floor(positions).astype(np.int64), 0, n_frames - 1)
