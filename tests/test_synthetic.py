"""The synthetic SOCAL folder has the real layout, its traps, and a learnable signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from socal.data import synthetic
from socal.data.synthetic import SyntheticSpec, ensure_synthetic, generate, main

SMALL = SyntheticSpec(trials=8, min_frames=60, max_frames=90)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "SOCAL", SMALL, progress=False)


def _outcomes(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "socal_trial_outcomes.csv", keep_default_na=False)


def _mapping(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "frame_to_trial_mapping.csv")


def _lengths(root: Path) -> dict[str, int]:
    return _mapping(root).groupby("trial_id").size().to_dict()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_columns_and_na(folder: Path) -> None:
    assert (folder / "JPEGImages").is_dir()
    header = (folder / "socal_trial_outcomes.csv").read_text().splitlines()[0]
    assert header.split(",") == synthetic.OUTCOME_COLUMNS
    assert len(synthetic.OUTCOME_COLUMNS) == 11
    assert _mapping(folder).columns.tolist() == ["frame", "trial_id", "frame_number"]
    out = _outcomes(folder)
    assert "NA" in set(out["cottonoid"]) | set(out["muscle"])
    no_video = out[out["trial_video_width"] == "NA"]
    assert len(no_video) == 3
    assert not set(no_video["trial_id"]) & set(_mapping(folder)["trial_id"])
    with_video = out[out["trial_video_width"] != "NA"]
    assert len(with_video) == SMALL.trials
    assert with_video["success"].sum() == round(0.65 * SMALL.trials)
    assert set(with_video["success"]) == {0, 1}
    assert (with_video[with_video["success"] == 0]["tth"] == 300).all()
    assert (with_video[with_video["success"] == 1]["tth"] < 300).all()
    assert out["participant_id"].dtype.kind == "i"
    for tid, pid in zip(out["trial_id"], out["participant_id"], strict=True):
        assert tid.startswith(f"S{pid}T")


def test_mapping_covers_every_file_in_order(folder: Path) -> None:
    mapping = _mapping(folder)
    files = {p.name for p in (folder / "JPEGImages").iterdir()}
    assert set(mapping["frame"]) == files
    assert len(mapping) == len(files)
    assert mapping.equals(mapping.sort_values(["trial_id", "frame_number"]))
    for _, group in mapping.groupby("trial_id"):
        assert group["frame_number"].tolist() == list(range(1, len(group) + 1))


def test_split_trials_map_to_plain_id(folder: Path) -> None:
    mapping = _mapping(folder)
    video = mapping["frame"].str.split("_").str[0]
    split = mapping[video != mapping["trial_id"]]
    assert len(split) > 0
    for tid, group in split.groupby("trial_id"):
        a, b = group[video[group.index] == tid + "a"], group[video[group.index] == tid + "b"]
        assert len(a) + len(b) == len(group) and len(a) and len(b)
        assert b["frame_number"].min() == len(a) + 1  # b continues where a stops
        assert b["frame"].iloc[0] == f"{tid}b_frame_00000001.jpeg"
        assert tid in set(_outcomes(folder)["trial_id"])


def test_orphan_trial_has_frames_but_no_outcome(folder: Path) -> None:
    orphans = set(_mapping(folder)["trial_id"]) - set(_outcomes(folder)["trial_id"])
    assert orphans == {"S105T1"}
    assert (folder / "JPEGImages" / "S105T1_frame_00000001.jpeg").is_file()


def test_two_resolutions_match_outcomes(folder: Path) -> None:
    out = _outcomes(folder).set_index("trial_id")
    sizes = set()
    for tid, group in _mapping(folder).groupby("trial_id"):
        with Image.open(folder / "JPEGImages" / group["frame"].iloc[0]) as im:
            sizes.add(im.size)
            if tid in out.index:
                assert im.size == (
                    int(out.at[tid, "trial_video_width"]),
                    int(out.at[tid, "trial_video_height"]),
                )
    assert sizes == {(240, 135), (160, 90)}


def test_lengths_vary(folder: Path) -> None:
    assert len(set(_lengths(folder).values())) > 1


def test_deterministic_per_seed(tmp_path: Path, folder: Path) -> None:
    spec = SyntheticSpec(trials=4, min_frames=10, max_frames=20)
    first = _files(generate(tmp_path / "a", spec, progress=False))
    assert first == _files(generate(tmp_path / "b", spec, progress=False))
    other = _files(
        generate(
            tmp_path / "c",
            SyntheticSpec(trials=4, min_frames=10, max_frames=20, seed=1),
            progress=False,
        )
    )
    assert other != first


@pytest.mark.parametrize("leaks", [True, False])
def test_length_leak_is_controllable(tmp_path: Path, leaks: bool) -> None:
    spec = SyntheticSpec(trials=20, min_frames=10, max_frames=40, length_leaks=leaks)
    root = generate(tmp_path / "s", spec, progress=False)
    lengths = _lengths(root)
    out = _outcomes(root).query("trial_video_width != 'NA'")
    success = [lengths[t] for t in out[out["success"] == 1]["trial_id"]]
    failure = [lengths[t] for t in out[out["success"] == 0]["trial_id"]]
    assert (max(success) < min(failure)) is leaks


def test_no_mapping_and_jpg(tmp_path: Path) -> None:
    spec = SyntheticSpec(trials=4, min_frames=10, max_frames=20, mapping_csv=False, ext="jpg")
    root = generate(tmp_path / "s", spec, progress=False)
    assert not (root / "frame_to_trial_mapping.csv").exists()
    names = [p.name for p in (root / "JPEGImages").iterdir()]
    assert names and all(n.endswith(".jpg") for n in names)
    assert any(n.split("_")[0].endswith(("a", "b")) for n in names)


def test_ensure_skips_complete_folder_and_refuses_others(tmp_path: Path) -> None:
    spec = SyntheticSpec(trials=4, min_frames=10, max_frames=20)
    root = tmp_path / "SOCAL"
    assert ensure_synthetic(root, spec, progress=False) == root
    assert json.loads((root / synthetic.MARKER).read_text())["trials"] == 4
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert ensure_synthetic(root, spec, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    with pytest.raises(ValueError, match="spec"):
        ensure_synthetic(root, SyntheticSpec(trials=4, min_frames=10, max_frames=20, seed=1))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError):
        ensure_synthetic(user, spec)
    assert (user / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SOCAL", "mine"]


def test_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = []

    def failing_save(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        saved.append(fp)
        if len(saved) > 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path / "SOCAL", SyntheticSpec(trials=4), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [str(out), "--trials", "4", "--seed", "3", "--min-frames", "10", "--max-frames", "20"]
    assert main([*args, "--no-length-leak", "--no-mapping", "--ext", "jpg"]) == 0
    line = capsys.readouterr().out.strip()
    n_frames = len(list((out / "JPEGImages").iterdir()))
    assert "4 trials" in line and f"{n_frames} frames" in line and str(out) in line
    marker = json.loads((out / synthetic.MARKER).read_text())
    assert marker == {
        **marker,
        "seed": 3,
        "length_leaks": False,
        "mapping_csv": False,
        "ext": "jpg",
    }
    assert main(args) == 1  # same folder, different spec: refused, not overwritten


def _red_area(path: Path) -> float:
    rgb = np.asarray(Image.open(path), dtype=np.float32) / 255
    return float(((rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.3)).mean())


def test_signal_in_first_60_frames(folder: Path) -> None:
    out = _outcomes(folder).query("trial_video_width != 'NA'").set_index("trial_id")
    mapping = _mapping(folder)
    areas: dict[int, list[float]] = {0: [], 1: []}
    for tid, group in mapping[mapping["frame_number"] <= 60].groupby("trial_id"):
        if tid not in out.index:
            continue
        area = [_red_area(folder / "JPEGImages" / f) for f in group["frame"]]
        label = int(out.at[tid, "success"])
        areas[label].append(float(np.mean(area)))
        trend = np.mean(area[-5:]) - np.mean(area[:5])
        assert (trend < 0) if label else (trend > 0), tid  # shrinks for success, grows for failure
    assert np.mean(areas[0]) > 2 * np.mean(areas[1])
