"""Attributions of one clip's output, computed with Captum.

``output`` is the model's output in the task's units (a probability, or mL of blood loss), so
an attribution is a change in that: ``output(clip) - output(clip with the part replaced)``.
Temporal: the frames of each second of the clip replaced together (a short trial's padding
repeats its last second), by the normalisation's mean colour or by the clip frame just before
that second.
Spatial: one frame's patches replaced one at a time, and a gradient map (Grad-CAM on the
family's last convolutional stage, integrated gradients where it has none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
import torch
from captum.attr import FeatureAblation, IntegratedGradients, LayerAttribution, LayerGradCam

from socal.config import OcclusionBaseline

Output = Callable[[torch.Tensor], torch.Tensor]  # (B, T, C, H, W) -> (B,)


def neighbour_frames(clip: torch.Tensor, group: np.ndarray) -> torch.Tensor:
    """Each second's frames (``group``: the second of each clip frame, numbered in order)
    replaced by the clip frame just before that second, the first second's by the frame just
    after it (a clip of one second: itself)."""
    source = np.arange(len(group))
    for g in np.unique(group):
        frames = np.flatnonzero(group == g)
        before, after = frames[0] - 1, frames[-1] + 1
        source[frames] = before if before >= 0 else min(after, len(group) - 1)
    return clip[:, torch.as_tensor(source, device=clip.device)]


def temporal(
    output: Output,
    clip: torch.Tensor,
    positions: np.ndarray,
    baseline: OcclusionBaseline,
    batch: int,
) -> dict[int, float]:
    """``{second: output change}`` for each second the clip ``(1, T, C, H, W)`` holds."""
    seconds, group = np.unique(positions, return_inverse=True)
    mask = torch.as_tensor(group, device=clip.device).view(1, -1, 1, 1, 1).expand_as(clip)
    replacement = neighbour_frames(clip, group) if baseline is OcclusionBaseline.neighbour else 0.0
    attribution = FeatureAblation(output).attribute(
        clip, baselines=replacement, feature_mask=mask, perturbations_per_eval=batch
    )
    first = [int(np.flatnonzero(group == g)[0]) for g in range(len(seconds))]
    return {
        int(second): float(attribution[0, frame, 0, 0, 0])
        for second, frame in zip(seconds, first, strict=True)
    }


def spatial_occlusion(
    output: Output, clip: torch.Tensor, frames: list[int], patches: int, batch: int
) -> np.ndarray:
    """``(H, W)``: the output change when each of ``patches`` x ``patches`` regions of the
    ``frames`` (one second's) is replaced by the mean colour."""
    _, length, _, height, width = clip.shape
    rows = torch.arange(height, device=clip.device) * patches // height
    cols = torch.arange(width, device=clip.device) * patches // width
    grid = rows[:, None] * patches + cols[None, :]
    # The rest of the clip is one more group, ablated once and not reported.
    mask = torch.full(clip.shape, patches * patches, dtype=torch.long, device=clip.device)
    mask[0, frames] = grid.expand(len(frames), clip.shape[2], height, width)
    attribution = FeatureAblation(output).attribute(
        clip, baselines=0.0, feature_mask=mask, perturbations_per_eval=batch
    )
    return attribution[0, frames[0], 0].detach().cpu().numpy()


def gradient_map(
    output: Output,
    clip: torch.Tensor,
    frame: int,
    layer: Optional[torch.nn.Module],
    steps: int,
    batch: int,
) -> tuple[str, np.ndarray]:
    """``(method, (H, W) map)`` for one clip frame: Grad-CAM on ``layer``, else integrated
    gradients from the mean colour (the absolute value, summed over the colour channels)."""
    height, width = clip.shape[-2:]
    if layer is not None:
        cam = LayerGradCam(output, layer).attribute(clip, relu_attributions=True)
        # (1, 1, T', h, w) from a 3D CNN; (T, 1, h, w) from a per-frame encoder.
        maps = cam[0, 0] if cam.dim() == 5 else cam[:, 0]
        at = maps[frame * maps.shape[0] // clip.shape[1]]
        up = LayerAttribution.interpolate(at[None, None], (height, width), "bilinear")
        return "grad-cam", up[0, 0].detach().cpu().numpy()
    integrated = IntegratedGradients(output).attribute(
        clip, baselines=0.0, n_steps=steps, internal_batch_size=batch
    )
    return "integrated gradients", integrated[0, frame].abs().sum(0).detach().cpu().numpy()
