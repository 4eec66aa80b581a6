"""Deterministic synthetic SOCAL release: same layout and traps, with a learnable signal.

Traps reproduced from the real release: trials split into ``<trial>a``/``<trial>b``
videos, a trial with frames but no outcome row, outcome rows without video, two
resolutions, ``NA`` values, and (optionally) video length leaking the label.
The label signal lives in each trial's first 60 frames: a red "blood pool" disc that
grows for failures and shrinks for successes. ``signal="planted"`` replaces it with a signal
whose place is known, for testing explanations: a green square in the top-left quarter of the
frame's centre square (``planted_box``), in seconds 20-29 (``PLANTED_SECONDS``) of failures only.

``tools=True`` also writes the tool annotations, ``socal.csv`` in the release's format (no
header, ``frame,x1,y1,x2,y2,class``, empty or ``NA`` fields for a frame without a tool), with
boxes to the end of each trial. Their planted rule lies in the first 60 seconds: a failure's
cottonoid most often comes in early and stays (``COTTONOID_FAILURE``), a success's less often
and for less long;
suction (at times two at once), grasper and, after 60 s, the other classes come and go alike
for both outcomes. The boxes are not drawn in the frames: the tool baseline and the video
model see different signals.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from socal.errors import UserError

MARKER = ".socal-synthetic.json"
SIGNAL_FRAMES = 60
SIGNALS = ("disc", "planted", "none")
PLANTED_SECONDS = range(20, 30)
_PLANTED = np.array([0.10, 0.90, 0.20], np.float32)
OUTCOME_COLUMNS = [
    "trial_id",
    "participant_id",
    "cottonoid",
    "cottonoid_success",
    "muscle",
    "muscle_success",
    "tth",
    "success",
    "blood_loss",
    "trial_video_width",
    "trial_video_height",
]
_SIZES = {"full": ((1920, 1080), (1280, 720)), "small": ((240, 135), (160, 90))}
_BG_MEAN = np.array([0.32, 0.09, 0.12], np.float32)
_BG_STD = np.array([0.13, 0.06, 0.07], np.float32)
_BLOOD = np.array([0.92, 0.10, 0.08], np.float32)
_TOOL = np.array([0.62, 0.62, 0.60], np.float32)
_NO_VIDEO = (("S101T1", 101), ("S101T2", 101), ("S102T1", 102))
_ORPHAN = ("S105T1", 105)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; equal specs give byte-identical folders."""

    trials: int = 48  # trials with video and outcome row (plus one orphan trial)
    seed: int = 0
    size: str = "small"  # "full": 1920x1080 / 1280x720; "small": 240x135 / 160x90
    min_frames: int = 70
    max_frames: int = 200
    length_leaks: bool = True  # successes shorter, as real videos stop at hemostasis
    mapping_csv: bool = True  # False: no frame_to_trial_mapping.csv
    ext: str = "jpeg"  # "jpeg" or "jpg"
    quality: int = 90
    signal: str = "disc"  # one of SIGNALS
    tools: bool = True  # write socal.csv

    def __post_init__(self) -> None:
        checks = [
            ("trials in 1..1386", 1 <= self.trials <= 1386),  # 7 sites x 99 x 2
            ("seed >= 0", self.seed >= 0),
            ("size 'small' or 'full'", self.size in _SIZES),
            ("ext 'jpeg' or 'jpg'", self.ext in ("jpeg", "jpg")),
            ("2 <= min_frames <= max_frames", 2 <= self.min_frames <= self.max_frames),
            (
                "min < max frames to leak",
                self.min_frames < self.max_frames or not self.length_leaks,
            ),
            ("quality in 1..100", 1 <= self.quality <= 100),
            (f"signal one of {', '.join(SIGNALS)}", self.signal in SIGNALS),
        ]
        bad = [msg for msg, ok in checks if not ok]
        if bad:
            raise ValueError(f"invalid SyntheticSpec, need {', '.join(bad)}: {self}")


@dataclass(frozen=True)
class _Trial:
    trial_id: str
    participant_id: int
    success: int
    size: tuple[int, int]  # (width, height)
    n_frames: int
    split: int  # frames in the "a" video; 0 means a single video
    has_outcome: bool = True


