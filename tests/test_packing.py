"""Several runs of a sweep in one training job (``launch.runs_per_job``), and warm pools.

The packed jobs run through the container's own command chain (instance=local): sm_train.sh ->
exec_driver -> pack_runner -> one train.py per run, as real subprocesses. On SageMaker (the moto
server) the same chain, run here on the uploaded archive, stands in for the instance.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import boto3
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from socal.data.synthetic import SyntheticSpec, generate
from socal.errors import UserError
from socal.sagemaker import hyperparams, local_container, packing, source_archive
from socal.sagemaker import job as sagemaker_job
from socal.sagemaker.launch_config import register
from socal.sagemaker.pack_runner import PackRunner

from support import CONF, REPO, TINY_JOB, local_plan, stop_process_1
from test_launch import DATA, Reply, aws_proxy, clean_env, describe, jobs, launch, s3_object

TINY = [*TINY_JOB, "trainer.progress=false", "split=kfold"]


def launch_plan(overrides: list[str]) -> sagemaker_job.JobPlan:
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=overrides, return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    del cfg.hydra
    return sagemaker_job.plan(cfg, choices, dry_run=True)


def test_runs_per_job_takes_a_number_or_all() -> None:
    assert packing.runs_per_job("all") is None
    assert packing.runs_per_job("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(UserError, match=f"launch.runs_per_job={bad}: give a number"):
            packing.runs_per_job(bad)


def test_keep_alive_is_the_requests_warm_pool_and_refused_with_spot() -> None:
    request = launch_plan(["sagemaker.keep_alive_minutes=30"]).request("j")
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 1800
    assert "KeepAlivePeriodInSeconds" not in launch_plan([]).request("j")["ResourceConfig"]
    with pytest.raises(UserError, match="keep_alive_minutes=61: a warm pool is kept 0 to 60"):
        launch_plan(["sagemaker.keep_alive_minutes=61"])
    with pytest.raises(UserError, match="SageMaker keeps no warm pool for managed spot"):
        launch_plan(["sagemaker.keep_alive_minutes=5", "sagemaker.spot=true"])


def test_dry_run_packs_runs_into_jobs_with_one_row_per_run(tmp_path: Path) -> None:
    """3 runs, 2 per job: two jobs; each carries its runs' own hyperparameters in its archive."""
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "launch.py", "-m", "instance=g5_12xlarge", "launch.dry_run=true",
         "optimizer.lr=1e-5,5e-5,1e-4", "launch.runs_per_job=2", f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS", "SOCAL"))},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (sweep / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["index"], r["pack_run"]) for r in rows] == [
        ("0", "run-0"), ("1", "run-1"), ("2", "run-2"),
    ]  # fmt: skip
    assert rows[0]["job_name"] == rows[1]["job_name"] != rows[2]["job_name"]
    assert rows[0]["job_name"].startswith("socal-p0-") and rows[2]["job_name"].startswith(
        "socal-p2-"
    )
    for pack, lrs in (("pack-0", ["1e-05", "5e-05"]), ("pack-2", ["0.0001"])):
        request = json.loads((sweep / pack / "request.json").read_text())
        assert request["HyperParameters"] == {"socal_pack": "socal_pack.json"}
        assert request["Distribution"] is None  # one process per GPU, not torchrun
        with tarfile.open(sweep / pack / "sourcedir.tar.gz") as tar:
            manifest = json.load(tar.extractfile("socal_pack.json"))
        assert manifest["gpus"] == 4
        assert [r["hyperparameters"]["optimizer__lr"] for r in manifest["runs"]] == lrs


def test_each_run_gets_its_gpu_its_cpu_share_its_folders_and_its_hyperparameters() -> None:
    hps = {"optimizer__lr": "0.001", "trainer__num_workers": "10"}
    manifest = {"gpus": 4, "runs": [{"index": 7, "folder": "run-7", "hyperparameters": hps}]}
    env = {"SM_NUM_CPUS": "48", "SM_OUTPUT_DATA_DIR": "/o", "SM_MODEL_DIR": "/m"}
    runner = PackRunner(manifest, {**env, "SOCAL_CHECKPOINT_DIR": "/c"})
    got = runner.environment(manifest["runs"][0], 3)
    assert got["CUDA_VISIBLE_DEVICES"] == "3" and got["OMP_NUM_THREADS"] == "12"
    assert (got["SM_OUTPUT_DATA_DIR"], got["SM_MODEL_DIR"]) == ("/o/run-7", "/m/run-7")
    assert got["SOCAL_CHECKPOINT_DIR"] == "/c/run-7"
    assert hyperparams.received([], got["SM_HPS"]) == hps
    assert "CUDA_VISIBLE_DEVICES" not in PackRunner({**manifest, "gpus": 0}, env).environment(
        manifest["runs"][0], 0
    )


