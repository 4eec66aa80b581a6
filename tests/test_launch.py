"""``launch.py`` against a real local AWS endpoint (moto server): jobs, sweeps, checks, dry run."""

from __future__ import annotations

import contextlib
import csv
import http.client
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from omegaconf import OmegaConf

from socal.config import semantic_config
from socal.sagemaker import local_container
from socal.sagemaker.launch_config import LAUNCHER_KEYS

from support import TINY_JOB, local_plan

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/socal-test"
DATA = "sagemaker.data_uri=s3://socal-test-dataset/SOCAL"
TINY = [DATA, *TINY_JOB]
NO_TORCH = (
    "import runpy, sys\n"
    "for name in ('torch', 'torchvision', 'transformers'): sys.modules[name] = None\n"
    "sys.argv = ['launch.py', *sys.argv[1:]]\n"
    "runpy.run_path('launch.py', run_name='__main__')\n"
)


def clean_env(**env: str | None) -> dict[str, str]:
    """This process's environment without any AWS or socal setting, plus ``env``."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOCAL_", "SAGEMAKER_"))
    }
    base.update(env)
    return {k: v for k, v in base.items() if v is not None}


def offline_env() -> dict[str, str]:
    """No credentials, role or bucket; any AWS call would go to a closed local port and fail."""
    return clean_env(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )


def launch_without_torch(args: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """launch.py offline, with torch, torchvision and transformers unimportable; what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args],
        cwd=ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    return result, json.loads(out[out.index("{\n") : out.index("\n}\n") + 2])


