"""``instance=local``: run a job on this host under the SageMaker container contract, no Docker.

A local folder stands in for ``/opt/ml``: the source archive is extracted into
``input/data/code``, the data folder is linked as the ``training`` channel, and ``train.py``
runs as a subprocess from the code folder with argv (``--key value``) and the ``SM_*``
environment as SageMaker SDK v3's container driver gives them. Model, output, checkpoint and
failure paths are inside the folder. This is how a launch is checked before paying for it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from socal.sagemaker.container import CHECKPOINT_ENV
from socal.sagemaker.hyperparams import driver_argv, sm_hps

log = logging.getLogger("socal.local")
HOST = "algo-1"


@dataclass
class LocalJob:
    root: Path  # the stand-in for /opt/ml
    returncode: int

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def log_file(self) -> Path:
        """Everything the job printed (what CloudWatch would hold)."""
        return self.root / "output" / "container.log"

    @property
    def failure(self) -> str:
        return self.failure_file.read_text().strip() if self.failure_file.exists() else ""


def _environment(root: Path, job_name: str, hps: dict[str, str], channel: bool) -> dict:
    """The variables v3's environment.py exports (paths moved under ``root``)."""
    decoded = json.loads(sm_hps(hps))
    env = {
        "TRAINING_JOB_NAME": job_name,
        "SM_MODEL_DIR": root / "model",
        "SM_INPUT_DIR": root / "input",
        "SM_INPUT_DATA_DIR": root / "input" / "data",
        "SM_INPUT_CONFIG_DIR": root / "input" / "config",
        "SM_OUTPUT_DIR": root / "output",
        "SM_OUTPUT_FAILURE": root / "output" / "failure",
        "SM_OUTPUT_DATA_DIR": root / "output" / "data",
        "SM_SOURCE_DIR": root / "input" / "data" / "code",
        "SM_ENTRY_SCRIPT": "train.py",
        "SM_CHANNELS": json.dumps(["training"] if channel else []),
        "SM_HPS": sm_hps(hps),
        "SM_CURRENT_HOST": HOST,
        "SM_HOSTS": json.dumps([HOST]),
        "SM_HOST_COUNT": 1,
        "SM_CURRENT_HOST_RANK": 0,
        "SM_MASTER_ADDR": HOST,
        "SM_MASTER_PORT": 7777,
        "SM_NUM_GPUS": 0,
        "SM_NUM_CPUS": os.cpu_count() or 1,
        "SM_CURRENT_INSTANCE_TYPE": "local",
        CHECKPOINT_ENV: root / "checkpoints",
    }
    if channel:
        env["SM_CHANNEL_TRAINING"] = root / "input" / "data" / "training"
    for key, value in decoded.items():
        env[f"SM_HP_{key.replace('-', '_').upper()}"] = (
            value if isinstance(value, str) else json.dumps(value)
        )
    return {k: str(v) for k, v in env.items()}


def run(
    hyperparameters: dict[str, str],
    archive: Path,
    data_root: Path | None,
    root: Path,
    job_name: str = "local",
) -> LocalJob:
    """Run ``train.py`` from ``archive`` with these hyperparameters; ``root`` plays /opt/ml."""
    code = root / "input" / "data" / "code"
    code.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(code, filter="data")
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=1))
    for folder in ("model", "output/data", "checkpoints"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    if data_root is not None:
        channel = root / "input" / "data" / "training"
        if not channel.exists():
            channel.symlink_to(data_root.resolve(), target_is_directory=True)
    env = {**os.environ, **_environment(root, job_name, hyperparameters, data_root is not None)}
    env.pop("PYTHONPATH", None)  # the shipped sources only, as on the instance
    command = [sys.executable, "train.py", *driver_argv(hyperparameters)]
    log.info("running %s in %s", " ".join(command[:2]), code)
    job = LocalJob(root, 0)
    with (
        subprocess.Popen(
            command,
            cwd=code,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc,
        job.log_file.open("w") as log_file,
    ):
        for line in proc.stdout:
            sys.stdout.write(line)
            log_file.write(line)
    job.returncode = proc.returncode
    returncode = job.returncode
    if returncode:
        log.error("local job failed (exit %d): %s", returncode, job.failure or "no failure file")
    else:
        log.info("local job done: model in %s, outputs in %s", job.model_dir, job.output_dir)
    return job
