"""Property-based tests (hypothesis) of clip sampling, frame replacement and the epoch order."""

from __future__ import annotations

from typing import Optional

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from socal.data.clips import clip_positions
from socal.data.index import nearest_good
from socal.data.sampling import EpochSampler

lengths = st.integers(min_value=1, max_value=600)
windows = st.one_of(st.none(), st.integers(min_value=1, max_value=300))


@given(
    n=lengths,
    num_frames=st.integers(1, 32),
    start=st.integers(0, 120),
    length=windows,
    offset=st.floats(0, 1, exclude_max=True),
)
def test_positions_stay_inside_the_trial_and_the_window(
    n: int, num_frames: int, start: int, length: Optional[int], offset: float
) -> None:
    positions = clip_positions(n, num_frames, start, length, offset)
    assert len(positions) == num_frames
    assert positions.min() >= 0 and positions.max() <= n - 1
    assert np.all(np.diff(positions) >= 0)
    if length is not None:
        assert positions.max() <= max(min(start + length, n) - 1, 0)
        assert positions.min() >= min(start, n - 1)


@given(
    short=lengths,
    extra=st.integers(1, 400),
    num_frames=st.integers(1, 32),
    start=st.integers(0, 120),
    length=st.integers(1, 300),
    offset=st.floats(0, 1, exclude_max=True),
)
def test_a_clip_never_depends_on_frames_after_its_window(
    short: int, extra: int, num_frames: int, start: int, length: int, offset: float
) -> None:
    """A shorter trial gets the longer one's clip with the missing frames padded by its last:
    what happens after the window (or after a trial ends) cannot move any position."""
    long = clip_positions(short + extra, num_frames, start, length, offset)
    assert np.array_equal(
        clip_positions(short, num_frames, start, length, offset), np.minimum(long, short - 1)
    )


@given(st.lists(st.booleans(), min_size=1, max_size=60).filter(any), st.data())
def test_a_bad_frame_is_replaced_by_a_nearest_good_one(good: list[bool], data) -> None:
    i = data.draw(st.integers(0, len(good) - 1))
    j = nearest_good(good, i)
    assert good[j]
    assert all(abs(k - i) >= abs(j - i) for k, ok in enumerate(good) if ok)
    if good[i]:
        assert j == i


@given(
    size=st.integers(1, 50),
    world=st.integers(1, 4),
    seed=st.integers(0, 10),
    epoch=st.integers(0, 5),
    shuffle=st.booleans(),
    start=st.integers(0, 20),
)
def test_every_trial_is_seen_each_epoch_and_a_resume_skips_exactly_what_was_done(
    size: int, world: int, seed: int, epoch: int, shuffle: bool, start: int
) -> None:
    shards = []
    for rank in range(world):
        sampler = EpochSampler(size, shuffle, seed, rank, world)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
        sampler.set_epoch(epoch, start=start)
        assert list(sampler) == shards[-1][start:]
        assert len(sampler) == len(shards[-1][start:])
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    seen = [i for shard in shards for i in shard]
    assert set(seen) == set(range(size)) and len(seen) - size < world
