"""The tool annotations (socal.csv): read as the release writes them, tracks and APMs inside the
window only, the tool baseline, and a model with tool input (SOCALNet) end to end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from socal.config import TOOL_CLASSES, WindowConfig
from socal.data.dataset import ClipDataset
from socal.data.index import index_folder
from socal.data.splits import split_trials
from socal.data.synthetic import data_root
from socal.data.tools import apm_names, load_tools, tool_features
from socal.errors import UserError
from socal.models import build_model
from socal.training.metrics import baseline_outputs

from support import (
    assert_reproduces,
    compose_train,
    expected_rows,
    model_archive,
    predict,
    run_train,
    synthetic_folder,
)

WINDOW = WindowConfig(start_s=1, length_s=8)  # seconds 1..8
SIZES = {"S201T1": (64, 36), "S202T1": (48, 27), "S203T1": (64, 36)}
LENGTHS = {"S201T1": 12, "S202T1": 12, "S203T1": 5}  # S203T1 ends inside the window
SPLIT_AB = 5  # S202T1 is two videos: 5 frames in "a", 7 in "b"


def frame_name(trial: str, i: int) -> str:
    """File of the trial's i-th frame (0-based), as the release names them."""
    if trial == "S202T1":
        part, number = ("a", i + 1) if i < SPLIT_AB else ("b", i - SPLIT_AB + 1)
        return f"{trial}{part}_frame_{number:08d}.jpeg"
    return f"{trial}_frame_{i + 1:08d}.jpeg"


# The release's format with everything that happens in it: a BOM, \r\n, spaces, empty and NA
# rows for frames without a tool, the same tool twice in a frame, an identical repeated row, a
# path prefix, a box reaching past the frame's edge, one wholly outside it, a class outside the
# five, an a/b trial, a frame never annotated, and boxes after the window.
ROWS = [
    [frame_name("S201T1", 0), "1", "1", "9", "9", "suction"],  # second 0: before the window
    [frame_name("S201T1", 1), "", "", "", "", ""],
    [frame_name("S201T1", 2), "NA", "NA", "NA", "NA", "NA"],
    [frame_name("S201T1", 3), "10", "5", "20", "15", "suction"],
    [frame_name("S201T1", 3), "30", "10", "40", "20", "suction"],  # the same tool twice
    [frame_name("S201T1", 3), " 2", "3 ", "12", "30", " Grasper "],
    [frame_name("S201T1", 4), "-5", "-3", "10", "8", "suction"],  # clipped to the frame
    [frame_name("S201T1", 4), "40", "2", "50", "12", "cottonoid"],
    [frame_name("S201T1", 4), "40", "2", "50", "12", "cottonoid"],  # repeated row: once
    [frame_name("S201T1", 5), "70", "40", "90", "50", "cottonoid"],  # wholly outside
    [frame_name("S201T1", 6), "5", "5", "25", "25", "drill"],  # not one of the five
    [frame_name("S201T1", 6), "20", "20", "30", "35", "string"],
    # second 7 is not annotated
    ["JPEGImages/" + frame_name("S201T1", 8), "12", "6", "22", "16", "suction"],
    [frame_name("S201T1", 8), "50", "20", "60", "30", "muscle"],
    [frame_name("S201T1", 9), "1", "1", "30", "30", "cottonoid"],  # after the window
    [frame_name("S202T1", 1), "4", "4", "14", "14", "grasper"],
    [frame_name("S202T1", 4), "4", "4", "14", "14", "grasper"],  # the last frame of "a"
    [frame_name("S202T1", 5), "", "", "", "", ""],  # the first of "b"
    [frame_name("S202T1", 6), "30", "5", "44", "20", "grasper"],
    [frame_name("S202T1", 6), "1", "1", "40", "26", "cottonoid"],
    [frame_name("S202T1", 7), "30", "5", "44", "20", "grasper"],
    [frame_name("S202T1", 8), "", "", "", "", ""],
    [frame_name("S203T1", 2), "5", "5", "15", "15", "muscle"],
    [frame_name("S203T1", 3), "NA", "NA", "NA", "NA", "NA"],
    ["S999T1_frame_00000001.jpeg", "1", "1", "2", "2", "suction"],  # no such trial
]


