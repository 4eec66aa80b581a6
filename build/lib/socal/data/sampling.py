"""The order in which a rank sees trials: fixed by (seed, epoch), resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A permutation per epoch (or the identity for evaluation), sharded across ranks.

    Like DistributedSampler it pads the order by repeating its head so every rank gets the same
    number of samples (evaluation removes the repeats by trial index). Unlike it, ``start`` skips
    the samples a rank already trained on, so an interrupted epoch resumes where it stopped.
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Start ``epoch`` after the first ``start`` samples of this rank's shard."""
        self.epoch, self.start = epoch, min(start, self._shard_size())

    def _shard_size(self) -> int:
        return -(-self.size // self.world_size)

    def _shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        padded = -(-self.size // self.world_size) * self.world_size
        order = (order * -(-padded // self.size))[:padded]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.start :])

    def __len__(self) -> int:
        return self._shard_size() - self.start
