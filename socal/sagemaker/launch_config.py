"""Structured-config schemas for the launcher-only nodes of ``socal/conf/launch.yaml``.

``launch.yaml`` is ``train.yaml`` plus four nodes that never reach the training code:
``instance`` (where it runs), ``sagemaker`` (account, S3 and job settings), ``launch`` (how
this command behaves) and ``tuning`` (a tuning job, with ``hydra/sweeper=sagemaker``). They
are validated here like the training groups are in ``socal.config``; this module imports
neither torch nor the SageMaker SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from socal.config import TrainConfig

LAUNCHER_KEYS = ("instance", "sagemaker", "launch", "tuning")
LOCAL_INSTANCE = "local"


class InputMode(str, Enum):
    File = "File"
    FastFile = "FastFile"


@dataclass
class InstanceConfig:
    """One SageMaker instance type (``type: local`` runs the container contract on this host)."""

    type: str = MISSING
    count: int = 1
    gpus: int = 0
    vcpus: int = 0
    volume_gb: int = 50
    # On-demand list price per instance-hour (us-east-1), for the cost estimate of socal.jobs.
    hourly_usd: Optional[float] = None


@dataclass
class SageMakerSettings:
    # IAM execution role ARN; defaults to $SOCAL_SAGEMAKER_ROLE.
    role: Optional[str] = None
    # AWS region; null = the region of your AWS configuration (AWS_REGION, ~/.aws/config).
    region: Optional[str] = None
    # S3 bucket for code, outputs and checkpoints; defaults to $SOCAL_S3_BUCKET.
    bucket: Optional[str] = None
    # Key prefix under the bucket for everything this project writes.
    prefix: str = "socal"
    # The uploaded dataset (python -m socal.upload); null = s3://BUCKET/PREFIX/data.
    data_uri: Optional[str] = None
    # Where SageMaker writes model.tar.gz and output.tar.gz; null = s3://BUCKET/PREFIX/output.
    output_uri: Optional[str] = None
    # Checkpoint S3 prefix; the job uses PREFIX/<base_job_name>-<config fingerprint>/code-<hash>-
    # data-<hash>, so a spot restart or a relaunch of the same config, code and data resumes
    # (socal.sagemaker.checkpoints). null = s3://BUCKET/PREFIX/checkpoints.
    checkpoint_uri: Optional[str] = None
    # Full training image URI; null = the PyTorch DLC below, via image_uris.retrieve.
    image: Optional[str] = None
    framework_version: str = "2.8"
    py_version: str = "py312"
    spot: bool = False
    max_run: int = 24 * 3600
    # Spot only: waiting for capacity plus running; must exceed max_run. null = 2 x max_run.
    max_wait: Optional[int] = None
    base_job_name: str = "socal"
    input_mode: InputMode = InputMode.File
    tags: dict[str, str] = field(default_factory=dict)
    # Shipped with the source code and pip-installed on the instance (the DLC has torch);
    # null: nothing is installed (a prebuilt sagemaker.image with everything inside).
    requirements: Optional[str] = "socal/requirements/instance.txt"
    # Refuse to ship a source archive larger than this.
    max_source_mb: float = 5.0
    # Warm pool: keep the instance this many minutes after the job (0 = off, at most 60; the
    # kept instance is billed; not with spot). The next job of the same shape skips provisioning.
    keep_alive_minutes: int = 0


@dataclass
class LaunchOptions:
    # Print and save the complete job request; no AWS calls, no credentials needed.
    dry_run: bool = False
    # Block until the job ends (and stream its logs); always off for multirun.
    wait: bool = True
    logs: bool = True
    # Check that sagemaker.data_uri holds the outcomes CSV and frames before submitting.
    check_data: bool = True
    # Relaunch a run whose checkpoints say it finished (it is tested and published again).
    force: bool = False
    # launch.py -m: how many of the sweep's runs one training job trains ("all" or a number;
    # 1 = one job per run). A packed job shares one data download and one environment install.
    runs_per_job: str = "1"


class TuningStrategy(str, Enum):
    Bayesian = "Bayesian"
    Random = "Random"
    Hyperband = "Hyperband"
    Grid = "Grid"


class EarlyStoppingType(str, Enum):
    Off = "Off"
    Auto = "Auto"


@dataclass
class TuningSettings:
    """SageMaker automatic model tuning: ``python launch.py -m hydra/sweeper=sagemaker ...``."""

    # The validation metric to optimise; null = trainer.early_stopping.metric (the only one
    # whose best value train.py logs, as best_<metric>=). Never a test metric.
    objective: Optional[str] = None
    strategy: TuningStrategy = TuningStrategy.Bayesian
    # Training jobs in all; null = 10, or every combination with strategy=Grid.
    max_jobs: Optional[int] = None
    max_parallel_jobs: int = 1
    # Auto: SageMaker stops trials whose objective trails earlier trials' (not with Hyperband,
    # which stops trials itself).
    early_stopping_type: EarlyStoppingType = EarlyStoppingType.Off
    random_seed: Optional[int] = None
    # Hyperband: the fewest epochs a trial runs before it can be stopped (at most trainer.epochs).
    hyperband_min_epochs: int = 1


@dataclass
class LaunchConfig(TrainConfig):
    instance: InstanceConfig = MISSING
    sagemaker: SageMakerSettings = field(default_factory=SageMakerSettings)
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    tuning: TuningSettings = field(default_factory=TuningSettings)


def register() -> None:
    """Register the training schemas and ``launch_schema`` (used by socal/conf/launch.yaml)."""
    from socal.config import register as register_training

    register_training()
    ConfigStore.instance().store(name="launch_schema", node=LaunchConfig)