def write_socal_csv(path: Path, rows: list[list[str]]) -> None:
    text = "\r\n".join(",".join(row) for row in rows) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "SOCAL"
    (root / "JPEGImages").mkdir(parents=True)
    mapping = []
    for trial, n in LENGTHS.items():
        for i in range(n):
            name = frame_name(trial, i)
            grey = np.full((SIZES[trial][1], SIZES[trial][0], 3), 10 * i, np.uint8)
            Image.fromarray(grey).save(root / "JPEGImages" / name, quality=90)
            mapping.append(f"{name},{trial},{i + 1}")
    (root / "frame_to_trial_mapping.csv").write_text(
        "frame,trial_id,frame_number\n" + "\n".join(mapping) + "\n"
    )
    (root / "socal_trial_outcomes.csv").write_text(
        "trial_id,participant_id,success,blood_loss\nS201T1,201,1,100\nS202T1,202,0,900\n"
        "S203T1,203,1,200\n"
    )
    write_socal_csv(root / "socal.csv", ROWS)
    return root


def expected_apms(rows: list[list[str]], trial: str, window: WindowConfig) -> dict[str, float]:
    """The APMs of one trial computed directly from the rows, one box at a time."""
    seconds = {frame_name(t, i): (t, i) for t, n in LENGTHS.items() for i in range(n)}
    start = window.start_s
    end = min(LENGTHS[trial], start + window.length_s)
    width, height = SIZES[trial]
    annotated, boxes, seen = set(), defaultdict(list), set()
    for row in rows:
        if tuple(row) in seen:
            continue
        seen.add(tuple(row))
        name = row[0].split("/")[-1]
        if name not in seconds or seconds[name][0] != trial:
            continue
        second = seconds[name][1]
        if not start <= second < end:
            continue
        annotated.add(second)
        name = row[5].strip().lower()
        if name in ("", "na"):
            continue
        x1, y1, x2, y2 = (float(v) for v in row[1:5])
        x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
        y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
        area = (x2 - x1) * (y2 - y1) / (width * height)
        if area > 0 and name in TOOL_CLASSES:
            boxes[second].append((name, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, area))
    n = len(annotated)
    out = {}
    for c in TOOL_CLASSES:
        out[f"proportion_{c}"] = sum(any(b[0] == c for b in boxes[s]) for s in annotated) / n
    counts = [len(boxes[s]) for s in annotated]
    for k in range(4):
        out[f"frames_{k}_tools"] = sum(count == k for count in counts) / n
    out["frames_4plus_tools"] = sum(count >= 4 for count in counts) / n
    total = 0
    for c in TOOL_CLASSES:
        present = [s for s in range(start, end) if any(b[0] == c for b in boxes[s])]
        out[f"first_second_{c}"] = present[0] - start if present else window.length_s
        runs = sum(1 for s in present if s - 1 not in present)
        out[f"in_and_outs_{c}"] = runs
        total += runs
        out[f"area_{c}"] = sum(b[3] for s in boxes for b in boxes[s] if b[0] == c) / n
        mine = [b for s in sorted(boxes) for b in boxes[s] if b[0] == c]
        out[f"sd_x_{c}"] = float(np.std([b[1] for b in mine])) if mine else 0.0
        out[f"sd_y_{c}"] = float(np.std([b[2] for b in mine])) if mine else 0.0
    out["in_and_outs_total"] = total
    return out


def features(root: Path, window: WindowConfig = WINDOW):
    trials, _ = index_folder(root)
    annotations = load_tools(root, trials)
    assert annotations is not None
    return trials, annotations, tool_features(annotations, trials, window)


