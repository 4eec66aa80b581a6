"""SOCAL's tool annotations (``socal.csv``): per-second tool tracks and the authors' APMs.

The file is RetinaNet's CSV: no header, one row per box, ``frame,x1,y1,x2,y2,class`` in the
frame's own pixels; a frame with no tool is one row with the other fields empty (or ``NA``).
It is read with the tolerance of the other CSVs (``socal.data.tables``): a BOM, ``\\r\\n``,
spaces, identical rows kept once. Frame names (a path prefix is ignored) are mapped to a trial
and a second through the frame order of the index (``frame_to_trial_mapping.csv``, a/b videos
included). Boxes are clipped to the frame; one that lies wholly outside it is dropped. Classes
outside ``data.tool_classes`` are kept and counted, and reach neither the tracks nor the model.

Everything here is computed inside the clip window (``data.window``), so nothing after it
reaches the tracks, the APMs or the model. A frame the file does not name is "not annotated":
it counts in no APM denominator and gives the model an all-zero presence vector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from socal.config import TOOL_CLASSES, WindowConfig
from socal.data.index import Trial, frame_problem, ordered_frames
from socal.data.tables import NA_VALUES
from socal.errors import UserError

log = logging.getLogger(__name__)

TOOLS_CSV = "socal.csv"
BOX_COLUMNS = ["frame", "x1", "y1", "x2", "y2", "class"]
COORDINATES = ["x1", "y1", "x2", "y2"]
MOST_TOOLS = 4  # "4+ tools in view"


@dataclass
class ToolReport:
    """What reading ``socal.csv`` found, for the data check."""

    rows: int = 0
    repeated_rows: int = 0
    frames: int = 0  # annotated frames of usable trials
    trials: int = 0
    trials_total: int = 0
    frames_total: int = 0
    unmatched_frames: list[str] = field(default_factory=list)  # names no usable trial has
    bad_rows: int = 0  # a class without four numbers
    clipped_boxes: int = 0
    outside_boxes: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)

    def lines(self, classes: Sequence[str]) -> list[str]:
        """The coverage line, the boxes per class, then one line per problem."""
        known = {c: self.boxes_per_class.get(c, 0) for c in classes}
        other = {c: n for c, n in self.boxes_per_class.items() if c not in classes}
        out = [
            f"tool annotations ({TOOLS_CSV}): {self.trials}/{self.trials_total} trials, "
            f"{self.frames}/{self.frames_total} frames annotated",
            "tool boxes: " + ", ".join(f"{c} {n}" for c, n in known.items()),
        ]
        if other:
            out.append(
                "tool boxes of classes outside data.tool_classes (kept, not used): "
                + ", ".join(f"{c} {n}" for c, n in sorted(other.items()))
            )
        problems = {
            "repeated rows (kept once)": self.repeated_rows,
            "rows with a class but no four coordinates (ignored)": self.bad_rows,
            "boxes clipped to the frame": self.clipped_boxes,
            "boxes wholly outside the frame (dropped)": self.outside_boxes,
        }
        out += [f"tool annotations: {name}: {n}" for name, n in problems.items() if n]
        if self.unmatched_frames:
            shown = ", ".join(self.unmatched_frames[:5])
            more = ", ..." if len(self.unmatched_frames) > 5 else ""
            out.append(
                f"tool annotations of frames no usable trial has: "
                f"{len(self.unmatched_frames)} ({shown}{more})"
            )
        return out


@dataclass
class ToolAnnotations:
    """Boxes by trial and second (``cx``, ``cy``, ``area`` as fractions of the frame) and the
    annotated frames (``trial_id``, ``second``), with what reading found."""

    boxes: pd.DataFrame
    frames: pd.DataFrame
    report: ToolReport


def frame_seconds(trials: Sequence[Trial], root: Path) -> pd.DataFrame:
    """``frame`` (file name), ``trial_id``, ``second`` of every frame of ``trials``, from the
    folder's frame order (the index's: a trial's frames are one per second, in order)."""
    order = ordered_frames(root)
    order = order[order["trial_id"].isin({t.trial_id for t in trials})]
    return pd.DataFrame(
        {
            "frame": [Path(p).name for p in order["path"]],
            "trial_id": order["trial_id"].to_numpy(),
            "second": order.groupby("trial_id").cumcount().to_numpy(),
        }
    )


def frame_sizes(trials: Sequence[Trial]) -> dict[str, tuple[int, int]]:
    """Each trial's (width, height), from its first frame's header (boxes are in its pixels;
    a trial of mixed sizes is reported by the data check)."""
    sizes = {}
    for trial in trials:
        size = frame_problem(trial.frames[0]).size
        if size is None:
            raise UserError(f"{trial.frames[0]}: cannot read the frame size for its tool boxes")
        sizes[trial.trial_id] = size
    return sizes


