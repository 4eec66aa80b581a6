"""One SageMaker tuning job (automatic model tuning) from a launch config and a search space.

``plan()`` builds on the single-job plan (socal.sagemaker.job: the same checks, hyperparameters,
image, channels and metric definitions) and adds what a tuning job needs; ``TuningPlan.request()``
is the CreateHyperParameterTuningJob request a dry run prints (socal.sagemaker.tuning_launch
submits it with SDK v3's ``HyperparameterTuner``).

What differs from a training job (SDK v3 ``sagemaker/train/tuner.py``, the tuning API):

- no container entry point: each trial runs the image's legacy training toolkit, which fetches
  ``sagemaker_submit_directory``, installs only a root ``requirements.txt``, and runs
  ``sagemaker_program`` with ``str()``-encoded argv, one process unless
  ``sagemaker_torch_distributed_enabled`` (then torchrun, one process per GPU);
- the tuner re-tars a local ``source_dir`` by walking a folder (a ``.tar.gz`` file would ship
  empty), so socal uploads its own archive and passes its S3 URI;
- one CheckpointConfig for all trials: the tuning job gets its own prefix, and each trial keeps
  its checkpoints under its training job name inside it (socal.sagemaker.container);
- the objective is the last ``best_val_<metric>=`` line each trial logs (SageMaker takes the
  last value; train.py also logs it after every epoch, for early stopping and Hyperband).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from socal.errors import UserError
from socal.monitor import maximised, objective_name
from socal.sagemaker import hyperparams, packing
from socal.sagemaker import job as sagemaker_job
from socal.sagemaker.hyperparams import TUNED_KEY
from socal.sagemaker.launch_config import EarlyStoppingType, TuningStrategy
from socal.sagemaker.tuning_space import ParameterRange, check_candidates, search_space

REQUEST_FILE = "tuning_request.json"
MAX_TUNING_JOB_NAME = 32
TIMESTAMP = "%y%m%d-%H%M%S"
DEFAULT_MAX_JOBS = 10
# Hyperparameters SageMaker adds to each trial: _tuning_objective_metric.
ADDED_BY_SAGEMAKER = 1
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"


@dataclass
class TuningPlan:
    name: str
    job: sagemaker_job.JobPlan  # what each trial runs (its checkpoint URI: this tuning job's)
    ranges: list[ParameterRange]
    objective: str
    maximise: bool
    strategy: str
    max_jobs: Optional[int]
    max_parallel_jobs: int
    early_stopping_type: str
    random_seed: Optional[int]
    hyperband_epochs: Optional[tuple[int, int]]  # (min, max) resource for Hyperband

    @property
    def code_uri(self) -> str:
        """Where socal uploads the source archive: the trials' sagemaker_submit_directory."""
        return f"s3://{self.job.bucket}/{self.job.code_prefix}/{self.name}/sourcedir.tar.gz"

    def trainer_hyperparameters(self) -> dict[str, str]:
        """The ModelTrainer's hyperparameters: the job's, plus the tuned keys and torchrun."""
        extra = {TUNED_KEY: ",".join(r.key for r in self.ranges)}
        if self.job.torchrun:
            extra[TORCH_DISTRIBUTED] = "true"
        return {**self.job.hyperparameters, **extra}

    def static_hyperparameters(self) -> dict[str, str]:
        """What every trial gets besides the tuned values (as HyperparameterTuner sends it)."""
        tuned = {r.key for r in self.ranges}
        static = {k: v for k, v in self.trainer_hyperparameters().items() if k not in tuned}
        return {
            **static,
            "sagemaker_program": sagemaker_job.ENTRY_SCRIPT,
            "sagemaker_submit_directory": self.code_uri,
        }

    def request(self) -> dict[str, Any]:
        """The CreateHyperParameterTuningJob request."""
        single = self.job.request(f"{self.name}-001-00000000")
        spec = single["AlgorithmSpecification"]
        kinds = ("Integer", "Continuous", "Categorical")
        config: dict[str, Any] = {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if self.maximise else "Minimize",
                "MetricName": self.objective,
            },
            "ResourceLimits": {"MaxParallelTrainingJobs": self.max_parallel_jobs},
            "ParameterRanges": {
                f"{kind}ParameterRanges": [r.request() for r in self.ranges if r.kind == kind]
                for kind in kinds
                if any(r.kind == kind for r in self.ranges)
            },
            "TrainingJobEarlyStoppingType": self.early_stopping_type,
        }
        if self.max_jobs is not None:
            config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = self.max_jobs
        if self.random_seed is not None:
            config["RandomSeed"] = self.random_seed
        if self.hyperband_epochs:
            low, high = self.hyperband_epochs
            config["StrategyConfig"] = {
                "HyperbandStrategyConfig": {"MinResource": low, "MaxResource": high}
            }
        channels = [c for c in single["InputDataConfig"] if c["ChannelName"] != "code"]
        # The tuner uploads the SDK's drivers under its own prefix (unused by the legacy toolkit).
        drivers = channels[-1]["DataSource"]["S3DataSource"]
        drivers["S3Uri"] = (
            f"s3://{self.job.bucket}/{self.job.code_prefix}/{self.job.base_job_name}/"
            f"tuning-{int(time.time())}/input/sm_drivers"
        )
        definition = {
            "AlgorithmSpecification": {
                "TrainingImage": spec["TrainingImage"],
                "TrainingInputMode": spec["TrainingInputMode"],
                "MetricDefinitions": spec["MetricDefinitions"],
            },
            "RoleArn": single["RoleArn"],
            "StaticHyperParameters": self.static_hyperparameters(),
            "InputDataConfig": channels,
            **{
                k: single[k]
                for k in (
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                    "CheckpointConfig",
                    "EnableManagedSpotTraining",
                )
            },
        }
        return {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "Tags": single["Tags"],
        }


