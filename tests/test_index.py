"""Loading a SOCAL folder: a/b videos, file-name fallback, bad input and data problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from socal.data.index import MAPPING_CSV, OUTCOMES_CSV, index_folder
from socal.errors import UserError

from support import synthetic_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("index"), trials=16, seed=3)


def _with_outcome(root: Path) -> set[str]:
    outcomes = pd.read_csv(root / OUTCOMES_CSV, na_values=["NA"])
    mapping = pd.read_csv(root / MAPPING_CSV)
    return set(outcomes["trial_id"]) & set(mapping["trial_id"])


def test_every_trial_with_an_outcome_is_kept_including_a_b_videos(folder: Path) -> None:
    names = {p.name.split("_")[0] for p in (folder / "JPEGImages").iterdir()}
    split_videos = {n[:-1] for n in names if n[-1] in "ab"}
    assert split_videos, "the fixture must contain trials recorded as two videos"
    trials, report = index_folder(folder)
    kept = {t.trial_id for t in trials}
    assert kept == _with_outcome(folder)
    assert split_videos <= kept
    assert report.frames_without_outcome == ["S105T1"]
    assert len(report.outcomes_without_frames) == 3


def test_file_name_fallback_gives_the_same_trials_and_frame_order(
    folder: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "no-mapping"
    shutil.copytree(folder, copy)
    (copy / MAPPING_CSV).unlink()
    with_mapping = {t.trial_id: [p.name for p in t.frames] for t in index_folder(folder)[0]}
    from_names = {t.trial_id: [p.name for p in t.frames] for t in index_folder(copy)[0]}
    assert from_names == with_mapping
    a_b = next(t for t, names in with_mapping.items() if any("a_frame" in n for n in names))
    names = with_mapping[a_b]
    assert names[0].startswith(f"{a_b}a_") and names[-1].startswith(f"{a_b}b_")


def test_jpg_extension_and_participants_from_csv(tmp_path: Path) -> None:
    root = synthetic_folder(tmp_path, trials=6, ext="jpg", mapping_csv=False)
    trials, _ = index_folder(root)
    assert len(trials) == 6
    assert all(t.frames[0].suffix == ".jpg" for t in trials)
    assert all(t.trial_id.startswith(f"S{t.participant}T") for t in trials)


def test_participant_ids_are_text(folder: Path, tmp_path: Path) -> None:
    """The real CSV has ids like 314c; a missing id falls back to the trial id's."""
    root = tmp_path / "ids"
    shutil.copytree(folder, root)
    outcomes = pd.read_csv(root / OUTCOMES_CSV, dtype=str, keep_default_na=False)
    first, second = sorted(_with_outcome(folder))[:2]
    outcomes.loc[outcomes.trial_id == first, "participant_id"] = "314c"
    outcomes.loc[outcomes.trial_id == second, "participant_id"] = "NA"
    outcomes.to_csv(root / OUTCOMES_CSV, index=False)
    participants = {t.trial_id: t.participant for t in index_folder(root)[0]}
    assert participants[first] == "314c"
    assert participants[second] == second[1:].split("T")[0]


def test_data_problems_are_reported_with_their_counts(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(folder, root)
    outcomes = pd.read_csv(root / OUTCOMES_CSV, dtype=str, keep_default_na=False)
    mapping = pd.read_csv(root / MAPPING_CSV)
    with_video = sorted(_with_outcome(folder))
    bad_label, missing_label, dup, gappy, truncated, unreadable = with_video[:6]
    outcomes.loc[outcomes.trial_id == bad_label, "success"] = "2"
    outcomes.loc[outcomes.trial_id == missing_label, "success"] = "NA"
    # The same trial twice with different outcomes: neither row can be trusted.
    conflicting = outcomes[outcomes.trial_id == dup].assign(blood_loss="12345")
    outcomes = pd.concat([outcomes, conflicting])
    outcomes.to_csv(root / OUTCOMES_CSV, index=False)
    # A gap: drop frame 5 of one trial from the mapping.
    gap_row = mapping[(mapping.trial_id == gappy) & (mapping.frame_number == 5)].index
    mapping.drop(gap_row).to_csv(root / MAPPING_CSV, index=False)
    # One truncated JPEG, and a trial whose every frame is truncated.
    frames = mapping[mapping.trial_id == truncated].frame.tolist()
    _truncate(root / "JPEGImages" / frames[2])
    for name in mapping[mapping.trial_id == unreadable].frame:
        _truncate(root / "JPEGImages" / name)

    trials, report = index_folder(root)
    assert sorted(report.bad_labels) == sorted([f"{missing_label}=nan", f"{bad_label}=2.0"])
    assert report.duplicate_trial_ids == [dup]
    assert report.frame_gaps == [gappy]
    n_unreadable = int((mapping.trial_id == unreadable).sum())
    assert len(report.truncated_frames) == 1 + n_unreadable
    assert report.unreadable_trials == [unreadable]
    kept = {t.trial_id: t for t in trials}
    assert {bad_label, missing_label, dup, unreadable}.isdisjoint(kept)
    # The truncated frame is replaced by its nearest readable neighbour, timing kept.
    replaced = kept[truncated]
    assert replaced.n_frames == len(frames)
    assert replaced.frames[2].name == frames[1]
    lines = "\n".join(report.lines())
    assert "bad labels: 2" in lines and "duplicate trial ids: 1" in lines


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_not_a_socal_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        index_folder(tmp_path / "missing")
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(UserError, match=OUTCOMES_CSV):
        index_folder(tmp_path)
    (tmp_path / OUTCOMES_CSV).write_text("trial,outcome\nS1T1,1\n")
    with pytest.raises(UserError, match="lacks column"):
        index_folder(tmp_path)
