"""Index a SOCAL folder: which frames belong to which trial, in which order, with which outcome.

Trial membership and frame order come from ``frame_to_trial_mapping.csv`` when it exists (it is
authoritative: trials recorded as two videos, ``S808T1a`` and ``S808T1b``, map to ``S808T1``
there). Without it they come from file names, with the ``a``/``b`` suffix understood. Splitting
the file name on ``_`` would silently drop those trials.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from socal.errors import UserError

log = logging.getLogger(__name__)

OUTCOMES_CSV = "socal_trial_outcomes.csv"
MAPPING_CSV = "frame_to_trial_mapping.csv"
FRAMES_DIR = "JPEGImages"
FRAME_NAME = re.compile(
    r"^(?P<trial>S\d+T\d+)(?P<part>[ab]?)_frame_(?P<index>\d+)\.jpe?g$", re.IGNORECASE
)
PARTICIPANT = re.compile(r"^S(\d+)T\d+$")


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
    duplicate_trial_ids: list[str] = field(default_factory=list)
    frame_gaps: list[str] = field(default_factory=list)
    missing_frame_files: list[str] = field(default_factory=list)
    truncated_frames: list[str] = field(default_factory=list)
    unreadable_trials: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One ``name: count (examples)`` line per problem found."""
        out = []
        for name, items in vars(self).items():
            if items:
                shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
                out.append(f"{name.replace('_', ' ')}: {len(items)} ({shown})")
        return out


def read_outcomes(root: Path, target: str) -> pd.DataFrame:
    """The outcomes CSV with its ``NA`` cells as missing; errors name the file and the fix."""
    path = root / OUTCOMES_CSV
    if not path.is_file():
        raise UserError(
            f"{path} not found: data.root must be a SOCAL folder holding {OUTCOMES_CSV} "
            f"and {FRAMES_DIR}/ (or use data=synthetic)"
        )
    # participant_id as text: the real CSV has ids like 314c next to 101.
    table = pd.read_csv(path, dtype={"trial_id": str, "participant_id": str}, na_values=["NA"])
    missing = [c for c in ("trial_id", target) if c not in table.columns]
    if missing:
        raise UserError(
            f"{path} lacks column(s) {', '.join(missing)}; it has {list(table.columns)}"
        )
    return table


def _frames_from_mapping(root: Path, frames_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(root / MAPPING_CSV, dtype={"frame": str, "trial_id": str})
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


def _looks_truncated(path: Path) -> bool:
    """A JPEG starts with FFD8 and ends with FFD9; a cut-off download does not."""
    with open(path, "rb") as handle:
        head = handle.read(2)
        handle.seek(-2, 2)
        return head != b"\xff\xd8" or handle.read(2) != b"\xff\xd9"


def _frame_is_readable(path: Path, report: DataReport) -> bool:
    if not path.is_file():
        report.missing_frame_files.append(path.name)
        return False
    if _looks_truncated(path):
        report.truncated_frames.append(path.name)
        return False
    return True


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


def index_folder(root: Path, target: str = "success") -> tuple[list[Trial], DataReport]:
    """Trials that have both frames and a valid outcome, and a report of everything else."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root={root} is not a directory: point it at your SOCAL folder")
    frames_dir = root / FRAMES_DIR
    if not frames_dir.is_dir():
        raise UserError(f"{frames_dir} not found: data.root must be a SOCAL folder")
    outcomes = read_outcomes(root, target)
    has_mapping = (root / MAPPING_CSV).is_file()
    frames = (
        _frames_from_mapping(root, frames_dir) if has_mapping else _frames_from_names(frames_dir)
    )
    if frames.empty:
        raise UserError(f"no frames found in {frames_dir} (expected <trial>_frame_00000001.jpeg)")
    log.info(
        "indexing %s (frame order from %s)", root, MAPPING_CSV if has_mapping else "file names"
    )

    report = DataReport()
    duplicated = outcomes["trial_id"].duplicated(keep=False)
    report.duplicate_trial_ids = sorted(set(outcomes.loc[duplicated, "trial_id"]))
    outcomes = outcomes[~duplicated].set_index("trial_id")
    frame_trials = set(frames["trial_id"])
    report.outcomes_without_frames = sorted(set(outcomes.index) - frame_trials)
    report.frames_without_outcome = sorted(frame_trials - set(outcomes.index))

    trials = []
    for trial_id, group in frames.groupby("trial_id", sort=True):
        if trial_id not in outcomes.index:
            continue
        label = outcomes.at[trial_id, target]
        if pd.isna(label) or (target == "success" and label not in (0, 1)):
            report.bad_labels.append(f"{trial_id}={label}")
            continue
        if group["gap"].any():
            report.frame_gaps.append(trial_id)
        paths = list(group["path"])
        good = [_frame_is_readable(p, report) for p in paths]
        if not any(good):
            report.unreadable_trials.append(trial_id)
            continue
        paths = [paths[nearest_good(good, i)] for i in range(len(paths))]
        participant = (
            outcomes.at[trial_id, "participant_id"] if "participant_id" in outcomes else None
        )
        participant = participant_of(trial_id) if pd.isna(participant) else participant.strip()
        trials.append(Trial(trial_id, participant, float(label), tuple(paths)))
    if not trials:
        raise UserError(f"no trial in {root} has both frames and a valid '{target}' outcome")
    return trials, report


def index_for_prediction(root: Path, target: str = "success") -> tuple[list[Trial], DataReport]:
    """Every trial with readable frames, labelled where an outcomes CSV gives a valid value.

    For prediction on new trials: the outcomes CSV is optional, and a trial without an outcome
    keeps a NaN label instead of being dropped. Frames are found and ordered as for training.
    """
    root = Path(root)
    frames_dir = root / FRAMES_DIR
    if not frames_dir.is_dir():
        raise UserError(f"{frames_dir} not found: data.root must hold the trials' frames")
    has_mapping = (root / MAPPING_CSV).is_file()
    frames = (
        _frames_from_mapping(root, frames_dir) if has_mapping else _frames_from_names(frames_dir)
    )
    if frames.empty:
        raise UserError(f"no frames found in {frames_dir} (expected <trial>_frame_00000001.jpeg)")
    outcomes = pd.DataFrame(columns=["trial_id", target])
    if (root / OUTCOMES_CSV).is_file():
        outcomes = read_outcomes(root, target).drop_duplicates("trial_id", keep=False)
    outcomes = outcomes.set_index("trial_id")
    report, trials = DataReport(), []
    for trial_id, group in frames.groupby("trial_id", sort=True):
        paths = list(group["path"])
        good = [_frame_is_readable(p, report) for p in paths]
        if not any(good):
            report.unreadable_trials.append(trial_id)
            continue
        label = outcomes[target].get(trial_id, float("nan"))
        if target == "success" and label not in (0, 1):
            label = float("nan")
        participant = outcomes.get("participant_id", pd.Series(dtype=str)).get(trial_id)
        participant = participant_of(trial_id) if pd.isna(participant) else participant.strip()
        paths = [paths[nearest_good(good, i)] for i in range(len(paths))]
        trials.append(Trial(trial_id, participant, float(label), tuple(paths)))
    if not trials:
        raise UserError(f"no trial in {root} has a readable frame")
    return trials, report
