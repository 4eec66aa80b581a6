"""What a clinical prediction paper reports beyond discrimination (issue 26): calibration
intercept and slope, the isotonic calibration curve, the Brier skill score, PPV and NPV,
decision curves, blood-loss errors and agreement, the published-split comparison and the
TRIPOD+AI checklist. Each figure is recomputed with statsmodels, scipy, scikit-learn or by
hand on the same arrays.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from PIL import Image
from scipy.optimize import brentq, isotonic_regression
from scipy.stats import beta, linregress
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    median_absolute_error,
    precision_score,
    root_mean_squared_error,
)

from socal.config import EvalConfig
from socal.data.splits import PUBLISHED_TEST_PARTICIPANTS
from socal.report.metrics import isotonic_calibration, logistic_recalibration, logit
from socal.report.run_results import choose_threshold, format_results, published_results

from stats_support import percentiles, predictions_frame, resamples
from test_report import report

SETTINGS = EvalConfig(bootstrap=200, seed=3)
AUTHORS = "_to be written by the authors_"


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and overconfident probabilities (a slope below 1), not separable."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(float)
    p = 1 / (1 + np.exp(-(2.5 * (y - 0.4) + rng.normal(0, 2.0, n))))
    return y, p


def _table(participants: list[str], seed: int, task: str, prevalence: float) -> pd.DataFrame:
    """Two trials per surgeon with the model's output and the baselines' (majority: the
    training prevalence)."""
    rng = np.random.default_rng(seed)
    participant = np.repeat(participants, 2)
    n = len(participant)
    if task == "classification":
        label, output = _scores(n, seed)
    else:
        label = rng.gamma(2.0, 230.0, n)
        output = 0.7 * label + 120 + rng.normal(0, 150, n)
    length = label + rng.normal(0, 0.5, n)
    return predictions_frame(participant, label, output, task, prevalence, length)


def test_calibration_intercept_and_slope_match_statsmodels_logistic_recalibration() -> None:
    y, p = _scores(60, 0)
    ours = logistic_recalibration(y, p)
    z = logit(p)
    offset = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=z).fit()
    slope = sm.GLM(y, sm.add_constant(z), family=sm.families.Binomial()).fit()
    assert ours["calibration_intercept"] == pytest.approx(offset.params[0], abs=1e-6)
    assert ours["calibration_slope"] == pytest.approx(slope.params[1], abs=1e-6)
    assert ours["calibration_slope"] < 1  # the probabilities are too extreme
    # Probabilities shifted up by a constant on the logit scale: the intercept moves by it.
    shifted = logistic_recalibration(y, 1 / (1 + np.exp(-(z + 0.7))))
    assert shifted["calibration_intercept"] == pytest.approx(offset.params[0] - 0.7, abs=1e-6)
    # Separated classes: no maximum-likelihood slope exists; one class: nothing is defined.
    separated = logistic_recalibration([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9])
    assert math.isnan(separated["calibration_slope"])
    assert np.isfinite(separated["calibration_intercept"])
    assert all(math.isnan(v) for v in logistic_recalibration([1, 1], [0.3, 0.8]).values())


def test_calibration_and_brier_skill_intervals_match_statsmodels_on_each_resample() -> None:
    table = _table([f"{300 + i}" for i in range(12)], 6, "classification", prevalence=0.55)
    settings = EvalConfig(bootstrap=60, seed=1)
    result = published_results("classification", table, 0.5, settings)
    y, p = table["label"].to_numpy(), table["probability"].to_numpy()
    z = logit(p)
    expected: dict[str, list[float]] = {"calibration_intercept": [], "calibration_slope": []}
    expected["brier_skill"] = []
    binomial = sm.families.Binomial()
    for rows in resamples(table["participant"], settings.bootstrap, settings.seed):
        yr, zr, pr = y[rows], z[rows], p[rows]
        reference = brier_score_loss(yr, np.full(len(yr), 0.55))
        expected["brier_skill"].append(1 - brier_score_loss(yr, pr) / reference)
        if len(np.unique(yr)) < 2:
            continue
        offset = sm.GLM(yr, np.ones((len(yr), 1)), family=binomial, offset=zr).fit()
        expected["calibration_intercept"].append(offset.params[0])
        lows, highs = zr[yr == 0], zr[yr == 1]
        if lows.max() > highs.min() and highs.max() > lows.min():  # not separated
            expected["calibration_slope"].append(
                sm.GLM(yr, sm.add_constant(zr), family=binomial).fit().params[1]
            )
    bootstrap = result["intervals"]["bootstrap"]
    for key, values in expected.items():
        assert bootstrap[key] == pytest.approx(percentiles(values, 0.95), abs=1e-6), key
        assert result["intervals"]["defined_resamples"][key] == len(values), key


def test_the_calibration_curve_is_the_isotonic_regression_of_outcome_on_probability() -> None:
    curve = isotonic_calibration([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    assert [c["observed"] for c in curve] == pytest.approx([0, 0.5, 0.5, 1])  # by hand (PAV)
    y, p = _scores(50, 1)
    order = np.argsort(p)
    expected = isotonic_regression(y[order]).x
    curve = isotonic_calibration(y, p)
    assert [c["predicted"] for c in curve] == pytest.approx(p[order])
    assert [c["observed"] for c in curve] == pytest.approx(expected)


def test_brier_skill_ppv_and_npv_match_sklearn_with_their_intervals() -> None:
    table = _table([f"{300 + i}" for i in range(15)], 2, "classification", prevalence=0.62)
    result = published_results("classification", table, 0.5, SETTINGS)
    y, p = table["label"].to_numpy(), table["probability"].to_numpy()
    reference = brier_score_loss(y, np.full(len(y), 0.62))
    skill = result["calibration"]["brier_skill"]
    assert skill == pytest.approx(1 - brier_score_loss(y, p) / reference)
    assert result["prevalence"] == pytest.approx({"test": y.mean(), "train": 0.62})
    pred = (p >= 0.5).astype(int)
    assert result["test"]["ppv"] == pytest.approx(precision_score(y, pred))
    assert result["test"]["npv"] == pytest.approx(precision_score(1 - y, 1 - pred))
    for name, called in (("ppv", pred == 1), ("npv", pred == 0)):
        k, n = int((pred[called] == y[called]).sum()), int(called.sum())
        exact = result["intervals"]["exact"][name]
        assert (exact["k"], exact["n"]) == (k, n)
        low = beta.ppf(0.025, k, n - k + 1) if k else 0.0
        high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        assert exact["clopper_pearson"] == pytest.approx([low, high])
        assert result["intervals"]["clustered"][name]["n"] == n
    per_resample: dict[str, list[float]] = {"ppv": [], "npv": []}
    for rows in resamples(table["participant"], SETTINGS.bootstrap, SETTINGS.seed):
        for name, positive in (("ppv", 1), ("npv", 0)):
            score = precision_score(y[rows], pred[rows], pos_label=positive, zero_division=np.nan)
            per_resample[name].append(score)
    for name, values in per_resample.items():
        assert result["intervals"]["bootstrap"][name] == pytest.approx(percentiles(values, 0.95))
    # Pooled folds: each trial's reference is its own fold's training prevalence.
    table["baseline_majority"] = np.where(np.arange(len(table)) < 10, 0.5, 0.7)
    pooled = published_results("classification", table, 0.5, SETTINGS)["calibration"]
    reference = np.mean((table["baseline_majority"] - y) ** 2)
    assert pooled["brier_skill"] == pytest.approx(1 - brier_score_loss(y, p) / reference)
    text = format_results({**result, "task": "classification"})
    assert "PPV and NPV hold at the test prevalence of success" in text


def test_net_benefit_of_acting_on_predicted_failure_by_hand() -> None:
    table = _table([f"{300 + i}" for i in range(12)], 4, "classification", prevalence=0.6)
    curve = published_results("classification", table, 0.5, SETTINGS)["decision_curve"]
    failure = table["label"].to_numpy() == 0
    risk = 1 - table["probability"].to_numpy()
    n = len(failure)
    for i, t in enumerate(curve["thresholds"]):
        true_pos = sum(1 for f, r in zip(failure, risk, strict=True) if r >= t and f)
        false_pos = sum(1 for f, r in zip(failure, risk, strict=True) if r >= t and not f)
        weight = t / (1 - t)
        assert curve["model"][i] == pytest.approx(true_pos / n - false_pos / n * weight)
        rate = failure.mean()
        assert curve["treat_all"][i] == pytest.approx(rate - (1 - rate) * weight)
        assert curve["treat_none"][i] == 0
    assert curve["thresholds"][0] == 0.01 and curve["thresholds"][-1] == 0.99


def test_blood_loss_errors_slope_and_agreement_match_scipy_and_sklearn() -> None:
    table = _table([f"{300 + i}" for i in range(15)], 5, "regression", prevalence=400.0)
    table.loc[0, "predicted"] = -35.0  # counts as 0 on the log scale
    result = published_results("regression", table, None, SETTINGS)
    y, pred = table["label"].to_numpy(), table["predicted"].to_numpy()
    expected = {
        "median_ae": median_absolute_error(y, pred),
        "rmse_log1p": root_mean_squared_error(np.log1p(y), np.log1p(np.clip(pred, 0, None))),
        "calibration_slope": linregress(pred, y).slope,
    }
    assert {k: result["test"][k] for k in expected} == pytest.approx(expected)
    per_resample: dict[str, list[float]] = {k: [] for k in expected}
    for rows in resamples(table["participant"], SETTINGS.bootstrap, SETTINGS.seed):
        per_resample["median_ae"].append(median_absolute_error(y[rows], pred[rows]))
        per_resample["rmse_log1p"].append(
            root_mean_squared_error(np.log1p(y[rows]), np.log1p(np.clip(pred[rows], 0, None)))
        )
        per_resample["calibration_slope"].append(linregress(pred[rows], y[rows]).slope)
    for key, values in per_resample.items():
        assert result["intervals"]["bootstrap"][key] == pytest.approx(percentiles(values, 0.95))
    difference = pred - y
    sd = np.std(difference, ddof=1)
    bias = difference.mean()
    assert result["agreement"]["bias"] == pytest.approx(bias)
    assert result["agreement"]["limits"] == pytest.approx([bias - 1.96 * sd, bias + 1.96 * sd])
    assert "95% limits of agreement" in format_results({**result, "task": "regression"})


def published_run(
    folder: Path, task: str = "classification", drop: tuple[str, ...] = (), log: str = ""
) -> Path:
    """A split=published run folder: both trials of the 10 published surgeons in test (less
    ``drop``, trials the data check excluded), 20 other surgeons in train and validation."""
    others = [f"{700 + i}" for i in range(20)]
    test = _table(list(PUBLISHED_TEST_PARTICIPANTS), 0, task, prevalence=0.0)
    val = _table(others[:6], 1, task, prevalence=0.0)
    train = _table(others[6:], 2, task, prevalence=0.0)
    prevalence = float(train["label"].mean())
    scored = pd.concat([val.assign(subset="val"), test.assign(subset="test")], ignore_index=True)
    scored = scored[~scored["trial"].isin(drop)].assign(baseline_majority=prevalence)
    output = "probability" if task == "classification" else "predicted"
    labels, outputs = scored.query("subset == 'val'")["label"], scored.query("subset == 'val'")
    threshold = choose_threshold(task, SETTINGS, labels, outputs[output])
    value = threshold["value"] if threshold else None
    results = published_results(task, scored.query("subset == 'test'"), value, SETTINGS)
    monitor = "val_auroc" if task == "classification" else "val_rmse"
    metrics = {"task": task, "test": results.pop("test"), "best_val": {monitor: 0.7},
               "threshold": threshold, **results}  # fmt: skip
    config = {
        "data": {"target": "success" if task == "classification" else "blood_loss",
                 "normalization": "socal_release", "num_frames": 8,
                 "window": {"start_s": 0, "length_s": 60}},
        "model": {"family": "videomae", "source": "MCG-NJU/videomae-base"},
        "split": {"strategy": "published", "seed": 0},
        "trainer": {"seed": 0, "early_stopping": {"metric": monitor}},
    }  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    split = pd.concat([train.assign(subset="train"), scored], ignore_index=True)
    split[["trial", "participant", "label", "subset"]].to_csv(folder / "split.csv", index=False)
    scored.to_csv(folder / "predictions.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if log:
        (folder / "train.log").write_text(log)
    return folder


def test_the_published_comparison_is_refused_when_the_test_set_lost_trials(
    tmp_path: Path,
) -> None:
    complete = published_run(tmp_path / "complete" / "run")
    summary = report(tmp_path / "a", complete)
    [found] = summary["groups"][0]["published_comparison"]
    test = pd.read_csv(complete / "predictions.csv").query("subset == 'test'")
    metrics = json.loads((complete / "metrics.json").read_text())
    accuracy = accuracy_score(test["label"], test["probability"] >= metrics["threshold"]["value"])
    interval = metrics["intervals"]["clustered"]["accuracy"]["clopper_pearson"]
    figures = found["figures"]["accuracy"]
    assert (figures["run"], figures["published"]) == pytest.approx((accuracy, 0.85))
    assert figures["ci"] == pytest.approx(interval)
    text = (tmp_path / "a" / "report" / "report.md").read_text()
    assert "The published 20 test trials, beside Pangal et al." in text
    assert "| accuracy | 0.850 |" in text and "not compared with" not in text
    lost = published_run(tmp_path / "lost" / "run", drop=("S203T1", "S616T2"))
    summary = report(tmp_path / "b", lost)
    [refused] = summary["groups"][0]["published_comparison"]
    assert "figures" not in refused
    text = (tmp_path / "b" / "report" / "report.md").read_text()
    [line] = [line for line in text.splitlines() if "not compared with" in line]
    assert "18 of the 20 published trials, missing S203T1, S616T2" in line
    assert "The published 20 test trials" not in text and "| accuracy | 0.850 |" not in text


def test_the_tripod_checklist_is_filled_from_the_run_folders(tmp_path: Path) -> None:
    log = (
        "[2026-12-01 10:00:00,000][socal.data.check][INFO] - data check: usable trials: 138 "
        "from 71 surgeons (91 success / 47 failure); frames per trial min 43 median 221 max 526\n"
        "[2026-12-01 10:00:00,001][socal.data.check][INFO] - data check: unreadable trials: 2 "
        "(S203T1, S616T2)\n[2026-12-01 10:00:01,000][socal.training.run][INFO] - split=published\n"
    )
    run = published_run(tmp_path / "runs" / "run", drop=("S203T1", "S616T2"), log=log)
    report(tmp_path, run)
    text = (tmp_path / "report" / "report.md").read_text()
    section = text[text.index("## TRIPOD+AI checklist") :]
    assert "unreadable trials: 2 (S203T1, S616T2)" in section
    assert "usable trials: 138 from 71 surgeons" in section and "split=published\n" not in section
    assert "test trials included" in section  # socal_release's provenance
    assert "internal validation only (`split=published`" in section
    assert f"**Sample size**: {AUTHORS}" in section
    assert f"**External validation**: {AUTHORS}" in section
    assert "videomae (weights from MCG-NJU/videomae-base)" in section
    split = pd.read_csv(run / "split.csv")
    for subset, rows in split.groupby("subset"):
        successes = int(rows["label"].sum())
        row = (
            f"| {subset} | {len(rows)} | {rows['participant'].nunique()} | "
            f"{successes} success / {len(rows) - successes} failure |"
        )
        assert row in section, row
    for png in ("calibration.png", "decision_curve.png"):
        assert Image.open(tmp_path / "report" / "plots" / png).format == "PNG"
    assert "`plots/decision_curve.png`" in text


def test_a_blood_loss_report_has_the_new_errors_and_a_bland_altman_plot(tmp_path: Path) -> None:
    run = published_run(tmp_path / "runs" / "run", task="regression")
    summary = report(tmp_path, run)
    [found] = summary["groups"][0]["published_comparison"]
    assert set(found["figures"]) == {"rmse", "r2"}
    bootstrap = json.loads((run / "metrics.json").read_text())["intervals"]["bootstrap"]
    assert found["figures"]["rmse"]["ci"] == pytest.approx(bootstrap["rmse"])
    text = (tmp_path / "report" / "report.md").read_text()
    for name in ("median_ae", "rmse_log1p", "calibration_slope"):
        assert f"| {name} |" in text
    assert "Bland-Altman (predicted - actual): bias" in text
    assert Image.open(tmp_path / "report" / "plots" / "bland_altman_1.png").format == "PNG"


def test_the_calibration_intercept_of_confidently_wrong_predictions_is_found() -> None:
    """Newton's steps on the intercept overshot to NaN here, though the root exists."""
    labels, probs = np.array([1.0, 1, 1, 0]), np.array([1e-6, 1e-6, 1e-6, 0.5])
    offset = logit(probs)
    root = brentq(lambda a: float((labels - 1 / (1 + np.exp(-(a + offset)))).sum()), -100, 100)
    fitted = logistic_recalibration(labels, probs)["calibration_intercept"]
    assert fitted == pytest.approx(root, abs=1e-6)
