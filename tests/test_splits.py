"""Splits keep surgeons apart, stratify labels, and depend only on the data and the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from socal.config import SplitConfig, SplitStrategy
from socal.data.index import Trial
from socal.data.splits import PUBLISHED_TEST_PARTICIPANTS, split_table, split_trials
from socal.errors import UserError


def make_trials(n_surgeons: int = 73, seed: int = 0, extra: tuple[str, ...] = ()) -> list[Trial]:
    """Two trials per surgeon, about 66% success, like SOCAL's 143 video trials."""
    rng = np.random.default_rng(seed)
    ids = [str(1000 + i) for i in range(n_surgeons - len(extra))] + list(extra)
    trials = []
    for pid in ids:
        for n in (1, 2):
            label = float(rng.random() < 0.66)
            trials.append(Trial(f"S{pid}T{n}", pid, label, (Path("f.jpeg"),) * 60))
    return trials


def cfg(strategy: str, **kw: object) -> SplitConfig:
    return SplitConfig(strategy=SplitStrategy(strategy), **kw)


def participants(subsets: dict[str, list[Trial]]) -> dict[str, set[str]]:
    return {name: {t.participant for t in trials} for name, trials in subsets.items()}


def assert_partition(trials: list[Trial], subsets: dict[str, list[Trial]]) -> None:
    ids = [t.trial_id for s in subsets.values() for t in s]
    assert sorted(ids) == sorted(t.trial_id for t in trials)


@pytest.mark.parametrize(
    "config",
    [cfg("surgeon"), cfg("kfold", folds=5, fold=2), cfg("published"), cfg("surgeon", seed=9)],
)
def test_no_surgeon_in_two_subsets(config: SplitConfig) -> None:
    trials = make_trials(extra=PUBLISHED_TEST_PARTICIPANTS)
    subsets = split_trials(trials, config, regression=False)
    assert_partition(trials, subsets)
    groups = participants(subsets)
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]


def test_published_split_is_the_twenty_trials_of_the_ten_surgeons() -> None:
    trials = make_trials(extra=PUBLISHED_TEST_PARTICIPANTS)
    test = split_trials(trials, cfg("published"), regression=False)["test"]
    assert len(test) == 20
    assert {t.participant for t in test} == set(PUBLISHED_TEST_PARTICIPANTS)


def test_a_published_test_set_that_lost_trials_says_so(caplog: pytest.LogCaptureFixture) -> None:
    trials = [t for t in make_trials(extra=PUBLISHED_TEST_PARTICIPANTS) if t.trial_id != "S616T2"]
    test = split_trials(trials, cfg("published"), regression=False)["test"]
    assert len(test) == 19
    assert "holds 19 of the 20 published trials (missing: S616 (1 of 2))" in caplog.text
    caplog.clear()
    split_trials(make_trials(extra=PUBLISHED_TEST_PARTICIPANTS), cfg("published"), False)
    assert "published trials" not in caplog.text


def test_kfold_test_folds_cover_every_trial_once() -> None:
    trials = make_trials()
    tests = [split_trials(trials, cfg("kfold", fold=i), regression=False)["test"] for i in range(5)]
    ids = [t.trial_id for fold in tests for t in fold]
    assert sorted(ids) == sorted(t.trial_id for t in trials)


@pytest.mark.parametrize("strategy", ["surgeon", "random"])
def test_labels_are_stratified_within_one_trial_of_ideal(strategy: str) -> None:
    trials = make_trials()
    rate = np.mean([t.label for t in trials])
    for seed in range(5):
        subsets = split_trials(trials, cfg(strategy, seed=seed), regression=False)
        for name, subset in subsets.items():
            positives = sum(t.label for t in subset)
            assert abs(positives - rate * len(subset)) <= 1.0, (seed, name)


def test_split_is_deterministic_and_seeded() -> None:
    trials = make_trials()
    first = split_table(split_trials(trials, cfg("surgeon", seed=1), regression=False))
    again = split_table(split_trials(list(trials), cfg("surgeon", seed=1), regression=False))
    other = split_table(split_trials(trials, cfg("surgeon", seed=2), regression=False))
    assert first.equals(again)
    assert not first.equals(other)
    assert list(first.columns) == ["trial", "participant", "label", "subset"]


def test_random_split_warns_that_surgeons_can_be_shared(caplog: pytest.LogCaptureFixture) -> None:
    split_trials(make_trials(), cfg("random"), regression=False)
    assert "surgeon" in caplog.text and "train and test" in caplog.text


def test_regression_targets_split_by_quartile() -> None:
    rng = np.random.default_rng(0)
    trials = [
        Trial(t.trial_id, t.participant, float(rng.gamma(2, 250)), t.frames) for t in make_trials()
    ]
    subsets = split_trials(trials, cfg("surgeon"), regression=True)
    assert_partition(trials, subsets)
    assert all(len(s) > 5 for s in subsets.values())


def test_too_few_surgeons_is_a_clear_error() -> None:
    with pytest.raises(UserError, match=r"needs at least 7 surgeons, there are 4"):
        split_trials(make_trials(n_surgeons=4), cfg("surgeon"), regression=False)
    with pytest.raises(UserError, match=r"split.folds=10 needs at least 10 surgeons, there are 6"):
        split_trials(make_trials(n_surgeons=6), cfg("kfold", folds=10), regression=False)
    with pytest.raises(UserError, match="published test surgeons"):
        split_trials(make_trials(), cfg("published"), regression=False)
