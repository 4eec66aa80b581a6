"""``instance=local``: run a job on this host through the container's own command chain, no Docker.

A local folder stands in for ``/opt/ml``. The SageMaker SDK prepares the job exactly as for AWS
(``ModelTrainer._create_training_job_args`` in LOCAL_CONTAINER mode: nothing is uploaded): its
``sm_train.sh``, drivers and ``sourcecode.json``/``distributed.json`` go to
``input/data/sm_drivers`` with ``/opt/ml`` replaced by the folder, the source archive to
``input/data/code``, the config files SageMaker writes to ``input/config``, and the data folder
is linked as the ``training`` channel. The container's entry command then runs: ``bash -c
"... sm_train.sh"`` -> the SDK's ``environment.py`` -> ``exec`` socal's exec_driver -> ``exec``
``train.py`` (or ``torchrun``). Only the requirements are not installed: this environment's
packages are used. This is how a launch is checked before paying for it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from socal.errors import UserError
from socal.sagemaker.container import CHECKPOINT_ENV
from socal.sagemaker.job import CHANNEL, JobPlan

log = logging.getLogger("socal.local")
HOST = "algo-1"
CONTAINER_ROOT = "/opt/ml"


@dataclass
class LocalJob:
    root: Path  # the stand-in for /opt/ml
    returncode: int = 0
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

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


def _relocate(folder: Path, root: Path) -> None:
    """``/opt/ml`` -> ``root`` in every text file the SDK wrote (scripts, drivers, JSON)."""
    for path in folder.rglob("*"):
        if path.suffix in (".sh", ".py", ".json") and path.is_file():
            text = path.read_text()
            if CONTAINER_ROOT in text:
                path.write_text(text.replace(CONTAINER_ROOT, str(root)))


def _write_config(root: Path, request: dict, data: bool) -> None:
    """The files SageMaker writes to ``/opt/ml/input/config`` before the container starts."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request["hyper_parameters"]))
    resources = {
        "current_host": HOST,
        "current_instance_type": "local",
        "hosts": [HOST],
        "network_interface_name": "lo",
    }
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    channels = [c.channel_name for c in request["input_data_config"] if c.channel_name != CHANNEL]
    channels = ([CHANNEL] if data else []) + channels
    inputs = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
              for name in channels}  # fmt: skip
    (config / "inputdataconfig.json").write_text(json.dumps(inputs))


def prepare(
    job: JobPlan, archive: Path, data_root: Path | None, root: Path, job_name: str = "local"
) -> LocalJob:
    """Lay out ``root`` as the instance's ``/opt/ml`` for ``job``; return the command to run."""
    from socal.sagemaker.submit import model_trainer

    root = root.resolve()
    if any(c.isspace() or c in "'\"$`\\" for c in str(root)):
        raise UserError(f"instance=local needs a folder path without spaces or quotes: {root}")
    for folder in ("model", "output/data", "checkpoints", "input/data/code"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    trainer = model_trainer(job, str(archive), local_root=root)
    request = trainer._create_training_job_args()  # the SDK's own preparation, no upload
    drivers = root / "input" / "data" / "sm_drivers"
    shutil.copytree(trainer._temp_code_dir.name, drivers, dirs_exist_ok=True)
    trainer._temp_code_dir.cleanup()
    _relocate(drivers, root)
    shutil.copy2(archive, root / "input" / "data" / "code" / archive.name)
    _write_config(root, request, data_root is not None)
    if data_root is not None:
        channel = root / "input" / "data" / CHANNEL
        if not channel.exists():
            channel.symlink_to(data_root.resolve(), target_is_directory=True)
    spec = request["algorithm_specification"]
    command = [
        arg.replace(CONTAINER_ROOT, str(root))
        for arg in [*spec.container_entrypoint, *spec.container_arguments]
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the shipped sources only
    env.update(
        TRAINING_JOB_NAME=job_name,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        **{CHECKPOINT_ENV: str(root / "checkpoints")},
    )
    return LocalJob(root, command=command, env=env)


def run(
    job: JobPlan, archive: Path, data_root: Path | None, root: Path, job_name: str = "local"
) -> LocalJob:
    """Run ``job`` from ``archive`` through the container command chain; ``root`` plays /opt/ml."""
    local = prepare(job, archive, data_root, root, job_name)
    log.info("running the container command in %s", local.root)
    with (
        subprocess.Popen(
            local.command,
            cwd=local.root,
            env=local.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc,
        local.log_file.open("w") as log_file,
    ):
        for line in proc.stdout:
            sys.stdout.write(line)
            log_file.write(line)
    local.returncode = proc.returncode
    if local.returncode:
        log.error("local job failed (exit %d): %s", local.returncode, local.failure or "no failure")
    else:
        log.info("local job done: model in %s, outputs in %s", local.model_dir, local.output_dir)
    return local
