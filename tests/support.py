"""Shared helpers for the tests: compose configs, make synthetic folders, run train.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from torchvision.transforms import v2

from socal.config import AugmentConfig, Normalization, register, semantic_config
from socal.data.decode import short_side_size
from socal.data.synthetic import SyntheticSpec, ensure_synthetic
from socal.data.transforms import MEAN_STD
from socal.sagemaker import hyperparams
from socal.sagemaker import job as sagemaker_job
from socal.sagemaker.container import write_model_dir
from socal.sagemaker.job import JobPlan
from socal.sagemaker.launch_config import register as register_launch
from socal.training.checkpoint import BEST

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "socal" / "conf"
register()


def compose_train(overrides: list[str], config_name: str = "train") -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def synthetic_folder(base: Path, **spec: object) -> Path:
    """A synthetic SOCAL folder under ``base``, reused across tests with the same spec."""
    spec_obj = SyntheticSpec(**spec)
    name = "-".join(f"{k}{v}" for k, v in sorted(spec.items())) or "default"
    return ensure_synthetic(base / f"syn-{name}", spec_obj, progress=False)


# Small and fast: 4 frames of 32 px, a few epochs; used by the end-to-end tests.
TINY = [
    "model=videomae_tiny",
    "model.arch.image_size=32",
    "data.num_frames=4",
    "trainer.device=cpu",
    "trainer.num_workers=0",
    "trainer.batch_size=4",
    "trainer.progress=false",
    "optimizer.lr=1e-3",
]


# A one-epoch CPU job as the launcher tests send it (hyperparameters keep the default lr).
TINY_JOB = [
    "model=videomae_tiny",
    "data.num_frames=8",
    "trainer.epochs=1",
    "trainer.batch_size=8",
    "trainer.num_workers=0",
    "trainer.device=cpu",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_train(
    run_dir: Path, overrides: list[str], check: bool = True, multirun: bool = False
) -> subprocess.CompletedProcess:
    """``python train.py`` in a subprocess, as a user runs it (``-m`` with ``multirun``)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    where = f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *(["-m"] if multirun else []), where, *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def reference_transform(
    size: int, normalization: Normalization, augment: AugmentConfig | None
) -> v2.Compose:
    """The textbook torchvision.transforms.v2 pipeline socal's split augmentation must match.

    Frames at ``size`` on the short side -> normalised float clip of ``size`` square;
    ``augment=None`` is the deterministic evaluation transform (centre crop).
    """
    mean, std = MEAN_STD[Normalization(normalization)]
    if augment is None or not augment.enabled:
        spatial = [v2.CenterCrop(size)]
    else:
        spatial = [
            v2.RandomResizedCrop(size, scale=(augment.crop_scale_min, 1.0), antialias=True),
            v2.RandomHorizontalFlip(augment.hflip),
            v2.ColorJitter(
                brightness=augment.brightness,
                contrast=augment.contrast,
                saturation=augment.saturation,
                hue=augment.hue,
            ),
        ]
    return v2.Compose([*spatial, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def local_plan(overrides: list[str]) -> JobPlan:
    """The JobPlan ``launch.py instance=local`` makes for these overrides (no AWS)."""
    register_launch()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=["instance=local", *overrides], return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    del cfg.hydra
    return sagemaker_job.plan(cfg, choices)


@dataclass
class Stopped:
    """What a SIGTERM to process 1 of a container cost."""

    exited_after_s: Optional[float]  # None: still running after the grace period, then killed
    lost_s: float  # training time after the newest checkpoint, redone by the restart
    newest: Optional[str]  # the newest checkpoint file
    output: str


def stop_process_1(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    checkpoints: Path,
    after_line: str,
    delay_s: float,
    grace_s: float,
) -> Stopped:
    """Run ``command`` as process 1 of its own PID namespace, SIGTERM that process ``delay_s``
    after ``after_line`` is printed, SIGKILL it ``grace_s`` later if it still runs (what
    SageMaker does after 120 s), and measure the training time the newest checkpoint lacks."""
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *command],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if after_line in line:
                seen.set()
        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.time()
    try:
        assert seen.wait(600) and proc.poll() is None, "".join(lines[-40:])
        time.sleep(delay_s)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        process_1 = int(children[0])  # unshare --fork: its child is the namespace's process 1
        sent = time.time()
        os.kill(process_1, signal.SIGTERM)
        try:
            proc.wait(grace_s)
            exited: Optional[float] = time.time() - sent
        except subprocess.TimeoutExpired:
            os.kill(process_1, signal.SIGKILL)  # ends every process of the namespace
            proc.wait(30)
            exited = None
        ended = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(30)
    # step-NNNNNN.pt, or last.pt of code from before them (measured by benchmarks/stop_pid1.py)
    files = sorted(
        (p for p in checkpoints.glob("*.pt") if p.name != BEST),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )  # fmt: skip
    saved = files[0].stat().st_mtime if files else started
    # Saved on the signal and exited: nothing to redo. Killed: everything since the newest save.
    lost = 0.0 if exited is not None and saved >= sent else ended - saved
    return Stopped(exited, lost, files[0].name if files else None, "".join(lines))


def encoded(overrides: list[str]) -> tuple[dict[str, str], dict]:
    """Launch side, in-process: hyperparameters and the semantic training config."""
    register_launch()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=overrides, return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    del cfg.hydra
    train = sagemaker_job.training_config(cfg)
    return hyperparams.encode(train, choices), semantic_config(train)


def predict(out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "predict.py", *args, f"hydra.run.dir={out}"],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def expected_rows(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "predictions.csv").query("subset == 'test'").set_index("trial")


def assert_reproduces(predicted: pd.DataFrame, expected: pd.DataFrame) -> None:
    predicted = predicted.set_index("trial").loc[expected.index]
    assert predicted.probability.to_numpy() == pytest.approx(expected.probability, abs=1e-6)
    assert (predicted.prediction.to_numpy() == expected.prediction.to_numpy()).all()


def start(run_dir: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for_line(proc: subprocess.Popen, text: str) -> list[str]:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"process ended before printing {text!r}:\n{''.join(seen[-30:])}")


def same_results(a: Path, b: Path) -> None:
    assert read_metrics(a) == read_metrics(b)
    for name in ("history.csv", "split.csv", "predictions.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name


ENDPOINT = """
import base64, json, sys
from pathlib import Path
import inference  # what the PyTorch serving container imports from code/
import socal

model_dir, frames_dir, trial = sys.argv[1:4]
assert socal.__file__.startswith(model_dir), socal.__file__  # the shipped copy
frames = sorted(Path(frames_dir).glob(trial + "*_frame_*.jpeg"))
model = inference.model_fn(model_dir)
encoded = [base64.b64encode(f.read_bytes()).decode() for f in frames]
request = json.dumps({"id": trial, "frames": encoded})
data = inference.input_fn(request, "application/json")
print(inference.output_fn(inference.predict_fn(data, model), "application/json"))
"""


def model_archive(run_dir: Path, base: Path) -> Path:
    """model.tar.gz as a SageMaker job writes it (SM_MODEL_DIR, tarred)."""
    write_model_dir(run_dir, base / "model")
    archive = base / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((base / "model").iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def assert_serves(archive: Path, run_dir: Path, data_root: Path, tmp_path: Path) -> None:
    """The archive, extracted as the serving container does with only code/ on the path (not
    this repo), answers a trial's frames with the run's own prediction for it."""
    model_dir = tmp_path / "opt_ml_model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    assert {"model.safetensors", "socal.json", "config.yaml", "metrics.json"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert (model_dir / "code" / "requirements.txt").is_file()
    expected = expected_rows(run_dir)
    mapping = pd.read_csv(data_root / "frame_to_trial_mapping.csv")
    # A trial recorded as one video (its file names sort in frame order).
    single = mapping.groupby("trial_id").frame.apply(lambda f: f.str.match(r"S\d+T\d+_").all())
    trial = next(t for t in expected.index if single[t])
    proc = subprocess.run(
        [sys.executable, "-c", ENDPOINT, str(model_dir), str(data_root / "JPEGImages"), trial],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(model_dir / "code")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (answer,) = json.loads(proc.stdout.splitlines()[-1])["predictions"]
    assert answer["id"] == trial
    assert answer["probability"] == pytest.approx(expected.probability[trial], abs=1e-6)
    assert answer["prediction"] == expected.prediction[trial]
    assert np.isfinite(answer["threshold"])


# A decode is "equal to the reference" (full PIL decode, then PIL's antialiased bilinear resize)
# when it differs by at most this many levels of 255 on average and at the 99th percentile.
# torch's uint8 resize matches PIL's exactly; what differs is libjpeg's DCT-domain downscale, a
# box-like filter: measured on the noisy synthetic frames, mean 1.1-2.0 and p99 6-13.
MEAN_TOLERANCE, P99_TOLERANCE = 2.5, 16.0


def reference_frame(path: Path, short_side: int) -> np.ndarray:
    """The slow, obvious decode: every pixel, then one resize to the short side."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        height, width = short_side_size(image.height, image.width, short_side)
        return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def assert_close_to_reference(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert diff.mean() <= MEAN_TOLERANCE and np.percentile(diff, 99) <= P99_TOLERANCE, (
        diff.mean(),
        np.percentile(diff, 99),
    )
