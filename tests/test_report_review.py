"""The statistical review's defects (issue 26), each shown on a case the old code got wrong,
and the paired tests checked against reference implementations (MLstatkit, statsmodels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from MLstatkit import Delong_test
from scipy.stats import beta
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from socal.config import EvalConfig
from socal.data.index import Trial
from socal.errors import UserError
from socal.report.aggregate import Group, summary
from socal.report.clustered import auroc_intervals, proportion_intervals
from socal.report.compare import delong_difference, mcnemar_exact
from socal.report.metrics import classification_metrics, youden_threshold
from socal.report.run_results import baseline_thresholds, format_results, published_results
from socal.report.runs import load_run, record_evaluation
from socal.training.metrics import baseline_outputs

from test_report import FOLDS, report, sweep, write_run

SETTINGS = EvalConfig(bootstrap=400, seed=3)

# The published test set's shape: 10 surgeons x 2 trials, 11 successes, 9 failures.
PUBLISHED = pd.DataFrame(
    {
        "trial": [f"S{200 + i // 2}T{i % 2 + 1}" for i in range(20)],
        "participant": [str(200 + i // 2) for i in range(20)],
        "label": [1.0] * 11 + [0.0] * 9,
    }
)


def _published(probability: np.ndarray) -> pd.DataFrame:
    return PUBLISHED.assign(probability=probability, baseline_majority=0.6)


def test_a_perfect_sensitivity_is_not_reported_as_the_interval_1_to_1() -> None:
    """Defect 1: 11/11 gave the bootstrap interval [1.000, 1.000]."""
    probability = np.r_[np.linspace(0.6, 0.9, 11), np.linspace(0.1, 0.7, 9)]
    result = published_results("classification", _published(probability), 0.5, SETTINGS)
    intervals = result["intervals"]
    assert result["test"]["sensitivity"] == 1.0
    assert "sensitivity" in intervals["degenerate"]  # the bootstrap's [1, 1] is flagged ...
    clustered = intervals["clustered"]["sensitivity"]  # ... and an interval that holds is given
    assert clustered["design_effect"] == pytest.approx(1.0)  # every success found: no ICC
    assert clustered["clopper_pearson"] == pytest.approx([beta.ppf(0.025, 11, 1), 1.0])
    assert clustered["clopper_pearson"][0] == pytest.approx(0.715, abs=1e-3)
    text = format_results({**result, "task": "classification"})
    assert "degenerate" in text and "[1.0000, 1.0000]" not in text


def test_the_design_effect_widens_intervals_when_a_surgeons_trials_agree() -> None:
    groups = np.repeat(np.arange(10), 2)
    agreeing = np.repeat([1, 1, 0, 1, 1, 0, 1, 1, 1, 0], 2).astype(float)
    adjusted = proportion_intervals(agreeing, groups, 0.95)
    assert adjusted["icc"] == pytest.approx(1.0) and adjusted["effective_n"] == pytest.approx(10)
    naive = proportion_intervals(agreeing, np.arange(20), 0.95)
    assert naive["clopper_pearson"] == pytest.approx(
        [beta.ppf(0.025, 14, 7), beta.ppf(0.975, 15, 6)]
    )
    assert adjusted["clopper_pearson"][0] < naive["clopper_pearson"][0]


def test_delong_intervals_and_paired_tests_match_mlstatkit_and_statsmodels() -> None:
    rng = np.random.default_rng(5)
    for n in (20, 60):
        y = (rng.random(n) < 0.55).astype(int)
        a = np.round(0.3 * y + rng.normal(0.4, 0.25, n), 2)  # rounded: ties included
        b = np.round(0.2 * y + rng.normal(0.4, 0.25, n), 2)
        z, p, ci_a, _, auc_a, auc_b, _ = Delong_test(y, a, b)
        ours = delong_difference(y, a, b, None)
        assert ours["difference"] == pytest.approx(auc_a - auc_b, abs=1e-6)
        assert ours["p"] == pytest.approx(p, abs=1e-6)
        assert ours["difference"] / ours["se"] == pytest.approx(-z, abs=1e-6)
        interval = auroc_intervals(y, a, np.arange(n), 0.95)["delong"]["ci"]
        assert interval == pytest.approx(list(ci_a), abs=1e-6)
        right_a, right_b = (a >= 0.5) == y, (b >= 0.5) == y
        table = [
            [(right_a & right_b).sum(), (right_a & ~right_b).sum()],
            [(~right_a & right_b).sum(), (~right_a & ~right_b).sum()],
        ]
        reference = mcnemar(table, exact=True).pvalue
        assert mcnemar_exact(y, a >= 0.5, b >= 0.5)["p"] == pytest.approx(reference, abs=1e-6)
        assert roc_auc_score(y, a) == pytest.approx(auc_a, abs=1e-6)


def test_clustered_delong_is_wider_when_a_surgeons_two_trials_are_alike() -> None:
    rng = np.random.default_rng(2)
    skill = rng.normal(0, 1, 30)
    groups = np.repeat(np.arange(30), 2)
    y = (rng.random(60) < 0.5).astype(int)
    score = 0.8 * y + np.repeat(skill, 2) + rng.normal(0, 0.2, 60)
    intervals = auroc_intervals(y, score, groups, 0.95)
    assert intervals["clustered_delong"]["se"] > intervals["delong"]["se"]


def test_undefined_metrics_are_nan_and_left_out_of_the_mean_over_folds() -> None:
    """Defect 6: a fold without failures reported specificity 0.000 and it entered the mean."""
    only_successes = classification_metrics(np.ones(4), np.array([0.2, 0.6, 0.7, 0.9]))
    assert np.isnan(only_successes["specificity"]) and np.isnan(only_successes["auroc"])

    def run(specificity: float):
        metrics = {"test": {"specificity": specificity, "accuracy": 0.8}, "task": "classification"}
        return type("R", (), {"metrics": metrics})()

    stats = summary(Group({}, [run(0.5), run(0.7), run(float("nan"))]))
    assert stats["mean"]["specificity"] == pytest.approx(0.6)
    assert stats["defined"] == {"specificity": 2, "accuracy": 3}


def test_youden_ties_take_the_middle_and_the_lowest_cut_lies_below_every_score() -> None:
    """Defect 7: ties went to the highest threshold; the lowest cut sat on the lowest score."""
    # Cuts at 0.7 (above 0.5) and 0.35 (below 0.5) have the same J = 0.5.
    threshold, j = youden_threshold(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.2]))
    assert j == pytest.approx(0.5) and threshold == pytest.approx((0.7 + 0.35) / 2)
    threshold, _ = youden_threshold(np.array([0, 1, 1]), np.array([0.9, 0.6, 0.4]))
    assert threshold < 0.4


def test_the_majority_baseline_is_the_training_prevalence_and_baselines_use_validation_cuts() -> (
    None
):
    """Defect 5: the majority baseline was a hard 0/1 and every baseline was cut at 0.5."""
    train = [Trial(f"S{i}T1", str(i), float(i < 7), ()) for i in range(10)]
    test = [Trial(f"S{i}T1", str(i), 1.0, ()) for i in range(10, 13)]
    assert baseline_outputs("classification", train, test)["majority"] == pytest.approx([0.7] * 3)
    val = pd.DataFrame({"label": [0, 0, 1, 1], "baseline_majority": 0.7,
                        "baseline_trial_length": [0.1, 0.15, 0.2, 0.3]})  # fmt: skip
    cuts = baseline_thresholds("classification", EvalConfig(), val)
    assert cuts == {"majority": 0.5, "trial_length": pytest.approx(0.175)}
    table = _published(np.linspace(0.1, 0.9, 20)).assign(
        baseline_trial_length=np.r_[np.full(11, 0.3), np.full(9, 0.1)]
    )
    result = published_results("classification", table, 0.5, SETTINGS, cuts)
    assert result["baselines"]["trial_length"]["accuracy"] == 1.0  # 0.55 at 0.5
    assert result["differences"]["trial_length"]["accuracy"]["value"] == pytest.approx(
        result["test"]["accuracy"] - 1.0
    )


def test_a_missing_fold_is_named_and_ranked_after_complete_groups(tmp_path: Path) -> None:
    """Defect 3: a group lacking a fold was pooled silently and ranked with complete ones."""
    runs = sweep(tmp_path / "multirun")
    for folder in (runs / "0").iterdir():  # lr 1e-4 (the validation winner) loses fold 0
        folder.unlink()
    (runs / "0").rmdir()
    groups = report(tmp_path, runs)["groups"]
    assert [g["keys"]["optimizer.lr"] for g in groups] == [1e-3, 1e-4]
    assert groups[1]["coverage"]["missing_folds"] == [0]
    assert f"INCOMPLETE: folds [0] of {FOLDS} missing" in groups[1]["label"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert text.count("INCOMPLETE: folds [0]") >= 2  # the ranking and the group's own section


def test_a_null_best_val_and_mixed_monitors_are_one_line_refusals(tmp_path: Path) -> None:
    """Defect 8: a null best_val raised a traceback; different monitors were ranked together."""
    folder = write_run(tmp_path / "runs" / "a", 0, 1e-3)
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "best_val": None}))
    with pytest.raises(UserError, match="has no best_val"):
        load_run(folder, "a").monitor  # noqa: B018
    other = write_run(tmp_path / "mixed" / "b", 0, 1e-3)
    changed = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**changed, "best_val": {"val_loss": 0.4}}))
    write_run(tmp_path / "mixed" / "c", 1, 1e-3)
    with pytest.raises(SystemExit):
        report(tmp_path, tmp_path / "mixed")


def test_every_evaluation_of_the_test_split_is_kept_and_reported(tmp_path: Path) -> None:
    """Defect 4: re-evaluating (re-thresholding) overwrote metrics.json without a trace."""
    folder = write_run(tmp_path / "runs" / "0", 0, 1e-3)
    for value in (0.5, 0.3):
        threshold = {"rule": "fixed", "value": value}
        record_evaluation(folder, {"threshold": str(value)}, threshold, {"accuracy": 0.8})
    run = load_run(folder, "0")
    assert [e["threshold"]["value"] for e in run.evaluations] == [0.5, 0.3]
    report(tmp_path, tmp_path / "runs")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "the test split was evaluated 2 times" in text


def test_the_headline_auroc_is_the_mean_of_the_fold_aurocs(tmp_path: Path) -> None:
    """Defect 9: the pooled AUROC, across differently calibrated fold models, was the headline."""
    runs = sweep(tmp_path / "multirun", lrs=(1e-3,))
    [group] = report(tmp_path, runs)["groups"]
    aurocs = []
    for folder in sorted(runs.iterdir()):
        test = pd.read_csv(folder / "predictions.csv").query("subset == 'test'")
        aurocs.append(roc_auc_score(test["label"], test["probability"]))
    headline = group["pooled"]["fold_mean_auroc"]
    assert headline["value"] == pytest.approx(np.mean(aurocs)) and headline["folds"] == FOLDS
    assert headline["ci"][0] < headline["value"] < headline["ci"][1]
    assert "fold-mean auroc [95% CI]" in (tmp_path / "report" / "report.md").read_text()