def _settings(cfg: DictConfig, ranges: list[ParameterRange]) -> dict[str, Any]:
    """``tuning.*`` checked against each other and the search space."""
    tuning = cfg.tuning
    if packing.runs_per_job(cfg.launch.runs_per_job) != 1:
        raise UserError(
            f"launch.runs_per_job={cfg.launch.runs_per_job} with hydra/sweeper=sagemaker: a tuning "
            "job runs each trial as its own training job, so trials cannot be packed; drop "
            "launch.runs_per_job"
        )
    monitor = cfg.trainer.early_stopping.metric
    objective = tuning.objective or monitor
    if objective != monitor:
        raise UserError(
            f"tuning.objective={objective}: trials log the best value of the early-stopping "
            f"metric only; set trainer.early_stopping.metric={objective} instead"
        )
    strategy = TuningStrategy(tuning.strategy)
    max_jobs = tuning.max_jobs
    if strategy is TuningStrategy.Grid:
        numeric = [r.dotted for r in ranges if r.kind != "Categorical"]
        if numeric:
            raise UserError(
                f"tuning.strategy=Grid searches lists of values only: {numeric[0]} is a range; "
                "use choice(...) or a comma list"
            )
        if max_jobs is not None:
            raise UserError("tuning.strategy=Grid runs every combination: leave tuning.max_jobs")
    elif max_jobs is None:
        max_jobs = DEFAULT_MAX_JOBS
    if (max_jobs is not None and max_jobs < 1) or tuning.max_parallel_jobs < 1:
        raise UserError("tuning.max_jobs and tuning.max_parallel_jobs must be >= 1")
    if max_jobs is not None and tuning.max_parallel_jobs > max_jobs:
        raise UserError(
            f"tuning.max_parallel_jobs={tuning.max_parallel_jobs} exceeds "
            f"tuning.max_jobs={max_jobs}"
        )
    stopping = EarlyStoppingType(tuning.early_stopping_type)
    hyperband = None
    if strategy is TuningStrategy.Hyperband:
        if stopping is not EarlyStoppingType.Off:
            raise UserError(
                "tuning.strategy=Hyperband stops trials itself: set tuning.early_stopping_type=Off"
            )
        if not 1 <= tuning.hyperband_min_epochs <= cfg.trainer.epochs:
            raise UserError(
                f"tuning.hyperband_min_epochs={tuning.hyperband_min_epochs} must be between 1 "
                f"and trainer.epochs={cfg.trainer.epochs}"
            )
        hyperband = (tuning.hyperband_min_epochs, cfg.trainer.epochs)
    if tuning.random_seed is not None and tuning.random_seed < 1:
        # SDK v3 sends RandomSeed only `if self.random_seed`: 0 would be dropped silently.
        raise UserError(f"tuning.random_seed={tuning.random_seed}: give a seed >= 1")
    return {
        "objective": objective_name(objective),
        "maximise": maximised(objective),
        "strategy": strategy.value,
        "max_jobs": max_jobs,
        "max_parallel_jobs": tuning.max_parallel_jobs,
        "early_stopping_type": stopping.value,
        "random_seed": tuning.random_seed,
        "hyperband_epochs": hyperband,
    }


def plan(
    cfg: DictConfig, choices: dict[str, str], sweeps: list[Override], dry_run: bool
) -> TuningPlan:
    """Everything the tuning job needs, from the config alone; UserError names what is wrong."""
    job = sagemaker_job.plan(cfg, choices, None, dry_run)
    name = f"{job.base_job_name}-{datetime.now():{TIMESTAMP}}"
    if len(name) > MAX_TUNING_JOB_NAME:
        limit = MAX_TUNING_JOB_NAME - (len(name) - len(job.base_job_name))
        raise UserError(
            f"sagemaker.base_job_name={job.base_job_name}: a tuning job's base name takes at "
            f"most {limit} characters"
        )
    train = sagemaker_job.training_config(cfg)
    ranges = search_space(sweeps, train, job.hyperparameters, hyperparams.training_groups())
    # One prefix per tuning job; each trial adds its job name (socal.sagemaker.container).
    checkpoints = f"{job.checkpoint_uri.rsplit('/', 1)[0]}/{name}"
    tuning = TuningPlan(
        name=name,
        job=dataclasses.replace(job, checkpoint_uri=checkpoints),
        ranges=ranges,
        **_settings(cfg, ranges),
    )
    static = tuning.static_hyperparameters()
    hyperparams.check_limits({k: v for k, v in static.items() if not k.startswith("sagemaker_")})
    total = len(static) + len(ranges) + ADDED_BY_SAGEMAKER
    if total > hyperparams.MAX_HYPERPARAMETERS:
        raise UserError(
            f"{total} hyperparameters per trial (static, tuned and SageMaker's own), SageMaker "
            f"accepts at most {hyperparams.MAX_HYPERPARAMETERS}: reduce the config"
        )
    check_candidates(train, tuning.trainer_hyperparameters(), ranges)
    return tuning


def save_request(tuning: TuningPlan, run_dir: Path) -> dict[str, Any]:
    request = tuning.request()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / REQUEST_FILE).write_text(json.dumps(request, indent=2) + "\n")
    return request
