"""The contract every registered model family keeps, run on one tiny option of each.

Built, one output per clip, trained one step; trained end to end by train.py, then the package
reproduces the run's predictions through predict.py and through the endpoint handler; a run
killed mid-epoch resumes to the uninterrupted run's results; and the config a SageMaker job
rebuilds from its hyperparameters equals the one sent.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from socal.config import CONF_DIR, semantic_config
from socal.config import compose_train as compose
from socal.models import FAMILIES, build_model, model_spec
from socal.sagemaker import hyperparams
from socal.training.checkpoint import step_files

from support import (
    REPO,
    assert_reproduces,
    assert_serves,
    encoded,
    expected_rows,
    model_archive,
    predict,
    run_train,
    same_results,
    start,
    synthetic_folder,
    wait_for_line,
)

# One tiny option per family: a family registered without one fails this module.
TINY_OPTIONS = {
    "videomae": "videomae_tiny",
    "torchvision_video": "r2plus1d_tiny",
    "frame_encoder": "frame_encoder_tiny",
    "timesformer": "timesformer_tiny",
    "vjepa2": "vjepa2_tiny",
}
OPTIONS = sorted(TINY_OPTIONS.values())


def test_every_family_has_a_tiny_option() -> None:
    assert set(TINY_OPTIONS) == set(FAMILIES)
    for family, option in TINY_OPTIONS.items():
        assert compose([f"model={option}"]).model.family == family


def job(option: str, data_root: Path) -> list[str]:
    """A short CPU run; batch size 2 gives epochs of several steps to be killed inside."""
    return [
        f"model={option}", f"data.root={data_root}",
        "data.num_frames=4", "trainer.device=cpu", "trainer.num_workers=0",
        "trainer.batch_size=2", "trainer.progress=false", "optimizer.lr=1e-3",
        "trainer.epochs=3", "trainer.checkpoint_every_steps=2",
        "trainer.early_stopping.patience=10",
    ]  # fmt: skip


@pytest.mark.parametrize("option", OPTIONS)
def test_one_output_per_clip_and_a_gradient_step_moves_every_group(option: str) -> None:
    cfg = compose([f"model={option}"]).model
    torch.manual_seed(0)
    model = build_model(cfg, num_frames=4)
    clips = torch.randn(3, 4, 3, model_spec(cfg).image_size, model_spec(cfg).image_size)
    out = model(clips)
    assert out.shape == (3,) and out.dtype == torch.float32
    before = [[p.detach().clone() for p in g.params] for g in model.layer_groups()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.binary_cross_entropy_with_logits(out, torch.ones(3)).backward()
    optimizer.step()
    for group, old in zip(model.layer_groups(), before, strict=True):
        assert any(not torch.equal(p, o) for p, o in zip(group.params, old, strict=True)), (
            group.name
        )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("families"), trials=16, seed=5)


@pytest.fixture(scope="module", params=OPTIONS)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data_root):
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    run_train(run_dir, job(request.param, data_root))
    return request.param, run_dir


@pytest.mark.slow
def test_the_package_reproduces_the_runs_predictions(
    tmp_path: Path, trained: tuple[str, Path], data_root: Path
) -> None:
    option, run_dir = trained
    predict(tmp_path / "out", f"run={run_dir}", f"data.root={data_root}")
    assert_reproduces(pd.read_csv(tmp_path / "out" / "predictions.csv"), expected_rows(run_dir))
    archive = model_archive(run_dir, tmp_path / "archive")
    assert_serves(archive, run_dir, data_root, tmp_path)


# Grad-CAM where the family has a convolutional last stage, integrated gradients elsewhere.
GRADIENT = {"r2plus1d_tiny": "grad-cam", "frame_encoder_tiny": "grad-cam"}


@pytest.mark.slow
def test_the_trained_model_is_explained(
    tmp_path: Path, trained: tuple[str, Path], data_root: Path
) -> None:
    option, run_dir = trained
    trial = expected_rows(run_dir).index[0]
    out = tmp_path / "explained"
    subprocess.run(
        [sys.executable, "explain.py", f"run={run_dir}", f"data.root={data_root}", "device=cpu",
         f"explain.trials=[{trial}]", "explain.top_seconds=1", "explain.ig_steps=2",
         f"hydra.run.dir={out}"],
        cwd=REPO, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    temporal = pd.read_csv(out / "temporal.csv")
    explained = pd.read_csv(out / "trials.csv").set_index("trial")
    assert set(temporal["trial"]) == {trial} and len(temporal) == 4  # one row per clip second
    assert explained.loc[trial, "gradient"] == GRADIENT.get(option, "integrated gradients")
    assert explained.loc[trial, "probability"] == pytest.approx(
        expected_rows(run_dir).loc[trial, "probability"], abs=1e-5
    )
    assert (out / f"{trial}.png").stat().st_size and (out / "summary.png").stat().st_size


@pytest.mark.slow
def test_sigkill_mid_run_resumes_to_the_uninterrupted_results(
    tmp_path: Path, trained: tuple[str, Path], data_root: Path
) -> None:
    option, reference = trained
    run_dir = tmp_path / "run"
    proc = start(run_dir, job(option, data_root))
    wait_for_line(proc, "epoch 1/")
    deadline = time.time() + 60
    while not step_files(run_dir / "checkpoints") and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    restarted = run_train(run_dir, job(option, data_root))
    assert "resuming from" in restarted.stdout
    same_results(run_dir, reference)


@pytest.mark.parametrize("option", OPTIONS)
def test_a_sagemaker_job_rebuilds_the_config_it_was_sent(option: str) -> None:
    hps, sent = encoded([f"model={option}", "instance=local"])
    hyperparams.check_limits(hps)
    given = hyperparams.received(hyperparams.driver_argv(hps), None)
    placement = {"data.root": "/data", "trainer.checkpoint_dir": "/ckpt"}
    rebuilt, _ = hyperparams.rebuild(given, placement)
    assert hyperparams.verify(given, rebuilt) == []
    assert semantic_config(rebuilt) == sent


def test_every_model_option_fits_in_sagemakers_hyperparameters() -> None:
    options = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    counts = {}
    for option in options:
        hps, _ = encoded([f"model={option}"])
        hyperparams.check_limits(hps)
        counts[option] = len(hps)
    assert len(counts) >= 16 and max(counts.values()) <= 98, counts  # as docs/models.md says
