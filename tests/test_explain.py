"""Explanations: occlusion equals the model run by hand, and a planted signal is found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from socal.config import OcclusionBaseline
from socal.data.index import Trial
from socal.data.synthetic import PLANTED_SECONDS
from socal.errors import UserError
from socal.explain.attribution import temporal
from socal.explain.trials import chosen
from socal.models import build_model
from socal.report.explain_plots import mean_by_second, read_explanations

from support import REPO, compose_train, run_train, synthetic_folder


def test_temporal_occlusion_equals_the_model_run_with_that_second_replaced() -> None:
    torch.manual_seed(0)
    model = build_model(compose_train(["model=videomae_tiny", "model.arch.image_size=32"]).model, 6)
    model.eval()

    def output(clips: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(clips))

    clip = torch.randn(1, 6, 3, 32, 32)
    positions = np.array([2, 9, 16, 23, 29, 29])  # a short trial: its last second twice
    for baseline in OcclusionBaseline:
        found = temporal(output, clip, positions, baseline, batch=4)
        assert sorted(found) == [2, 9, 16, 23, 29]
        with torch.no_grad():
            for second, value in found.items():
                hidden = clip.clone()
                frames = np.flatnonzero(positions == second)
                if baseline is OcclusionBaseline.neighbour:  # the frame before the second
                    hidden[:, frames] = clip[:, [frames[0] - 1 if frames[0] else frames[-1] + 1]]
                else:
                    hidden[:, frames] = 0.0
                expected = (output(clip) - output(hidden)).item()
                assert value == pytest.approx(expected, abs=1e-6), (baseline, second)


def planted_run(base: Path, signal: str) -> Path:
    """A tiny 3D CNN trained on synthetic trials whose only label signal is ``signal``."""
    data = synthetic_folder(base, trials=32, seed=3, signal=signal, length_leaks=False)
    run_dir = base / f"run-{signal}"
    run_train(run_dir, [
        "model=r2plus1d_tiny", "model.arch.image_size=32", f"data.root={data}",
        "data.num_frames=8", "data.augment.enabled=false", "trainer.device=cpu",
        "trainer.num_workers=0", "trainer.batch_size=4", "trainer.progress=false",
        "optimizer.lr=1e-3", "trainer.epochs=3", "eval.explain=true", "eval.bootstrap=0",
    ])  # fmt: skip
    return run_dir


def finds_the_planted_signal(explanations: Path) -> bool:
    """In every failure (the planted trials), the second that moves the prediction most lies in
    the planted span, and the occlusion map of it peaks in the planted quarter of the frame."""
    temporal_table = pd.read_csv(explanations / "temporal.csv")
    trials = pd.read_csv(explanations / "trials.csv")
    failures = trials.loc[trials["label"] == 0, "trial"].tolist()
    assert failures, "the test split has no failure"
    for trial in failures:
        rows = temporal_table[temporal_table["trial"] == trial]
        peak = rows.loc[rows["attribution"].abs().idxmax()]
        if int(peak["second"]) not in PLANTED_SECONDS or abs(peak["attribution"]) < 0.5:
            return False
        saved = np.load(explanations / f"{trial}.npz")
        occlusion = np.abs(saved["occlusion"][0])
        row, col = np.unravel_index(occlusion.argmax(), occlusion.shape)
        if not (row < occlusion.shape[0] // 2 and col < occlusion.shape[1] // 2):
            return False
    return True


@pytest.mark.slow
def test_explanations_find_a_planted_signal_and_do_not_without_it(tmp_path: Path) -> None:
    planted = planted_run(tmp_path, "planted")
    assert finds_the_planted_signal(planted / "explanations")
    saved = np.load(planted / "explanations" / f"{_a_failure(planted)}.npz")
    assert str(saved["method"]) == "grad-cam"
    cam = saved["gradient"][0]  # Grad-CAM on a 2 x 2 last stage, upsampled: coarse
    quarter = np.zeros(cam.shape, bool)
    quarter[:16, :16] = True
    assert cam[quarter].mean() > cam[~quarter].mean()
    assert quarter[np.unravel_index(cam.argmax(), cam.shape)]
    # eval.explain explains the test trials as the run predicted them.
    predictions = pd.read_csv(planted / "predictions.csv").query("subset == 'test'")
    trials = pd.read_csv(planted / "explanations" / "trials.csv")
    merged = predictions.merge(trials, on="trial", suffixes=("", "_explained"))
    assert len(merged) == len(predictions)
    assert merged["probability_explained"].to_numpy() == pytest.approx(
        merged["probability"], abs=1e-5
    )
    # socal.report gathers the runs' explanations into one figure.
    report = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "socal.report", str(planted), "--out", str(report),
         "--no-progress", "--bootstrap", "0"],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert (report / "plots" / "explanations.png").stat().st_size
    assert "plots/explanations.png" in (report / "report.md").read_text()
    # Without the signal in training, the model has learned nothing the test can find: the
    # same check on the same planted trials, explained by it, fails.
    control = planted_run(tmp_path, "none")
    out = tmp_path / "control-explained"
    data = synthetic_folder(tmp_path, trials=32, seed=3, signal="planted", length_leaks=False)
    failures = pd.read_csv(planted / "explanations" / "trials.csv").query("label == 0")["trial"]
    explain(out, f"run={control}", f"data.root={data}", f"explain.trials=[{','.join(failures)}]")
    assert not finds_the_planted_signal(out)


def _a_failure(run_dir: Path) -> str:
    trials = pd.read_csv(run_dir / "explanations" / "trials.csv")
    return str(trials.loc[trials["label"] == 0, "trial"].iloc[0])


def explain(out: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "explain.py", *args, "device=cpu", f"hydra.run.dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_an_unknown_trial_is_one_line(tmp_path: Path) -> None:
    trials = [Trial("S1T1", "1", 1.0, (tmp_path / "S1T1_frame_00000001.jpeg",))]
    assert chosen(trials, None) == trials and chosen(trials, ["S1T1"]) == trials
    with pytest.raises(UserError, match=r"^explain.trials: no trial with frames named S9T9$"):
        chosen(trials, ["S9T9"])


@pytest.mark.parametrize("window", ["0-60 s", "whole trial"])
def test_a_trial_explained_by_two_runs_counts_once_per_explanation(
    tmp_path: Path, window: str
) -> None:
    temporal_rows = pd.DataFrame(
        {"trial": ["S1T1", "S1T1"], "second": [0, 50], "attribution": [1.0, 2.0]}
    )
    trials_rows = pd.DataFrame(
        {"trial": ["S1T1"], "label": [1.0], "probability": [0.9], "prediction": [1],
         "n_frames": [100], "window": [window]}
    )  # fmt: skip
    folders = []
    for name in ("seed0", "seed1"):  # two seeds explain the same test trial alike
        (tmp_path / name / "explanations").mkdir(parents=True)
        temporal_rows.to_csv(tmp_path / name / "explanations" / "temporal.csv", index=False)
        trials_rows.to_csv(tmp_path / name / "explanations" / "trials.csv", index=False)
        folders.append(tmp_path / name)
    found = read_explanations(folders)
    assert found is not None
    temporal_table, trials_table = found
    assert len(trials_table) == 2
    both = mean_by_second(temporal_table, trials_table)
    assert both.to_dict() == mean_by_second(temporal_rows, trials_rows).to_dict()
    assert sorted(both) == [1.0, 2.0]
