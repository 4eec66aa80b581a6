"""A torch Dataset of uint8 clips, a few views per trial, reproducible whatever the worker count.

A trial has ``data.clips_per_trial`` training views or ``eval.clips`` evaluation views (times
two with ``eval.flip``); view k of K takes its frames at offset (k + u) / K of the frame stride,
u jittered in training and 0.5 in evaluation, so the views cover the stride evenly. Every random
choice of a training clip (temporal jitter, crop, flip, colour) is drawn from a generator
seeded by (seed, epoch, trial index, view), so a clip depends neither on which worker loads it
nor on whether the run was resumed. The loader crops in uint8; flip, colour jitter
and normalisation are left to ``socal.data.transforms.finish_clips`` on the training device, driven
by the parameters each sample carries.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

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
from socal.errors import UserError

log = logging.getLogger(__name__)


class ClipDataset(Dataset):
    """Yields ``{"pixel_values": (T, C, H, W) uint8, "label", "index", "sample", "positions",
    "augment"}``, and ``"tools"`` (T, classes) when given tool presence (``data.tools``).

    ``index`` is the trial's, ``sample`` the view's own position in the dataset (evaluation
    averages the views of a trial), ``positions`` the frame index of each clip frame.
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
        clips: int = 1,
        flip: bool = False,
        tools: Optional[dict[str, np.ndarray]] = None,
    ) -> None:
        """``clips`` views of each trial (``flip``: each also mirrored, evaluation only);
        ``tools``: each trial's (seconds, classes) presence (``ToolFeatures.presence``)."""
        if clips < 1:
            raise UserError(
                f"{'data.clips_per_trial' if train else 'eval.clips'}={clips} must be >= 1"
            )
        self.trials = trials
        self.data = data
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.clips = clips
        self.tools = tools
        self.views = [(k, mirrored) for k in range(clips) for mirrored in (False, True)[: 1 + flip]]
        # Shared memory: set_epoch in the main process reaches persistent loader workers too.
        self._epoch = multiprocessing.RawValue("q", 0)
        self.augment = data.augment if train and data.augment.enabled else None
        self.cache = None
        if CacheMode(data.cache) is CacheMode.auto:
            cache_dir = data.cache_dir or default_dir(data.root)
            self.cache = open_cache(trials, data.window, image_size, Path(cache_dir))

    @classmethod
    def of_run(
        cls,
        trials: list[Trial],
        cfg: DictConfig,
        image_size: int,
        train: bool,
        tools: Optional[dict[str, np.ndarray]] = None,
    ) -> ClipDataset:
        """A run's training or evaluation views (``data.clips_per_trial``, ``eval.*``)."""
        views = (cfg.data.clips_per_trial, False) if train else (cfg.eval.clips, cfg.eval.flip)
        return cls(trials, cfg.data, image_size, train, cfg.trainer.seed, *views, tools)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = epoch

    def __len__(self) -> int:
        return len(self.trials) * len(self.views)

    def __getitem__(self, sample: int) -> dict:
        index, view = divmod(sample, len(self.views))
        k, mirrored = self.views[view]
        trial = self.trials[index]
        rng = np.random.default_rng([self.seed, self.epoch, index, view])
        window = self.data.window
        within = rng.random() if self.train and window.jitter else 0.5
        positions = clip_positions(
            trial.n_frames,
            self.data.num_frames,
            window.start_s,
            window.length_s,
            (k + within) / self.clips,
        )
        clip = self.frames(trial, positions)
        params = draw_params(rng, self.augment, clip.shape[-2], clip.shape[-1], self.image_size)
        if mirrored:
            params = replace(params, flip=True)
        item = {
            "pixel_values": crop_clip(clip, params, self.image_size),
            "label": trial.label,
            "index": index,
            "sample": sample,
            "positions": torch.from_numpy(positions),  # which second each frame is
            "augment": params_tensors(params, self.data.normalization),
        }
        if self.tools is not None:
            item["tools"] = torch.from_numpy(self.tools[trial.trial_id][positions])
        return item

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
