"""Which S3 checkpoint prefix a job resumes from: its config, its shipped code and its data.

``<checkpoint_uri>/<base_job_name>-<config fingerprint>/code-<archive hash>-data-<data hash>``:
a spot restart or a relaunch of the same config, code and data resumes; a change of any of them
starts fresh, with a warning naming what changed. ``trainer.resume=false`` adds
``-fresh-<time>``: a new prefix for this launch (the job still resumes its own checkpoints after
a spot restart), and nothing another job may need is deleted. A prefix holding
``finished.json`` (written by train.py at the very end) is a finished run: relaunching it is
refused unless ``launch.force=true``. No torch; boto3 only where S3 is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from socal.errors import UserError
from socal.s3 import split_s3
from socal.sagemaker.job import JobPlan

log = logging.getLogger("socal.launch")
DIGEST_CHARS = 8
FINISHED = "finished.json"  # socal.training.checkpoint.FINISHED (training is not imported here)
VARIANT = re.compile(r"^code-(?P<code>[0-9a-f]+)-data-(?P<data>[0-9a-z]+)(?P<fresh>-fresh-\d+)?$")


def code_digest(archive: Path) -> str:
    """The source archive's hash (the archive is byte-for-byte reproducible)."""
    return hashlib.sha256(archive.read_bytes()).hexdigest()[:DIGEST_CHARS]


def data_digest(s3: Any, uri: Optional[str]) -> str:
    """A hash of every object under the data URI (key, size, ETag); ``none`` without one."""
    if uri is None:
        return "none"
    bucket, prefix = split_s3(uri)
    digest = hashlib.sha256()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            digest.update(f"{item['Key']}\0{item['Size']}\0{item['ETag']}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def bind(job: JobPlan, code: str, data: str, fresh: bool) -> JobPlan:
    """``job`` with its checkpoint prefix for this code and data (a new one when ``fresh``)."""
    name = f"code-{code}-data-{data}"
    if fresh:
        name += f"-fresh-{datetime.now():%Y%m%d%H%M%S}"
    return dataclasses.replace(job, checkpoint_uri=f"{job.checkpoint_uri}/{name}")


def check(s3: Any, job: JobPlan, force: bool) -> None:
    """Refuse to relaunch a finished run; warn when this config has checkpoints of other code or
    data (they are left alone, this job starts fresh)."""
    config_uri, _, mine = job.checkpoint_uri.rpartition("/")
    ours = VARIANT.match(mine)
    if ours is None or ours["fresh"]:
        return
    bucket, prefix = split_s3(config_uri)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/")
    siblings = [
        p["Prefix"].rstrip("/").rpartition("/")[2] for p in listing.get("CommonPrefixes", [])
    ]
    if mine in siblings:
        key = f"{prefix}/{mine}/{FINISHED}"
        if s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0):
            if not force:
                raise UserError(
                    f"this config, code and data already trained to the end ({job.checkpoint_uri}"
                    f"/{FINISHED}); relaunching would republish that model as new: add "
                    "trainer.resume=false for a fresh run, or launch.force=true to test and "
                    "publish it again"
                )
            log.warning("launch.force=true: relaunching a finished run from %s", job.checkpoint_uri)
        return
    changes = _changes(ours, [m for s in siblings if (m := VARIANT.match(s)) and not m["fresh"]])
    if changes:
        log.warning(
            "this config has checkpoints from before, but %s: not resumed, this job starts "
            "fresh in %s",
            changes,
            job.checkpoint_uri,
        )


def _changes(ours: re.Match, others: list[re.Match]) -> str:
    """What differs from the earlier variants: the code, the data, or both."""
    same_data = [o for o in others if o["data"] == ours["data"]]
    same_code = [o for o in others if o["code"] == ours["code"]]
    if same_data:
        return f"the shipped code changed (code-{same_data[-1]['code']} -> code-{ours['code']})"
    if same_code:
        return f"the data changed (data-{same_code[-1]['data']} -> data-{ours['data']})"
    if others:
        return f"the code and the data changed ({others[-1].group(0)} -> {ours.group(0)})"
    return ""