def test_every_apm_equals_a_calculation_from_the_rows(folder: Path) -> None:
    trials, annotations, result = features(folder)
    assert list(result.apms.columns) == apm_names(TOOL_CLASSES)
    for trial in LENGTHS:
        wanted = expected_apms(ROWS, trial, WINDOW)
        got = result.apms.loc[trial].to_dict()
        assert got == pytest.approx(wanted, abs=1e-12), trial
    # Spot checks of the traps, in the units a reader sees.
    s201 = result.apms.loc["S201T1"]
    assert s201["first_second_suction"] == 2  # second 3, the window starting at 1
    assert s201["in_and_outs_suction"] == 2  # seconds 3-4, then 8
    assert s201["first_second_muscle"] == 7 and s201["first_second_cottonoid"] == 3
    assert result.apms.loc["S203T1", "first_second_grasper"] == 8  # never: the window length
    report = annotations.report
    assert report.repeated_rows == 1 and report.outside_boxes == 1 and report.clipped_boxes >= 1
    assert report.boxes_per_class["drill"] == 1 and report.unmatched_frames == [
        "S999T1_frame_00000001.jpeg"
    ]
    assert (report.trials, report.trials_total) == (3, 3)
    lines = "\n".join(report.lines(TOOL_CLASSES))
    assert "drill 1" in lines and "wholly outside the frame (dropped): 1" in lines
    # Tracks: one row per second the trial has inside the window; the a/b trial runs on.
    tracks = result.tracks.set_index(["trial_id", "second"])
    assert len(tracks) == 8 + 8 + 4
    assert tracks.loc[("S201T1", 7), "annotated"] == 0
    assert tracks.loc[("S201T1", 3), "suction_count"] == 2
    assert tracks.loc[("S202T1", 6), "grasper_present"] == 1  # "b" frame 2 is second 6
    assert tracks.loc[("S201T1", 3), "suction_x"] == pytest.approx((15 / 64 + 35 / 64) / 2)
    assert result.presence["S201T1"].shape == (9, 5)


def test_nothing_after_the_window_reaches_the_tracks_the_apms_or_the_model(
    folder: Path,
) -> None:
    trials, _, before = features(folder)
    changed = [row for row in ROWS if row[0] != frame_name("S201T1", 9)]
    for trial, n in LENGTHS.items():
        for i in range(9, n):  # every frame after the window gets tools, in every class
            changed += [[frame_name(trial, i), "1", "1", "30", "20", c] for c in TOOL_CLASSES]
    write_socal_csv(folder / "socal.csv", changed)
    _, _, after = features(folder)
    pd.testing.assert_frame_equal(before.tracks, after.tracks)
    pd.testing.assert_frame_equal(before.apms, after.apms)
    cfg = compose_train([f"data.root={folder}", "data.num_frames=8", "data.window.start_s=1",
                         "data.window.length_s=8", "data.cache=off"])  # fmt: skip
    for train in (True, False):
        items = [
            [ds[i]["tools"] for i in range(len(ds))]
            for ds in (
                ClipDataset.of_run(trials, cfg, 32, train, tools.presence)
                for tools in (before, after)
            )
        ]
        for a, b in zip(*items, strict=True):
            assert a.shape == (8, 5) and a.equal(b)


def test_a_model_with_tool_input_refuses_clips_without_them() -> None:
    cfg = compose_train(["model=socalnet_tiny"]).model
    model = build_model(cfg, 4, tool_classes=TOOL_CLASSES)
    clips = torch.zeros(2, 4, 3, 32, 32)
    assert model(clips, torch.zeros(2, 4, 5)).shape == (2,)
    with pytest.raises(UserError, match="trained with tool input"):
        model(clips)
    with pytest.raises(UserError, match="takes no tool input"):
        build_model(compose_train(["model=videomae_tiny"]).model, 16, tool_classes=TOOL_CLASSES)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("tools"), trials=40, seed=3)


