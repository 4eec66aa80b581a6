"""Follow a launched sweep: ``python -m socal.jobs SWEEP_DIR [--download]``.

Refreshes every submitted job of ``SWEEP_DIR/sweep.csv`` from DescribeTrainingJob: its status
(and failure reason), runtime, billable seconds, a cost estimate (billable seconds x instances x
the instance type's ``hourly_usd`` in ``socal/conf/instance/``; managed spot already shows as fewer
billable seconds), and its final objective (``best_<early-stopping metric>``, from the job's
metric definitions). Writes the columns back into ``sweep.csv`` and prints a table.
``--download`` fetches each finished job's ``model.tar.gz`` and ``output.tar.gz`` and extracts
them into ``SWEEP_DIR/<index>/``: config.yaml, metrics.json, predictions.csv, history.csv,
split.csv, ... , the folder layout of a local multirun. Needs boto3 only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from socal.config import CONF_DIR
from socal.errors import UserError, exit_on_user_error
from socal.s3 import split_s3
from socal.sagemaker.launcher import MANIFEST, MANIFEST_COLUMNS
from socal.sagemaker.packing import STATUS_FILE

log = logging.getLogger("socal.jobs")
NOT_ON_AWS = ("failed", "dry-run", "local-done", "local-failed", "local-stopped")
ARCHIVES = ("model_uri", "output_uri")
RUN_OUTCOME = "run-"  # a packed run that did not finish in a completed job: run-failed, ...


def hourly_prices() -> dict[str, float]:
    """Instance type -> on-demand USD per hour, from the ``instance`` config group."""
    prices = {}
    for path in sorted((CONF_DIR / "instance").glob("*.yaml")):
        instance = OmegaConf.load(path).instance
        if instance.get("hourly_usd") is not None:
            prices[instance.type] = float(instance.hourly_usd)
    return prices


def summarise(job: dict, prices: dict[str, float]) -> dict[str, str]:
    """The sweep.csv columns for one DescribeTrainingJob response."""
    runtime = job.get("TrainingTimeInSeconds")
    if runtime is None and job.get("TrainingStartTime") and job.get("TrainingEndTime"):
        runtime = int((job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds())
    billable = job.get("BillableTimeInSeconds")
    resources = job.get("ResourceConfig", {})
    price = prices.get(resources.get("InstanceType", ""))
    cost = (
        f"{billable / 3600 * price * resources.get('InstanceCount', 1):.2f}"
        if billable is not None and price is not None
        else ""
    )
    monitor = job.get("HyperParameters", {}).get("trainer__early_stopping__metric", "")
    final = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    objective = f"best_{monitor}" if monitor else ""
    return {
        "status": job["TrainingJobStatus"],
        "reason": " ".join(job.get("FailureReason", "").split()),
        "runtime_s": "" if runtime is None else str(runtime),
        "billable_s": "" if billable is None else str(billable),
        "cost_usd": cost,
        "objective": f"{objective}={final[objective]:.6g}" if objective in final else "",
    }


def read_manifest(sweep_dir: Path) -> list[dict[str, str]]:
    path = sweep_dir / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found: give the folder of a `python launch.py -m` sweep")
    with path.open(newline="") as handle:
        return [{k: v or "" for k, v in row.items()} for row in csv.DictReader(handle)]


def write_manifest(sweep_dir: Path, rows: list[dict[str, str]]) -> None:
    tmp = sweep_dir / (MANIFEST + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(sweep_dir / MANIFEST)


def refresh(sweep_dir: Path, sagemaker: Any) -> list[dict[str, str]]:
    """Update every submitted job's row from DescribeTrainingJob; write sweep.csv back."""
    from botocore.exceptions import ClientError

    rows, prices = read_manifest(sweep_dir), hourly_prices()
    for row in rows:
        if row["status"] in NOT_ON_AWS:
            continue
        try:
            job = sagemaker.describe_training_job(TrainingJobName=row["job_name"])
        except ClientError as err:
            row["reason"] = f"DescribeTrainingJob: {err.response['Error'].get('Message', err)}"
            continue
        summary = summarise(job, prices)
        if row["status"].startswith(RUN_OUTCOME) and summary["status"] == "Completed":
            del summary["status"], summary["reason"]  # a packed run's own outcome (download)
        row.update(summary)
    write_manifest(sweep_dir, rows)
    return rows


def download(sweep_dir: Path, rows: list[dict[str, str]], s3: Any) -> list[Path]:
    """Extract each completed job's model and output archives into ``sweep_dir/<index>/``; a
    packed job's run gets its own ``run-<index>/`` of them. A packed run that did not finish gets
    its own outcome in the row and, like a failed job, no folder."""
    folders, fetched = [], {}
    for row in rows:
        if row["status"] != "Completed":
            continue
        for column in ARCHIVES:
            if row[column] not in fetched:
                bucket, key = split_s3(row[column])
                fetched[row[column]] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        folder, run = sweep_dir / row["index"], row.get("pack_run", "")
        outcome = _run_outcome(fetched[row["output_uri"]], run) if run else {}
        if outcome:
            row.update(outcome)
            continue
        for column in ARCHIVES:
            with tarfile.open(fileobj=io.BytesIO(fetched[row[column]])) as tar:
                tar.extractall(folder, members=_members(tar, run), filter="data")
        folders.append(folder)
    return folders


def _members(tar: tarfile.TarFile, run: str) -> list[tarfile.TarInfo]:
    """Every member, or a packed run's only, with its ``run-<index>/`` folder taken off."""
    if not run:
        return tar.getmembers()
    members = []
    for member in tar.getmembers():
        name = member.name.removeprefix("./")
        if name.startswith(f"{run}/"):
            members.append(member.replace(name=name[len(run) + 1 :]))
    return members


def _run_outcome(output_archive: bytes, run: str) -> dict[str, str]:
    """A packed run that did not finish in a completed job: its status and reason."""
    with tarfile.open(fileobj=io.BytesIO(output_archive)) as tar:
        names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        member = names.get(STATUS_FILE)
        runs = json.loads(tar.extractfile(member).read())["runs"] if member else []
    for outcome in runs:
        if outcome["folder"] == run and outcome["status"] != "done":
            return {"status": RUN_OUTCOME + outcome["status"], "reason": outcome.get("reason", "")}
    return {}


def table(rows: list[dict[str, str]]) -> str:
    columns = ("index", "job_name", "status", "runtime_s", "cost_usd", "objective")
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = [[c for c in columns]] + [[r[c] or "-" for c in columns] for r in rows]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socal.jobs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (holds sweep.csv)")
    parser.add_argument("--download", action="store_true", help="fetch and extract the results")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error():
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        session = boto3.session.Session(region_name=args.region)
        try:
            rows = refresh(args.sweep_dir, session.client("sagemaker"))
            if args.download:  # first: a packed run's own outcome is in its job's output
                folders = download(args.sweep_dir, rows, session.client("s3"))
                write_manifest(args.sweep_dir, rows)
            print(table(rows))
            if args.download:
                print(f"{len(folders)} run(s) extracted into {args.sweep_dir}/<index>/")
        except (BotoCoreError, ClientError) as err:
            raise UserError(f"AWS: {err}") from err
    return 0
