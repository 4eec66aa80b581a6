"""The prepared frame cache: same clips as decoding, resumable, never used when stale."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from test_decode import assert_close_to_reference, reference_frame
from torch.utils.data import DataLoader

from socal.config import CacheMode, DataConfig, TrainerConfig, WindowConfig
from socal.data import prepare as prepare_cli
from socal.data.dataset import ClipDataset
from socal.data.frame_cache import build_trial, default_dir, frame_range, prepare, variant_name
from socal.data.index import Trial, index_folder
from socal.data.jpeg import read_header
from socal.errors import UserError

from support import synthetic_folder

SIZE = 32


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(
        tmp_path_factory.mktemp("cache"), trials=4, min_frames=62, max_frames=80
    )


@pytest.fixture
def root(source: Path, tmp_path: Path) -> Path:
    """A private copy of the folder (tests change frames and caches)."""
    return Path(shutil.copytree(source, tmp_path / "socal", symlinks=False))


def data_config(root: Path, cache: str = "auto", **window: object) -> DataConfig:
    return OmegaConf.structured(
        DataConfig(
            root=str(root), num_frames=8, cache=CacheMode(cache), window=WindowConfig(**window)
        )
    )


def build(root: Path, window: WindowConfig | None = None, size: int = SIZE):
    trials, _ = index_folder(root)
    report = prepare(trials, window or WindowConfig(), size, default_dir(root), progress=False)
    return trials, report


def clips(trials: list[Trial], data: DataConfig, train: bool, epoch: int = 0) -> list[dict]:
    dataset = ClipDataset(trials, data, SIZE, train=train, seed=3)
    dataset.set_epoch(epoch)
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize("window", [{}, {"start_s": 12, "length_s": 40}])
def test_cached_clips_equal_uncached_clips_and_the_reference_decode(root: Path, window: dict):
    trials, report = build(root, WindowConfig(**window))
    length = window.get("length_s", 60)
    assert len(report.built) == len(trials) and report.frames == length * len(trials)
    for train in (False, True):
        cached = clips(trials, data_config(root, **window), train, epoch=2)
        plain = clips(trials, data_config(root, "off", **window), train, epoch=2)
        for a, b in zip(cached, plain, strict=True):
            assert torch.equal(a["pixel_values"], b["pixel_values"])
            assert all(torch.equal(a["augment"][k], b["augment"][k]) for k in a["augment"])
    # Without augmentation both equal the slow reference decode (see test_decode's tolerance).
    dataset = ClipDataset(trials, data_config(root, **window), SIZE, train=False, seed=0)
    assert dataset.cache is not None
    trial, clip = trials[0], dataset[0]["pixel_values"]
    positions = window.get("start_s", 0) + (np.arange(8) + 0.5) * length / 8
    for k, p in enumerate(positions.astype(int)):
        full = reference_frame(trial.frames[p], SIZE)
        left = int(round((full.shape[1] - SIZE) / 2))
        assert_close_to_reference(clip[k].permute(1, 2, 0).numpy(), full[:, left : left + SIZE])


def test_prepare_resumes_after_an_interruption(root: Path) -> None:
    trials, _ = build(root)
    directory = default_dir(root) / variant_name(SIZE, WindowConfig())
    files = sorted(directory.glob("*.npy"))
    kept = {f: f.stat().st_mtime_ns for f in files[1:]}
    files[0].unlink()  # as if the run was killed while writing it
    (directory / f".{files[0].name}.tmp-999").write_bytes(b"partial")
    with pytest.raises(UserError, match="1 trials it lacks"):
        ClipDataset(trials, data_config(root), SIZE, train=True, seed=0)
    _, report = build(root)
    assert report.built == [files[0].name.split(".")[0]] and len(report.reused) == len(trials) - 1
    assert {f: f.stat().st_mtime_ns for f in files[1:]} == kept
    assert ClipDataset(trials, data_config(root), SIZE, train=True, seed=0).cache is not None


def test_a_changed_source_frame_is_refused_then_rebuilt(root: Path) -> None:
    trials, _ = build(root)
    changed = trials[1].frames[10]
    Image.open(changed).save(changed, quality=40)  # re-encoded: same name, other bytes
    trials, _ = index_folder(root)
    with pytest.raises(
        UserError, match=f"frames changed \\({trials[1].trial_id}\\).*socal.prepare"
    ):
        ClipDataset(trials, data_config(root), SIZE, train=False, seed=0)
    _, report = build(root)
    assert report.built == [trials[1].trial_id] and report.removed == 1
    cached = clips(trials, data_config(root), train=False)
    plain = clips(trials, data_config(root, "off"), train=False)
    assert all(
        torch.equal(a["pixel_values"], b["pixel_values"])
        for a, b in zip(cached, plain, strict=True)
    )


def test_a_cache_for_another_window_or_size_is_never_used(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trials, _ = build(root)
    with caplog.at_level(logging.WARNING):
        other_window = ClipDataset(trials, data_config(root, length_s=30), SIZE, True, 0)
        other_size = ClipDataset(trials, data_config(root), SIZE + 16, True, 0)
    assert other_window.cache is None and other_size.cache is None
    assert "s32-w0-30" in caplog.text and "s48-w0-60" in caplog.text
    assert ClipDataset(trials, data_config(root, "off"), SIZE, True, 0).cache is None


def test_an_unreadable_frame_uses_its_neighbour_and_is_counted(root: Path) -> None:
    trials, _ = index_folder(root)
    damaged = trials[0].frames[5]
    data = damaged.read_bytes()
    start = read_header(data).scan_start  # header whole, the scan zeros: passes the check
    damaged.write_bytes(data[:start] + b"\x00" * 3000 + data[-2:])
    truncated = trials[0].frames[7]
    truncated.write_bytes(truncated.read_bytes()[:1000])
    trials, index_report = index_folder(root)
    assert index_report.truncated_frames == [truncated.name]
    _, report = build(root)
    assert report.replaced_frames == 1
    directory = default_dir(root) / variant_name(SIZE, WindowConfig())
    cached = np.load(next(directory.glob(f"{trials[0].trial_id}.*.npy")))
    assert np.array_equal(cached[5], cached[4]) and np.array_equal(cached[7], cached[6])
    plain = ClipDataset(trials, data_config(root, "off", jitter=False), SIZE, False, 0)
    assert torch.equal(plain.frames(trials[0], np.array([5, 7])), torch.from_numpy(
        cached[[4, 6]]).permute(0, 3, 1, 2))  # fmt: skip


def test_frame_range_covers_every_position_a_clip_can_use() -> None:
    assert frame_range(500, WindowConfig(start_s=10, length_s=60)) == (10, 70)
    assert frame_range(40, WindowConfig(start_s=0, length_s=60)) == (0, 40)
    assert frame_range(40, WindowConfig(start_s=50, length_s=60)) == (39, 40)
    assert frame_range(40, WindowConfig(start_s=5, length_s=None)) == (5, 40)


def test_prepare_command_builds_what_training_uses(root: Path) -> None:
    overrides = [f"data.root={root}", "model=videomae_tiny", f"model.arch.image_size={SIZE}"]
    assert prepare_cli.main([*overrides, "trainer.progress=false"]) == 0
    trials, _ = index_folder(root)
    assert ClipDataset(trials, data_config(root), SIZE, train=True, seed=0).cache is not None


def test_epochs_reach_persistent_workers(root: Path) -> None:
    trials, _ = build(root)
    dataset = ClipDataset(trials, data_config(root), SIZE, train=True, seed=3)
    settings = ClipDataset.loader_settings(OmegaConf.structured(TrainerConfig(num_workers=1)))
    assert settings["persistent_workers"] and settings["num_workers"] == 1
    loader = DataLoader(dataset, batch_size=len(trials), **settings)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        batch = next(iter(loader))
        expected = clips(trials, data_config(root), train=True, epoch=epoch)
        assert all(torch.equal(batch["pixel_values"][i], e["pixel_values"])
                   for i, e in enumerate(expected))  # fmt: skip
    auto = ClipDataset.loader_settings(OmegaConf.structured(TrainerConfig(num_workers=-1)))
    assert auto["num_workers"] >= 1
    assert ClipDataset.loader_settings(OmegaConf.structured(TrainerConfig(num_workers=0))) == {
        "num_workers": 0, "pin_memory": torch.cuda.is_available()
    }  # fmt: skip


def test_a_trial_that_stopped_decoding_is_never_cached_as_black(tmp_path: Path) -> None:
    frames = []
    for i in range(3):  # frames that stopped decoding after the check: garbage after the header
        path = tmp_path / f"S1T1_frame_{i + 1:08d}.jpeg"
        Image.fromarray(np.full((36, 64, 3), 90, np.uint8)).save(path, quality=90)
        data = path.read_bytes()
        path.write_bytes(data[:200] + b"\x00" * 20)
        frames.append(path)
    target = tmp_path / "S1T1.npy"
    with pytest.raises(UserError, match="S1T1: no frame decodes any more"):
        build_trial(Trial("S1T1", "1", 1.0, tuple(frames)), WindowConfig(), 32, target)
    assert not target.exists()