@pytest.mark.parametrize("target", ["success", "blood_loss"])
def test_the_tool_baseline_is_a_cross_validated_pipeline_on_the_training_apms(
    synthetic: Path, target: str
) -> None:
    trials, _ = index_folder(synthetic, target)
    cfg = compose_train([f"data.root={synthetic}", f"data.target={target}"])
    subsets = split_trials(trials, cfg.split, regression=target != "success")
    train, test = subsets["train"], subsets["test"]
    apms = pd.read_csv(_apms_csv(synthetic, trials), index_col="trial_id")
    task = "classification" if target == "success" else "regression"
    ours = baseline_outputs(task, train, test, WindowConfig(), apms)["tools"]

    x = apms.loc[[t.trial_id for t in train]].to_numpy()
    y = np.array([t.label for t in train])
    groups = [t.participant for t in train]
    if task == "classification":
        cv = list(StratifiedGroupKFold(5).split(x, y, groups))
        fit = LogisticRegressionCV(
            Cs=np.logspace(-3, 2, 11),
            cv=cv,
            scoring="neg_log_loss",
            l1_ratios=(0,),
            use_legacy_attributes=False,
            max_iter=5000,
        )
    else:
        cv = list(GroupKFold(5).split(x, y, groups))
        fit = RidgeCV(alphas=np.logspace(-2, 4, 13), cv=cv)
    reference = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), fit).fit(x, y)
    x_test = apms.loc[[t.trial_id for t in test]].to_numpy()
    wanted = (
        reference.predict_proba(x_test)[:, 1]
        if task == "classification"
        else reference.predict(x_test)
    )
    assert ours == pytest.approx(wanted, rel=1e-9, abs=1e-9)
    assert np.ptp(ours) > 0  # fitted, not the prevalence


def _apms_csv(root: Path, trials) -> Path:
    """apms.csv as a run writes it (written and read back through the file)."""
    annotations = load_tools(root, trials)
    assert annotations is not None
    path = root.parent / f"apms-{root.name}.csv"
    tool_features(annotations, trials, WindowConfig()).apms.to_csv(path)
    return path


