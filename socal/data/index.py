"""Index a SOCAL folder: which frames belong to which trial, in which order, with which outcome.

Trial membership and frame order come from ``frame_to_trial_mapping.csv`` when it exists (it is
authoritative: trials recorded as two videos, ``S808T1a`` and ``S808T1b``, map to ``S808T1``
there). Without it they come from file names, with the ``a``/``b`` suffix understood. Splitting
the file name on ``_`` would silently drop those trials.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import pandas as pd

from socal.data.jpeg import DecodeError, FrameProblem, decode_frame, has_end, read_header
from socal.data.tables import numeric_labels, read_table
from socal.errors import UserError

log = logging.getLogger(__name__)

OUTCOMES_CSV = "socal_trial_outcomes.csv"
MAPPING_CSV = "frame_to_trial_mapping.csv"
FRAMES_DIR = "JPEGImages"
FRAME_NAME = re.compile(
    r"^(?P<trial>S\d+T\d+)(?P<part>[ab]?)_frame_(?P<index>\d+)\.jpe?g$", re.IGNORECASE
)
PARTICIPANT = re.compile(r"^S(\d+)T\d+$")
HEAD_BYTES = 16 * 1024  # most headers fit; a long EXIF or ICC segment reads on
TAIL_BYTES = 4096  # the end marker lies in them, unless more than that follows it


@dataclass(frozen=True)
class Trial:
    trial_id: str
    participant: str
    label: float
    frames: tuple[Path, ...]

    @property
    def n_frames(self) -> int:
        return len(self.frames)


@dataclass
class DataReport:
    """Problems found while indexing, each a list of the trial ids (or files) concerned."""

    outcomes_without_frames: list[str] = field(default_factory=list)
    frames_without_outcome: list[str] = field(default_factory=list)
    bad_labels: list[str] = field(default_factory=list)
    duplicate_rows: list[str] = field(default_factory=list)
    duplicate_trial_ids: list[str] = field(default_factory=list)
    frame_gaps: list[str] = field(default_factory=list)
    missing_frame_files: list[str] = field(default_factory=list)
    unreadable_frame_files: list[str] = field(default_factory=list)
    not_jpeg_frames: list[str] = field(default_factory=list)
    truncated_frames: list[str] = field(default_factory=list)
    undecodable_frames: list[str] = field(default_factory=list)
    frames_decoded_with_warnings: list[str] = field(default_factory=list)  # used: "name (warning)"
    mixed_size_trials: list[str] = field(default_factory=list)
    unreadable_trials: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One ``name: count (examples)`` line per problem found."""
        out = []
        for name, items in vars(self).items():
            if items:
                shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
                out.append(f"{name.replace('_', ' ')}: {len(items)} ({shown})")
        return out


def read_outcomes(root: Path, target: str) -> tuple[pd.DataFrame, list[str]]:
    """The outcomes CSV (see ``socal.data.tables``) and the trial ids of rows it repeated
    identically (kept once); errors name the file and the fix."""
    path = root / OUTCOMES_CSV
    if not path.is_file():
        raise UserError(
            f"{path} not found: data.root must be a SOCAL folder holding {OUTCOMES_CSV} "
            f"and {FRAMES_DIR}/ (or use data=synthetic)"
        )
    # participant_id as text: the real CSV has ids like 314c next to 101.
    table, repeated = read_table(path, ("trial_id", "participant_id"))
    missing = [c for c in ("trial_id", target) if c not in table.columns]
    if missing:
        raise UserError(
            f"{path} lacks column(s) {', '.join(missing)}; it has {list(table.columns)}"
        )
    return table.dropna(subset=["trial_id"]), sorted(repeated["trial_id"].dropna())


