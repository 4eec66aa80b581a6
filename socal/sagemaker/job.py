"""One SageMaker training job from a composed launch config: plan, check, describe, submit.

``plan()`` resolves everything a job needs from the config alone (no AWS calls) and refuses
bad input with one line naming the key; ``JobPlan.request()`` is the CreateTrainingJob request
a dry run prints. Talking to AWS (checks, submission) is ``socal.sagemaker.submit``'s part.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from socal.config import fingerprint
from socal.errors import UserError
from socal.sagemaker import hyperparams
from socal.sagemaker.launch_config import LAUNCHER_KEYS, LOCAL_INSTANCE, SageMakerSettings

log = logging.getLogger("socal.launch")

ENTRY_SCRIPT = "train.py"
CHANNEL = "training"
MAX_BASE_NAME = 63 - 15  # v3 appends "-YYYYmmddHHMMSS" and cuts the name at 63 characters
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")
MAX_METRIC_DEFINITIONS = 40
MAX_KEEP_ALIVE_MINUTES = 60  # CreateTrainingJob's KeepAlivePeriodInSeconds: 0 to 3600
# Metric lines train.py logs, one per line: "[time][socal.training.engine][INFO] - val_loss=0.7868";
# best_val_* is the early-stopping metric's best value, logged last (what a sweep optimises).
METRIC_NAMES = (
    "loss", "accuracy", "balanced_accuracy", "auroc", "f1", "sensitivity", "specificity", "rmse",
    "mae", "r2",
)  # fmt: skip
METRICS = ["train_loss", "lr"] + [
    f"{subset}_{name}" for subset in ("val", "test", "best_val") for name in METRIC_NAMES
]
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
PLACEHOLDER = "<{} not set>"
# tracking=mlflow: the instance's requirements plus the MLflow client and SageMaker's plugin.
TRACKING_REQUIREMENTS = "socal/requirements/tracking.txt"


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": rf"\b{name}={NUMBER}"} for name in METRICS]


def training_config(cfg: DictConfig) -> DictConfig:
    """The training part of a launch config, with this job's container paths."""
    train = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in LAUNCHER_KEYS])
    OmegaConf.resolve(train)
    train.data.root = hyperparams.CONTAINER_DATA_ROOT
    train.trainer.checkpoint_dir = hyperparams.CONTAINER_CHECKPOINT_DIR
    # trainer.resume=false is a fresh checkpoint prefix for this launch (checkpoints.bind): the
    # job itself always resumes what it finds there, e.g. after a spot restart.
    train.trainer.resume = True
    return train


def _s3(uri: Optional[str], key: str) -> Optional[str]:
    if uri is None:
        return None
    if not uri.strip():
        raise UserError(f"{key} is empty: give an S3 URI such as s3://my-bucket/socal/data")
    if not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", uri):
        raise UserError(f"{key}={uri} is not an S3 URI (s3://bucket/prefix)")
    return uri.rstrip("/")