@pytest.mark.slow
def test_on_the_demo_the_tool_baseline_beats_the_majority_class(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=demo", f"data.root={tmp_path / 'demo'}"])
    root = data_root(cfg.data, progress=False)
    trials, _ = index_folder(root)
    subsets = split_trials(trials, cfg.split, regression=False)
    annotations = load_tools(root, trials)
    assert annotations is not None
    apms = tool_features(annotations, trials, cfg.data.window).apms
    test = subsets["test"]
    out = baseline_outputs("classification", subsets["train"], test, cfg.data.window, apms)
    y = np.array([t.label for t in test])
    majority = accuracy_score(y, out["majority"] >= 0.5)
    assert accuracy_score(y, out["tools"] >= 0.5) > majority
    assert roc_auc_score(y, out["tools"]) > 0.7


ENDPOINT = """
import base64, csv, json, sys
from pathlib import Path
import inference

model_dir, root, trial, with_tools = sys.argv[1:5]
names = sorted(p.name for p in (Path(root) / "JPEGImages").glob(trial + "_frame_*.jpeg"))
request = {"id": trial, "frames": [
    base64.b64encode((Path(root) / "JPEGImages" / n).read_bytes()).decode() for n in names]}
if with_tools == "1":
    boxes = {n: [] for n in names}
    for row in csv.reader(open(Path(root) / "socal.csv")):
        if row[0] in boxes and row[5] not in ("", "NA"):
            boxes[row[0]].append([float(v) for v in row[1:5]] + [row[5]])
    request["tools"] = [boxes[n] for n in names]
model = inference.model_fn(model_dir)
try:
    data = inference.input_fn(json.dumps(request), "application/json")
    print(inference.output_fn(inference.predict_fn(data, model), "application/json"))
except ValueError as err:
    print("refused:", err)
"""


@pytest.mark.slow
def test_socalnet_trains_predicts_and_serves_with_tool_input(
    tmp_path: Path, synthetic: Path
) -> None:
    run_dir = tmp_path / "run"
    run_train(run_dir, [
        "model=socalnet_tiny", f"data.root={synthetic}", "data.num_frames=4",
        "trainer.device=cpu", "trainer.num_workers=0", "trainer.batch_size=4",
        "trainer.progress=false", "trainer.epochs=2",
    ])  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tools"]["model_input"] == list(TOOL_CLASSES)
    assert "tools" in metrics["baselines"]
    table = pd.read_csv(run_dir / "predictions.csv")
    assert table["baseline_tools"].notna().all()
    split = pd.read_csv(run_dir / "split.csv")
    assert set(pd.read_csv(run_dir / "apms.csv")["trial_id"]) == set(split["trial"])
    tracks = pd.read_csv(run_dir / "tools.csv")
    assert tracks["second"].max() < 60 and set(tracks["trial_id"]) == set(split["trial"])

    predict(tmp_path / "out", f"run={run_dir}", f"data.root={synthetic}")
    assert_reproduces(pd.read_csv(tmp_path / "out" / "predictions.csv"), expected_rows(run_dir))
    bare = tmp_path / "bare"
    shutil.copytree(synthetic, bare, ignore=shutil.ignore_patterns("socal.csv", ".socal-cache"))
    refused = subprocess.run(
        [sys.executable, "predict.py", f"run={run_dir}", f"data.root={bare}",
         f"hydra.run.dir={tmp_path / 'out2'}"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert refused.returncode == 2
    said = refused.stdout + refused.stderr
    assert "trained with tool input" in said and "socal.csv" in said

    trial = expected_rows(run_dir).index[0]
    subprocess.run(
        [sys.executable, "explain.py", f"run={run_dir}", f"data.root={synthetic}", "device=cpu",
         f"explain.trials=[{trial}]", "explain.top_seconds=1", "explain.ig_steps=2",
         f"hydra.run.dir={tmp_path / 'explained'}"],
        cwd=Path(__file__).parent.parent, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    explained = pd.read_csv(tmp_path / "explained" / "trials.csv").set_index("trial")
    assert explained.loc[trial, "probability"] == pytest.approx(  # the tools held, not zeroed
        expected_rows(run_dir).loc[trial, "probability"], abs=1e-5
    )

    archive = model_archive(run_dir, tmp_path / "archive")
    model_dir = tmp_path / "opt_ml_model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    expected = expected_rows(run_dir)
    mapping = pd.read_csv(synthetic / "frame_to_trial_mapping.csv")
    single = mapping.groupby("trial_id").frame.apply(lambda f: f.str.match(r"S\d+T\d+_").all())
    trial = next(t for t in expected.index if single[t])
    answers = {}
    for with_tools in ("1", "0"):
        proc = subprocess.run(
            [sys.executable, "-c", ENDPOINT, str(model_dir), str(synthetic), trial, with_tools],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(model_dir / "code")},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        answers[with_tools] = proc.stdout.strip().splitlines()[-1]
    (answer,) = json.loads(answers["1"])["predictions"]
    assert answer["probability"] == pytest.approx(expected.probability[trial], abs=1e-6)
    assert answers["0"].startswith("refused:") and "tool annotations" in answers["0"]


def test_tool_settings_that_cannot_work_are_one_line_errors(tmp_path: Path) -> None:
    bare = synthetic_folder(tmp_path, trials=16, tools=False)
    proc = run_train(tmp_path / "run", [
        f"data.root={bare}", "data.tools=true", "model=socalnet_tiny", "trainer.epochs=1",
        "trainer.device=cpu", "trainer.num_workers=0", "trainer.progress=false",
    ], check=False)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "data.tools=true" in output and "has no socal.csv" in output


def test_the_synthetic_release_writes_socal_csv_in_the_release_format(synthetic: Path) -> None:
    with (synthetic / "socal.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert all(len(row) == 6 for row in rows)
    assert not rows[0][0].startswith("frame")  # no header
    empty = [row for row in rows if row[5] in ("", "NA")]
    assert empty and all(set(row[1:]) <= {"", "NA"} for row in empty)
    trials, _ = index_folder(synthetic)
    longest = max(trials, key=lambda t: t.n_frames)
    last = longest.frames[-1].name
    assert any(row[0] == last for row in rows)  # annotations run to the end of the trial