def packed_job(tmp_path: Path, runs: list[list[str]], common: list[str]) -> tuple:
    """A packed instance=local job of ``runs`` (overrides each) and its source archive."""
    packs = packing.Packing(None)
    for index, overrides in enumerate(runs):
        plan = local_plan([*common, *overrides])
        packs.add(None, tmp_path, index, overrides, plan)
    pack = packs.take()
    job = pack.job("pack")
    archive = source_archive.build(
        tmp_path / "src", job.requirements, 5, extra=packing.write_manifest(pack)
    )
    return job, archive


def status(job: local_container.LocalJob) -> dict[int, dict]:
    runs = json.loads((job.output_dir / packing.STATUS_FILE).read_text())["runs"]
    return {r["index"]: r for r in runs}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SyntheticSpec(trials=40, min_frames=60, max_frames=90)
    return generate(tmp_path_factory.mktemp("data") / "SOCAL", spec, progress=False)


@pytest.mark.slow
def test_a_stopped_pack_resumes_its_unfinished_runs_and_a_failed_run_is_reported(
    tmp_path: Path, data: Path
) -> None:
    """SIGTERM to process 1 during the third run, then a restart: runs 1-2 are not retrained,
    run 3 resumes from its checkpoint, 4 trains; run 5 (a fold that does not exist) fails alone."""
    runs = [["split.fold=0"], ["split.fold=1"],
            ["split.fold=2", "trainer.epochs=6", "trainer.batch_size=1"],
            ["split.fold=3"], ["split.fold=7"]]  # fmt: skip
    job, archive = packed_job(tmp_path, runs, TINY)
    local = local_container.prepare(job, archive, data, tmp_path / "opt_ml")
    stopped = stop_process_1(
        local.command, local.env, local.root, local.checkpoint_dir / "run-2", "epoch=1/6", 0.0, 60
    )
    assert stopped.exited_after_s is not None, stopped.output[-3000:]
    first = status(local)
    assert [first[i]["status"] for i in range(5)] == [
        "done",
        "done",
        "stopped",
        "stopped",
        "stopped",
    ]
    assert not (local.checkpoint_dir / "run-2" / "finished.json").exists()
    finished = {i: (local.checkpoint_dir / f"run-{i}" / "finished.json").stat().st_mtime
                for i in (0, 1)}  # fmt: skip

    again = local_container.run(job, archive, data, tmp_path / "opt_ml")
    assert again.returncode == 0, again.log_file.read_text()[-3000:]
    second = status(again)
    assert [second[i]["status"] for i in range(5)] == ["done", "done", "done", "done", "failed"]
    assert second[0].get("skipped") and second[1].get("skipped")
    for i in (0, 1):  # not retrained, not even re-tested
        assert (local.checkpoint_dir / f"run-{i}" / "finished.json").stat().st_mtime == finished[i]
    log = again.log_file.read_text()
    assert "resuming from" in log and "run 0 already finished: skipped" in log
    assert "split.fold" in second[4]["reason"] or "fold" in second[4]["reason"]
    for i in range(4):
        out = again.output_dir / f"run-{i}"
        assert (out / "metrics.json").is_file() and (out / "predictions.csv").is_file()
        assert (again.model_dir / f"run-{i}" / "model.safetensors").is_file()
    history = pd.read_csv(again.output_dir / "run-2" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]  # resumed, ended where it would


