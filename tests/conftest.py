"""Shared fixtures for the SageMaker tests: a real moto server on 127.0.0.1, its AWS env, a
synthetic dataset uploaded to it and the launcher's account settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from socal.data.synthetic import SyntheticSpec, generate
from socal.sagemaker.upload import upload

from support import free_port

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/socal-test"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``moto_server`` (from the dev extra) on a free 127.0.0.1 port, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = Path(sys.executable).with_name("moto_server")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment that sends every AWS call (boto3 and the SageMaker SDK) to moto only."""
    telemetry = tmp_path_factory.mktemp("sagemaker") / "config.yaml"
    telemetry.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
        "      TelemetryOptOut: true\n"
    )
    return {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "SAGEMAKER_VALIDATE_ROLE": "false",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(telemetry),
    }


@pytest.fixture
def aws(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``aws_env`` applied to this process too (for boto3 calls made by the test itself)."""
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    return aws_env


@pytest.fixture
def bucket(aws: dict[str, str]) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"socal-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def socal_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic SOCAL folder: what the launch tests upload and train on."""
    spec = SyntheticSpec(trials=16, min_frames=60, max_frames=90)
    return generate(tmp_path_factory.mktemp("launch") / "SOCAL", spec, progress=False)


@pytest.fixture(scope="session")
def dataset(aws_env: dict, socal_folder: Path) -> str:
    """The synthetic dataset, uploaded once to its own bucket."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="socal-test-dataset")
    uri = "s3://socal-test-dataset/SOCAL"
    upload(socal_folder, uri, workers=16, progress=False, s3=s3)
    return uri


@pytest.fixture
def account(aws: dict, bucket: str, dataset: str, tmp_path: Path) -> dict[str, str]:
    """The launcher's environment: moto, a role, an empty bucket, a private cache."""
    return {
        **aws,
        "SOCAL_SAGEMAKER_ROLE": ROLE,
        "SOCAL_S3_BUCKET": bucket,
        "SOCAL_CACHE_DIR": str(tmp_path / "cache"),
    }
