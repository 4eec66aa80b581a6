"""Clip transforms: one random draw per clip, applied to all of its frames.

Clips are ``(T, C, H, W)`` uint8 video tensors; torchvision.transforms.v2 draws the flip, crop
and colour parameters once per call, so every frame of a clip gets the same ones.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from socal.config import AugmentConfig, Normalization

MEAN_STD: dict[Normalization, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # MCG-NJU VideoMAE checkpoints were trained with ImageNet statistics.
    Normalization.imagenet: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The transformers VideoMAEImageProcessor class default.
    Normalization.videomae: ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # Measured on the SOCAL frames (dark and red).
    Normalization.socal: ((0.321, 0.089, 0.117), (0.352, 0.159, 0.190)),
}


def clip_transform(
    size: int, normalization: Normalization, augment: AugmentConfig | None
) -> v2.Compose:
    """Frames resized to ``size`` on the short side -> normalised float clip of ``size`` square.

    ``augment=None`` gives the deterministic evaluation transform (centre crop).
    """
    mean, std = MEAN_STD[Normalization(normalization)]
    if augment is None or not augment.enabled:
        spatial = [v2.CenterCrop(size)]
    else:
        spatial = [
            v2.RandomResizedCrop(size, scale=(augment.crop_scale_min, 1.0), antialias=True),
            v2.RandomHorizontalFlip(augment.hflip),
            v2.ColorJitter(
                brightness=augment.brightness,
                contrast=augment.contrast,
                saturation=augment.saturation,
                hue=augment.hue,
            ),
        ]
    return v2.Compose([*spatial, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
