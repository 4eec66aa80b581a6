"""Metrics from known predictions (hand-computed), and the baselines beside the model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from socal.config import SplitConfig, WindowConfig
from socal.data.index import Trial, index_folder
from socal.data.splits import split_trials
from socal.training.metrics import (
    baselines,
    classification_metrics,
    regression_metrics,
    results_table,
)

from support import synthetic_folder


def test_classification_metrics_on_known_predictions() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 1])
    probs = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.1, 0.55])
    # Predictions at 0.5: 1 1 0 1 0 1 0 1 -> TP=4, FN=1, TN=2, FP=1.
    m = classification_metrics(labels, probs)
    assert m["confusion_matrix"] == [[2, 1], [1, 4]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["sensitivity"] == pytest.approx(4 / 5)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert m["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    # AUROC: of the 15 (positive, negative) pairs, the positive scores higher in 12.
    assert m["auroc"] == pytest.approx(12 / 15)


def test_auroc_is_nan_not_a_crash_with_one_class() -> None:
    m = classification_metrics(np.array([1, 1]), np.array([0.2, 0.9]))
    assert math.isnan(m["auroc"]) and m["accuracy"] == 0.5


def test_regression_metrics_on_known_predictions() -> None:
    m = regression_metrics(np.array([100.0, 200.0, 300.0]), np.array([110.0, 180.0, 300.0]))
    assert m["rmse"] == pytest.approx(math.sqrt((100 + 400) / 3))
    assert m["mae"] == pytest.approx(10.0)
    assert m["r2"] == pytest.approx(1 - 500 / 20000)


def _trials(n: int, leak: bool, seed: int) -> list[Trial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = float(rng.random() < 0.65)
        length = int(rng.integers(60, 200) + (150 if leak and label == 0 else 0))
        out.append(Trial(f"S{i}T1", str(i), label, (Path("x"),) * length))
    return out


def test_length_baseline_scores_high_when_length_leaks_and_near_chance_otherwise() -> None:
    leaky = baselines("classification", _trials(200, True, 0), _trials(200, True, 1))
    honest = baselines("classification", _trials(200, False, 0), _trials(200, False, 1))
    assert leaky["trial_length"]["auroc"] > 0.95
    assert abs(honest["trial_length"]["auroc"] - 0.5) < 0.12
    assert leaky["majority"]["specificity"] == 0.0  # always predicts the majority class


@pytest.mark.slow
def test_length_baseline_on_synthetic_folders_with_and_without_the_leak(tmp_path: Path) -> None:
    """Through the real loader and the default surgeon split, as a training run computes it."""
    aurocs = {}
    for leak in (True, False):
        root = synthetic_folder(
            tmp_path, trials=160, seed=4, length_leaks=leak, min_frames=30, max_frames=80
        )
        trials, _ = index_folder(root)
        split = SplitConfig(test_ratio=0.5, val_ratio=0.1)  # 80 test trials: AUROC sd ~0.07
        subsets = split_trials(trials, split, regression=False)
        result = baselines("classification", subsets["train"], subsets["test"])
        aurocs[leak] = result["trial_length"]["auroc"]
    assert aurocs[True] > 0.95
    assert abs(aurocs[False] - 0.5) < 0.2


def test_table_says_when_length_beats_the_model_comparing_with_the_applicable_baseline() -> None:
    model = {"accuracy": 0.7, "auroc": 0.72, "confusion_matrix": [[1, 1], [1, 1]]}
    ref = {
        "majority": {"accuracy": 0.65, "auroc": 0.5},
        "trial_length": {"accuracy": 0.95, "auroc": 0.97},
        "trial_length_window": {"accuracy": 0.6, "auroc": 0.62},
    }
    whole = results_table("classification", model, ref, WindowConfig(length_s=None))
    assert "trial length alone (trial_length: the full length) beats the model" in whole
    # Clips from the first 60 s: only the windowed fit applies, and the model beats it.
    assert "beats" not in results_table("classification", model, ref, WindowConfig())
    ref["trial_length_window"]["accuracy"] = 0.8
    windowed = results_table("classification", model, ref, WindowConfig())
    assert "trial length alone (trial_length_window: min(length, 60 s)" in windowed


def test_the_windowed_length_baseline_sees_only_whether_a_trial_ends_inside_the_window() -> None:
    """Failures are long, successes short, but all are longer than the window: the windowed
    fit has nothing to go on, while the full-length fit is perfect (the leak)."""
    train, test = _trials(200, True, 0), _trials(200, True, 1)
    result = baselines("classification", train, test, WindowConfig(length_s=50))
    assert result["trial_length"]["auroc"] > 0.95
    assert result["trial_length_window"] == result["majority"]
    # A window longer than some successes: the padding leaks, and the windowed fit sees it.
    long_window = baselines("classification", train, test, WindowConfig(length_s=150))
    assert long_window["trial_length_window"]["auroc"] > 0.7
    assert (
        baselines("classification", train, test, WindowConfig(length_s=None))["trial_length_window"]
        == result["trial_length"]
    )
