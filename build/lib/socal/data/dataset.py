"""A torch Dataset of uint8 clips, one per trial, reproducible whatever the worker count.

Every random choice of a training clip (temporal jitter, crop, flip, colour) is drawn from a
generator seeded by (seed, epoch, trial index), so a clip depends neither on which worker
loads it nor on whether the run was resumed. The loader crops in uint8; flip, colour jitter
and normalisation are left to ``socal.data.transforms.finish_clips`` on the training device, driven
by the parameters each sample carries.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from socal.config import CacheMode, DataConfig
from socal.data.clips import clip_positions
from socal.data.decode import decode_clip
from socal.data.frame_cache import default_dir, open_cache
from socal.data.index import Trial
from socal.data.transforms import crop_clip, draw_params, params_tensors

log = logging.getLogger(__name__)


class ClipDataset(Dataset):
    """Yields ``{"pixel_values": (T, C, H, W) uint8, "label", "index", "augment": {...}}``.

    ``augment`` holds the clip's flip and colour parameters and its normalisation, for
    ``finish_clips`` (the engine applies it to the batch on its device).
    """

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
        # Shared memory: set_epoch in the main process reaches persistent loader workers too.
        self._epoch = multiprocessing.RawValue("q", 0)
        self.augment = data.augment if train and data.augment.enabled else None
        self.cache = None
        if CacheMode(data.cache) is CacheMode.auto:
            cache_dir = data.cache_dir or default_dir(data.root)
            self.cache = open_cache(trials, data.window, image_size, Path(cache_dir))

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = epoch

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
        clip = self.frames(trial, positions)
        params = draw_params(rng, self.augment, clip.shape[-2], clip.shape[-1], self.image_size)
        return {
            "pixel_values": crop_clip(clip, params, self.image_size),
            "label": trial.label,
            "index": index,
            "augment": params_tensors(params, self.data.normalization),
        }

    def frames(self, trial: Trial, positions: np.ndarray) -> torch.Tensor:
        """``(T, 3, H, W)`` uint8 at short side ``image_size``: from the cache, or decoded."""
        if self.cache is not None:
            return self.cache.clip(trial.trial_id, positions)
        return decode_clip(trial.frames, positions, self.image_size)

    @staticmethod
    def loader_settings(trainer: DictConfig, persistent: bool = True) -> dict:
        """DataLoader keyword arguments: workers, pinning, persistence, prefetch.

        ``trainer.num_workers=-1`` shares the cores this process may use among the training
        processes of the node (torchrun's ``LOCAL_WORLD_SIZE``), less one for each training
        loop. Workers persist across epochs (``set_epoch`` reaches them through shared memory),
        and pinned memory makes host-to-GPU copies asynchronous.
        """
        workers = int(trainer.num_workers)
        if workers < 0:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            workers = max(1, (cores or os.cpu_count() or 2) // max(per_node, 1) - 1)
        settings: dict = {"num_workers": workers, "pin_memory": torch.cuda.is_available()}
        if workers > 0:
            settings |= {
                "persistent_workers": persistent,
                "prefetch_factor": trainer.prefetch_factor,
            }
        return settings
