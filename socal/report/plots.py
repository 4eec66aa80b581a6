"""PNG figures of one run (from the files in its folder) and of a report across runs.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no display,
no global backend state, safe inside a training process or on a headless instance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

PLOTS_DIR = "plots"
DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def training_curves(history: pd.DataFrame, monitor: str, path: Path) -> Path:
    """Loss (train and validation), the early-stopping metric and the learning rate per epoch."""
    second = (
        monitor
        if monitor != "val_loss"
        else next((c for c in ("val_auroc", "val_rmse") if c in history), "val_loss")
    )
    fig = Figure(figsize=(10, 3.2))
    axes = fig.subplots(1, 3)
    for column in ("train_loss", "val_loss"):
        axes[0].plot(history["epoch"], history[column], marker=".", label=column)
    axes[0].legend()
    axes[1].plot(history["epoch"], history[second], marker=".", color="C2")
    axes[2].plot(history["epoch"], history["lr"], marker=".", color="C3")
    for ax, title in zip(axes, ("loss", second, "learning rate"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    return _save(fig, path)


def roc(test: pd.DataFrame, metrics: dict, path: Path) -> Path:
    """Test ROC curve, the model's operating points, and each baseline's point."""
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    fpr, tpr, _ = roc_curve(test["label"].astype(int), test["probability"])
    ax.plot(fpr, tpr, label=f"model (AUROC {metrics['test']['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    points = {f"model at {metrics['threshold']['value']:.2f}": metrics["test"]}
    points["model at 0.5"] = metrics.get("test_at_0.5", metrics["test"])
    points.update(metrics.get("baselines", {}))
    for (name, m), marker in zip(points.items(), "o^sDvP<>", strict=False):
        ax.plot(1 - m["specificity"], m["sensitivity"], marker, ms=8, label=name)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (test)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def reliability_diagram(calibration: dict, path: Path) -> Path:
    """Observed success rate against mean predicted probability per bin, with bin counts."""
    rows = pd.DataFrame(calibration["reliability"])
    used = rows[rows["count"] > 0]
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    ax.plot(used["mean_predicted"], used["observed"], "o-", label="model")
    for _, row in used.iterrows():
        ax.annotate(str(int(row["count"])), (row["mean_predicted"], row["observed"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    if calibration.get("curve"):
        _isotonic(ax, calibration["curve"], "isotonic (CORP)", "C1")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed rate")
    title = f"Brier {calibration['brier']:.3f}, ECE {calibration['ece']:.3f}"
    if "calibration_slope" in calibration:
        title += (
            f"\nintercept {calibration['calibration_intercept']:.2f}, "
            f"slope {calibration['calibration_slope']:.2f}"
        )
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _isotonic(ax, curve: list[dict], label: str, color: str) -> None:
    points = pd.DataFrame(curve)
    ax.step(points["predicted"], points["observed"], where="post", color=color, label=label)


def calibration_curves(curves: dict[str, list[dict]], path: Path) -> Path:
    """One isotonic calibration curve per group (socal.report.metrics.isotonic_calibration)."""
    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    for (name, curve), color in zip(curves.items(), (f"C{i}" for i in range(10)), strict=False):
        _isotonic(ax, curve, name, color)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted probability", ylabel="observed rate",
           title="calibration (isotonic, test)")  # fmt: skip
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def decision_curves(curves: dict[str, dict], path: Path) -> Path:
    """Net benefit against the risk threshold: each model, treat all and treat none.

    A treat-all line per distinct test set (the same trials share one)."""
    fig = Figure(figsize=(5.6, 4.4))
    ax = fig.subplots()
    first = next(iter(curves.values()))
    thresholds = first["thresholds"]
    treat_all = {tuple(c["treat_all"]): name for name, c in curves.items()}
    for i, (line, name) in enumerate(treat_all.items()):
        label = "treat all" if len(treat_all) == 1 else f"treat all ({name})"
        ax.plot(thresholds, line, color="grey", lw=1, ls=("--", ":", "-.")[i % 3], label=label)
    ax.plot(thresholds, first["treat_none"], color="black", lw=1, label="treat none")
    for name, curve in curves.items():
        ax.plot(thresholds, curve["model"], label=name)
    top = max(max(c["treat_all"][0], max(c["model"])) for c in curves.values())
    ax.set(xlim=(0, 1), ylim=(-0.1 * max(top, 0.1), 1.1 * max(top, 0.1)),
           xlabel=f"risk threshold (event: {first['event']})", ylabel="net benefit",
           title="decision curve (test)")  # fmt: skip
    ax.legend(loc="upper right", fontsize=7)
    return _save(fig, path)


def bland_altman(test: pd.DataFrame, agreement: dict, path: Path) -> Path:
    """Difference (predicted - actual) against the mean of the two, bias and 95% limits."""
    fig = Figure(figsize=(4.8, 4.0))
    ax = fig.subplots()
    ax.scatter((test["predicted"] + test["label"]) / 2, test["predicted"] - test["label"], s=18)
    ax.axhline(agreement["bias"], color="C1", label=f"bias {agreement['bias']:.0f}")
    for bound in agreement["limits"]:
        ax.axhline(bound, color="C1", ls="--")
    ax.axhline(0, color="grey", lw=0.8)
    low, high = agreement["limits"]
    ax.set(xlabel="mean of predicted and actual (mL)", ylabel="predicted - actual (mL)",
           title=f"Bland-Altman (test), limits [{low:.0f}, {high:.0f}]")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(matrix: list[list[int]], threshold: float, path: Path) -> Path:
    fig = Figure(figsize=(3.8, 3.4))
    ax = fig.subplots()
    ax.imshow(np.array(matrix), cmap="Blues")
    for (i, j), n in np.ndenumerate(np.array(matrix)):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["failure", "success"],
           yticklabels=["failure", "success"], xlabel="predicted", ylabel="actual")  # fmt: skip
    ax.set_title(f"test, threshold {threshold:.2f}")
    return _save(fig, path)


def predicted_vs_actual(test: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    ax.scatter(test["label"], test["predicted"], s=18)
    low = min(test["label"].min(), test["predicted"].min())
    high = max(test["label"].max(), test["predicted"].max())
    ax.plot([low, high], [low, high], color="grey", ls="--", label="identity")
    ax.set(xlabel="actual (mL)", ylabel="predicted (mL)", title="test predictions")
    ax.legend()
    return _save(fig, path)


def residuals(test: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(4.6, 4.0))
    ax = fig.subplots()
    ax.scatter(test["predicted"], test["predicted"] - test["label"], s=18)
    ax.axhline(0, color="grey", ls="--")
    ax.set(xlabel="predicted (mL)", ylabel="predicted - actual (mL)", title="residuals (test)")
    return _save(fig, path)


def run_plots(run_dir: Path) -> list[Path]:
    """Every figure of one run, from its history.csv, predictions.csv and metrics.json."""
    out = run_dir / PLOTS_DIR
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test = predictions[predictions["subset"] == "test"]
    paths = []
    history = run_dir / "history.csv"
    if history.exists():
        monitor = next(iter(metrics["best_val"]))
        paths.append(training_curves(pd.read_csv(history), monitor, out / "training_curves.png"))
    if metrics["task"] == "classification":
        if test["label"].nunique() == 2:
            paths.append(roc(test, metrics, out / "roc.png"))
        paths.append(reliability_diagram(metrics["calibration"], out / "reliability.png"))
        threshold = metrics["threshold"]["value"]
        paths.append(
            confusion(metrics["test"]["confusion_matrix"], threshold, out / "confusion_matrix.png")
        )
        if "decision_curve" in metrics:
            curves = {"model": metrics["decision_curve"]}
            paths.append(decision_curves(curves, out / "decision_curve.png"))
    else:
        paths.append(predicted_vs_actual(test, out / "predicted_vs_actual.png"))
        paths.append(residuals(test, out / "residuals.png"))
        if "agreement" in metrics:
            paths.append(bland_altman(test, metrics["agreement"], out / "bland_altman.png"))
    return paths


def metric_vs_value(
    table: pd.DataFrame, key: str, metric: str, others: list[str], path: Path
) -> Path:
    """A group-level metric (mean +- sd over runs) against one swept key's values.

    One line per combination of the other swept keys.
    """
    fig = Figure(figsize=(5.4, 3.8))
    ax = fig.subplots()
    numeric = pd.api.types.is_numeric_dtype(table[key])
    categories = {v: i for i, v in enumerate(sorted(table[key].astype(str).unique()))}
    series = table.groupby(others, dropna=False, sort=False) if others else [((), table)]
    for label, rows in series:
        rows = rows.sort_values(key)
        x = rows[key] if numeric else rows[key].astype(str).map(categories)
        name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True))
        ax.errorbar(x, rows[f"{metric}_mean"], yerr=rows[f"{metric}_sd"].fillna(0), fmt="o-",
                    capsize=4, label=name or None)  # fmt: skip
    if not numeric:
        ax.set_xticks(list(categories.values()), list(categories), rotation=20)
    elif table[key].gt(0).all() and table[key].max() / table[key].min() >= 100:
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel=f"test {metric} (mean ± sd over runs)")
    if others:
        ax.legend(fontsize=7)
    return _save(fig, path)


def pooled_roc(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """One ROC curve per group, from the pooled out-of-fold test predictions."""
    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.subplots()
    for name, pooled in curves.items():
        fpr, tpr, _ = roc_curve(pooled["label"].astype(int), pooled["probability"])
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="pooled out-of-fold ROC")
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)
