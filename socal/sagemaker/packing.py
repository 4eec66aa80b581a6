"""Several runs of a sweep in one training job: ``launch.py -m ... launch.runs_per_job=N|all``.

Hydra's basic launcher calls ``launch.py``'s main once per run, in this process. With packing on,
each call plans its run as usual (limits, round trip, hyperparameters) and adds it to the open
pack instead of submitting it; a full pack (``N`` runs), and the last one when the sweep ends
(``flush()``), becomes one job. The runs travel as ``socal_pack.json`` inside the job's source
archive (a pack's hyperparameters would exceed SageMaker's 100), the job's only hyperparameter
is ``socal_pack`` and on the instance ``socal.sagemaker.pack_runner`` trains them, one per GPU.
``sweep.csv`` keeps one row per run: the job's name, and ``pack_run``, the run's folder inside the
job's outputs. No torch, no SageMaker SDK.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from socal.errors import UserError
from socal.sagemaker.exec_driver import PACK_KEY
from socal.sagemaker.job import JobPlan

PACK_FILE = "socal_pack.json"
ALL = "all"


def runs_per_job(value: str) -> Optional[int]:
    """``launch.runs_per_job`` as a number (None: every run of the sweep in one job)."""
    text = str(value).strip().lower()
    if text == ALL:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"launch.runs_per_job={value}: give a number of runs (1 or more) or 'all'")
    return int(text)


def run_folder(index: int) -> str:
    """A packed run's folder in the job's output, model and checkpoint folders."""
    return f"run-{index}"


@dataclass
class PackedRun:
    index: int
    overrides: list[str]
    fingerprint: str
    hyperparameters: dict[str, str]


@dataclass
class Pack:
    cfg: DictConfig  # the first run's launch config (instance, sagemaker, launch settings)
    template: JobPlan  # the first run's plan: everything but the hyperparameters is shared
    sweep_dir: Path
    runs: list[PackedRun] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.runs[0].index

    @property
    def folder(self) -> Path:
        return self.sweep_dir / f"pack-{self.first}"

    def manifest(self) -> dict:
        """``socal_pack.json``: what the instance trains, in sweep order."""
        return {
            "gpus": self.template.gpus,
            "runs": [
                {
                    "index": r.index,
                    "folder": run_folder(r.index),
                    "hyperparameters": r.hyperparameters,
                }
                for r in self.runs
            ],
        }

    def job(self, base_job_name: str) -> JobPlan:
        """The packed job: the template's resources, the pack as its only hyperparameter, and a
        checkpoint prefix of its own (each run checkpoints into its folder there)."""
        digest = hashlib.sha256(" ".join(r.fingerprint for r in self.runs).encode()).hexdigest()
        fp = digest[: len(self.template.fingerprint)]
        base = f"{base_job_name}-p{self.first}"
        checkpoints = self.template.checkpoint_uri.rpartition("/")[0]
        return dataclasses.replace(
            self.template,
            base_job_name=base,
            hyperparameters={PACK_KEY: PACK_FILE},
            fingerprint=fp,
            checkpoint_uri=f"{checkpoints}/{base}-{fp}",
            packed_runs=len(self.runs),
            metric_definitions=[],  # several runs' metrics in one log: not one job's series
        )


@dataclass
class Packing:
    """The open pack of this sweep and the packs ready to become jobs."""

    size: Optional[int]
    open: Optional[Pack] = None

    def add(
        self, cfg: DictConfig, sweep_dir: Path, index: int, overrides: list[str], job: JobPlan
    ) -> Optional[Pack]:
        """Add a planned run; return the pack once it is full."""
        if job.instance_count > 1:
            raise UserError(
                "launch.runs_per_job with instance.count > 1: a packed job runs one process per "
                "GPU of one instance; use a single-node instance type"
            )
        if self.open is None:
            self.open = Pack(cfg, job, sweep_dir)
        elif job.instance_type != self.open.template.instance_type:
            raise UserError(
                "launch.runs_per_job: the runs of one job need one instance type "
                f"({self.open.template.instance_type} and {job.instance_type})"
            )
        self.open.runs.append(PackedRun(index, overrides, job.fingerprint, job.hyperparameters))
        if self.size is not None and len(self.open.runs) >= self.size:
            return self.take()
        return None

    def take(self) -> Optional[Pack]:
        pack, self.open = self.open, None
        return pack


def write_manifest(pack: Pack) -> dict[str, bytes]:
    """The extra source-archive entry that carries the pack."""
    return {PACK_FILE: (json.dumps(pack.manifest(), indent=1) + "\n").encode()}


STATUS_FILE = "pack_status.json"  # in the job's output folder: each run's outcome


def outcomes(output_dir: Path) -> dict[int, tuple[str, str]]:
    """Each run's (status, reason) from a packed job's output (written by pack_runner)."""
    path = output_dir / STATUS_FILE
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text())["runs"]
    return {r["index"]: (r["status"], r.get("reason", "")) for r in runs}
