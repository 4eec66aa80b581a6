"""launch.py with tracking=mlflow: the URI in the job's environment, the MLflow client on the
instance, and no local store that would be lost with the instance (dry runs: no AWS calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from test_launch import ROOT, clean_env, error_line

# The launcher imports neither torch nor mlflow, even with tracking=mlflow.
NO_TORCH_NOR_MLFLOW = (
    "import runpy, sys\n"
    "for name in ('torch', 'torchvision', 'transformers', 'mlflow'): sys.modules[name] = None\n"
    "sys.argv = ['launch.py', *sys.argv[1:]]\n"
    "runpy.run_path('launch.py', run_name='__main__')\n"
)
ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/socal"


def dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH_NOR_MLFLOW, "sagemaker.region=eu-west-1",
         "launch.dry_run=true", f"hydra.run.dir={tmp_path}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_tracking_uri_reaches_the_job_with_the_mlflow_client(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "tracking=mlflow", f"tracking.uri={ARN}")
    assert result.returncode == 0, result.stderr
    request = json.loads((tmp_path / "request.json").read_text())
    assert request["Environment"] == {"MLFLOW_TRACKING_URI": ARN}
    assert request["HyperParameters"]["tracking"] == "mlflow"
    assert request["HyperParameters"]["tracking__uri"] == ARN
    assert len(request["HyperParameters"]) <= 100
    assert request["SourceCode"]["Requirements"] == "socal/requirements/tracking.txt"
    with tarfile.open(tmp_path / "sourcedir.tar.gz") as tar:
        shipped = tar.getnames()
        requirements = tar.extractfile("socal/requirements/tracking.txt").read().decode()
    # pip reads "-r instance.txt" beside the file: both are shipped.
    assert {"socal/requirements/tracking.txt", "socal/requirements/instance.txt"} <= set(shipped)
    assert "-r instance.txt" in requirements and "sagemaker-mlflow" in requirements


def test_no_tracking_means_no_environment_and_the_plain_requirements(tmp_path: Path) -> None:
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    request = json.loads((tmp_path / "request.json").read_text())
    assert request["Environment"] == {}
    assert request["SourceCode"]["Requirements"] == "socal/requirements/instance.txt"


def test_a_local_store_on_the_instance_is_refused(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "tracking=mlflow")
    assert result.returncode == 2
    assert "on SageMaker tracking=mlflow needs a server the instance can reach" in error_line(
        result
    )
    assert not (tmp_path / "request.json").exists()