def read_boxes(path: Path) -> tuple[pd.DataFrame, int]:
    """``socal.csv`` as a table (frame name, four numbers, class) and how many identical rows
    were dropped."""
    try:
        table = pd.read_csv(
            path,
            header=None,
            names=BOX_COLUMNS,
            usecols=range(len(BOX_COLUMNS)),
            encoding="utf-8-sig",
            dtype=str,
            na_values=NA_VALUES,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except (ValueError, pd.errors.ParserError) as err:
        first = str(err).splitlines()[0]
        raise UserError(f"{path}: not a frame,x1,y1,x2,y2,class CSV ({first})") from err
    for name in ("frame", "class"):
        table[name] = table[name].str.strip().replace(list(NA_VALUES), pd.NA)
    table["class"] = table["class"].str.lower()
    names = table["frame"]
    table["frame"] = [None if pd.isna(f) else Path(f.replace("\\", "/")).name for f in names]
    for name in COORDINATES:
        table[name] = pd.to_numeric(table[name].str.strip(), errors="coerce")
    table = table.dropna(subset=["frame"])
    repeated = table.duplicated()
    return table[~repeated].reset_index(drop=True), int(repeated.sum())


def read_tools(
    path: Path, seconds: pd.DataFrame, sizes: dict[str, tuple[int, int]]
) -> ToolAnnotations:
    """The annotations in ``path`` of the frames in ``seconds`` (see ``frame_seconds``), boxes
    normalised by each trial's frame size."""
    table, repeated = read_boxes(path)
    report = ToolReport(rows=len(table) + repeated, repeated_rows=repeated)
    report.trials_total = seconds["trial_id"].nunique()
    report.frames_total = len(seconds)
    known = set(seconds["frame"])
    report.unmatched_frames = sorted(set(table["frame"]) - known)
    table = table.merge(seconds, on="frame", how="inner")
    has_class = table["class"].notna()
    complete = table[COORDINATES].notna().all(axis=1)
    report.bad_rows = int((has_class & ~complete).sum())
    frames = table[["trial_id", "second"]].drop_duplicates().reset_index(drop=True)
    report.frames, report.trials = len(frames), frames["trial_id"].nunique()
    boxes = table[has_class & complete].reset_index(drop=True)
    width = boxes["trial_id"].map(lambda t: sizes[t][0]).to_numpy(float)
    height = boxes["trial_id"].map(lambda t: sizes[t][1]).to_numpy(float)
    x = np.sort(boxes[["x1", "x2"]].to_numpy(float), axis=1)
    y = np.sort(boxes[["y1", "y2"]].to_numpy(float), axis=1)
    cx, cy = np.clip(x, 0, width[:, None]), np.clip(y, 0, height[:, None])
    moved = (cx != x).any(axis=1) | (cy != y).any(axis=1)
    area = (cx[:, 1] - cx[:, 0]) * (cy[:, 1] - cy[:, 0]) / (width * height)
    inside = area > 0
    report.outside_boxes = int((~inside).sum())
    report.clipped_boxes = int((moved & inside).sum())
    boxes = pd.DataFrame(
        {
            "trial_id": boxes["trial_id"],
            "second": boxes["second"],
            "class": boxes["class"],
            "cx": cx.mean(axis=1) / width,
            "cy": cy.mean(axis=1) / height,
            "area": area,
        }
    )[inside].reset_index(drop=True)
    report.boxes_per_class = boxes["class"].value_counts().sort_index().to_dict()
    return ToolAnnotations(boxes, frames, report)


def load_tools(root: Path, trials: Sequence[Trial]) -> Optional[ToolAnnotations]:
    """``root``'s ``socal.csv`` for ``trials``, or None when the folder has none."""
    path = Path(root) / TOOLS_CSV
    if not path.is_file():
        return None
    return read_tools(path, frame_seconds(trials, Path(root)), frame_sizes(trials))


def window_span(trial: Trial, window: WindowConfig) -> tuple[int, int, int]:
    """(first second, end of the seconds the trial has inside the window, window length)."""
    start = int(window.start_s)
    length = trial.n_frames - start if window.length_s is None else int(window.length_s)
    return start, min(trial.n_frames, start + length), max(length, 0)


@dataclass
class ToolFeatures:
    """The tool inputs of a run's trials, all inside the window.

    ``tracks``: one row per trial and second (``annotated``, ``tools`` in view, and per class
    ``present``, ``count``, centre ``x``/``y`` and ``area``); ``apms``: one row per trial;
    ``presence``: per trial, a (seconds, classes) array indexed by the trial's own second.
    """

    classes: tuple[str, ...]
    tracks: pd.DataFrame
    apms: pd.DataFrame
    presence: dict[str, np.ndarray]


def tool_features(
    annotations: ToolAnnotations,
    trials: Sequence[Trial],
    window: WindowConfig,
    classes: Sequence[str] = TOOL_CLASSES,
) -> ToolFeatures:
    """Tracks, APMs and presence vectors of ``trials`` from the boxes inside the window."""
    classes = tuple(classes)
    spans = {t.trial_id: window_span(t, window) for t in trials}
    grid = pd.DataFrame(
        [(t, s) for t, (start, end, _) in spans.items() for s in range(start, end)],
        columns=["trial_id", "second"],
    )
    annotated = annotations.frames.assign(annotated=1)
    grid = grid.merge(annotated, on=["trial_id", "second"], how="left").fillna({"annotated": 0})
    grid["annotated"] = grid["annotated"].astype(int)
    boxes = annotations.boxes.merge(grid[["trial_id", "second"]], on=["trial_id", "second"])
    boxes = boxes[boxes["class"].isin(classes)]
    per_class = boxes.groupby(["trial_id", "second", "class"]).agg(
        count=("area", "size"), x=("cx", "mean"), y=("cy", "mean"), area=("area", "sum")
    )
    wide = per_class.unstack("class")
    tracks = grid.set_index(["trial_id", "second"])
    tracks["tools"] = 0
    for name in classes:
        count = _column(wide, "count", name, tracks.index).fillna(0).astype(int)
        tracks[f"{name}_present"] = (count > 0).astype(int)
        tracks[f"{name}_count"] = count
        tracks[f"{name}_x"] = _column(wide, "x", name, tracks.index)
        tracks[f"{name}_y"] = _column(wide, "y", name, tracks.index)
        tracks[f"{name}_area"] = _column(wide, "area", name, tracks.index).fillna(0.0)
        tracks["tools"] += count
    tracks = tracks.reset_index()
    apms = pd.DataFrame(
        [
            _apms(tracks[tracks["trial_id"] == t], boxes[boxes["trial_id"] == t], classes, spans[t])
            for t in spans
        ],  # fmt: skip
        index=pd.Index(list(spans), name="trial_id"),
    )
    presence = {}
    for trial_id, (_, end, _) in spans.items():
        rows = tracks[tracks["trial_id"] == trial_id]
        vector = np.zeros((max(end, 1), len(classes)), np.float32)
        present = rows[[f"{c}_present" for c in classes]].to_numpy(np.float32)
        vector[rows["second"].to_numpy()] = present
        presence[trial_id] = vector
    return ToolFeatures(classes, tracks, apms, presence)


def _column(wide: pd.DataFrame, stat: str, name: str, index: pd.Index) -> pd.Series:
    if (stat, name) not in wide.columns:
        return pd.Series(np.nan, index=index)
    return wide[(stat, name)].reindex(index)


def apm_names(classes: Sequence[str]) -> list[str]:
    """The APM columns, in ``apms.csv``'s order."""
    names = [f"proportion_{c}" for c in classes]
    names += [f"frames_{k}_tools" for k in range(MOST_TOOLS)] + [f"frames_{MOST_TOOLS}plus_tools"]
    names += [f"first_second_{c}" for c in classes]
    names += [f"in_and_outs_{c}" for c in classes] + ["in_and_outs_total"]
    names += [f"area_{c}" for c in classes]
    names += [f"sd_{axis}_{c}" for c in classes for axis in ("x", "y")]
    return names


def _apms(
    tracks: pd.DataFrame,
    boxes: pd.DataFrame,
    classes: tuple[str, ...],
    span: tuple[int, int, int],
) -> dict[str, float]:
    """One trial's APMs over its window (NaN when none of its window's frames is annotated)."""
    start, _, length = span
    seen = tracks[tracks["annotated"] == 1]
    n = len(seen)
    if n == 0:
        return dict.fromkeys(apm_names(classes), np.nan)
    out: dict[str, float] = {}
    for c in classes:
        out[f"proportion_{c}"] = float(seen[f"{c}_present"].mean())
    tools = seen["tools"].to_numpy()
    for k in range(MOST_TOOLS):
        out[f"frames_{k}_tools"] = float(np.mean(tools == k))
    out[f"frames_{MOST_TOOLS}plus_tools"] = float(np.mean(tools >= MOST_TOOLS))
    for c in classes:
        present = tracks.loc[tracks[f"{c}_present"] == 1, "second"]
        out[f"first_second_{c}"] = float(present.min() - start) if len(present) else float(length)
    total = 0
    for c in classes:
        flags = np.concatenate([[0], tracks[f"{c}_present"].to_numpy()])
        runs = int(np.sum(np.diff(flags) == 1))
        out[f"in_and_outs_{c}"] = float(runs)
        total += runs
    out["in_and_outs_total"] = float(total)
    for c in classes:
        out[f"area_{c}"] = float(seen[f"{c}_area"].sum() / n)
    for c in classes:
        mine = boxes[boxes["class"] == c]
        for axis in ("x", "y"):
            values = mine[f"c{axis}"].to_numpy()
            out[f"sd_{axis}_{c}"] = float(values.std()) if len(values) else 0.0
    return {name: out[name] for name in apm_names(classes)}
