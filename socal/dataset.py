"""A torch Dataset of clips, one per trial, reproducible whatever the worker count.

Every random choice of a training clip (temporal jitter, crop, flip, colour) is drawn from a
generator seeded by (seed, epoch, trial index), so a clip depends neither on which worker
loads it nor on whether the run was resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from socal.clips import clip_positions
from socal.config import AugmentConfig, DataConfig
from socal.index import Trial, nearest_good
from socal.transforms import clip_transform

log = logging.getLogger(__name__)


def decode_frame(path: Path, short_side: int) -> np.ndarray:
    """Decode a JPEG straight to about ``short_side`` (libjpeg DCT scaling), then resize exactly."""
    with Image.open(path) as image:
        image.draft("RGB", (short_side * image.width // min(image.size), short_side))
        image = image.convert("RGB")
        scale = short_side / min(image.size)
        size = (
            max(short_side, round(image.width * scale)),
            max(short_side, round(image.height * scale)),
        )
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None))


class ClipDataset(Dataset):
    """Yields ``{"pixel_values": (T, C, H, W) float, "label": float, "index": int}``."""

    def __init__(
        self,
        trials: list[Trial],
        data: DataConfig,
        image_size: int,
        train: bool,
        seed: int,
    ) -> None:
        self.trials = trials
        self.data = data
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.epoch = 0
        augment: AugmentConfig | None = data.augment if train else None
        self.transform = clip_transform(image_size, data.normalization, augment)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int) -> dict:
        trial = self.trials[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        window = self.data.window
        offset = rng.random() if self.train and window.jitter else 0.5
        positions = clip_positions(
            trial.n_frames, self.data.num_frames, window.start_s, window.length_s, offset
        )
        frames = torch.from_numpy(np.stack([self._frame(trial, int(i)) for i in positions]))
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**63)))
            pixels = self.transform(video)
        return {
            "pixel_values": pixels.as_subclass(torch.Tensor),
            "label": trial.label,
            "index": index,
        }

    def _frame(self, trial: Trial, position: int) -> np.ndarray:
        """The frame at ``position``, or its nearest decodable neighbour (logged)."""
        try:
            return decode_frame(trial.frames[position], self.image_size)
        except OSError as err:
            good = [True] * trial.n_frames
            good[position] = False
            log.warning(
                "unreadable frame %s (%s): using its neighbour", trial.frames[position], err
            )
            return decode_frame(trial.frames[nearest_good(good, position)], self.image_size)
