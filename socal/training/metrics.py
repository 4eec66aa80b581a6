"""Test metrics computed from predictions with scikit-learn, and the baselines beside them.

Baselines run on the same test trials as the model: the majority class (a constant probability,
the training prevalence; the training mean for regression), and trial length alone, a
one-feature fit on the training trials. Every baseline outputs a probability, so it has an AUROC
and a Brier score, and is thresholded on validation like the model (socal.report.run_results).
On SOCAL the video stops at hemostasis, so length is a strong, uninteresting predictor: a model
that does not beat it has learned nothing about surgical skill. When the folder has the tool
annotations, ``tools`` fits the window's APMs (``socal.data.tools``): a model that does not beat
it has shown nothing beyond tool timing.

Length comes twice. ``trial_length`` fits the full length, which a clip drawn from the whole
trial can see (its stride) and which shows how much the outcome leaks. ``trial_length_window``
fits ``min(length, window end)``: all a model drawn from a window can learn about length is
whether the trial ended inside the window (the padding with its last frame). The verdict under
the table compares the model with the one that applies to the run, and names it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    RidgeCV,
)
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from socal.config import WindowConfig
from socal.data.index import Trial

# The metrics themselves live in socal.report (torch-free, shared with the report across runs).
from socal.report.metrics import (  # noqa: F401  (re-exported)
    classification_metrics,
    regression_metrics,
    task_metrics,
)
from socal.report.run_results import output_column

HEADLINE = {"classification": "accuracy", "regression": "rmse"}


def _length_fit(task: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray):
    """Outputs of a one-feature fit (logistic or linear) on the training trials."""
    x_train, x_test = x_train[:, None].astype(float), x_test[:, None].astype(float)
    if task == "regression":
        return LinearRegression().fit(x_train, y_train).predict(x_test)
    if len(np.unique(y_train)) < 2 or len(np.unique(x_train)) < 2:
        return np.full(len(x_test), float(np.mean(y_train)))  # nothing to fit on: the prevalence
    return LogisticRegression().fit(x_train, y_train.astype(int)).predict_proba(x_test)[:, 1]


# The tool baseline's regularisation grid (inverse strength for the logistic fit).
TOOL_CS = np.logspace(-3, 2, 11)
TOOL_ALPHAS = np.logspace(-2, 4, 13)
TOOL_FOLDS = 5


def tool_pipeline(task: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Pipeline:
    """The tool baseline, unfitted: APMs imputed (training median), standardised, then a
    logistic (classification) or ridge (regression) fit whose regularisation is chosen by
    cross-validation within the training trials, folds disjoint by surgeon."""
    folds = min(TOOL_FOLDS, len(np.unique(groups)))
    splitter = StratifiedGroupKFold(folds) if task == "classification" else GroupKFold(folds)
    cv = list(splitter.split(x, y, groups))
    fit = (
        LogisticRegressionCV(
            Cs=TOOL_CS,
            cv=cv,
            scoring="neg_log_loss",
            l1_ratios=(0,),
            use_legacy_attributes=False,
            max_iter=5000,
        )
        if task == "classification"
        else RidgeCV(alphas=TOOL_ALPHAS, cv=cv)
    )
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), fit)


def _tool_fit(task: str, train: list[Trial], test: list[Trial], apms: pd.DataFrame) -> np.ndarray:
    """Outputs of the tool baseline fitted on the training trials' APMs."""
    x_train = apms.loc[[t.trial_id for t in train]].to_numpy(float)
    x_test = apms.loc[[t.trial_id for t in test]].to_numpy(float)
    y = np.array([t.label for t in train])
    groups = np.array([t.participant for t in train])
    fittable = len(np.unique(groups)) >= 2
    fittable = fittable and (task != "classification" or _both_classes(y, groups))
    if not fittable:  # nothing to cross-validate on: the prevalence (or the mean)
        return np.full(len(test), float(np.mean(y)))
    pipeline = tool_pipeline(task, x_train, y, groups).fit(x_train, y)
    if task == "regression":
        return pipeline.predict(x_test)
    return pipeline.predict_proba(x_test)[:, 1]


def _both_classes(y: np.ndarray, groups: np.ndarray) -> bool:
    """Whether every cross-validation training part can hold both classes."""
    folds = min(TOOL_FOLDS, len(np.unique(groups)))
    return all(
        len(np.unique(y[part])) == 2
        for part, _ in StratifiedGroupKFold(folds).split(y[:, None], y, groups)
    )