@pytest.mark.slow
def test_two_gpus_train_two_runs_at_once_each_pinned_with_half_the_cpus(
    tmp_path: Path, data: Path
) -> None:
    """Two GPUs faked on the CPU: the instance says 2, so two train.py processes run at once,
    each with its own CUDA_VISIBLE_DEVICES and half the CPU threads (trainer.device=cpu)."""
    job, archive = packed_job(
        tmp_path, [["split.fold=0"], ["split.fold=1"]], [*TINY, "instance.gpus=2"]
    )
    assert job.gpus == 2 and not job.torchrun
    local = local_container.run(job, archive, data, tmp_path / "opt_ml")
    assert local.returncode == 0, local.log_file.read_text()[-3000:]
    runs = status(local)
    assert {runs[0]["gpu"], runs[1]["gpu"]} == {0, 1}
    assert runs[0]["threads"] == runs[1]["threads"] == max((os.cpu_count() or 1) // 2, 1)
    assert runs[0]["started"] < runs[1]["ended"] and runs[1]["started"] < runs[0]["ended"]
    log = local.log_file.read_text()
    assert "run 0 started (GPU " in log and "run 1 started (GPU " in log


def local_sweep(out: Path, extra: list[str]) -> None:
    """A 5-fold demo sweep through launch.py on instance=local (the container chain)."""
    result = subprocess.run(
        [sys.executable, "launch.py", "-m", "instance=local", "experiment=demo",
         "data.synthetic.trials=40", "split=kfold", "split.fold=0,1,2,3,4", "trainer.epochs=1",
         "trainer.progress=false", "trainer.num_workers=0", *extra, f"hydra.sweep.dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "SOCAL_CACHE_DIR": str(out.parent / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


@pytest.mark.slow
def test_one_packed_job_gives_the_report_of_five_separate_jobs(tmp_path: Path) -> None:
    """``runs_per_job=all``: one job trains the five folds; the same seeds give the same
    predictions and the same ``python -m socal.report`` table as five jobs."""
    from socal.report.__main__ import main as report

    local_sweep(tmp_path / "separate", [])
    local_sweep(tmp_path / "packed", ["launch.runs_per_job=all"])
    packed = tmp_path / "packed"
    assert sorted(p.name for p in packed.glob("pack-*")) == ["pack-0"]  # one job
    with (packed / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len({r["job_name"] for r in rows}) == 1
    assert [(r["index"], r["status"], r["pack_run"]) for r in rows] == [
        (str(i), "local-done", f"run-{i}") for i in range(5)
    ]
    tables = {}
    for name in ("separate", "packed"):
        report([str(tmp_path / name), "--out", str(tmp_path / f"{name}-report"), "--no-progress"])
        table = pd.read_csv(tmp_path / f"{name}-report" / "summary.csv")
        tables[name] = table.drop(columns="run").sort_values("split.fold").reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["separate"], tables["packed"])
    for fold in range(5):
        alone = pd.read_csv(
            tmp_path / "separate" / str(fold) / "opt_ml/output/data/predictions.csv"
        )
        inside = pd.read_csv(packed / f"pack-0/opt_ml/output/data/run-{fold}/predictions.csv")
        pd.testing.assert_frame_equal(alone, inside)


def sweep_rows(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "sweep.csv").open() as handle:
        return list(csv.DictReader(handle))


def put_folder(uri: str, folder: Path) -> None:
    """What SageMaker uploads when a job ends: the folder's contents as a .tar.gz at ``uri``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    bucket, _, key = uri[len("s3://") :].partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def follow(sweep: Path, account: dict, *args: str) -> str:
    """``python -m socal.jobs SWEEP ...`` against moto; what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "socal.jobs", str(sweep), *args],
        cwd=REPO, env=clean_env(**account), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_a_packed_sweep_on_sagemaker_is_one_job_that_downloads_like_separate_jobs(
    account: dict, socal_folder: Path, tmp_path: Path
) -> None:
    """``launch.py -m ... launch.runs_per_job=all`` creates one training job for three runs; its
    uploaded archive trains here as on the instance (run 2, a fold that does not exist, fails),
    its archives go where SageMaker puts them, and ``socal.jobs`` and ``socal.report`` see one
    row per run, each finished run in its own folder with what a separate job's archives hold."""
    from socal.report.__main__ import main as report

    sweep = tmp_path / "sweep"
    runs = ["split=kfold", "split.fold=0,1,7", "launch.runs_per_job=all"]
    result = launch([DATA, *TINY_JOB, *runs, "sagemaker.base_job_name=packed"], account, sweep,
                    multirun=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [name] = jobs("packed-")
    job = describe(name)
    assert job["HyperParameters"] == {"socal_pack": "socal_pack.json"}
    rows = sweep_rows(sweep)
    assert [(r["index"], r["job_name"], r["status"], r["pack_run"]) for r in rows] == [
        (str(i), name, "submitted", f"run-{i}") for i in range(3)
    ]
    code = {c["ChannelName"]: c for c in job["InputDataConfig"]}["code"]
    archive = tmp_path / "sourcedir.tar.gz"
    archive.write_bytes(s3_object(code["DataSource"]["S3DataSource"]["S3Uri"]))
    instance = replace(local_plan(TINY_JOB), hyperparameters=job["HyperParameters"])
    local = local_container.run(instance, archive, socal_folder, tmp_path / "opt_ml", name)
    assert local.returncode == 0, local.log_file.read_text()[-3000:]
    put_folder(rows[0]["model_uri"], local.model_dir)
    put_folder(rows[0]["output_uri"], local.output_dir)

    launched = {i: set(files(sweep / str(i))) for i in range(3)}  # Hydra's: launch.log, ...
    printed = follow(sweep, account, "--download")
    assert "2 run(s) extracted" in printed
    listed = [line.split()[:3] for line in printed.splitlines() if f" {name} " in line]
    assert listed == [["0", name, "Completed"], ["1", name, "Completed"], ["2", name, "run-failed"]]
    rows = sweep_rows(sweep)
    assert [r["status"] for r in rows] == ["Completed", "Completed", "run-failed"]
    assert "fold" in rows[2]["reason"]
    for i in (0, 1):  # a separate job's download: its model archive, then its output archive
        run = f"run-{i}"
        expected = {**files(local.model_dir / run), **files(local.output_dir / run)}
        got = files(sweep / str(i))
        assert {k: got.get(k) for k in expected} == expected
        assert set(got) - set(expected) <= launched[i]  # nothing else, no pack_status.json
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "0" / "model").is_dir()
    assert set(files(sweep / "2")) == launched[2]  # a failed run: nothing extracted
    follow(sweep, account)  # a later refresh keeps the packed run's own outcome
    assert [r["status"] for r in sweep_rows(sweep)] == ["Completed", "Completed", "run-failed"]

    report([str(sweep), "--out", str(tmp_path / "report"), "--no-progress"])
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert sorted(summary["split.fold"]) == [0, 1]


def test_a_warm_pooled_sweep_sends_every_job_in_one_shape_one_after_another(
    account: dict, tmp_path: Path
) -> None:
    """``sagemaker.keep_alive_minutes``: every job of the sweep asks for the same resources and
    the warm pool, and each is created only once the one before has ended (a pool is released
    by a finished job). A proxy shows each job as InProgress at first, as SageMaker would."""
    seen: list[tuple[str, str, str]] = []  # (operation, job name, the status answered)

    def answer(operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply:
        status, headers, reply = forward()
        if operation == "SageMaker.CreateTrainingJob":
            seen.append(("create", json.loads(body)["TrainingJobName"], ""))
        elif operation == "SageMaker.DescribeTrainingJob" and status == 200:
            job = json.loads(reply)
            if not any(s[:2] == ("describe", job["TrainingJobName"]) for s in seen):
                job["TrainingJobStatus"] = "InProgress"  # moto ends a job at once
                reply = json.dumps(job).encode()
            seen.append(("describe", job["TrainingJobName"], job["TrainingJobStatus"]))
        return status, headers, reply

    sweep = tmp_path / "sweep"
    args = [DATA, *TINY_JOB, "optimizer.lr=1e-5,1e-4,1e-3", "sagemaker.keep_alive_minutes=10",
            "sagemaker.base_job_name=warm"]  # fmt: skip
    with aws_proxy(account["AWS_ENDPOINT_URL"], answer) as proxy:
        result = launch(args, {**account, "AWS_ENDPOINT_URL": proxy}, sweep, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    names = [r["job_name"] for r in sweep_rows(sweep)]
    assert sorted(names) == jobs("warm-") and len(names) == 3
    assert [describe(n)["ResourceConfig"] for n in names] == 3 * [
        {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50,
         "KeepAlivePeriodInSeconds": 600}
    ]  # fmt: skip
    for before, after in zip(names, names[1:], strict=False):
        ended = [i for i, s in enumerate(seen) if s == ("describe", before, "Completed")]
        assert ended and ended[0] < seen.index(("create", after, "")), seen
