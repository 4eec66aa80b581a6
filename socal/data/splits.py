"""Train / validation / test splits that keep surgeons apart.

Each surgeon performed two trials; a trial-level split puts the same hands in train and test.
The default splits group by participant and stratify by label as far as the groups allow. A
split depends only on the trials and the split config: never on workers, resume or machine.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from socal.config import SplitConfig, SplitStrategy
from socal.data.index import Trial
from socal.errors import UserError

log = logging.getLogger(__name__)

# The 20-trial surgeon-disjoint test set of the published SOCAL results (both trials of each).
PUBLISHED_TEST_PARTICIPANTS = ("203", "318", "807", "303", "403", "206", "316", "306", "616", "505")
SUBSETS = ("train", "val", "test")


def _strata(trials: list[Trial], regression: bool) -> np.ndarray:
    labels = np.array([t.label for t in trials])
    if not regression:
        return labels.astype(int)
    # Regression targets are stratified by quartile so each subset spans the range.
    return pd.qcut(labels, q=min(4, len(labels)), labels=False, duplicates="drop")


def _hold_out_groups(
    trials: list[Trial], ratio: float, seed: int, regression: bool, what: str
) -> tuple[list[int], list[int]]:
    """Split trials into (kept, held-out) by participant, the held-out share close to ``ratio``."""
    groups = [t.participant for t in trials]
    n_groups = len(set(groups))
    n_splits = max(2, round(1 / ratio))
    if n_groups < n_splits:
        raise UserError(
            f"{what}: {ratio:.0%} by surgeon needs at least {n_splits} surgeons, "
            f"there are {n_groups} (with {len(trials)} trials); lower the ratio or add data"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    kept, held = next(folds.split(np.zeros(len(trials)), _strata(trials, regression), groups))
    return list(kept), list(held)


def _hold_out_trials(
    trials: list[Trial], ratio: float, seed: int, regression: bool, what: str
) -> tuple[list[int], list[int]]:
    indices = np.arange(len(trials))
    strata = _strata(trials, regression)
    n_held = round(len(trials) * ratio)
    if n_held < len(set(strata)) or len(trials) - n_held < len(set(strata)):
        raise UserError(
            f"{what}: {ratio:.0%} of {len(trials)} trials is too few to stratify "
            f"{len(set(strata))} classes; needs at least {2 * len(set(strata))} trials per class"
        )
    kept, held = train_test_split(indices, test_size=n_held, random_state=seed, stratify=strata)
    return sorted(kept), sorted(held)


def _kfold_test(trials: list[Trial], cfg: SplitConfig, regression: bool) -> list[int]:
    groups = [t.participant for t in trials]
    if not 0 <= cfg.fold < cfg.folds:
        raise UserError(
            f"split.fold={cfg.fold} must be in 0..{cfg.folds - 1} (split.folds={cfg.folds})"
        )
    n_groups = len(set(groups))
    if n_groups < cfg.folds:
        raise UserError(
            f"split.folds={cfg.folds} needs at least {cfg.folds} surgeons, there are {n_groups}"
        )
    folds = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    splits = list(folds.split(np.zeros(len(trials)), _strata(trials, regression), groups))
    return list(splits[cfg.fold][1])


def _published_test(trials: list[Trial]) -> list[int]:
    test = [i for i, t in enumerate(trials) if t.participant in PUBLISHED_TEST_PARTICIPANTS]
    if not test:
        raise UserError(
            "split=published: none of the published test surgeons "
            f"({', '.join('S' + p for p in PUBLISHED_TEST_PARTICIPANTS)}) is in this folder"
        )
    counts = Counter(trials[i].participant for i in test)
    short = [f"S{p} ({counts[p]} of 2)" for p in PUBLISHED_TEST_PARTICIPANTS if counts[p] < 2]
    if short:
        log.warning(
            "split=published: the test set holds %d of the 20 published trials (missing: %s): "
            "its figures are not comparable with the published 17/20 (socal.report says so too)",
            len(test), ", ".join(short),
        )  # fmt: skip
    return test


def split_trials(trials: list[Trial], cfg: SplitConfig, regression: bool) -> dict[str, list[Trial]]:
    """Assign every trial to exactly one of train / val / test."""
    strategy = SplitStrategy(cfg.strategy)
    hold_out = _hold_out_trials if strategy is SplitStrategy.random else _hold_out_groups
    if strategy is SplitStrategy.random:
        log.warning(
            "split=random splits trials, not surgeons: the two trials of one surgeon can land in "
            "train and test, which overstates how well the model generalises to new surgeons"
        )
    if strategy is SplitStrategy.kfold:
        test = _kfold_test(trials, cfg, regression)
    elif strategy is SplitStrategy.published:
        test = _published_test(trials)
    else:
        _, test = hold_out(trials, cfg.test_ratio, cfg.seed, regression, "split.test_ratio")
    held = set(test)
    rest = [i for i in range(len(trials)) if i not in held]
    rest_trials = [trials[i] for i in rest]
    # The validation share is of the whole set; held out from what the test left.
    val_ratio = min(cfg.val_ratio / max(1e-9, 1 - len(test) / len(trials)), 0.5)
    train_pos, val_pos = hold_out(rest_trials, val_ratio, cfg.seed, regression, "split.val_ratio")
    return {
        "train": [rest_trials[i] for i in sorted(train_pos)],
        "val": [rest_trials[i] for i in sorted(val_pos)],
        "test": [trials[i] for i in sorted(test)],
    }


def split_table(subsets: dict[str, list[Trial]]) -> pd.DataFrame:
    """One row per trial: what ``split.csv`` in the run directory holds."""
    rows = [(t.trial_id, t.participant, t.label, name) for name in SUBSETS for t in subsets[name]]
    return pd.DataFrame(rows, columns=["trial", "participant", "label", "subset"])
