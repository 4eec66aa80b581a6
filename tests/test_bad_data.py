"""A corpus of bad frames and messy CSVs: each is counted and reported, none stops a run.

The frames go through all three paths that read them: the index check, the uncached decode
and the frame-cache build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from socal.config import CacheMode, DataConfig, WindowConfig
from socal.data.dataset import ClipDataset
from socal.data.frame_cache import default_dir, prepare
from socal.data.index import MAPPING_CSV, OUTCOMES_CSV, frame_problem, index_folder

from support import REPO, synthetic_folder

SIZE = 32


def scan_start(data: bytes) -> int:
    """Offset of the entropy-coded data: just after the SOS segment (FFDA + its length)."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def garbage_inside(data: bytes) -> bytes:
    """Valid markers and header, random bytes in the middle of the scan, FFD9 at the end."""
    start = scan_start(data)
    noise = np.random.default_rng(0).integers(0, 256, len(data) - start - 2, np.uint8).tobytes()
    return data[:start] + noise.replace(b"\xff", b"\x00") + data[-2:]


def png_bytes() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_corpus(frames: list[Path]) -> dict[str, tuple[str, Path]]:
    """Damage ``frames[2:]`` one way each; name -> (report field, frame)."""
    good = frames[0].read_bytes()
    damage = {
        "empty": ("not_jpeg_frames", lambda p: p.write_bytes(b"")),
        "one_byte": ("not_jpeg_frames", lambda p: p.write_bytes(good[:1])),
        "three_bytes": ("truncated_frames", lambda p: p.write_bytes(good[:3])),
        "truncated_mid_scan": (
            "truncated_frames",
            lambda p: p.write_bytes(good[: (scan_start(good) + len(good)) // 2]),
        ),
        "png": ("not_jpeg_frames", lambda p: p.write_bytes(png_bytes())),
        "text": ("not_jpeg_frames", lambda p: p.write_text("<html>404 Not Found</html>\n")),
        "directory": ("missing_frame_files", lambda p: (p.unlink(), p.mkdir())),
        "dangling_symlink": (
            "missing_frame_files",
            lambda p: (p.unlink(), p.symlink_to(p.with_name("nowhere.jpeg"))),
        ),
    }
    corpus = {}
    for (name, (field, how)), path in zip(damage.items(), frames[2::3], strict=False):
        how(path)
        corpus[name] = (field, path)
    assert len(corpus) == len(damage), "the fixture trial needs more frames"
    return corpus


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = synthetic_folder(tmp_path.parent / "bad-data-source", trials=4, min_frames=70)
    return Path(shutil.copytree(source, tmp_path / "socal", symlinks=True))


def trial_frames(root: Path, trial_id: str) -> list[Path]:
    mapping = pd.read_csv(root / MAPPING_CSV)
    names = mapping[mapping.trial_id == trial_id].sort_values("frame_number").frame
    return [root / "JPEGImages" / name for name in names]


def test_the_bad_frame_corpus_is_reported_replaced_and_never_fatal(folder: Path) -> None:
    trials, _ = index_folder(folder)
    damaged, dropped, mixed = (t.trial_id for t in trials[:3])
    frames = trial_frames(folder, damaged)
    corpus = make_corpus(frames)
    inside = frames[1]
    inside.write_bytes(garbage_inside(inside.read_bytes()))
    emptied = trial_frames(folder, dropped)
    for path in emptied:
        path.write_bytes(b"")
    # Mixed sizes inside one trial: one frame at another size and aspect ratio.
    other = trial_frames(folder, mixed)
    Image.open(other[5]).resize((100, 100)).save(other[5], quality=90)

    trials, report = index_folder(folder)
    kept = {t.trial_id: t for t in trials}
    for name, (field, path) in corpus.items():
        assert path.name in getattr(report, field), name
    assert report.unreadable_trials == [dropped] and dropped not in kept
    assert report.mixed_size_trials == [mixed]
    # Each bad frame is replaced by its nearest good neighbour, timing kept.
    trial = kept[damaged]
    assert trial.n_frames == len(frames)
    bad = {p for _, p in corpus.values()}
    assert not bad & set(trial.frames)
    for i, path in enumerate(frames):
        if path in bad:
            assert trial.frames[i] in (frames[i - 1], frames[i + 1])
    lines = "\n".join(report.lines())
    assert f"unreadable trials: 1 ({dropped})" in lines
    assert f"not jpeg frames: {4 + len(emptied)} (" in lines

    # The decode path: garbage inside the scan is replaced by its neighbour; mixed sizes decode.
    data = OmegaConf.structured(
        DataConfig(
            root=str(folder), num_frames=70, cache=CacheMode.off,
            window=WindowConfig(length_s=70, jitter=False),
        )
    )  # fmt: skip
    plain = ClipDataset(trials, data, SIZE, train=False, seed=0)
    index = [t.trial_id for t in trials].index(damaged)
    clip = plain[index]["pixel_values"]
    assert clip.shape == (70, 3, SIZE, SIZE)
    assert torch.equal(clip[1], clip[0])  # frame 1 (garbage inside) is frame 0's pixels
    assert plain[[t.trial_id for t in trials].index(mixed)]["pixel_values"].shape[0] == 70

    # The cache build: the same replacement, counted per position, and the same clips.
    result = prepare(trials, data.window, SIZE, default_dir(folder), progress=False)
    assert result.replaced_frames == trial.frames.count(inside) >= 1
    assert len(result.built) == len(trials)
    data.cache = CacheMode.auto
    cached = ClipDataset(trials, data, SIZE, train=False, seed=0)
    assert cached.cache is not None
    assert torch.equal(cached[index]["pixel_values"], clip)


def test_a_file_without_read_permission_is_reported(tmp_path: Path) -> None:
    """As root every file is readable, so as root the check runs as 'nobody' (setpriv)."""
    # Not under tmp_path: pytest makes that private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="socal-permission-"))
    try:
        base.chmod(0o755)
        root = Path(shutil.copytree(synthetic_folder(tmp_path, trials=4), base / "socal"))
        trials, _ = index_folder(root)
        locked = trials[0].frames[3]
        locked.chmod(0)
        script = (
            "import sys; from pathlib import Path; from socal.data.index import index_folder;"
            "print(index_folder(Path(sys.argv[1]))[1].unreadable_frame_files)"
        )
        command = [sys.executable, "-c", script, str(root)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: no unprivileged reader to test")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(command, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str([locked.name])
    finally:
        shutil.rmtree(base)


def test_frame_problem_needs_no_readable_directory_entry(tmp_path: Path) -> None:
    assert frame_problem(tmp_path / "absent.jpeg").problem == "missing_frame_files"
    (tmp_path / "file").write_bytes(b"\xff\xd8\xff\xd9")
    assert frame_problem(tmp_path / "file" / "below.jpeg").problem == "missing_frame_files"


def test_messy_csvs_are_read_as_meant(folder: Path) -> None:
    """BOM, CRLF, spaces around ids and headers, 1.0/0.0 labels, repeated rows."""
    clean, _ = index_folder(folder)
    table = pd.read_csv(folder / OUTCOMES_CSV, dtype=str, keep_default_na=False)
    repeated, conflicting = clean[0].trial_id, clean[1].trial_id
    table["success"] = table["success"].map({"1": "1.0", "0": "0.0"}).fillna(table["success"])
    table["trial_id"] = "  " + table["trial_id"] + " "
    table["participant_id"] = table["participant_id"] + "  "
    extra = table[table.trial_id.str.strip() == repeated]
    other = table[table.trial_id.str.strip() == conflicting].copy()
    other["success"] = "0.0" if other["success"].iloc[0] == "1.0" else "1.0"
    table = pd.concat([table, extra, other])
    text = table.rename(columns={"success": " success "}).to_csv(index=False, lineterminator="\r\n")
    (folder / OUTCOMES_CSV).write_bytes(b"\xef\xbb\xbf" + text.encode())
    mapping = pd.read_csv(folder / MAPPING_CSV, dtype=str)
    mapping["trial_id"] = mapping["trial_id"] + " "
    mapping = pd.concat([mapping, mapping.iloc[:3]])  # repeated rows are kept once
    text = mapping.to_csv(index=False, lineterminator="\r\n")
    (folder / MAPPING_CSV).write_bytes(b"\xef\xbb\xbf" + text.encode())

    trials, report = index_folder(folder)
    assert report.duplicate_rows == [repeated]
    assert report.duplicate_trial_ids == [conflicting]
    expected = {(t.trial_id, t.participant, t.label, t.frames) for t in clean
                if t.trial_id != conflicting}  # fmt: skip
    assert {(t.trial_id, t.participant, t.label, t.frames) for t in trials} == expected
    assert not report.frame_gaps


def test_a_label_that_is_not_a_number_is_reported(folder: Path) -> None:
    table = pd.read_csv(folder / OUTCOMES_CSV, dtype=str, keep_default_na=False)
    trial = index_folder(folder)[0][0].trial_id
    table.loc[table.trial_id == trial, "success"] = "yes"
    table.to_csv(folder / OUTCOMES_CSV, index=False)
    trials, report = index_folder(folder)
    assert report.bad_labels == [f"{trial}=yes"] and trial not in {t.trial_id for t in trials}
