"""Talk to AWS for one planned job: check credentials and data, then submit it.

``preflight()`` checks credentials and the S3 data before anything is uploaded; ``submit()``
imports the SageMaker SDK (v3 ``ModelTrainer``) only here, and creates the job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from socal.errors import UserError
from socal.s3 import split_s3
from socal.sagemaker import hyperparams
from socal.sagemaker.exec_driver import COMMAND
from socal.sagemaker.job import CHANNEL, ENTRY_SCRIPT, JobPlan


def preflight(job: JobPlan, check_data: bool) -> Any:
    """Credentials, then the dataset at the data URI: before anything is uploaded.

    Returns an S3 client of this session.
    """
    import boto3

    session = boto3.session.Session(region_name=job.region)
    if session.get_credentials() is None:
        raise UserError(
            "no AWS credentials found: run `aws configure` (or `aws sso login`), or "
            "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    s3 = session.client("s3")
    if job.data_uri is None or not check_data:
        return s3
    from botocore.exceptions import BotoCoreError, ClientError

    from socal.sagemaker.upload import count_objects

    bucket, prefix = split_s3(job.data_uri)
    prefix = f"{prefix}/" if prefix else ""
    try:
        outcomes = count_objects(s3, bucket, f"{prefix}socal_trial_outcomes.csv")
        frames = count_objects(s3, bucket, f"{prefix}JPEGImages/", limit=1)
    except (BotoCoreError, ClientError) as err:
        raise UserError(f"cannot read sagemaker.data_uri={job.data_uri}: {err}") from err
    missing = [
        what
        for what, n in (("socal_trial_outcomes.csv", outcomes), ("JPEGImages/ frames", frames))
        if not n
    ]
    if missing:
        raise UserError(
            f"sagemaker.data_uri={job.data_uri} holds no {' and no '.join(missing)}:"
            f" upload the dataset first: python -m socal.upload ./SOCAL "
            f"{job.data_uri}"
        )
    return s3


def failure_reason(err: Exception) -> Optional[str]:
    """One line for an AWS error (a ClientError's code and message); None for anything else."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        operation = getattr(err, "operation_name", "")
        return f"{error.get('Code', 'ClientError')} ({operation}): {error.get('Message', err)}"
    if isinstance(err, (BotoCoreError, S3UploadFailedError)):
        return f"{type(err).__name__}: {err}"
    return None


def model_trainer(job: JobPlan, source_dir: str, local_root: Optional[Path] = None) -> Any:
    """The SDK's ModelTrainer for ``job`` (a single job, or a tuning job's trials);
    ``source_dir``: the source archive (a path or its S3 URI); ``local_root``: its
    LOCAL_CONTAINER twin (no AWS).

    The source code runs through ``exec_driver.COMMAND`` so that SIGTERM reaches the training
    processes (see socal.sagemaker.exec_driver); ``entry_script`` still tells the SDK's driver
    what to run. A local twin installs no requirements (it runs in this environment).
    """
    import boto3
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.shapes import Channel, DataSource, MetricDefinition, S3DataSource
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.distributed import Torchrun
    from sagemaker.train.model_trainer import Mode

    logging.getLogger("sagemaker.core.utils.utils").addFilter(_not_about_command)
    local = local_root is not None
    session = None
    if not local:
        session = Session(
            boto_session=boto3.session.Session(region_name=job.region),
            default_bucket=job.bucket,
            default_bucket_prefix=job.code_prefix,
        )
    channels = (
        []
        if job.data_uri is None
        else [
            Channel(
                channel_name=CHANNEL,
                input_mode=job.input_mode,
                data_source=DataSource(
                    s3_data_source=S3DataSource(
                        s3_data_type="S3Prefix",
                        s3_uri=job.data_uri + "/",
                        s3_data_distribution_type="FullyReplicated",
                    )
                ),
            )
        ]
    )
    trainer = ModelTrainer(
        training_mode=Mode.LOCAL_CONTAINER if local else Mode.SAGEMAKER_TRAINING_JOB,
        local_container_root=str(local_root) if local else os.getcwd(),
        sagemaker_session=session,
        role=job.role,
        base_job_name=job.base_job_name,
        training_image=job.image,
        training_input_mode=job.input_mode,
        source_code=SourceCode(
            source_dir=source_dir,
            entry_script=ENTRY_SCRIPT,
            command=COMMAND,
            requirements=None if local else job.requirements,
        ),
        compute=Compute(
            instance_type=job.instance_type,
            instance_count=job.instance_count,
            volume_size_in_gb=job.volume_gb,
            enable_managed_spot_training=job.spot,
            keep_alive_period_in_seconds=job.keep_alive_s or None,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=job.max_run, max_wait_time_in_seconds=job.max_wait
        ),
        output_data_config=OutputDataConfig(s3_output_path=job.output_uri),
        checkpoint_config=CheckpointConfig(
            s3_uri=job.checkpoint_uri, local_path=hyperparams.CONTAINER_CHECKPOINT_DIR
        ),
        distributed=Torchrun(process_count_per_node=max(job.gpus, 1)) if job.torchrun else None,
        hyperparameters=job.hyperparameters,
        environment=job.environment or None,
        input_data_config=channels,
        tags=[{"key": k, "value": v} for k, v in job.tags.items()] or None,
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in job.metric_definitions]
    )


def submit(job: JobPlan, archive: Path, wait: bool, logs: bool) -> str:
    """Create the training job through ModelTrainer; return its name."""
    trainer = model_trainer(job, str(archive))
    trainer.train(wait=wait, logs=logs and wait)
    return trainer._latest_training_job.training_job_name


def _not_about_command(record: logging.LogRecord) -> bool:
    """The SDK warns that ``command`` wins over ``entry_script`` and that hyperparameters are
    then not on argv: both intended here (exec_driver passes them as the driver would)."""
    return "'command'" not in record.getMessage()
