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


def mean_by_second(temporal: pd.DataFrame, trials: Sequence[str]) -> pd.Series:
    """The mean attribution per second over ``trials`` (a trial without a second counts 0)."""
    chosen = temporal[temporal["trial"].isin(trials)]
    table = chosen.pivot_table(index="trial", columns="second", values="attribution")
    return table.reindex(list(trials)).fillna(0.0).mean()


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
            ids = labelled.loc[mask, "trial"].tolist()
            if ids:
                series = mean_by_second(temporal, ids)
                ax.plot(series.index, series.to_numpy(), marker=".", label=f"{name} ({len(ids)})")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"mean attribution per second, {title}")
        ax.set_xlabel("second of the trial")
        ax.legend()
    if len(groups) == 1:
        axes[1].axis("off")
    return _save(fig, path)