def launch(
    args: list[str],
    env: dict[str, str | None],
    out: Path,
    multirun: bool = False,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess:
    dirs = [f"hydra.sweep.dir={out}"] if multirun else [f"hydra.run.dir={out}"]
    return subprocess.run(
        [sys.executable, "launch.py", *(["-m"] if multirun else []), *args, *dirs],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if "error:" in ln]
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def describe(name: str) -> dict:
    return boto3.client("sagemaker").describe_training_job(TrainingJobName=name)


def jobs(prefix: str) -> list[str]:
    summaries = boto3.client("sagemaker").list_training_jobs(NameContains=prefix, MaxResults=100)
    return sorted(j["TrainingJobName"] for j in summaries["TrainingJobSummaries"])


def s3_object(uri: str) -> bytes:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(bucket: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.slow
def test_launch_creates_the_job_and_its_config_survives_the_trip(
    account: dict, dataset: str, socal_folder: Path, tmp_path: Path
) -> None:
    args = [
        *TINY,
        "instance=g5_12xlarge",
        "sagemaker.spot=true",
        "sagemaker.max_run=3600",
        "sagemaker.base_job_name=single",
        "sagemaker.input_mode=FastFile",
        "launch.wait=false",
        "trainer.num_workers=0",
    ]
    result = launch(args, account, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    request = json.loads((tmp_path / "run" / "request.json").read_text())
    [name] = jobs("single-")
    job = describe(name)
    hps = request["HyperParameters"]

    assert job["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-gpu-py312"
    )
    assert job["ResourceConfig"] == {
        "InstanceType": "ml.g5.12xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 100,
    }
    assert job["HyperParameters"] == hps
    assert hps["optimizer__lr"] == "5e-05" and hps["trainer__num_workers"] == "0"
    assert hps["data__root"] == "/opt/ml/input/data/training"
    assert all("." not in key for key in hps) and len(hps) <= 100
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"training", "code", "sm_drivers"}
    assert channels["training"]["DataSource"]["S3DataSource"]["S3Uri"] == dataset + "/"
    assert channels["training"]["InputMode"] == "FastFile"
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    config_prefix = f"s3://{account['SOCAL_S3_BUCKET']}/socal/checkpoints/single-"
    assert re.fullmatch(
        re.escape(config_prefix + hps["socal_fingerprint"]) + "/code-[0-9a-f]{8}-data-[0-9a-f]{8}",
        job["CheckpointConfig"]["S3Uri"],
    )
    assert job["OutputDataConfig"]["S3OutputPath"] == (
        f"s3://{account['SOCAL_S3_BUCKET']}/socal/output"
    )
    # The dry-run request describes the same job (moto replaces metric definitions: checked
    # on the request we built).
    for field in ("ResourceConfig", "StoppingCondition", "CheckpointConfig", "RoleArn"):
        assert request[field] == job[field]
    metrics = {
        m["Name"]: m["Regex"] for m in request["AlgorithmSpecification"]["MetricDefinitions"]
    }
    assert {"train_loss", "val_loss", "val_auroc", "test_accuracy"} <= set(metrics)

    # 4 GPUs: torchrun, one process per GPU, as the SDK's driver config tells the instance.
    code = channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    drivers = channels["sm_drivers"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert json.loads(s3_object(drivers + "/distributed.json"))["process_count_per_node"] == 4
    # sm_train.sh execs socal's exec_driver, which execs torchrun (SIGTERM reaches it).
    assert (
        "exec $SM_PYTHON_CMD -m socal.sagemaker.exec_driver"
        in s3_object(drivers + "/sm_train.sh").decode()
    )
    source = json.loads(s3_object(drivers + "/sourcecode.json"))
    assert source["entry_script"] == "train.py"
    assert source["requirements"] == "socal/requirements/instance.txt"

    # The uploaded source archive holds only what it should.
    archive = tmp_path / "sourcedir.tar.gz"
    archive.write_bytes(s3_object(code))
    with tarfile.open(archive) as tar:
        members = tar.getnames()
    assert {
        "train.py",
        "socal/requirements/instance.txt",
        "socal/conf/launch.yaml",
        "socal/conf/train.yaml",
        "socal/sagemaker/container.py",
        "socal/training/run.py",
    } <= set(members)
    assert all(m == "train.py" or m.split("/")[0] == "socal" for m in members)
    assert not any("__pycache__" in m or m.endswith(".pyc") for m in members)
    assert archive.read_bytes() == (tmp_path / "run" / "sourcedir.tar.gz").read_bytes()

    # What DescribeTrainingJob holds, through the container path: the same config, trained.
    plan = local_plan(TINY_JOB)
    local = local_container.run(
        replace(plan, hyperparameters=job["HyperParameters"]),
        archive,
        socal_folder,
        tmp_path / "opt_ml",
        name,
    )
    assert local.returncode == 0, local.failure
    sent = semantic_config(OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml"))
    for key in LAUNCHER_KEYS:
        sent.pop(key)
    rebuilt = semantic_config(OmegaConf.load(local.model_dir / "config.yaml"))
    assert rebuilt == sent
    assert (
        json.loads((local.model_dir / "metrics.json").read_text())["config_fingerprint"]
        == (hps["socal_fingerprint"])
    )

    # A tuning job changes a value: honoured, reported, and the run trains with it.
    tuned = {
        **job["HyperParameters"],
        "optimizer__lr": "0.0005",
        "socal_tuned": "optimizer__lr",
        "_tuning_objective_metric": "val_loss",
    }
    run = local_container.run(
        replace(plan, hyperparameters=tuned), archive, socal_folder, tmp_path / "tuned", name
    )
    assert run.returncode == 0, run.failure
    config = OmegaConf.load(run.model_dir / "config.yaml")
    assert config.optimizer.lr == 0.0005
    differences = {k: v for k, v in semantic_config(config).items() if sent[k] != v}
    assert differences == {"optimizer": {**sent["optimizer"], "lr": 0.0005}}
    assert "changed since launch (tuning job): optimizer__lr" in run.log_file.read_text()


def test_multirun_submits_one_job_per_value_with_a_manifest(
    account: dict, dataset: str, tmp_path: Path
) -> None:
    result = launch(
        [*TINY, "optimizer.lr=1e-5,5e-5,1e-4", "sagemaker.base_job_name=sweep"],
        account,
        tmp_path / "sweep",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr
    names = jobs("sweep-")
    assert len(names) == 3 and len(set(names)) == 3
    with (tmp_path / "sweep" / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["job_name"] for r in rows) == names
    assert [r["index"] for r in rows] == ["0", "1", "2"]
    assert all(r["job_name"].startswith(f"sweep-{r['index']}-") for r in rows)
    swept = [
        [float(o.split("=")[1]) for o in r["overrides"].split() if o.startswith("optimizer.lr=")]
        for r in rows
    ]
    assert swept == [[1e-5], [5e-5], [1e-4]]
    assert len({r["checkpoint_uri"] for r in rows}) == 3
    for row in rows:
        job = describe(row["job_name"])
        assert job["CheckpointConfig"]["S3Uri"] == row["checkpoint_uri"]
        assert row["model_uri"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    lrs = sorted(float(describe(n)["HyperParameters"]["optimizer__lr"]) for n in names)
    assert lrs == [1e-5, 5e-5, 1e-4]


def test_limits_are_enforced_before_anything_is_uploaded(
    account: dict, dataset: str, tmp_path: Path
) -> None:
    before = keys(account["SOCAL_S3_BUCKET"])
    cases = {
        "model.source=" + "x" * 2600: "model.source: value has 2600 characters",
        'model.source="it\'s"': "model.source: value contains a single quote",
        "model.source='true'": "would not survive the trip to SageMaker: model.source",
        "sagemaker.base_job_name=" + "a" * 49: "sagemaker.base_job_name=",
    }
    for override, message in cases.items():
        line = error_line(launch([*TINY, override], account, tmp_path / "x"))
        assert message in line
    assert keys(account["SOCAL_S3_BUCKET"]) == before
    assert jobs("socal-") == []


@pytest.mark.parametrize(
    ("override", "drop", "message"),
    [
        ("launch.wait=false", "SOCAL_SAGEMAKER_ROLE", "sagemaker.role is not set"),
        ("launch.wait=false", "SOCAL_S3_BUCKET", "sagemaker.bucket is not set"),
        ("sagemaker.role=admin", None, "sagemaker.role=admin is not an IAM role ARN"),
        ("sagemaker.data_uri=https://example.com/x", None, "is not an S3 URI"),
        ("sagemaker.data_uri=' '", None, "sagemaker.data_uri is empty"),
        ("sagemaker.data_uri=s3://{bucket}", None, "holds no socal_trial_outcomes.csv"),
        (
            "sagemaker.data_uri=s3://{bucket}/nothing-here",
            None,
            "holds no socal_trial_outcomes.csv and no JPEGImages/ frames",
        ),
        ("instance=g9_huge", None, "unknown instance 'g9_huge'"),
        ("launch.wait=false", "AWS_SECRET_ACCESS_KEY", "no AWS credentials found"),
    ],
)
def test_bad_input_is_one_error_line(
    account: dict, tmp_path: Path, override: str, drop: str | None, message: str
) -> None:
    env: dict[str, str | None] = {**account}
    if drop == "AWS_SECRET_ACCESS_KEY":  # no credentials anywhere
        env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_SESSION_TOKEN=None)
    elif drop:
        env[drop] = None
    override = override.format(bucket=account["SOCAL_S3_BUCKET"])
    assert message in error_line(launch([*TINY, override], env, tmp_path / "x"))
    assert keys(account["SOCAL_S3_BUCKET"]) == []


def test_dry_run_needs_no_credentials_nor_torch(tmp_path: Path) -> None:
    args = [
        "instance=p4d_24xlarge",
        "optimizer=sgd",
        "sagemaker.region=eu-west-1",
        "launch.dry_run=true",
        f"hydra.run.dir={tmp_path}",
    ]
    result, printed = launch_without_torch(args)
    request = json.loads((tmp_path / "request.json").read_text())
    assert printed == request
    assert request["AlgorithmSpecification"]["TrainingImage"].startswith(
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8-gpu"
    )
    assert request["ResourceConfig"]["InstanceType"] == "ml.p4d.24xlarge"
    assert request["Distribution"] == {"Torchrun": {"ProcessCountPerNode": 8, "Nodes": 1}}
    assert request["HyperParameters"]["optimizer"] == "sgd"
    assert request["HyperParameters"]["trainer__batch_size"] == "16"
    assert len(request["AlgorithmSpecification"]["MetricDefinitions"]) <= 40
    assert {"InputDataConfig", "OutputDataConfig", "CheckpointConfig", "StoppingCondition"} <= set(
        request
    )
    assert "sagemaker.role is not set" in result.stdout + result.stderr
    assert (tmp_path / "sourcedir.tar.gz").exists()

    helped = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "--help"],
        cwd=ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "instance: " in helped.stdout


def test_metric_definitions_match_the_lines_train_py_prints() -> None:
    import re

    from socal.sagemaker.job import metric_definitions

    regexes = {m["Name"]: re.compile(m["Regex"]) for m in metric_definitions()}
    line = "[2025-01-01 10:00:00,000][socal.training.engine][INFO] - {}={}"
    assert float(regexes["val_loss"].search(line.format("val_loss", "0.786832")).group(1)) == (
        0.786832
    )
    assert regexes["val_loss"].search(line.format("train_loss", "0.5")) is None
    assert float(regexes["lr"].search(line.format("lr", "5e-05")).group(1)) == 5e-05
    assert regexes["lr"].search(line.format("val_loss", "1")) is None


MODEL_FILES = ("model.pt", "config.yaml", "metrics.json")
OUTPUT_FILES = ("history.csv", "predictions.csv", "split.csv", "train.log")


def tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


Reply = tuple[int, dict[str, str], bytes]


@contextlib.contextmanager
def aws_proxy(
    endpoint: str, answer: Callable[[str, bytes, Callable[[], Reply]], Reply]
) -> Iterator[str]:
    """An HTTP proxy in front of moto: ``answer(operation, body, forward)`` replies to each
    request (``operation``: its X-Amz-Target, empty for S3); ``forward()`` is moto's reply."""
    target = urllib.parse.urlsplit(endpoint)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" as S3 clients expect

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def forward() -> Reply:
                hop = {"connection", "expect", "keep-alive", "transfer-encoding", "content-length"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                conn.request(self.command, self.path, body, headers)
                response = conn.getresponse()
                headers = {
                    k: v for k, v in response.getheaders() if k.lower() != "transfer-encoding"
                }
                return response.status, headers, response.read()

            self._reply(*answer(self.headers.get("X-Amz-Target", ""), body, forward))

        def _reply(self, status: int, headers: dict, data: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def refusing_proxy(endpoint: str, job_prefix: str) -> contextlib.AbstractContextManager[str]:
    """A proxy that answers CreateTrainingJob for jobs named ``job_prefix...`` as AWS does when
    the account's GPU quota is 0 (ResourceLimitExceeded)."""

    def answer(operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply:
        if operation == "SageMaker.CreateTrainingJob" and (
            json.loads(body)["TrainingJobName"].startswith(job_prefix)
        ):
            error = {
                "__type": "ResourceLimitExceeded",
                "message": "The account-level service limit 'ml.g4dn.xlarge for training "
                "job usage' is 0 Instances, with current utilization of 0 Instances.",
            }
            return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(error).encode()
        return forward()

    return aws_proxy(endpoint, answer)


@pytest.mark.slow
def test_a_sweep_goes_on_when_aws_refuses_one_job(
    account: dict, dataset: str, tmp_path: Path
) -> None:
    with refusing_proxy(account["AWS_ENDPOINT_URL"], "quota-1-") as proxy:
        result = launch(
            [*TINY, "optimizer.lr=1e-5,5e-5,1e-4", "sagemaker.base_job_name=quota"],
            {**account, "AWS_ENDPOINT_URL": proxy},
            tmp_path / "sweep",
            multirun=True,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the exit status: how many jobs failed
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 2, errors  # one line for the job, one summary
    assert "sweep job 1 (" in errors[0] and " optimizer.lr=5e-05 " in errors[0]
    assert "ResourceLimitExceeded (CreateTrainingJob): The account-level service limit" in errors[0]
    assert "1 sweep job(s) not submitted (1)" in errors[1]
    with (tmp_path / "sweep" / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["submitted", "failed", "submitted"]
    assert rows[1]["reason"].startswith("ResourceLimitExceeded (CreateTrainingJob): ")
    assert [r["reason"] for r in rows[::2]] == ["", ""]
    assert jobs("quota-") == sorted(rows[i]["job_name"] for i in (0, 2))

    # python -m socal.jobs: the status of each job from DescribeTrainingJob, and its results.
    for row in rows[::2]:  # what SageMaker uploads when a job ends (moto runs nothing)
        for column, files in (("model_uri", MODEL_FILES), ("output_uri", OUTPUT_FILES)):
            bucket, _, key = row[column][len("s3://") :].partition("/")
            payload = {name: f"{name} of job {row['index']}" for name in files}
            boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=tar_gz(payload))
    followed = subprocess.run(
        [sys.executable, "-m", "socal.jobs", str(tmp_path / "sweep"), "--download"],
        cwd=ROOT, env=clean_env(**account), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    assert "2 run(s) extracted" in followed.stdout
    with (tmp_path / "sweep" / "sweep.csv").open() as handle:
        refreshed = list(csv.DictReader(handle))
    assert [r["status"] for r in refreshed] == ["Completed", "failed", "Completed"]
    assert refreshed[1]["reason"] == rows[1]["reason"]  # never submitted: left as it was
    assert [r["runtime_s"] for r in refreshed[::2]] == ["0", "0"]  # moto: start = end
    for index in ("0", "2"):
        for name in (*MODEL_FILES, *OUTPUT_FILES):
            assert (tmp_path / "sweep" / index / name).read_text() == f"{name} of job {index}"
    assert not (tmp_path / "sweep" / "1" / "metrics.json").exists()


@pytest.mark.slow
def test_checkpoints_belong_to_the_config_the_code_and_the_data(
    account: dict, dataset: str, tmp_path: Path
) -> None:
    args = [*TINY, "sagemaker.base_job_name=owned", "launch.wait=false"]
    assert launch(args, account, tmp_path / "first").returncode == 0
    [first] = jobs("owned-")
    prefix = describe(first)["CheckpointConfig"]["S3Uri"]
    assert re.search(r"/owned-[0-9a-f]{16}/code-[0-9a-f]{8}-data-[0-9a-f]{8}$", prefix)
    bucket, _, key = prefix[len("s3://") :].partition("/")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{key}/step-000010.pt", Body=b"weights")

    # The same config, code and data: the same prefix (resumes). Once finished: refused.
    s3.put_object(Bucket=bucket, Key=f"{key}/finished.json", Body=b"{}")
    message = error_line(launch(args, account, tmp_path / "again"))
    assert "already trained to the end" in message
    assert "trainer.resume=false" in message and "launch.force=true" in message
    forced = launch([*args, "launch.force=true"], account, tmp_path / "forced")
    assert forced.returncode == 0 and "relaunching a finished run" in forced.stdout
    # trainer.resume=false: a new prefix for this launch; nothing of the old one is deleted.
    assert launch([*args, "trainer.resume=false"], account, tmp_path / "fresh").returncode == 0
    fresh = json.loads((tmp_path / "fresh" / "request.json").read_text())
    assert fresh["CheckpointConfig"]["S3Uri"].startswith(prefix + "-fresh-")
    assert fresh["HyperParameters"]["trainer__resume"] == "true"  # after a spot restart
    assert s3_object(f"{prefix}/step-000010.pt") == b"weights"

    # Other shipped code: a fresh start, and the warning says what changed.
    code = tmp_path / "code"
    shutil.copytree(ROOT / "socal", code / "socal", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("launch.py", "train.py"):
        shutil.copy(ROOT / name, code / name)
    with (code / "socal" / "training" / "engine.py").open("a") as handle:
        handle.write("# a change\n")
    changed = launch(args, account, tmp_path / "changed", cwd=code)
    assert changed.returncode == 0, changed.stderr
    assert "the shipped code changed (code-" in changed.stdout
    uri = json.loads((tmp_path / "changed" / "request.json").read_text())["CheckpointConfig"]
    assert uri["S3Uri"] != prefix and uri["S3Uri"].split("-data-")[1] == prefix.split("-data-")[1]

    # Other data: likewise.
    data_bucket, data_key = dataset[len("s3://") :].split("/", 1)
    s3.put_object(Bucket=data_bucket, Key=f"{data_key}/JPEGImages/extra.jpeg", Body=b"x")
    try:
        other = launch(args, account, tmp_path / "data")
    finally:
        s3.delete_object(Bucket=data_bucket, Key=f"{data_key}/JPEGImages/extra.jpeg")
    assert other.returncode == 0 and "the data changed (data-" in other.stdout


def test_jobs_summary_from_a_describe_response() -> None:
    """Cost from billable seconds (spot: fewer than the runtime) and the final objective."""
    from socal.sagemaker.jobs import summarise

    described = {
        "TrainingJobStatus": "Completed",
        "TrainingTimeInSeconds": 3600,
        "BillableTimeInSeconds": 1800,
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
        "HyperParameters": {"trainer__early_stopping__metric": "val_auroc"},
        "FinalMetricDataList": [
            {"MetricName": "val_auroc", "Value": 0.5},
            {"MetricName": "best_val_auroc", "Value": 0.9125},
        ],
    }
    summary = summarise(described, {"ml.g5.xlarge": 1.408})
    assert summary == {
        "status": "Completed",
        "reason": "",
        "runtime_s": "3600",
        "billable_s": "1800",
        "cost_usd": "1.41",  # 0.5 h x 2 instances x 1.408 USD
        "objective": "best_val_auroc=0.9125",
    }
    failed = summarise({"TrainingJobStatus": "Failed", "FailureReason": "error: bad\n"}, {})
    assert failed["reason"] == "error: bad" and failed["cost_usd"] == ""