@dataclass
class JobPlan:
    base_job_name: str
    instance_type: str
    instance_count: int
    gpus: int
    volume_gb: int
    role: str
    region: str
    bucket: str
    code_prefix: str
    image: str
    hyperparameters: dict[str, str]
    data_uri: Optional[str]
    input_mode: str
    output_uri: str
    checkpoint_uri: str
    spot: bool
    max_run: int
    max_wait: Optional[int]
    tags: dict[str, str]
    requirements: Optional[str]
    fingerprint: str
    fresh: bool  # trainer.resume=false: a new checkpoint prefix for this launch
    metric_definitions: list[dict[str, str]] = field(default_factory=metric_definitions)
    environment: dict[str, str] = field(default_factory=dict)
    keep_alive_s: int = 0  # warm pool (sagemaker.keep_alive_minutes)
    packed_runs: int = 0  # a packed job (socal.sagemaker.packing): one process per GPU, no torchrun

    @property
    def torchrun(self) -> bool:
        return not self.packed_runs and (self.gpus > 1 or self.instance_count > 1)

    def predicted_job_name(self) -> str:
        return f"{self.base_job_name}-{datetime.now():%Y%m%d%H%M%S}"

    def request(self, job_name: Optional[str] = None) -> dict[str, Any]:
        """The CreateTrainingJob request (plus the SDK's source-code and distribution settings)."""
        job_name = job_name or self.predicted_job_name()
        code = f"s3://{self.bucket}/{self.code_prefix}/{self.base_job_name}/{job_name}/input"
        channels = (
            []
            if self.data_uri is None
            else [
                {
                    "ChannelName": CHANNEL,
                    "InputMode": self.input_mode,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": self.data_uri + "/",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ]
        )
        channels += [
            {
                "ChannelName": name,
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{code}/{name}{suffix}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, suffix in (("code", "/sourcedir.tar.gz"), ("sm_drivers", ""))
        ]
        stopping = {"MaxRuntimeInSeconds": self.max_run}
        if self.spot:
            stopping["MaxWaitTimeInSeconds"] = self.max_wait
        resources = {
            "InstanceType": self.instance_type,
            "InstanceCount": self.instance_count,
            "VolumeSizeInGB": self.volume_gb,
        }
        if self.keep_alive_s:
            resources["KeepAlivePeriodInSeconds"] = self.keep_alive_s
        return {
            "TrainingJobName": job_name,
            "RoleArn": self.role,
            "AlgorithmSpecification": {
                "TrainingImage": self.image,
                "TrainingInputMode": self.input_mode,
                "MetricDefinitions": self.metric_definitions,
                "ContainerEntrypoint": ["/bin/bash"],
                "ContainerArguments": [
                    "-c",
                    "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh"
                    " && /opt/ml/input/data/sm_drivers/sm_train.sh",
                ],
            },
            "HyperParameters": self.hyperparameters,
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": self.output_uri},
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            "CheckpointConfig": {
                "S3Uri": self.checkpoint_uri,
                "LocalPath": hyperparams.CONTAINER_CHECKPOINT_DIR,
            },
            "EnableManagedSpotTraining": self.spot,
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
            "Environment": self.environment,
            # Not CreateTrainingJob fields: what the SDK's sm_train.sh runs on the instance.
            "SourceCode": {
                "SourceDir": "sourcedir.tar.gz",
                "EntryScript": ENTRY_SCRIPT,
                "Requirements": self.requirements,
            },
            "Distribution": (
                {
                    "Torchrun": {
                        "ProcessCountPerNode": max(self.gpus, 1),
                        "Nodes": self.instance_count,
                    }
                }
                if self.torchrun
                else None
            ),
        }

    def model_uri(self, job_name: str) -> str:
        return f"{self.output_uri}/{job_name}/output/model.tar.gz"


def _region(configured: Optional[str]) -> Optional[str]:
    if configured:
        return configured
    import boto3

    return boto3.session.Session().region_name


def plan(
    cfg: DictConfig,
    choices: dict[str, str],
    sweep_index: Optional[int] = None,
    dry_run: bool = False,
) -> JobPlan:
    """Everything the job needs, from the config alone; UserError names what is wrong."""
    sm, inst = cfg.sagemaker, cfg.instance
    local = inst.type == LOCAL_INSTANCE
    lenient = dry_run or local  # neither talks to AWS: fill what is missing with placeholders

    def required(value: Optional[str], key: str, hint: str) -> str:
        if value:
            return value
        if lenient:
            log.warning("%s is not set (%s): a real launch will refuse", key, hint)
            return PLACEHOLDER.format(key)
        raise UserError(f"{key} is not set: {hint}")

    role = required(
        sm.role,
        "sagemaker.role",
        "set sagemaker.role=arn:aws:iam::ACCOUNT:role/"
        "NAME or the SOCAL_SAGEMAKER_ROLE environment variable",
    )
    if not role.startswith("<") and not ROLE_ARN.match(role):
        raise UserError(
            f"sagemaker.role={role} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        )
    bucket = required(
        sm.bucket,
        "sagemaker.bucket",
        "set sagemaker.bucket=NAME or the SOCAL_S3_BUCKET environment variable",
    )
    region = required(
        _region(sm.region), "sagemaker.region", "set sagemaker.region=us-east-1 or AWS_REGION"
    )
    root = f"s3://{bucket}/{sm.prefix.strip('/')}"
    synthetic = cfg.data.synthetic is not None
    data_uri = _s3(sm.data_uri, "sagemaker.data_uri")
    if data_uri is None and not synthetic:
        data_uri = f"{root}/data"
    if data_uri is not None and not bucket.startswith("<"):
        _s3(data_uri, "sagemaker.data_uri")

    base = sm.base_job_name if sweep_index is None else f"{sm.base_job_name}-{sweep_index}"
    if len(base) > MAX_BASE_NAME or not JOB_NAME.match(base):
        raise UserError(
            f"sagemaker.base_job_name={sm.base_job_name}: job names take letters, "
            f"digits and single hyphens, at most {MAX_BASE_NAME} characters "
            "with the sweep index"
        )
    max_wait = sm.max_wait if sm.max_wait is not None else 2 * sm.max_run
    keep_alive_s = _keep_alive_seconds(sm)
    if sm.spot and max_wait <= sm.max_run:
        raise UserError(
            f"sagemaker.max_wait={max_wait} must exceed sagemaker.max_run="
            f"{sm.max_run} for spot training"
        )

    train = training_config(cfg)
    hps = hyperparams.encode(train, choices)
    hyperparams.check_limits(hps)
    hyperparams.round_trip(train, hps)
    if len(metric_definitions()) > MAX_METRIC_DEFINITIONS:
        raise UserError(
            f"{len(metric_definitions())} metric definitions, SageMaker accepts "
            f"at most {MAX_METRIC_DEFINITIONS}"
        )
    fp = fingerprint(train)
    environment, requirements = tracking_settings(cfg)
    checkpoints = _s3(sm.checkpoint_uri, "sagemaker.checkpoint_uri") or f"{root}/checkpoints"
    return JobPlan(
        base_job_name=base,
        instance_type=inst.type,
        instance_count=inst.count,
        gpus=inst.gpus,
        volume_gb=inst.volume_gb,
        role=role,
        region=region,
        bucket=bucket,
        code_prefix=f"{sm.prefix.strip('/')}/code",
        image=sm.image or ("<none: runs on this host>" if local else _image(sm, inst, region)),
        hyperparameters=hps,
        data_uri=data_uri,
        input_mode=sm.input_mode.value,
        output_uri=_s3(sm.output_uri, "sagemaker.output_uri") or f"{root}/output",
        # A sweep job: its own folder; checkpoints.bind() adds the code and data below it.
        checkpoint_uri=f"{checkpoints}/{base}-{fp}",
        spot=sm.spot,
        max_run=sm.max_run,
        max_wait=max_wait if sm.spot else None,
        tags=dict(sm.tags),
        requirements=requirements,
        fingerprint=fp,
        fresh=not cfg.trainer.resume,
        environment=environment,
        keep_alive_s=keep_alive_s,
    )


def _keep_alive_seconds(sm: DictConfig) -> int:
    """``sagemaker.keep_alive_minutes`` as the request's KeepAlivePeriodInSeconds, checked as
    SageMaker checks it (0 to 60 minutes; warm pools do not take managed spot)."""
    minutes = sm.keep_alive_minutes
    if not 0 <= minutes <= MAX_KEEP_ALIVE_MINUTES:
        raise UserError(
            f"sagemaker.keep_alive_minutes={minutes}: a warm pool is kept 0 to "
            f"{MAX_KEEP_ALIVE_MINUTES} minutes"
        )
    if minutes and sm.spot:
        raise UserError(
            "sagemaker.keep_alive_minutes with sagemaker.spot=true: SageMaker keeps no warm pool "
            "for managed spot jobs; drop one of them"
        )
    return minutes * 60


def tracking_settings(cfg: DictConfig) -> tuple[dict[str, str], str]:
    """The job's environment and requirements file: with tracking=mlflow, the tracking URI
    (a local store would be lost with the instance) and the MLflow client on the instance."""
    requirements = cfg.sagemaker.requirements
    if cfg.tracking.backend == "none":
        return {}, requirements
    uri = cfg.tracking.uri or ""
    if not uri.startswith(("http://", "https://", "arn:aws")):
        raise UserError(
            f"tracking.uri={cfg.tracking.uri}: on SageMaker tracking=mlflow needs a server the "
            "instance can reach, https://HOST or a SageMaker MLflow tracking-server ARN "
            "(arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME)"
        )
    if requirements == SageMakerSettings.requirements:  # the default file: add the MLflow client
        requirements = TRACKING_REQUIREMENTS
    return {"MLFLOW_TRACKING_URI": uri}, requirements


def _image(sm: DictConfig, inst: DictConfig, region: str) -> str:
    """The PyTorch DLC for this instance (image_uris.retrieve is offline: SDK tables)."""
    from sagemaker.core import image_uris

    try:
        return image_uris.retrieve(
            framework="pytorch",
            region=region if not region.startswith("<") else "us-east-1",
            version=sm.framework_version,
            py_version=sm.py_version,
            instance_type=inst.type,
            image_scope="training",
        )
    except ValueError as err:
        raise UserError(
            f"sagemaker.framework_version={sm.framework_version} / py_version="
            f"{sm.py_version}: {err}".splitlines()[0]
        ) from err
