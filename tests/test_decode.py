"""Scaled JPEG decode, the split clip augmentation and its device half (finish_clips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import socal.data.jpeg
from socal.config import AugmentConfig, Normalization
from socal.data.decode import decode_clip, decode_with_fallback
from socal.data.jpeg import decode_frame
from socal.data.transforms import crop_clip, draw_params, finish_clips, params_tensors

from support import assert_close_to_reference, reference_frame, reference_transform


def write_frames(folder: Path, n: int, size: tuple[int, int] = (1280, 720)) -> list[Path]:
    """Smooth, textured frames (like video, unlike noise) at a real SOCAL resolution."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    coarse = rng.uniform(0, 255, (height // 40, width // 40, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), np.int16)
    paths = []
    for i in range(n):
        pixels = base + rng.integers(-12, 13, base.shape, dtype=np.int16)
        pixels[:, 40 * i : 40 * i + 60] = (220, 30, 30)  # a moving red bar tells frames apart
        path = folder / f"S1T1_frame_{i + 1:08d}.jpeg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_frames(tmp_path_factory.mktemp("decode"), 6)


@pytest.mark.parametrize("use_simplejpeg", [True, False])
def test_scaled_decode_equals_the_full_decode_within_tolerance(
    frames: list[Path], use_simplejpeg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not use_simplejpeg:
        monkeypatch.setattr(socal.data.jpeg, "simplejpeg", None)  # the PIL draft fallback
    clip = decode_clip(frames, [0, 3, 5], 64)
    assert clip.shape == (3, 3, 64, 114) and clip.dtype == torch.uint8
    for k, p in enumerate([0, 3, 5]):
        assert_close_to_reference(clip[k].permute(1, 2, 0).numpy(), reference_frame(frames[p], 64))


def test_repeated_positions_give_identical_frames(frames: list[Path]) -> None:
    clip = decode_clip(frames, [1, 2, 2, 2], 48)
    assert torch.equal(clip[1], clip[3]) and not torch.equal(clip[0], clip[1])


def test_a_damaged_frame_decodes_as_its_nearest_neighbour(frames: list[Path], tmp_path: Path):
    damaged = tmp_path / "damaged.jpeg"
    data = frames[2].read_bytes()
    damaged.write_bytes(data[:300] + b"\x00" * 2000 + data[-2:])  # head and tail intact
    patched = [*frames[:2], damaged, *frames[3:]]
    decoded = decode_with_fallback(patched, 2, 48)
    assert decoded.replaced and np.array_equal(decoded.pixels, decode_frame(frames[1], 48).pixels)


def test_eval_path_equals_the_cpu_transform() -> None:
    """Centre crop in the loader + finish_clips on the device == torchvision's, no augment."""
    clip = torch.randint(0, 256, (4, 3, 40, 71), dtype=torch.uint8)
    params = draw_params(np.random.default_rng(0), None, 40, 71, 32)
    batch = crop_clip(clip, params, 32)[None]
    tensors = {k: v[None] for k, v in params_tensors(params, Normalization.socal_release).items()}
    expected = reference_transform(32, Normalization.socal_release, None)(clip)
    assert torch.allclose(finish_clips(batch, tensors)[0], expected, atol=1e-5)


def test_device_augmentation_is_one_draw_per_clip_and_differs_between_clips() -> None:
    augment = AugmentConfig(hflip=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    frame = torch.randint(0, 256, (3, 40, 71), dtype=torch.uint8)
    clips, tensors = [], []
    for seed in range(6):
        params = draw_params(np.random.default_rng(seed), augment, 40, 71, 32)
        clips.append(crop_clip(frame.expand(5, -1, -1, -1), params, 32))
        tensors.append(params_tensors(params, Normalization.imagenet))
    batch = {k: torch.stack([t[k] for t in tensors]) for k in tensors[0]}
    out = finish_clips(torch.stack(clips), batch)
    assert out.shape == (6, 5, 3, 32, 32) and out.dtype == torch.float32
    for clip in out:
        assert all(torch.equal(clip[0], clip[i]) for i in range(1, 5))
    assert len({round(float(clip.sum()), 3) for clip in out}) == 6


def test_finish_clips_applies_the_drawn_flip_and_colour() -> None:
    clip = torch.randint(0, 256, (1, 2, 3, 8, 8), dtype=torch.uint8)
    base = {
        "flip": torch.tensor([False]),
        "factors": torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
        "order": torch.tensor([[0, 1, 2, 3]]),
        "mean": torch.zeros(1, 3),
        "std": torch.ones(1, 3),
    }
    plain = finish_clips(clip, base)
    assert torch.allclose(plain, clip.float() / 255)
    flipped = finish_clips(clip, base | {"flip": torch.tensor([True])})
    assert torch.equal(flipped, plain.flip(-1))
    darker = finish_clips(clip, base | {"factors": torch.tensor([[0.5, 1.0, 1.0, 0.0]])})
    assert torch.allclose(darker, plain * 0.5, atol=1e-6)


def test_draw_params_is_reproducible_and_within_the_crop_scale() -> None:
    augment = AugmentConfig(crop_scale_min=0.6)
    for seed in range(20):
        one = draw_params(np.random.default_rng(seed), augment, 224, 398, 224)
        assert one == draw_params(np.random.default_rng(seed), augment, 224, 398, 224)
        top, left, h, w = one.box
        assert 0 <= top <= 224 - h and 0 <= left <= 398 - w
        assert 0.6 * 224 * 398 * 0.95 <= h * w <= 224 * 398
        assert one.factors[3] == 0.0  # hue is off by default


def test_finish_clips_ignores_the_memory_layout_it_is_given() -> None:
    """Collate in a worker gives contiguous batches, in the main process channels-last ones."""
    clip = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)
    params = draw_params(np.random.default_rng(1), AugmentConfig(), 16, 16, 16)
    tensors = params_tensors(params, "socal_release")
    tensors = {k: v[None].expand(2, *v.shape) for k, v in tensors.items()}
    strided = clip.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    out = finish_clips(strided, tensors)
    assert out.is_contiguous() and torch.equal(out, finish_clips(clip, tensors))
