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
from socal.sagemaker import checkpoints, local_container, packing, source_archive
from socal.sagemaker import submit as aws
from socal.sagemaker.job import JobPlan
from socal.sagemaker.launch_config import LOCAL_INSTANCE

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
    # A packed job's run: its folder in the job's outputs (socal.sagemaker.packing).
    "pack_run",
    # Filled in by python -m socal.jobs from DescribeTrainingJob.
    "runtime_s",
    "billable_s",
    "cost_usd",
    "objective",
]
# Sweep indices whose job could not be submitted, in this process (Hydra's basic launcher runs
# every job of a multirun here).
FAILED: list[int] = []
# launch.runs_per_job != 1 in a multirun: the sweep's open pack.
PACKING: Optional[packing.Packing] = None


@dataclass
class LaunchContext:
    run_dir: Path
    choices: dict[str, str]
    overrides: list[str]
    sweep_dir: Optional[Path]  # set in multirun
    sweep_index: Optional[int]
    pack: Optional[packing.Pack] = None  # a packed job: its runs get the sweep.csv rows


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
    outcomes = packing.outcomes(run.output_dir) if where.pack else {}
    record(where, job, name, status, str(run.model_dir), outcomes=outcomes)
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
        # A sweep never blocks, except with a warm pool: the next job reuses the instance only
        # once this one has ended.
        blocking = cfg.launch.wait and (where.sweep_index is None or job.keep_alive_s > 0)
        if job.keep_alive_s and where.sweep_index is not None and not cfg.launch.wait:
            log.warning("sagemaker.keep_alive_minutes with launch.wait=false: the sweep's jobs "
                        "start at once, so none reuses another's warm pool")  # fmt: skip
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
        FAILED.extend([r.index for r in where.pack.runs] if where.pack else [where.sweep_index])
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
    outcomes: Optional[dict[int, tuple[str, str]]] = None,
) -> None:
    """Log where the results land; in a multirun, add the job's row to sweep.csv (a packed job:
    one row per run, with the run's own status and reason from ``outcomes`` where known)."""
    log.info("%s: %s", status, job_name)
    log.info("model:       %s", model_uri or job.model_uri(job_name))
    log.info("checkpoints: %s", job.checkpoint_uri)
    if where.sweep_dir is None:
        return
    row = {
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
    rows = [row]
    if where.pack is not None:
        outcomes = outcomes or {}
        rows = []
        for run in where.pack.runs:
            folder = packing.run_folder(run.index)
            run_status, run_reason = outcomes.get(run.index, (status, reason))
            if run_status == "failed":
                log.error("error: sweep run %d (%s) failed: %s", run.index,
                          " ".join(run.overrides), run_reason)  # fmt: skip
            rows.append(
                {
                    **row,
                    "index": run.index,
                    "status": f"local-{run_status}" if run.index in outcomes else status,
                    "overrides": " ".join(run.overrides),
                    "fingerprint": run.fingerprint,
                    "model_uri": f"{model_uri}/{folder}" if model_uri else row["model_uri"],
                    "checkpoint_uri": f"{job.checkpoint_uri}/{folder}",
                    "reason": run_reason,
                    "pack_run": folder,
                }
            )
    path = where.sweep_dir / MANIFEST
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def add_to_pack(cfg: DictConfig, where: LaunchContext, job: JobPlan) -> bool:
    """A multirun with ``launch.runs_per_job`` other than 1: this run joins the open pack (a
    full pack is launched now) and True is returned; otherwise False (one job per run)."""
    global PACKING
    size = packing.runs_per_job(cfg.launch.runs_per_job)
    if where.sweep_dir is None or where.sweep_index is None or size == 1:
        return False
    if PACKING is None:
        PACKING = packing.Packing(size)
    full = PACKING.add(cfg, where.sweep_dir, where.sweep_index, where.overrides, job)
    if full is not None:
        launch_pack(full)
    return True


def flush_packs() -> None:
    """At the end of a sweep: launch the pack that is not full (``runs_per_job=all``: all)."""
    pack = PACKING.take() if PACKING is not None else None
    if pack is not None:
        from socal.errors import exit_on_user_error

        with exit_on_user_error():
            launch_pack(pack)


def launch_pack(pack: packing.Pack) -> None:
    """One training job for the runs of ``pack``, from ``sweep/pack-<first index>/``."""
    cfg = pack.cfg
    job = pack.job(cfg.sagemaker.base_job_name)
    where = LaunchContext(pack.folder, {}, [], pack.sweep_dir, pack.first, pack)
    log.info("packing sweep runs %s into one job", ", ".join(str(r.index) for r in pack.runs))
    archive = source_archive.build(
        pack.folder,
        job.requirements,
        cfg.sagemaker.max_source_mb,
        extra=packing.write_manifest(pack),
    )
    if cfg.launch.dry_run:
        dry_run(where, job, archive)
    elif cfg.instance.type == LOCAL_INSTANCE:
        run_locally(cfg, where, job, archive)
    else:
        submit(cfg, where, job, archive)


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
