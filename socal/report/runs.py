"""Find and read runs: local run folders, Hydra multirun or sweep folders, or S3 job outputs.

A run folder is any folder holding ``config.yaml``, ``metrics.json`` and ``predictions.csv``
(what ``train.py`` writes; a SageMaker job's ``output.tar.gz`` holds the same files). Folders
are found recursively, so a single run, a ``train.py -m`` multirun folder and a ``launch.py -m``
sweep folder with the jobs' outputs downloaded all work. An ``s3://bucket/prefix`` is searched for
``<job>/output/output.tar.gz`` objects, which are downloaded and unpacked first.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml
from tqdm import tqdm

from socal.config import flatten
from socal.errors import UserError
from socal.s3 import split_s3

# libyaml's parser when PyYAML has it: ten times faster on a hundred configs.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RUN_FILES = ("config.yaml", "metrics.json", "predictions.csv")
# Append-only: one JSON line per evaluation of the test split (metrics.json keeps only the last).
EVALUATIONS = "evaluations.jsonl"
JOB_OUTPUT = "/output/output.tar.gz"


@dataclass
class Run:
    name: str
    folder: Path
    config: dict[str, Any]  # flattened: "optimizer.lr" -> 0.001
    metrics: dict
    predictions: pd.DataFrame
    split: Optional[pd.DataFrame]
    evaluations: list[dict] = field(default_factory=list)

    @property
    def test(self) -> pd.DataFrame:
        return self.predictions[self.predictions["subset"] == "test"]

    @property
    def caveats(self) -> list[str]:
        """What a reader of this run's test figures must know about how they were obtained."""
        notes = []
        if len(self.evaluations) > 1:
            notes.append(
                f"{self.name}: the test split was evaluated {len(self.evaluations)} times "
                f"(settings and figures of each in {EVALUATIONS}); the last is reported"
            )
        threshold = self.metrics.get("threshold") or {}
        if threshold.get("rule") == "fixed":
            notes.append(
                f"{self.name}: fixed threshold {threshold['value']} (eval.threshold), "
                "not chosen on validation"
            )
        return notes

    @property
    def monitor(self) -> tuple[str, float]:
        """The early-stopping metric and its best validation value (NaN when no epoch had one)."""
        best = self.metrics.get("best_val")
        if not isinstance(best, dict) or len(best) != 1:
            raise UserError(
                f"{self.name}: metrics.json has no best_val (the early-stopping metric and its "
                f"best validation value) but {best!r}: it cannot be ranked; leave it out"
            )
        metric, value = next(iter(best.items()))
        return metric, float("nan") if value is None else float(value)


def config_columns(config: dict) -> dict[str, Any]:
    """The run's config as dotted keys with hashable values (lists as tuples, no empty groups)."""
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in flatten(config).items()
        if value != {}
    }


def run_folders(path: Path) -> list[Path]:
    """Every run folder at or below ``path``."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    candidates = [path] if path.is_file() else [p.parent for p in path.rglob(RUN_FILES[1])]
    return sorted(f for f in set(candidates) if all((f / name).is_file() for name in RUN_FILES))


def load_run(folder: Path, name: str) -> Run:
    try:
        config = yaml.load((folder / "config.yaml").read_text(), Loader=LOADER)
        metrics = json.loads((folder / "metrics.json").read_text())
        predictions = pd.read_csv(folder / "predictions.csv")
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise UserError(f"cannot read the run in {folder}: {err}") from None
    split = pd.read_csv(folder / "split.csv") if (folder / "split.csv").is_file() else None
    log = folder / EVALUATIONS
    lines = log.read_text().splitlines() if log.is_file() else []
    evaluations = [json.loads(line) for line in lines if line.strip()]
    return Run(name, folder, config_columns(config), metrics, predictions, split, evaluations)


def record_evaluation(folder: Path, settings: dict, threshold: Optional[dict], test: dict) -> None:
    """Append one evaluation of the test split (UTC time, eval settings, threshold, figures)."""
    entry = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "eval": settings,
        "threshold": threshold,
        "test": {k: v for k, v in test.items() if not isinstance(v, list)},
    }
    with (folder / EVALUATIONS).open("a") as log:
        log.write(json.dumps(entry) + "\n")


def _safe_extract(archive: tarfile.TarFile, target: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        archive.extractall(target, filter="data")
        return
    for member in archive.getmembers():  # Python without extraction filters: check by hand
        if not (target / member.name).resolve().is_relative_to(target.resolve()):
            raise UserError(f"refusing to unpack {member.name}: it points outside {target}")
    archive.extractall(target)


def download_jobs(uri: str, cache: Path, progress: bool = True) -> Path:
    """Unpack every ``<job>/output/output.tar.gz`` under an S3 prefix into ``cache/<job>/``."""
    try:
        import boto3
    except ImportError:
        raise UserError("reading s3:// needs boto3: pip install 'socal[sagemaker]'") from None
    bucket, prefix = split_s3(uri)
    s3 = boto3.client("s3")
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(JOB_OUTPUT)
    ]
    if not keys:
        raise UserError(f"no <job>{JOB_OUTPUT} under {uri}: is it the jobs' output prefix?")
    target = cache / bucket / prefix.strip("/")
    for key in tqdm(keys, desc=f"downloading {uri}", unit="job", disable=not progress):
        job_dir = target / key[len(prefix) :].removesuffix(JOB_OUTPUT).strip("/")
        if (job_dir / RUN_FILES[1]).is_file():
            continue  # downloaded before
        job_dir.mkdir(parents=True, exist_ok=True)
        archive_path = job_dir / "output.tar.gz"
        s3.download_file(bucket, key, str(archive_path))
        with tarfile.open(archive_path) as archive:
            _safe_extract(archive, job_dir)
        archive_path.unlink()
    return target


def load_runs(paths: list[str], cache: Path, progress: bool = True) -> list[Run]:
    """Every run under the given folders or S3 prefixes, each folder once."""
    folders: dict[Path, str] = {}
    for path in paths:
        root = download_jobs(path, cache, progress) if path.startswith("s3://") else Path(path)
        for folder in run_folders(root):
            relative = folder.relative_to(root).as_posix()
            label = path if relative == "." else f"{path.rstrip('/')}/{relative}"
            folders.setdefault(folder.resolve(), label)
    if not folders:
        raise UserError(f"no run folders (with {', '.join(RUN_FILES)}) under {' '.join(paths)}")
    return [
        load_run(folder, name)
        for folder, name in tqdm(
            folders.items(), desc="reading runs", unit="run", disable=not progress
        )
    ]
