"""Clips never look past their window, pad deterministically, and augment all frames alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import default_collate

from socal.config import AugmentConfig, DataConfig, Normalization, WindowConfig
from socal.data.clips import clip_positions
from socal.data.dataset import ClipDataset
from socal.data.index import Trial
from socal.data.transforms import finish_clips


def test_positions_are_spread_over_the_window_not_the_trial() -> None:
    short = clip_positions(n_frames=80, num_frames=16, start_s=0, length_s=60)
    long = clip_positions(n_frames=500, num_frames=16, start_s=0, length_s=60)
    assert np.array_equal(short, long)
    assert short.max() < 60 and len(set(short)) == 16


def test_window_start_and_padding_with_the_last_frame() -> None:
    positions = clip_positions(n_frames=30, num_frames=8, start_s=10, length_s=40)
    assert positions.min() >= 10
    assert positions.max() == 29 and (positions == 29).sum() >= 2
    assert np.array_equal(positions, clip_positions(30, 8, 10, 40))  # no randomness


def test_whole_trial_warns_once_about_leakage(caplog: pytest.LogCaptureFixture) -> None:
    import socal.data.clips

    socal.data.clips._warned_whole_trial = False
    a = clip_positions(n_frames=100, num_frames=4, start_s=0, length_s=None)
    b = clip_positions(n_frames=300, num_frames=4, start_s=0, length_s=None)
    assert not np.array_equal(a, b)  # the stride follows the trial length: the leak
    assert caplog.text.count("leak") == 1


def _data_config(num_frames: int = 8, **window: object) -> DataConfig:
    return OmegaConf.structured(
        DataConfig(root="x", num_frames=num_frames, window=WindowConfig(**window))
    )


def _write_frames(folder: Path, colours: list[int]) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, c in enumerate(colours):
        path = folder / f"S1T1_frame_{i + 1:08d}.jpeg"
        pixels = np.zeros((72, 128, 3), np.uint8)
        pixels[:, : 4 + c % 100] = (200, 20 + c % 200, 30)
        Image.fromarray(pixels).save(path, quality=95)
        paths.append(path)
    return tuple(paths)


def test_trials_identical_in_their_window_give_identical_eval_clips(tmp_path: Path) -> None:
    colours = list(range(0, 120, 2))
    short = _write_frames(tmp_path / "short", colours + [7] * 20)
    long = _write_frames(tmp_path / "long", colours + [150] * 300)
    trials = [Trial("S1T1", "1", 1.0, short), Trial("S2T1", "2", 0.0, long)]
    data = _data_config(start_s=0, length_s=60, jitter=True)
    dataset = ClipDataset(trials, data, image_size=32, train=False, seed=0)
    assert torch.equal(dataset[0]["pixel_values"], dataset[1]["pixel_values"])
    dataset.set_epoch(5)
    assert torch.equal(dataset[0]["pixel_values"], dataset[1]["pixel_values"])


def test_training_clips_are_reproducible_per_epoch_and_index(tmp_path: Path) -> None:
    frames = _write_frames(tmp_path / "t", list(range(90)))
    data = _data_config(start_s=0, length_s=60, jitter=True)
    one = ClipDataset([Trial("S1T1", "1", 1.0, frames)], data, 32, train=True, seed=0)
    two = ClipDataset([Trial("S1T1", "1", 1.0, frames)], data, 32, train=True, seed=0)
    torch.manual_seed(123)  # global RNG state must not matter
    assert torch.equal(one[0]["pixel_values"], two[0]["pixel_values"])
    one.set_epoch(1)
    assert not torch.equal(one[0]["pixel_values"], two[0]["pixel_values"])


def _finished(dataset: ClipDataset, index: int = 0) -> torch.Tensor:
    """The clip as the model sees it: the loader's sample through the engine's finish_clips."""
    sample = default_collate([dataset[index]])
    return finish_clips(sample["pixel_values"], sample["augment"])[0]


def test_augmentation_draws_once_per_clip(tmp_path: Path) -> None:
    """Identical frames in, identical frames out: flip, crop and colour are shared by the clip."""
    frames = _write_frames(tmp_path / "t", [37] * 70)
    data = _data_config(start_s=0, length_s=60, jitter=True)
    data.augment = AugmentConfig(hflip=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    dataset = ClipDataset([Trial("S1T1", "1", 1.0, frames)], data, 32, train=True, seed=0)
    outputs = []
    for epoch in range(6):
        dataset.set_epoch(epoch)
        clip = _finished(dataset)
        assert clip.shape == (8, 3, 32, 32)
        assert all(torch.equal(clip[0], clip[i]) for i in range(1, 8))
        outputs.append(clip[0])
    assert not all(torch.equal(outputs[0], o) for o in outputs[1:])  # random per clip


def test_evaluation_clips_are_deterministic_and_normalised(tmp_path: Path) -> None:
    frames = _write_frames(tmp_path / "t", list(range(70)))
    data = _data_config(start_s=0, length_s=60, jitter=True)
    data.normalization = Normalization.socal_release
    dataset = ClipDataset([Trial("S1T1", "1", 1.0, frames)], data, 32, train=False, seed=0)
    first = _finished(dataset)
    dataset.set_epoch(3)
    assert torch.equal(first, _finished(dataset))
    raw = dataset[0]["pixel_values"][:, 0].float() / 255  # red channel, before normalising
    assert torch.allclose(first[:, 0], (raw - 0.321) / 0.352, atol=1e-5)


def test_a_frame_that_fails_to_decode_uses_its_neighbour(tmp_path: Path) -> None:
    frames = _write_frames(tmp_path / "t", list(range(10)))
    broken = tmp_path / "t" / "broken.jpeg"
    shutil.copy(frames[4], broken)
    data = broken.read_bytes()
    broken.write_bytes(data[:200] + b"\x00" * 50 + data[-2:])
    patched = frames[:4] + (broken,) + frames[5:]
    data_cfg = _data_config(num_frames=10, start_s=0, length_s=10, jitter=False)
    clip = ClipDataset([Trial("S1T1", "1", 1.0, patched)], data_cfg, 32, False, 0)[0]
    assert torch.equal(clip["pixel_values"][4], clip["pixel_values"][3])