def _frames_from_mapping(root: Path, frames_dir: Path) -> pd.DataFrame:
    path = root / MAPPING_CSV
    table, _ = read_table(path, ("frame", "trial_id"))
    missing = [c for c in ("frame", "trial_id", "frame_number") if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}; it has {list(table)}")
    table["frame_number"] = numeric_labels(table["frame_number"])
    table = table.dropna(subset=["frame", "trial_id", "frame_number"])
    table["path"] = [frames_dir / name for name in table["frame"]]
    table = table.sort_values(["trial_id", "frame_number"], kind="stable")
    step = table.groupby("trial_id")["frame_number"].diff().fillna(table["frame_number"])
    table["gap"] = step != 1
    return table[["trial_id", "path", "gap"]]


def _frames_from_names(frames_dir: Path) -> pd.DataFrame:
    rows = []
    for path in frames_dir.iterdir():
        match = FRAME_NAME.match(path.name)
        if match:
            rows.append((match["trial"], match["part"].lower(), int(match["index"]), path))
    table = pd.DataFrame(rows, columns=["trial_id", "part", "index", "path"])
    table = table.sort_values(["trial_id", "part", "index"], kind="stable")
    # A jump in the file index within one video (not across the a/b boundary) is a gap.
    table["gap"] = table.groupby(["trial_id", "part"])["index"].diff().fillna(1) != 1
    return table[["trial_id", "path", "gap"]]


def ordered_frames(root: Path) -> pd.DataFrame:
    """Every frame file of ``root`` by trial, in true order: ``trial_id``, ``path``, ``gap``
    (from the mapping CSV when there is one, else from the file names)."""
    frames_dir = root / FRAMES_DIR
    if (root / MAPPING_CSV).is_file():
        return _frames_from_mapping(root, frames_dir)
    return _frames_from_names(frames_dir)


@dataclass(frozen=True)
class FrameCheck:
    problem: Optional[str] = None  # the DataReport field naming what is wrong; None: usable
    size: Optional[tuple[int, int]] = None  # (width, height)
    warnings: tuple[str, ...] = ()  # what libjpeg will warn of, harmless (header junk)


