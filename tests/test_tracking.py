"""tracking=mlflow against a real ``mlflow server`` on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
from omegaconf import OmegaConf

from socal.config import fingerprint

from support import REPO, TINY, compose_train, free_port, read_metrics, run_train, synthetic_folder

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).with_name("mlflow")


@contextmanager
def http_process(
    command: list[str], log: Path, health: str, env: Optional[dict] = None
) -> Iterator[None]:
    """``command`` (a server on 127.0.0.1) running until the block ends, once ``health`` answers."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(health, timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.5)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` (the tracking extra) with a sqlite store, serving artifacts over HTTP."""
    base = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [
        str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{base / 'store.db'}",
        "--artifacts-destination", str(base / "artifacts"),
    ]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    with http_process(command, base / "server.log", f"{uri}/health"):
        yield uri


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("tracking"), trials=24, seed=3)


def tracked(server: str, data_root: Path, experiment: str) -> list[str]:
    return [
        f"data.root={data_root}", *TINY, "tracking=mlflow", f"tracking.uri={server}",
        f"tracking.experiment={experiment}", "trainer.early_stopping.patience=10",
    ]  # fmt: skip


def runs_of(server: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_a_run_logs_params_epochs_results_artifacts_and_the_model(
    tmp_path: Path, server: str, data_root: Path
) -> None:
    from mlflow.tracking import MlflowClient

    experiment = f"run-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "run"
    run_train(run_dir, [*tracked(server, data_root, experiment), "trainer.epochs=3"])
    (run,) = runs_of(server, experiment)
    client = MlflowClient(server)
    assert run.info.status == "FINISHED"
    # Every resolved config key as a param, with its dotted name.
    config = OmegaConf.load(run_dir / "config.yaml")
    assert run.data.params["optimizer.lr"] == str(config.optimizer.lr)
    assert run.data.params["data.window.length_s"] == "60"
    assert run.data.params["model.arch.image_size"] == "32"
    assert run.data.params["tracking.backend"] == "mlflow"
    assert len(run.data.params) >= 60
    # Group choices and the fingerprint as tags.
    metrics = read_metrics(run_dir)
    assert run.data.tags["model"] == "videomae_tiny" and run.data.tags["optimizer"] == "adamw"
    assert run.data.tags["config_fingerprint"] == metrics["config_fingerprint"]
    # One point per epoch, step = epoch, the values of history.csv.
    history = pd.read_csv(run_dir / "history.csv")
    for name in ("train_loss", "val_loss", "val_auroc", "lr"):
        points = client.get_metric_history(run.info.run_id, name)
        assert [p.step for p in points] == [1, 2, 3], name
        assert [p.value for p in points] == pytest.approx(list(history[name]), rel=1e-6)
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert run.data.metrics["test_auroc"] == pytest.approx(metrics["test"]["auroc"])
    # The run folder's files and the model package, downloadable from the server.
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    expected = {"config.yaml", "history.csv", "predictions.csv", "metrics.json", "split.csv"}
    assert expected | {"train.log", "model"} <= names
    model = {a.path for a in client.list_artifacts(run.info.run_id, "model/artifacts/model")}
    assert {"model/artifacts/model/model.safetensors", "model/artifacts/model/socal.json"} <= model
    downloaded = Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path)))
    assert downloaded.read_text() == (run_dir / "metrics.json").read_text()

    # predict.py from the MLflow model URI reproduces the run's test predictions.
    out = tmp_path / "predicted"
    proc = subprocess.run(
        [sys.executable, "predict.py", f"run=runs:/{run.info.run_id}/model",
         f"data.root={data_root}", f"hydra.run.dir={out}"],
        cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": server, "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = pd.read_csv(run_dir / "predictions.csv").query("subset == 'test'")
    predicted = pd.read_csv(out / "predictions.csv").set_index("trial").loc[test.trial]
    assert predicted.probability.to_numpy() == pytest.approx(test.probability.to_numpy(), abs=1e-6)


def test_a_resumed_run_continues_the_same_mlflow_run(
    tmp_path: Path, server: str, data_root: Path
) -> None:
    experiment = f"resume-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "run"
    args = [*tracked(server, data_root, experiment), "trainer.epochs=3", "trainer.batch_size=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "train.py", f"hydra.run.dir={run_dir}", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith("epoch 1/3"):
            proc.send_signal(signal.SIGTERM)  # during epoch 2
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and "stopped by SIGTERM" in rest, rest[-2000:]
    (stopped,) = runs_of(server, experiment)
    assert stopped.info.status == "KILLED"

    resumed = run_train(run_dir, args)
    assert "continuing MLflow run " + stopped.info.run_id in resumed.stdout
    (run,) = runs_of(server, experiment)  # the same run, not a second one
    assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"
    from mlflow.tracking import MlflowClient

    steps = [p.step for p in MlflowClient(server).get_metric_history(run.info.run_id, "val_loss")]
    assert steps == [1, 2, 3]


def test_a_multirun_is_one_parent_run_with_a_child_per_job(
    tmp_path: Path, server: str, data_root: Path
) -> None:
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", *tracked(server, data_root, experiment),
         "trainer.epochs=1", "trainer.seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         f"tracking.register={experiment}"],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_of(server, experiment)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.params["trainer.seed"] for c in children} == {"0", "1"}
    assert all(r.info.status == "FINISHED" for r in runs)
    # Each job's model is a new version of the registered model.
    from mlflow.tracking import MlflowClient

    versions = MlflowClient(server).search_model_versions(f"name = '{experiment}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert {v.run_id for v in versions} == {c.info.run_id for c in children}


def test_an_unreachable_server_is_reported_once_and_training_goes_on(
    tmp_path: Path, data_root: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    proc = run_train(run_dir, [*tracked(dead, data_root, "nowhere"), "trainer.epochs=2"])
    output = proc.stdout + proc.stderr
    assert output.count(f"MLflow tracking at {dead} failed") == 1
    assert "training goes on without it" in output
    assert read_metrics(run_dir)["epochs_trained"] == 2


def test_tracking_changes_no_result_and_is_off_by_default() -> None:
    plain = compose_train(["data.root=/data"])
    assert plain.tracking.backend == "none"
    with_mlflow = compose_train(["data.root=/data", "tracking=mlflow", "tracking.uri=http://x"])
    assert fingerprint(plain) == fingerprint(with_mlflow)
    code = (
        "import sys\n"
        "from socal.training import tracking\n"
        "from support import compose_train\n"
        "cfg = compose_train(['data.root=/data'])\n"
        "class Engine:\n"
        "    dist = type('D', (), {'is_main': True})()\n"
        "assert type(tracking.start(cfg, None, Engine())) is tracking.Tracker\n"
        "assert 'mlflow' not in sys.modules, 'tracking=none imported mlflow'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)


def frames_request(data_root: Path, trials: list[str]) -> list[dict]:
    """The model's input rows: each trial's frames in order, as base64 JPEG strings."""
    mapping = pd.read_csv(data_root / "frame_to_trial_mapping.csv").sort_values("frame_number")
    return [
        {
            "id": trial,
            "frames": [
                base64.b64encode((data_root / "JPEGImages" / frame).read_bytes()).decode()
                for frame in mapping[mapping.trial_id == trial].frame
            ],
        }
        for trial in trials
    ]


def assert_answers(answers: pd.DataFrame, run_dir: Path) -> None:
    """The run's own test predictions (predictions.csv) for the trials in ``answers``."""
    expected = pd.read_csv(run_dir / "predictions.csv").query("subset == 'test'")
    expected = expected.set_index("trial").loc[answers["id"]]
    assert answers["probability"].to_numpy() == pytest.approx(expected.probability, abs=1e-5)
    assert (answers["prediction"].to_numpy() == expected.prediction.to_numpy()).all()
    threshold = read_metrics(run_dir)["threshold"]["value"]
    assert answers["threshold"].to_numpy() == pytest.approx(threshold)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, server: str, data_root: Path) -> dict:
    """A run whose model is registered as version 1 of a new registered model."""
    name = f"socal-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path_factory.mktemp("registered") / "run"
    overrides = [*tracked(server, data_root, name), "trainer.epochs=2", f"tracking.register={name}"]
    run_train(run_dir, overrides)
    (run,) = runs_of(server, name)
    test = pd.read_csv(run_dir / "predictions.csv").query("subset == 'test'")
    return {"name": name, "run_id": run.info.run_id, "run_dir": run_dir, "trials": list(test.trial)}


def test_the_logged_model_is_a_pyfunc_model_that_predicts_the_runs_predictions(
    server: str, data_root: Path, registered: dict
) -> None:
    import mlflow

    mlflow.set_tracking_uri(server)
    uri = f"runs:/{registered['run_id']}/model"
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.input_names() == ["id", "frames"]
    assert info.signature.outputs.input_names() == ["id", "probability", "prediction", "threshold"]
    assert info.saved_input_example_info["type"] == "dataframe"
    model = mlflow.pyfunc.load_model(uri)
    example = model.input_example
    assert list(example.columns) == ["id", "frames"] and example.id[0] in registered["trials"]
    trials = registered["trials"][:4]
    assert_answers(
        model.predict(pd.DataFrame(frames_request(data_root, trials))), registered["run_dir"]
    )


def test_the_registered_model_serves_the_runs_predictions_with_mlflow_models_serve(
    tmp_path: Path, server: str, data_root: Path, registered: dict
) -> None:
    from mlflow.tracking import MlflowClient

    (version,) = MlflowClient(server).search_model_versions(f"name = '{registered['name']}'")
    assert version.version == "1" and version.run_id == registered["run_id"]
    port = free_port()
    command = [
        str(MLFLOW), "models", "serve", "-m", f"models:/{registered['name']}/1",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    env = {
        **os.environ, "MLFLOW_TRACKING_URI": server, "HF_HUB_OFFLINE": "1",
        "PATH": os.pathsep.join([str(MLFLOW.parent), os.environ["PATH"]]),  # its uvicorn
        "PYTHONPATH": str(REPO),
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    trials = registered["trials"][:3]
    body = json.dumps({"dataframe_records": frames_request(data_root, trials)}).encode()
    with http_process(command, tmp_path / "serve.log", f"{url}/ping", env):
        request = urllib.request.Request(
            f"{url}/invocations", body, {"Content-Type": "application/json"}
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
    answers = pd.DataFrame(answer["predictions"])
    assert list(answers["id"]) == trials
    assert_answers(answers, registered["run_dir"])
