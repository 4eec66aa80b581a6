"""Figures of explanations (``socal.explain``), from the files it writes; torch-free.

A trial's figure: its clip as a strip of frames (the top seconds outlined), each top second with
its occlusion and gradient maps over the frame, and the attribution curve over the window. The
summary: the mean attribution per second by outcome and by whether the prediction was right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from socal.report.plots import _save

STRIP = 16  # frames shown in a trial's strip at most


def _image(frame: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` uint8 -> ``(H, W, C)`` for imshow."""
    return np.transpose(frame, (1, 2, 0))


def trial_figure(npz: Path, info: dict[str, Any], path: Path) -> Path:
    """One trial's explanation (``info``: its row of trials.csv)."""
    data = np.load(npz)
    frames, positions, top = data["frames"], data["positions"], list(data["top"])
    shown = np.unique(np.linspace(0, len(frames) - 1, min(STRIP, len(frames))).round().astype(int))
    # One colour scale per kind of map over the trial's top seconds: a second whose map is
    # noise looks like noise next to one that matters (occlusion is signed, gradients are not).
    maps: list[tuple[str, Any, Any, tuple[Any, Any]]] = []
    for name, stack, cmap, signed in (
        ("occlusion", data["occlusion"], "coolwarm", True),
        (str(data["method"]), data["gradient"], "inferno", False),
    ):
        if len(stack):
            peak = float(np.abs(stack).max()) or 1.0
            maps.append((name, stack, cmap, (-peak if signed else 0.0, peak)))
    fig = Figure(figsize=(max(8.0, 0.8 * len(shown)), 2.2 + 2.2 * max(len(top), 1)))
    grid = fig.add_gridspec(2 + len(top), max(len(shown), 2 * (1 + len(maps))))
    for column, i in enumerate(shown):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(_image(frames[i]))
        ax.set_title(f"{positions[i]} s", fontsize=7, color="C3" if positions[i] in top else "k")
        ax.axis("off")
    for row, second in enumerate(top, start=1):
        frame = _image(frames[int(np.flatnonzero(positions == second)[0])])
        panels = [(f"{second} s", None, None, (None, None)), *maps]
        for column, (name, stack, cmap, (low, high)) in enumerate(panels):
            ax = fig.add_subplot(grid[row, 2 * column : 2 * column + 2])
            ax.imshow(frame)
            if stack is not None:
                ax.imshow(stack[row - 1], cmap=cmap, vmin=low, vmax=high, alpha=0.55)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    curve = fig.add_subplot(grid[-1, :])
    curve.bar(data["seconds"], data["attribution"], width=0.8, color="C0")
    for second in top:
        curve.axvline(second, color="C3", lw=0.8, ls="--")
    curve.set_xlabel("second of the trial")
    curve.set_ylabel("output change when removed")
    output = info.get("probability", info.get("predicted"))
    fig.suptitle(f"{info['trial']}: output {output:.3f}, label {info['label']}", fontsize=10)
    return _save(fig, path)


BINS = 10  # a whole-trial explanation is summarised by tenths of each trial's length


def mean_by_second(temporal: pd.DataFrame, trials: pd.DataFrame) -> pd.Series:
    """The mean attribution per second over ``trials`` (rows of trials.csv; a trial without
    that second counts 0). Whole-trial clips (``window`` "whole trial") have their seconds at
    fractions of each trial's length: then the summed attribution per tenth of the trial."""
    ids = trials["trial"].tolist()
    chosen = temporal[temporal["trial"].isin(ids)]
    column = "second"
    if whole_trial(trials):
        lengths = trials.set_index("trial")["n_frames"]
        fraction = chosen["second"] / chosen["trial"].map(lengths)
        chosen = chosen.assign(fraction=(np.floor(fraction * BINS).clip(0, BINS - 1) + 0.5) / BINS)
        column = "fraction"
    table = chosen.pivot_table(index="trial", columns=column, values="attribution", aggfunc="sum")
    return table.reindex(ids).fillna(0.0).mean()


def whole_trial(trials: pd.DataFrame) -> bool:
    return "window" in trials and bool((trials["window"] == "whole trial").all())


def _position_label(trials: pd.DataFrame) -> str:
    return "fraction of the trial" if whole_trial(trials) else "second of the trial"


def summary_figure(temporal: pd.DataFrame, trials: pd.DataFrame, path: Path) -> Path:
    """Mean attribution per second: successes vs failures, and right vs wrong predictions."""
    fig = Figure(figsize=(10, 3.2))
    axes = fig.subplots(1, 2)
    labelled = trials[trials["label"].notna()]
    groups = [
        (
            axes[0],
            "by outcome",
            {"success": labelled["label"] == 1, "failure": labelled["label"] == 0},
        ),
    ]
    if "probability" in trials:
        right = labelled["prediction"] == labelled["label"]
        groups.append((axes[1], "by prediction", {"right": right, "wrong": ~right}))
    for ax, title, masks in groups:
        for name, mask in masks.items():
            chosen = labelled[mask]
            if len(chosen):
                series = mean_by_second(temporal, chosen)
                ax.plot(
                    series.index, series.to_numpy(), marker=".", label=f"{name} ({len(chosen)})"
                )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"mean attribution, {title}")
        ax.set_xlabel(_position_label(trials))
        ax.legend()
    if len(groups) == 1:
        axes[1].axis("off")
    return _save(fig, path)


def read_explanations(folders: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The temporal and trials tables of the run folders' ``explanations/``, concatenated, each
    trial named ``<run folder>/<trial>`` (seeds or ``split=published`` runs explain the same
    trial several times: each explanation counts once); None when no run has any."""
    found = [f / "explanations" for f in folders if (f / "explanations" / "trials.csv").is_file()]
    if not found:
        return None
    tables = []
    for name in ("temporal.csv", "trials.csv"):
        parts = []
        for folder in found:
            part = pd.read_csv(folder / name)
            parts.append(part.assign(trial=f"{folder.parent}/" + part["trial"].astype(str)))
        tables.append(pd.concat(parts, ignore_index=True))
    return tables[0], tables[1]


def groups_figure(explained: dict[str, tuple[pd.DataFrame, pd.DataFrame]], path: Path) -> Path:
    """One panel per group: the mean attribution per second of its explained successes and
    failures, over all of its runs."""
    columns = min(len(explained), 3)
    rows = -(-len(explained) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, (label, (temporal, trials)) in zip(axes, explained.items(), strict=False):
        for name, value in (("success", 1), ("failure", 0)):
            chosen = trials[trials["label"] == value]
            if len(chosen):
                series = mean_by_second(temporal, chosen)
                ax.plot(
                    series.index, series.to_numpy(), marker=".", label=f"{name} ({len(chosen)})"
                )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(_position_label(trials))
        ax.legend(fontsize=8)
    for ax in axes[len(explained) :]:
        ax.axis("off")
    return _save(fig, path)