def frame_problem(path: Path) -> FrameCheck:
    """What the file's structure says of a frame, without decoding it (``socal.data.jpeg``).

    Opens the file (following symlinks), so a missing file, a dangling symlink, a directory and
    a file this process may not read are told apart by what ``open`` raises, whoever runs it.
    Then the header is walked to the first scan, and an end marker must follow the scan: in
    the last 4 KiB (after the scan start), else anywhere after it, as when more follows the end
    (a second image, maker data). Damage inside a scan is found by decoding (``decode_frame``).
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(HEAD_BYTES)
            try:
                header = read_header(data)
            except FrameProblem as problem:
                if problem.kind != "truncated_frames" or len(data) >= size:
                    raise
                data += handle.read()
                header = read_header(data)
            tail_at = max(size - TAIL_BYTES, header.scan_start)
            handle.seek(tail_at)
            if handle.read().rfind(b"\xff\xd9") < 0:  # not near the end: search it all
                handle.seek(len(data))
                if not has_end(data + handle.read(), header.scan_start):
                    return FrameCheck("truncated_frames")
            junk = tuple(piece.message() for piece in header.junk)
            return FrameCheck(None, (header.width, header.height), junk)
    except FrameProblem as problem:
        return FrameCheck(problem.kind)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return FrameCheck("missing_frame_files")
    except OSError:  # permission denied, I/O error
        return FrameCheck("unreadable_frame_files")


def readable_frames(trial_id: str, paths: list[Path], report: DataReport) -> Optional[list]:
    """``paths`` with each bad frame replaced by its nearest good one (timing kept), every
    problem added to ``report``; None when no frame is usable (the trial is dropped).

    Besides each file's structure, the first structurally sound frames are decoded (at 1/8
    scale) until one decodes, so a kept trial always has a frame the loader can decode.
    """
    checks = [frame_problem(path) for path in paths]
    for path, check in zip(paths, checks, strict=True):
        if check.problem:
            getattr(report, check.problem).append(path.name)
    good = [check.problem is None for check in checks]
    for i, path in enumerate(paths):
        if good[i]:
            try:
                decoded = decode_frame(path, 1)
            except DecodeError:
                report.undecodable_frames.append(path.name)
                good[i] = False
                continue
            if decoded.warning and not checks[i].warnings:  # one the structure cannot tell
                checks[i] = replace(checks[i], warnings=(decoded.warning,))
            break
    for path, check in zip(paths, checks, strict=True):
        report.frames_decoded_with_warnings.extend(f"{path.name} ({w})" for w in check.warnings)
    sizes = {check.size for check, ok in zip(checks, good, strict=True) if ok}
    if not any(good):
        report.unreadable_trials.append(trial_id)
        return None
    if len(sizes) > 1:  # decoding resizes them to one size; said because it is unusual
        report.mixed_size_trials.append(trial_id)
    return [paths[nearest_good(good, i)] for i in range(len(paths))]


def nearest_good(good: list[bool], i: int) -> int:
    """Index of the readable frame nearest to position i (earlier one first on a tie)."""
    for distance in range(len(good)):
        for j in (i - distance, i + distance):
            if 0 <= j < len(good) and good[j]:
                return j
    raise ValueError("no readable frame")


def participant_of(trial_id: str) -> str:
    match = PARTICIPANT.match(trial_id)
    return match[1] if match else trial_id


def index_folder(
    root: Path, target: str = "success", labelled_only: bool = True
) -> tuple[list[Trial], DataReport]:
    """Trials that have both frames and a valid outcome, and a report of everything else.

    ``labelled_only=False`` (prediction on new trials): the outcomes CSV is optional and a trial
    without a valid outcome is kept with a NaN label.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root={root} is not a directory: point it at your SOCAL folder")
    frames_dir = root / FRAMES_DIR
    if not frames_dir.is_dir():
        raise UserError(f"{frames_dir} not found: data.root must be a SOCAL folder")
    if labelled_only or (root / OUTCOMES_CSV).is_file():
        outcomes, repeated_rows = read_outcomes(root, target)
    else:
        outcomes, repeated_rows = pd.DataFrame(columns=["trial_id", target]), []
    has_mapping = (root / MAPPING_CSV).is_file()
    frames = ordered_frames(root)
    if frames.empty:
        raise UserError(f"no frames found in {frames_dir} (expected <trial>_frame_00000001.jpeg)")
    log.info(
        "indexing %s (frame order from %s)", root, MAPPING_CSV if has_mapping else "file names"
    )

    report = DataReport(duplicate_rows=repeated_rows)
    # Rows that repeat a trial with other values: which one is right is unknown, so neither.
    duplicated = outcomes["trial_id"].duplicated(keep=False)
    report.duplicate_trial_ids = sorted(set(outcomes.loc[duplicated, "trial_id"]))
    outcomes = outcomes[~duplicated].set_index("trial_id")
    labels = numeric_labels(outcomes[target])
    frame_trials = set(frames["trial_id"])
    report.outcomes_without_frames = sorted(set(outcomes.index) - frame_trials)
    report.frames_without_outcome = sorted(frame_trials - set(outcomes.index))

    trials = []
    for trial_id, group in frames.groupby("trial_id", sort=True):
        if trial_id not in outcomes.index:
            if labelled_only:
                continue
            label = math.nan
        else:
            label = labels[trial_id]
        if pd.isna(label) or (target == "success" and label not in (0, 1)):
            if trial_id in outcomes.index:
                report.bad_labels.append(f"{trial_id}={outcomes.at[trial_id, target]}")
            if labelled_only:
                continue
            label = math.nan
        if group["gap"].any():
            report.frame_gaps.append(trial_id)
        paths = readable_frames(trial_id, list(group["path"]), report)
        if paths is None:
            continue
        participant = (
            outcomes.at[trial_id, "participant_id"]
            if "participant_id" in outcomes and trial_id in outcomes.index
            else None
        )
        participant = participant_of(trial_id) if pd.isna(participant) else participant
        trials.append(Trial(trial_id, participant, float(label), tuple(paths)))
    if not trials:
        wanted = f"both frames and a valid '{target}' outcome" if labelled_only else "a frame"
        raise UserError(f"no trial in {root} has {wanted}")
    return trials, report
