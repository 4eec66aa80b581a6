"""``python -m socal.upload``: parallel upload to S3 (moto), idempotent, counts checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from socal.data.synthetic import SyntheticSpec, generate
from socal.sagemaker.upload import local_files, upload

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def socal_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SyntheticSpec(trials=4, min_frames=60, max_frames=70)
    return generate(tmp_path_factory.mktemp("upload") / "SOCAL", spec, progress=False)


def _keys(bucket: str, prefix: str) -> dict[str, int]:
    pages = (
        boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "socal.upload", *args, "--no-progress"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_upload_is_idempotent_and_complete(socal_folder: Path, bucket: str, aws: dict) -> None:
    uri = f"s3://{bucket}/socal/data"
    files = local_files(socal_folder)
    assert len(files) > 250  # frames of 4 trials plus the CSVs

    first = _cli([str(socal_folder), uri], aws)
    assert first.returncode == 0, first.stderr
    assert f"{len(files)} files checked, {len(files)} uploaded, 0 already there" in first.stdout
    remote = _keys(bucket, "socal/data/")
    assert remote == {f"socal/data/{rel}": p.stat().st_size for rel, p in files.items()}

    second = _cli([str(socal_folder), uri], aws)
    assert second.returncode == 0, second.stderr
    assert f"{len(files)} files checked, 0 uploaded, {len(files)} already there" in second.stdout
    assert _keys(bucket, "socal/data/") == remote

    # A file whose size differs (or is missing remotely) is uploaded again, and only it.
    boto3.client("s3").delete_object(Bucket=bucket, Key="socal/data/socal_trial_outcomes.csv")
    counts = upload(socal_folder, uri, workers=4, progress=False)
    assert counts == {
        "files": len(files),
        "uploaded": 1,
        "skipped": len(files) - 1,
        "remote": len(files),
    }


def test_the_frame_cache_travels_with_the_data_and_nothing_else_hidden(tmp_path: Path) -> None:
    folder = tmp_path / "SOCAL"
    (folder / ".socal-cache" / "s224-w0-60").mkdir(parents=True)
    (folder / ".socal-cache" / "s224-w0-60" / "S201T1.0123abcd.npy").write_bytes(b"x")
    (folder / ".socal-cache" / "s224-w0-60" / ".S201T1.npy.tmp-1").write_bytes(b"partial")
    (folder / "JPEGImages").mkdir()
    (folder / "JPEGImages" / ".DS_Store").write_bytes(b"x")
    (folder / "JPEGImages" / "S201T1_frame_00000001.jpeg").write_bytes(b"x")
    (folder / ".socal-synthetic.json").write_text("{}")
    assert set(local_files(folder)) == {
        ".socal-cache/s224-w0-60/S201T1.0123abcd.npy",
        "JPEGImages/S201T1_frame_00000001.jpeg",
    }


def test_upload_refuses_bad_input(tmp_path: Path, socal_folder: Path, aws: dict) -> None:
    not_socal = _cli([str(tmp_path), "s3://somewhere/x"], aws)
    assert not_socal.returncode == 2
    assert "is not a SOCAL folder" in not_socal.stderr
    not_s3 = _cli([str(socal_folder), "/tmp/elsewhere"], aws)
    assert not_s3.returncode == 2
    assert "is not an S3 URI" in not_s3.stderr
