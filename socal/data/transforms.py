"""Clip augmentation: one random draw per clip, applied to all of its frames.

Clips are ``(T, C, H, W)`` uint8 video tensors. The work is split in two: ``draw_params`` draws
a clip's parameters (random resized crop, flip, colour jitter, with torchvision's distributions)
from the clip's own seeded generator and ``crop_clip`` crops it in uint8 in the loader worker
(the resize shrinks what crosses to the device); ``finish_clips`` then flips, colour-jitters and
normalises a whole uint8 batch on the training device with torchvision.transforms.v2's kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from socal.config import AugmentConfig, Normalization

MEAN_STD: dict[Normalization, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # MCG-NJU VideoMAE checkpoints were trained with ImageNet statistics.
    Normalization.imagenet: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The transformers VideoMAEImageProcessor class default.
    Normalization.videomae: ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # torchvision's video weights (its VideoClassification transforms).
    Normalization.kinetics: ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)),
    # TimeSformer was trained with PySlowFast's defaults.
    Normalization.timesformer: ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
    # Measured on all frames of the public SOCAL release (dark and red): fixed constants, not
    # the statistics of a run's training split, and the test trials' frames are part of them.
    Normalization.socal_release: ((0.321, 0.089, 0.117), (0.352, 0.159, 0.190)),
}


@dataclass(frozen=True)
class ClipParams:
    """One clip's random draw: crop box ``(top, left, height, width)``, flip, colour jitter.

    ``factors`` are brightness, contrast, saturation (1 = unchanged) and hue (0 = unchanged),
    applied in ``order`` (a permutation of 0..3 in that numbering), as torchvision's ColorJitter.
    """

    box: tuple[int, int, int, int]
    flip: bool = False
    factors: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.0)
    order: tuple[int, int, int, int] = (0, 1, 2, 3)


def draw_params(
    rng: np.random.Generator, augment: AugmentConfig | None, height: int, width: int, size: int
) -> ClipParams:
    """Draw a clip's augmentation from ``rng`` (torchvision's RandomResizedCrop / ColorJitter).

    Without augmentation: the centre ``size`` square, nothing random.
    """
    if augment is None or not augment.enabled:
        h, w = min(size, height), min(size, width)  # rounding as torchvision's center_crop
        return ClipParams((int(round((height - h) / 2)), int(round((width - w) / 2)), h, w))
    box = _random_resized_crop(rng, height, width, (augment.crop_scale_min, 1.0))
    flip = bool(rng.random() < augment.hflip)

    def factor(strength: float) -> float:
        return float(rng.uniform(max(0.0, 1 - strength), 1 + strength)) if strength else 1.0

    b, c, s = factor(augment.brightness), factor(augment.contrast), factor(augment.saturation)
    h = float(rng.uniform(-augment.hue, augment.hue)) if augment.hue else 0.0
    order = tuple(int(i) for i in rng.permutation(4))
    return ClipParams(box, flip, (b, c, s, h), order)


def _random_resized_crop(
    rng: np.random.Generator, height: int, width: int, scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (ratio 3/4..4/3, 10 tries, then a centre crop)."""
    area, log_ratio = height * width, (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    w, h = width, height
    if width / height < 3 / 4:
        h = round(width * 4 / 3)
    elif width / height > 4 / 3:
        w = round(height * 4 / 3)
    return (height - h) // 2, (width - w) // 2, h, w


def crop_clip(clip: torch.Tensor, params: ClipParams, size: int) -> torch.Tensor:
    """``(T, C, H, W)`` uint8 -> the ``size`` square of ``params.box`` (one resize per clip)."""
    top, left, h, w = params.box
    if (h, w) == (size, size):
        return clip[..., top : top + h, left : left + w]
    return F.resized_crop(clip, top, left, h, w, [size, size], antialias=True)


def params_tensors(params: ClipParams, normalization: Normalization) -> dict[str, torch.Tensor]:
    """What ``finish_clips`` needs, as tensors the DataLoader can collate into a batch."""
    mean, std = MEAN_STD[Normalization(normalization)]
    return {
        "flip": torch.tensor(params.flip),
        "factors": torch.tensor(params.factors, dtype=torch.float32),
        "order": torch.tensor(params.order, dtype=torch.int64),
        "mean": torch.tensor(mean, dtype=torch.float32),
        "std": torch.tensor(std, dtype=torch.float32),
    }


_COLOUR_OPS = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
_IDENTITY = (1.0, 1.0, 1.0, 0.0)


def finish_clips(pixels: torch.Tensor, augment: dict[str, torch.Tensor]) -> torch.Tensor:
    """uint8 ``(B, T, C, H, W)`` -> normalised float, on the device ``pixels`` is on.

    Flip and colour jitter use each clip's drawn ``params_tensors`` (nothing random here): the
    torchvision kernels v2.ColorJitter uses, on all frames of a clip at once.
    """
    # One memory layout whatever the loader's collate gave, so results never depend on it.
    x = pixels.to(torch.float32, memory_format=torch.contiguous_format).div_(255)
    flips = augment["flip"].tolist()
    factors, orders = augment["factors"].tolist(), augment["order"].tolist()
    for k in range(x.shape[0]):
        clip, changed = (x[k].flip(-1), True) if flips[k] else (x[k], False)
        for op in orders[k]:
            if factors[k][op] != _IDENTITY[op]:
                clip, changed = _COLOUR_OPS[op](clip, factors[k][op]), True
        if changed:
            x[k] = clip
    mean = augment["mean"].to(x.device, torch.float32)[:, None, :, None, None]
    std = augment["std"].to(x.device, torch.float32)[:, None, :, None, None]
    return x.sub_(mean).div_(std)
