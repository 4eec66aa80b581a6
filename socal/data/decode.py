"""Decode JPEG frames straight to about the size a clip needs, as one uint8 clip tensor.

libjpeg can scale by M/8 inside the inverse DCT, so a 1920x1080 frame needed at 224 px is
decoded at 480x270 for a fraction of the full cost. simplejpeg (libjpeg-turbo) chooses any M/8
scale and measured fastest here (1080p: 10.4 ms against 11.2 with PIL ``draft``, which only has
1/2, 1/4, 1/8, and 29 ms for a full PIL decode; 720p: 4.8, 6.0 and 10.3 ms); PIL ``draft`` is
the fallback when simplejpeg is not installed. The exact resize to the short side then runs once
on the whole clip, in uint8 and channels-last (torch's fast antialiased uint8 kernel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from socal.data.jpeg import Decoded, DecodeError, decode_frame

log = logging.getLogger(__name__)
_warned: set[tuple[Path, str]] = set()


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(H, W)`` with the short side equal to ``short_side`` and the aspect ratio kept."""
    scale = short_side / min(height, width)
    return max(short_side, round(height * scale)), max(short_side, round(width * scale))


def resize_clip(frames: Sequence[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Frames ``(h, w, 3)`` -> ``(T, 3, *size)`` uint8, resized together in one call.

    The result is channels-last in memory: that layout is what the fast uint8 resize uses, and
    later crops and resizes keep it. Frames of another size than the first are resized to it.
    """
    height, width = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        frames = [_resize_frame(f, height, width) for f in frames]
    clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    if (height, width) == tuple(size):
        return clip
    return F.resize(clip, list(size), antialias=True)


def _resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    image = Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image)


def decode_with_fallback(frames: Sequence[Path], position: int, short_side: int) -> Decoded:
    """``decode_frame`` of the frame at ``position``, or of its nearest decodable neighbour
    (earlier first, ``replaced`` then true), logged once per file and process.

    The data check replaced the frames it found bad and kept only trials with a decodable
    frame; this catches the rest (damage inside a scan), so one bad frame never stops a run.
    Should every frame of the trial have become unreadable since the check, a black frame
    stands in for it: a run is never stopped mid-epoch by its data.
    """
    for distance in range(len(frames)):
        for j in sorted({position - distance, position + distance}):
            if not 0 <= j < len(frames):
                continue
            try:
                decoded = decode_frame(frames[j], short_side)
            except DecodeError as err:
                _warn_once(frames[j], "unreadable frame %s (%s): using its neighbour", err)
                continue
            if decoded.warning:  # the data check's one line counts these
                log.debug("frame %s decoded with a warning (%s)", frames[j], decoded.warning)
            return replace(decoded, replaced=j != position)
    _warn_once(frames[position], "no frame near %s decodes any more: a black frame")
    black = np.zeros((short_side, short_side, 3), np.uint8)
    return Decoded(black, (short_side, short_side), replaced=True, stand_in=True)


def _warn_once(path: Path, message: str, *args: object) -> None:
    """``message`` about ``path``, once per file and process (not once per epoch)."""
    if (path, message) not in _warned:
        _warned.add((path, message))
        log.warning(message, path, *args)


def decode_clip(frames: Sequence[Path], positions: Sequence[int], short_side: int) -> torch.Tensor:
    """Decode ``frames[positions]`` into one ``(T, 3, h, w)`` uint8 clip, short side exact.

    A frame repeated in ``positions`` (a trial shorter than its window) is decoded once.
    """
    decoded: dict[int, Decoded] = {}
    for p in positions:
        if int(p) not in decoded:
            decoded[int(p)] = decode_with_fallback(frames, int(p), short_side)
    size = short_side_size(*decoded[int(positions[0])].full_size, short_side)
    return resize_clip([decoded[int(p)].pixels for p in positions], size)