def window_end(window: Optional[WindowConfig]) -> Optional[int]:
    """The last second a clip can see, exclusive; None when clips span the whole trial."""
    if window is None or window.length_s is None:
        return None
    return int(window.start_s + window.length_s)


def applicable_length_baseline(window: Optional[WindowConfig]) -> str:
    return "trial_length" if window_end(window) is None else "trial_length_window"


def predictions_table(
    trials: list[Trial],
    outputs: np.ndarray,
    labels: np.ndarray,
    task: str,
    threshold: Optional[float],
) -> pd.DataFrame:
    """The columns of predictions.csv that a run and ``predict.py`` write, one row per trial:
    ``prediction`` at ``threshold`` (classification) or the predicted value (None: regression)."""
    return pd.DataFrame(
        {
            "trial": [t.trial_id for t in trials],
            "participant": [t.participant for t in trials],
            "label": labels,
            output_column(task): outputs,
            "prediction": outputs if threshold is None else (outputs >= threshold).astype(int),
        }
    )


def baseline_outputs(
    task: str,
    train: list[Trial],
    test: list[Trial],
    window: Optional[WindowConfig] = None,
    apms: Optional[pd.DataFrame] = None,
) -> dict[str, np.ndarray]:
    """Each baseline's per-trial output on ``test`` (probability or value), fitted on train.

    ``trial_length_window`` uses ``min(length, window end)`` (the full length when clips span
    the whole trial); ``tools`` (with ``apms``, one row per trial) the window's APMs.
    """
    y_train = np.array([t.label for t in train])
    lengths = {name: np.array([t.n_frames for t in trials]) for name, trials in
               (("train", train), ("test", test))}  # fmt: skip
    end = window_end(window)
    seen = {k: v if end is None else np.minimum(v, end) for k, v in lengths.items()}
    outputs = {
        "majority": np.full(len(test), float(y_train.mean())),
        "trial_length": _length_fit(task, lengths["train"], y_train, lengths["test"]),
        "trial_length_window": _length_fit(task, seen["train"], y_train, seen["test"]),
    }
    if apms is not None:
        outputs["tools"] = _tool_fit(task, train, test, apms)
    return outputs


def baselines(
    task: str, train: list[Trial], test: list[Trial], window: Optional[WindowConfig] = None
) -> dict[str, dict]:
    """Majority-class (or mean) and both trial-length baselines, fitted on train, scored on test."""
    y_test = np.array([t.label for t in test])
    outputs = baseline_outputs(task, train, test, window)
    return {name: task_metrics(task, y_test, out) for name, out in outputs.items()}


def results_table(
    task: str,
    model: dict,
    reference: dict[str, dict],
    window: Optional[WindowConfig] = None,
    intervals: Optional[dict] = None,
) -> str:
    """The model's test metrics beside the baselines, with a verdict when the length baseline
    that applies to this run's clips (see the module docstring) wins.

    ``intervals`` (metric -> text such as ``[0.71, 0.93]``) adds a 95% CI column when given.
    """
    keys = [k for k, v in model.items() if not isinstance(v, list)]
    rows = {"model": model, **reference}
    width, column = max(len(k) for k in keys) + 2, max(14, *(len(n) + 2 for n in rows))
    ci = f"{'95% CI':>20}" if intervals else ""
    lines = [" " * width + f"{'model':>{column}}" + ci]
    lines[0] += "".join(f"{name:>{column}}" for name in reference)
    for key in keys:
        cells = [f"{row[key]:>{column}.4f}" for row in rows.values()]
        if intervals:
            cells.insert(1, f"{intervals.get(key, ''):>20}")
        lines.append(f"{key:<{width}}" + "".join(cells))
    headline = HEADLINE[task]
    better = (lambda a, b: a > b) if task == "classification" else (lambda a, b: a < b)
    applicable = applicable_length_baseline(window)
    if better(reference[applicable][headline], model[headline]):
        fitted, learned = (
            ("the full length", "how long the video is")
            if applicable == "trial_length"
            else (
                f"min(length, {window_end(window)} s), what this run's clips show",
                f"whether the video ends within {window_end(window)} s",
            )
        )
        lines.append(
            f"NOTE: trial length alone ({applicable}: {fitted}) beats the model on test "
            f"{headline}: the model has not shown it learned more than {learned}"
        )
    return "\n".join(lines)
