"""Per-run statistics, recomputed independently with scikit-learn and scipy and compared.

The bootstrap is checked resample by resample: the test draws the surgeons by the documented
rule (``rng.integers(0, G, (B, G))`` over the sorted surgeon ids), expands each resample into
its trials, and scores it with scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta, norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    mean_absolute_error,
    r2_score,
    recall_score,
    roc_curve,
    root_mean_squared_error,
)

from socal.config import EvalConfig
from socal.errors import UserError
from socal.report.metrics import calibration_metrics, parse_threshold, youden_threshold
from socal.report.run_results import choose_threshold, format_results, published_results
from socal.training.run import check_settings

from stats_support import ece, percentiles, predictions_frame, resamples, sklearn_classification
from support import compose_train

SETTINGS = EvalConfig(bootstrap=300, seed=7)


def _table(n_surgeons: int, seed: int, task: str = "classification") -> pd.DataFrame:
    """Two trials per surgeon; a model that is informative but imperfect; two baselines."""
    rng = np.random.default_rng(seed)
    participant = np.repeat([f"{100 + i}" for i in range(n_surgeons)], 2)
    if task == "classification":
        label = (rng.random(2 * n_surgeons) < 0.6).astype(float)
        output = np.clip(0.3 * label + 0.35 + rng.normal(0, 0.2, len(label)), 0.01, 0.99).round(2)
        majority = np.ones(len(label))
        length = np.clip(0.5 * label + 0.25 + rng.normal(0, 0.3, len(label)), 0, 1)
    else:
        label = rng.gamma(2.0, 200.0, 2 * n_surgeons)
        output = label + rng.normal(0, 150, len(label))
        majority = np.full(len(label), label.mean())
        length = label + rng.normal(0, 300, len(label))
    return predictions_frame(participant, label, output, task, majority, length)


def test_youden_threshold_maximises_j_on_validation() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(40) < 0.5).astype(int)
    probs = np.clip(0.2 * labels + 0.4 + rng.normal(0, 0.15, 40), 0, 1)
    threshold, j = youden_threshold(labels, probs)
    fpr, tpr, _ = roc_curve(labels, probs)
    assert j == pytest.approx(np.max(tpr - fpr))
    pred = probs >= threshold
    assert recall_score(labels, pred) + recall_score(labels, pred, pos_label=0) - 1 == (
        pytest.approx(j)
    )
    # Halfway between two validation scores, not on one.
    assert not np.isclose(probs, threshold).any() or threshold == probs.min()


def test_a_fixed_threshold_and_bad_settings() -> None:
    settings = EvalConfig(threshold="0.3")
    assert choose_threshold("classification", settings, np.array([0, 1]), np.array([0.2, 0.9])) == {
        "rule": "fixed",
        "value": 0.3,
    }
    assert choose_threshold("regression", settings, np.zeros(2), np.zeros(2)) is None
    one_class = choose_threshold("classification", EvalConfig(), np.ones(3), np.ones(3) / 2)
    assert one_class["value"] == 0.5 and "one class" in one_class["rule"]
    for bad in ("youden", "1.5", "0"):
        with pytest.raises(UserError, match="eval.threshold="):
            parse_threshold(bad)


def test_eval_threshold_settings_are_checked_before_training() -> None:
    for setting in ("val_youden", "0.3"):
        check_settings(
            compose_train(["experiment=demo", f"eval.threshold={setting}"]), "classification"
        )
    with pytest.raises(UserError, match="eval.threshold=best must be val_youden"):
        check_settings(compose_train(["experiment=demo", "eval.threshold=best"]), "classification")


def test_calibration_matches_sklearn() -> None:
    table = _table(30, 1)
    y, p = table["label"].to_numpy(), table["probability"].to_numpy()
    result = published_results("classification", table, 0.5, SETTINGS)
    calibration = result["calibration"]
    assert calibration["brier"] == pytest.approx(brier_score_loss(y, p))
    assert calibration["ece"] == pytest.approx(ece(y, p, 10))
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    used = [row for row in calibration["reliability"] if row["count"]]
    assert [r["observed"] for r in used] == pytest.approx(list(observed))
    assert [r["mean_predicted"] for r in used] == pytest.approx(list(predicted))
    assert sum(r["count"] for r in used) == len(y)
    assert calibration_metrics(np.array([1, 0]), np.array([1.0, 0.0]))["ece"] == 0


def test_bootstrap_intervals_by_surgeon_match_sklearn_on_each_resample() -> None:
    table = _table(12, 2)
    threshold = 0.52
    settings = EvalConfig(bootstrap=120, seed=7)  # scikit-learn per resample is slow
    result = published_results("classification", table, threshold, settings)
    y, p = table["label"].to_numpy().astype(int), table["probability"].to_numpy()
    expected: dict[str, list[float]] = {}
    differences: dict[tuple[str, str], list[float]] = {}
    for rows in resamples(table["participant"], settings.bootstrap, settings.seed):
        model = sklearn_classification(y[rows], p[rows], threshold, 10)
        for key, value in model.items():
            expected.setdefault(key, []).append(value)
        for name in ("majority", "trial_length"):
            base = table[f"baseline_{name}"].to_numpy()[rows]
            reference = sklearn_classification(y[rows], base, 0.5, 10)
            for key in ("auroc", "accuracy"):
                differences.setdefault((name, key), []).append(model[key] - reference[key])
    intervals = result["intervals"]
    assert intervals["participants"] == 12 and intervals["unit"] == "participant"
    for key, values in expected.items():
        assert intervals["bootstrap"][key] == pytest.approx(percentiles(values, 0.95)), key
        assert intervals["defined_resamples"][key] == int(np.isfinite(values).sum()), key
    for (name, key), values in differences.items():
        diff = result["differences"][name][key]
        assert diff["ci"] == pytest.approx(percentiles(values, 0.95)), (name, key)
        base = table[f"baseline_{name}"].to_numpy()
        point = sklearn_classification(y, p, threshold, 10)[key]
        assert diff["value"] == pytest.approx(point - sklearn_classification(y, base, 0.5, 10)[key])
    # The point estimates sit at the chosen threshold, the 0.5 ones beside them.
    assert result["test"]["accuracy"] == pytest.approx(accuracy_score(y, p >= threshold))
    assert result["test_at_0.5"]["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))


def test_bootstrap_is_seeded_and_resamples_surgeons_not_trials() -> None:
    table = _table(12, 4)
    first = published_results("classification", table, 0.5, SETTINGS)["intervals"]
    again = published_results("classification", table, 0.5, SETTINGS)["intervals"]
    other = published_results("classification", table, 0.5, EvalConfig(bootstrap=300, seed=8))
    assert first == again
    assert first["bootstrap"] != other["intervals"]["bootstrap"]
    # Identical trials within each surgeon: a trial-level bootstrap would see 24 independent
    # units, the surgeon-level one sees 12, so its interval is wider.
    twins = table.copy()
    twins.iloc[1::2, 2:] = twins.iloc[::2, 2:].to_numpy()
    by_surgeon = published_results("classification", twins, 0.5, SETTINGS)["intervals"]
    by_trial = published_results(
        "classification", twins.assign(participant=twins["trial"]), 0.5, SETTINGS
    )["intervals"]
    width = {k: v["bootstrap"]["accuracy"][1] - v["bootstrap"]["accuracy"][0]
             for k, v in (("surgeon", by_surgeon), ("trial", by_trial))}  # fmt: skip
    assert width["surgeon"] > width["trial"]


def test_exact_intervals_match_the_beta_and_wilson_formulas() -> None:
    table = _table(10, 5)
    threshold = 0.5
    result = published_results("classification", table, threshold, SETTINGS)
    y = table["label"].to_numpy().astype(int)
    pred = table["probability"].to_numpy() >= threshold
    counts = {
        "accuracy": ((pred == y).sum(), len(y)),
        "sensitivity": ((pred & (y == 1)).sum(), (y == 1).sum()),
        "specificity": ((~pred & (y == 0)).sum(), (y == 0).sum()),
    }
    z = norm.ppf(0.975)
    for name, (k, n) in counts.items():
        exact = result["intervals"]["exact"][name]
        assert (exact["k"], exact["n"]) == (k, n)
        low = beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
        high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        assert exact["clopper_pearson"] == pytest.approx([low, high])
        phat = k / n
        centre = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * math.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2))
        assert exact["wilson"] == pytest.approx([centre - half, centre + half])


def test_regression_intervals_match_sklearn_on_each_resample() -> None:
    table = _table(15, 6, task="regression")
    result = published_results("regression", table, None, SETTINGS)
    y, pred = table["label"].to_numpy(), table["predicted"].to_numpy()
    expected: dict[str, list[float]] = {"rmse": [], "mae": [], "r2": []}
    for rows in resamples(table["participant"], SETTINGS.bootstrap, SETTINGS.seed):
        expected["rmse"].append(root_mean_squared_error(y[rows], pred[rows]))
        expected["mae"].append(mean_absolute_error(y[rows], pred[rows]))
        expected["r2"].append(r2_score(y[rows], pred[rows]))
    for key, values in expected.items():
        assert result["intervals"]["bootstrap"][key] == pytest.approx(percentiles(values, 0.95))
    assert result["test"]["rmse"] == pytest.approx(root_mean_squared_error(y, pred))
    assert "test_at_0.5" not in result and "exact" not in result["intervals"]
    assert set(result["differences"]["trial_length"]) == {"rmse", "mae"}


def test_results_are_formatted_with_their_intervals() -> None:
    table = _table(10, 7)
    result = published_results("classification", table, 0.45, SETTINGS)
    result.update(task="classification", threshold={"rule": "val_youden", "value": 0.45})
    text = format_results(result)
    low, high = result["intervals"]["bootstrap"]["auroc"]
    assert "auroc" in text and f"[{low:.4f}, {high:.4f}]" in text
    assert "threshold 0.4500 (val_youden)" in text and "model - trial_length auroc" in text