def _plan(spec: SyntheticSpec, rng: np.random.Generator) -> list[_Trial]:
    """Draw participants, labels, resolutions, lengths and a/b splits."""
    n_surgeons = math.ceil(spec.trials / 2)
    pids = [(2 + i % 7) * 100 + i // 7 + 1 for i in range(n_surgeons)]
    ids = [(f"S{pid}T{n}", pid) for pid in pids for n in (1, 2)][: spec.trials]
    success = np.zeros(spec.trials, int)
    success[rng.permutation(spec.trials)[: round(0.65 * spec.trials)]] = 1
    n_small = round(n_surgeons / 3)
    if n_surgeons >= 2:
        n_small = min(max(n_small, 1), n_surgeons - 1)
    small = {pids[i] for i in rng.choice(n_surgeons, n_small, replace=False)}
    big_size, small_size = _SIZES[spec.size]
    lo, hi = spec.min_frames, spec.max_frames
    mid = (lo + hi) // 2  # with length_leaks: successes in [lo, mid], failures above
    n_ab = max(1, round(0.15 * spec.trials)) if spec.trials >= 4 else 0
    ab = set(rng.choice(spec.trials, n_ab, replace=False).tolist())
    trials = []
    for i, (tid, pid) in enumerate(ids):
        a, b = ((lo, mid) if success[i] else (mid + 1, hi)) if spec.length_leaks else (lo, hi)
        n = int(rng.integers(a, b + 1))
        split = int(rng.integers(max(1, n // 3), 2 * n // 3 + 1)) if i in ab else 0
        size = small_size if pid in small else big_size
        trials.append(_Trial(tid, pid, int(success[i]), size, n, split))
    orphan_len = int(rng.integers(lo, hi + 1))
    trials.append(_Trial(*_ORPHAN, 0, big_size, orphan_len, 0, has_outcome=False))
    return trials


def planted_box(width: int, height: int) -> tuple[slice, slice]:
    """Where ``signal="planted"`` draws: the top-left quarter of the frame's centre square,
    which a centre crop of the short side keeps as its own top-left quarter."""
    left = (width - height) // 2
    return slice(0, height // 2), slice(left, left + height // 2)


def _frames(trial: _Trial, rng: np.random.Generator, signal: str) -> Iterator[np.ndarray]:
    """Yield uint8 RGB frames in true order; one noise texture per trial, shifted per frame."""
    w, h = trial.size
    pad = max(4, h // 4)
    coarse = rng.normal(size=(h // 12 + 2, w // 12 + 2)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((w + pad, h + pad), Image.BILINEAR))
    fine = rng.normal(0.0, 0.03, (h + pad, w + pad, 3)).astype(np.float32)
    texture = smooth[..., None] * _BG_STD + fine
    brightness = np.float32(rng.uniform(0.7, 1.3))
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    yy, xx = np.ogrid[:h, :w]
    dist2 = (yy - cy) ** 2 + (xx - cx) ** 2
    r0, r1 = (0.30, 0.05) if trial.success else (0.12, 0.45)
    ph = rng.uniform(0.0, 2 * math.pi, 4)
    tool_w, tool_h = int(0.07 * w) + 1, int(0.45 * h) + 1
    for i in range(trial.n_frames):
        ox = int(pad / 2 * (1 + math.sin(0.13 * i + ph[0])))
        oy = int(pad / 2 * (1 + math.sin(0.11 * i + ph[1])))
        patch = texture[oy : oy + h, ox : ox + w]
        frame = brightness * (_BG_MEAN + patch)
        if signal == "disc":
            radius = h * (r0 + (r1 - r0) * min(i, SIGNAL_FRAMES - 1) / (SIGNAL_FRAMES - 1))
            disc = dist2 <= radius * radius
            frame[disc] = _BLOOD + 0.5 * patch[disc]
        x0 = int((w - tool_w) * (0.5 + 0.5 * math.sin(0.09 * i + ph[2])))
        y0 = int((h - tool_h) * (0.5 + 0.5 * math.sin(0.07 * i + ph[3])))
        tool = (slice(y0, y0 + tool_h), slice(x0, x0 + tool_w))
        frame[tool] = _TOOL + 0.3 * patch[tool]
        if signal == "planted" and not trial.success and i in PLANTED_SECONDS:
            frame[planted_box(w, h)] = _PLANTED
        yield (np.clip(frame, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


COTTONOID_FAILURE = ((5, 20), (15, 30))  # failures: in at second U(5, 20), for U(15, 30) s
_RARE_CLASS = "drill"  # outside the five analysed classes: kept and counted by the reader


def _spans(rng: np.random.Generator, flags: np.ndarray, lo: int, hi: int, rate: float) -> None:
    """Mark random stretches of presence in ``flags[lo:hi]``: about ``rate`` starts a second,
    each 2 to 12 seconds long."""
    for start in np.flatnonzero(rng.random(max(hi - lo, 0)) < rate) + lo:
        flags[start : min(start + int(rng.integers(2, 13)), hi)] = True


def _tool_presence(trial: _Trial, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Which tool classes are in view in each second of the trial (see the module docstring)."""
    n = trial.n_frames
    early = min(n, SIGNAL_FRAMES)
    flags = {c: np.zeros(n, bool) for c in ("suction", "grasper", "cottonoid", "string", "muscle")}
    flags[_RARE_CLASS] = np.zeros(n, bool)
    _spans(rng, flags["suction"], 0, n, 0.08)
    _spans(rng, flags["grasper"], 0, n, 0.04)
    if not trial.success and rng.random() < 0.75:
        (a, b), (c, d) = COTTONOID_FAILURE
        start = int(rng.integers(a, b + 1))
        flags["cottonoid"][start : min(start + int(rng.integers(c, d + 1)), early)] = True
    elif rng.random() < 0.3:
        start = int(rng.integers(5, 50))
        flags["cottonoid"][start : min(start + int(rng.integers(3, 15)), early)] = True
    for name, rate in (
        ("cottonoid", 0.03),
        ("string", 0.02),
        ("muscle", 0.02),
        (_RARE_CLASS, 0.005),
    ):
        _spans(rng, flags[name], early, n, rate)
    return flags


def _tool_rows(trial: _Trial, rng: np.random.Generator, ext: str) -> list[list]:
    """The trial's socal.csv rows: one per box in the frame's pixels (some reach past its edge,
    the reader clips them), one empty or ``NA`` row for a frame without a tool."""
    w, h = trial.size
    flags = _tool_presence(trial, rng)
    centres = {name: rng.uniform(0.2, 0.8, 2) for name in flags}
    rows = []
    for i in range(trial.n_frames):
        name = _file_name(trial, i, ext)
        boxes = []
        for tool, present in flags.items():
            centres[tool] = np.clip(centres[tool] + rng.normal(0, 0.03, 2), 0.05, 0.95)
            if not present[i]:
                continue
            copies = 2 if tool == "suction" and rng.random() < 0.15 else 1
            for k in range(copies):
                cx, cy = (centres[tool] + 0.2 * k) * (w, h)
                bw, bh = rng.uniform(0.04, 0.15) * w, rng.uniform(0.04, 0.15) * h
                boxes.append([round(cx - bw), round(cy - bh), round(cx + bw), round(cy + bh), tool])
        if not boxes:
            boxes = [["NA"] * 5 if rng.random() < 0.3 else [""] * 5]
        rows += [[name, *box] for box in boxes]
    return rows


def _outcome_row(trial: _Trial | None, tid: str, pid: int, rng: np.random.Generator) -> list:
    """One outcomes row; ``trial`` is None for the rows that have no video."""
    success = trial.success if trial else int(rng.random() < 0.65)
    cottonoid = int(rng.integers(15, 120))
    muscle = cottonoid + int(rng.integers(20, 150))
    if trial:
        tth = min(trial.n_frames, 299) if success else 300
    else:
        tth = int(rng.integers(60, 300)) if success else 300
    mean, sd = (250, 150) if success else (800, 300)
    return [
        tid,
        pid,
        "NA" if rng.random() < 0.15 else cottonoid,
        int(rng.random() < 0.9),
        "NA" if rng.random() < 0.1 else muscle,
        success if rng.random() < 0.8 else 1 - success,
        tth,
        success,
        max(10, int(rng.normal(mean, sd))),
        *(trial.size if trial else ("NA", "NA")),
    ]


def _file_name(trial: _Trial, i: int, ext: str) -> str:
    """File of the trial's i-th frame (0-based); the "b" video restarts its numbering at 1."""
    video, number = trial.trial_id, i + 1
    if trial.split:
        part_b = i >= trial.split
        video += "b" if part_b else "a"
        number -= trial.split if part_b else 0
    return f"{video}_frame_{number:08d}.{ext}"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(out_dir: Path, spec: SyntheticSpec, progress: bool = True) -> Path:
    """Write a synthetic release into ``out_dir`` (missing or empty); marker written last."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty; refusing to generate into it")
    images = out_dir / "JPEGImages"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    trials = _plan(spec, rng)
    mapping, tools = [], []
    for index, trial in enumerate(tqdm(trials, desc="synthetic SOCAL", disable=not progress)):
        frames = _frames(trial, np.random.default_rng([spec.seed, index]), spec.signal)
        if spec.tools:
            tools += _tool_rows(trial, np.random.default_rng([spec.seed, index, 1]), spec.ext)
        for i, pixels in enumerate(frames):
            name = _file_name(trial, i, spec.ext)
            Image.fromarray(pixels).save(images / name, format="JPEG", quality=spec.quality)
            mapping.append([name, trial.trial_id, i + 1])
    if spec.mapping_csv:
        mapping.sort(key=lambda row: (row[1], row[2]))
        _write_csv(
            out_dir / "frame_to_trial_mapping.csv",
            ["frame", "trial_id", "frame_number"],
            mapping,
        )
    keyed = [(t.participant_id, t.trial_id, t) for t in trials if t.has_outcome]
    keyed += [(pid, tid, None) for tid, pid in _NO_VIDEO]
    rows = [_outcome_row(t, tid, pid, rng) for pid, tid, t in sorted(keyed, key=lambda k: k[:2])]
    _write_csv(out_dir / "socal_trial_outcomes.csv", OUTCOME_COLUMNS, rows)
    if spec.tools:
        with (out_dir / "socal.csv").open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(tools)
    (out_dir / MARKER).write_text(json.dumps(asdict(spec), sort_keys=True) + "\n")
    return out_dir


def _matches(root: Path, spec: SyntheticSpec) -> bool:
    """Whether ``root`` was generated from ``spec`` (a key its marker lacks had the default)."""
    marker = root / MARKER
    if not marker.is_file():
        return False
    # A marker without "tools" predates socal.csv: its folder has none.
    defaults = {**asdict(SyntheticSpec()), "tools": False}
    return {**defaults, **json.loads(marker.read_text())} == asdict(spec)


def ensure_synthetic(root: Path, spec: SyntheticSpec, progress: bool = True) -> Path:
    """Return ``root`` holding a complete generation of ``spec``, generating it atomically.

    Generation happens in a hidden sibling directory renamed into place, so an interrupted
    run never leaves a folder that looks complete. An existing non-empty ``root`` is never
    modified: it is reused if its marker matches ``spec``, otherwise ``ValueError``.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if _matches(root, spec):
            return root
        raise ValueError(
            f"{root} exists and is not a synthetic SOCAL folder of this spec (one generated "
            "before socal.csv existed is not either): delete it to regenerate"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        generate(tmp, spec, progress)
        os.replace(tmp, root)  # also replaces an empty root directory
    except OSError:
        if not _matches(root, spec):  # a concurrent run may have won the rename
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def data_root(data: Any, progress: bool = True) -> Path:
    """``data.root``, generated first when the config asks for it (``data=synthetic``)."""
    root = Path(data.root).expanduser()
    if data.synthetic is not None:
        spec = SyntheticSpec(**{k: data.synthetic[k] for k in data.synthetic})
        try:
            ensure_synthetic(root, spec, progress=progress)
        except ValueError as err:
            raise UserError(str(err)) from err
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a synthetic SOCAL folder.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--trials", type=int, default=SyntheticSpec.trials)
    parser.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    parser.add_argument("--size", choices=sorted(_SIZES), default=SyntheticSpec.size)
    parser.add_argument("--min-frames", type=int, default=SyntheticSpec.min_frames)
    parser.add_argument("--max-frames", type=int, default=SyntheticSpec.max_frames)
    parser.add_argument("--no-length-leak", dest="length_leaks", action="store_false")
    parser.add_argument("--no-mapping", dest="mapping_csv", action="store_false")
    parser.add_argument("--ext", choices=["jpeg", "jpg"], default=SyntheticSpec.ext)
    parser.add_argument("--signal", choices=SIGNALS, default=SyntheticSpec.signal)
    parser.add_argument("--no-tools", dest="tools", action="store_false", help="no socal.csv")
    args = vars(parser.parse_args(argv))
    out_dir = args.pop("out_dir")
    try:
        root = ensure_synthetic(out_dir, SyntheticSpec(**args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    n_frames = sum(1 for _ in (root / "JPEGImages").iterdir())
    print(f"synthetic SOCAL: {args['trials']} trials (+1 orphan), {n_frames} frames -> {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
