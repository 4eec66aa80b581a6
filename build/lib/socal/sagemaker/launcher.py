"""The steps of ``launch.py`` around the job itself: where this launch is, what it saves.

Each launch (each multirun job) saves ``request.json`` (the complete CreateTrainingJob request)
and ``sourcedir.tar.gz`` in its Hydra output folder; a multirun adds one row per job to
``sweep.csv`` in the sweep folder. No torch, no SageMaker SDK.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from socal.config import CONF_DIR
from socal.errors import UserError
from socal.sagemaker import checkpoints, local_container
from socal.sagemaker import submit as aws
from socal.sagemaker.job import JobPlan

log = logging.getLogger("socal.launch")
MANIFEST = "sweep.csv"
MANIFEST_COLUMNS = [
    "index",
    "job_name",
    "status",
    "overrides",
    "fingerprint",
    "model_uri",
    "output_uri",
    "checkpoint_uri",
    "reason",
    # Filled in by python -m socal.jobs from DescribeTrainingJob.
    "runtime_s",
    "billable_s",
    "cost_usd",
    "objective",
]
# Sweep indices whose job could not be submitted, in this process (Hydra's basic launcher runs
# every job of a multirun here).
FAILED: list[int] = []


@dataclass
class LaunchContext:
    run_dir: Path
    choices: dict[str, str]
    overrides: list[str]
    sweep_dir: Optional[Path]  # set in multirun
    sweep_index: Optional[int]


def context() -> LaunchContext:
    """This launch's output folder, group choices and sweep position, from Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return LaunchContext(
        run_dir=Path(hc.runtime.output_dir),
        choices={k: v for k, v in hc.runtime.choices.items() if v is not None},
        overrides=list(hc.overrides.task),
        sweep_dir=Path(hc.sweep.dir) if multirun else None,
        sweep_index=hc.job.num if multirun else None,
    )


def check_instance_argv(argv: list[str]) -> None:
    """An unknown ``instance=NAME``: one error line, before Hydra's multi-line message."""
    known = sorted(p.stem for p in (CONF_DIR / "instance").glob("*.yaml"))
    for arg in argv[1:]:
        match = re.match(r"^instance=(.+)$", arg)
        names = match.group(1).split(",") if match else []
        for name in names:
            if name not in known:
                print(
                    f"error: unknown instance {name!r}; choose one of: {', '.join(known)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def save_request(job: JobPlan, where: LaunchContext, job_name: str) -> dict:
    request = job.request(job_name)
    (where.run_dir / "request.json").write_text(json.dumps(request, indent=2) + "\n")
    return request


def dry_run(where: LaunchContext, job: JobPlan, archive: Path) -> None:
    """Print the complete request; nothing reaches AWS (the data is not listed: ``unlisted``)."""
    job = checkpoints.bind(job, checkpoints.code_digest(archive), "unlisted", job.fresh)
    request = save_request(job, where, job.predicted_job_name())
    print(json.dumps(request, indent=2))
    log.info(
        "dry run: nothing submitted; request saved to %s, source archive beside it",
        where.run_dir / "request.json",
    )
    record(where, job, request["TrainingJobName"], "dry-run")


def run_locally(cfg: DictConfig, where: LaunchContext, job: JobPlan, archive: Path) -> None:
    """instance=local: the container command chain, in a local folder."""
    job = checkpoints.bind(job, checkpoints.code_digest(archive), "local", job.fresh)
    name = save_request(job, where, job.predicted_job_name())["TrainingJobName"]
    run = local_container.run(job, archive, local_data(cfg), where.run_dir / "opt_ml", name)
    status = "local-failed" if run.returncode else "local-done"
    record(where, job, name, status, str(run.model_dir))
    if run.returncode:
        raise UserError(f"the local job failed: {run.failure or 'see the log above'}")


def submit(cfg: DictConfig, where: LaunchContext, job: JobPlan, archive: Path) -> None:
    """SageMaker: credentials and data, the checkpoint prefix, then upload the code and create
    the job. In a sweep, a job that cannot be submitted becomes a ``failed`` row and the sweep
    goes on (``exit_status`` counts them)."""
    name = job.predicted_job_name()
    try:
        s3 = aws.preflight(job, cfg.launch.check_data)
        data = checkpoints.data_digest(s3, job.data_uri)
        job = checkpoints.bind(job, checkpoints.code_digest(archive), data, job.fresh)
        checkpoints.check(s3, job, cfg.launch.force)
        name = save_request(job, where, name)["TrainingJobName"]
        blocking = cfg.launch.wait and where.sweep_index is None  # a sweep never blocks
        name = aws.submit(job, archive, wait=blocking, logs=cfg.launch.logs)
    except Exception as err:
        reason = str(err) if isinstance(err, UserError) else aws.failure_reason(err)
        if reason is None:
            raise
        if where.sweep_index is None:
            raise UserError(f"not submitted: {reason}") from err
        reason = " ".join(reason.split())
        log.error("error: sweep job %d (%s) not submitted: %s", where.sweep_index,
                  " ".join(where.overrides), reason)  # fmt: skip
        FAILED.append(where.sweep_index)
        record(where, job, name, "failed", reason=reason)
        return
    record(where, job, name, "submitted")


def exit_status() -> int:
    """The number of sweep jobs that could not be submitted (0: all were), said in one line."""
    if FAILED:
        log.error(
            "error: %d sweep job(s) not submitted (%s): see the failed rows of %s",
            len(FAILED), ", ".join(map(str, FAILED)), MANIFEST,
        )  # fmt: skip
    return min(len(FAILED), 125)


def record(
    where: LaunchContext,
    job: JobPlan,
    job_name: str,
    status: str,
    model_uri: Optional[str] = None,
    reason: str = "",
) -> None:
    """Log where the results land; in a multirun, add the job's row to sweep.csv."""
    log.info("%s: %s", status, job_name)
    log.info("model:       %s", model_uri or job.model_uri(job_name))
    log.info("checkpoints: %s", job.checkpoint_uri)
    if where.sweep_dir is None:
        return
    path = where.sweep_dir / MANIFEST
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(
            {
                "index": where.sweep_index,
                "job_name": job_name,
                "status": status,
                "overrides": " ".join(where.overrides),
                "fingerprint": job.fingerprint,
                "model_uri": model_uri or job.model_uri(job_name),
                "output_uri": f"{job.output_uri}/{job_name}/output/output.tar.gz",
                "checkpoint_uri": job.checkpoint_uri,
                "reason": reason,
            }
        )


def local_data(cfg: DictConfig) -> Path:
    """instance=local: the data folder to link as the training channel (synthetic: made now)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(cfg.data, "root"):
        raise UserError(
            "instance=local reads data.root: set data.root=/path/to/SOCAL "
            "(or use data=synthetic / experiment=demo)"
        )
    from socal.data.synthetic import data_root

    root = data_root(cfg.data, progress=False).resolve()
    if not root.is_dir():
        raise UserError(f"data.root={root} is not a folder")
    return root
