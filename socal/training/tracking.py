"""Experiment tracking with MLflow (``tracking=mlflow``): one MLflow run per training run.

Logged, from rank 0 only: every resolved config key as a param (dotted names), the config group
choices and the fingerprint as tags, each epoch's history row as metrics with ``step=epoch``,
the test metrics, the run folder's files (config, history, predictions, metrics, split, plots,
log) and the model package as an MLflow pyfunc model (``model``: ``socal.training.mlflow_model``;
``python predict.py run=runs:/<id>/model``), registered as a new version of
``tracking.register`` when that names a registered model. A resumed
run continues the same MLflow run (its id is in the checkpoint); a multirun is one parent run
with a child per job (``SweepRun``, a Hydra callback set by ``socal/conf/tracking/mlflow.yaml``).

The run folder stays the record: when the tracking server cannot be reached, training goes on,
says so once, and logs nothing more there. mlflow is imported only when tracking is on.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from socal.config import fingerprint, flatten
from socal.data.index import Trial
from socal.errors import UserError

log = logging.getLogger(__name__)

NONE, MLFLOW = "none", "mlflow"
# Set by SweepRun for the jobs of a multirun: their runs become its children.
PARENT_ENV = "SOCAL_MLFLOW_PARENT_RUN_ID"
ARTIFACTS = ("config.yaml", "split.csv", "history.csv", "predictions.csv", "metrics.json")
LOG_FILES = ("train.log",)
MODEL_ARTIFACT = "model"
# MLflow retries an unreachable server for ~4 minutes by default; a run should not wait that
# long to learn it trains without tracking (an environment variable you set still wins).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class Tracker:
    """What the training run calls; this base class tracks nothing (``tracking=none``)."""

    run_id: Optional[str] = None

    def log_epoch(self, row: dict) -> None:
        """One history row (``epoch``, ``train_loss``, ``val_*``, ``lr``)."""

    def finish(self, result: dict, run_dir: Path, example: Trial) -> None:
        """Test metrics, the run folder's files and the model (``example``: a trial for its
        input example); the run ends FINISHED."""

    def close(self) -> None:
        """End a run that did not finish: KILLED when stopped by a signal, FAILED on an error."""


def _client(uri: Optional[str]) -> Any:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError(
            "tracking=mlflow needs mlflow: pip install 'socal[tracking]' (or tracking=none)"
        ) from None
    import mlflow

    if uri:  # global too: sagemaker-mlflow's request signing reads mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
    if not mlflow.get_tracking_uri().startswith("arn:"):
        # sagemaker-mlflow, when installed, warns on every request to a server that is not one
        # of SageMaker's ("list index out of range" parsing the URI as an ARN).
        logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _group_tags() -> dict[str, str]:
    """The config group choices of this Hydra job (``model``: ``videomae_tiny``, ...)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if v is not None and not k.startswith("hydra")}


class MLflowTracker(Tracker):
    """One MLflow run; every call after the server failed once does nothing."""

    def __init__(self, cfg: DictConfig) -> None:
        self.uri = cfg.tracking.uri
        self.client = _client(self.uri)
        self.log_model = cfg.tracking.log_model
        self.register = cfg.tracking.register
        self.failed = False
        self.finished = False

    def safely(self, what: str, call: Callable[[], Any]) -> Any:
        if self.failed:
            return None
        try:
            return call()
        except Exception as err:  # unreachable server, HTTP errors: the run folder keeps all
            self.failed = True
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning(
                "MLflow tracking at %s failed while %s (%s): training goes on without it; the "
                "run folder holds every result",
                self.client.tracking_uri, what, first,
            )  # fmt: skip
            return None

    def start(self, cfg: DictConfig, run_dir: Path, resume_id: Optional[str]) -> None:
        """Continue ``resume_id`` when it exists there, else create the run and log its params."""
        self.run_id = self.safely("starting the run", lambda: self._open(cfg, run_dir, resume_id))
        if self.run_id:
            log.info(
                "MLflow run %s in experiment '%s' at %s",
                self.run_id, cfg.tracking.experiment, self.client.tracking_uri,
            )  # fmt: skip

    def _open(self, cfg: DictConfig, run_dir: Path, resume_id: Optional[str]) -> str:
        if resume_id:
            try:
                self.client.get_run(resume_id)
            except Exception as err:  # deleted, or another tracking server
                log.warning("MLflow run %s not found (%s): starting a new one", resume_id, err)
            else:
                self.client.update_run(resume_id, status="RUNNING")
                log.info("continuing MLflow run %s", resume_id)
                return resume_id
        tags = {**_group_tags(), "config_fingerprint": fingerprint(cfg), "run_dir": str(run_dir)}
        if os.environ.get(PARENT_ENV):
            tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
        run = self.client.create_run(
            _experiment_id(self.client, cfg.tracking.experiment),
            run_name=cfg.tracking.run_name or run_dir.name,
            tags=tags,
        )
        from mlflow.entities import Param

        container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        params = [Param(k, str(v)) for k, v in sorted(flatten(container).items())]
        self.client.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    def _metrics(self, values: dict, step: int, prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{prefix}{k}", float(v), now, step)
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_epoch(self, row: dict) -> None:
        if self.run_id:
            values = {k: v for k, v in row.items() if k != "epoch"}
            self.safely("logging metrics", lambda: self._metrics(values, row["epoch"]))

    def finish(self, result: dict, run_dir: Path, example: Trial) -> None:
        if self.run_id:
            self.safely("logging the results", lambda: self._finish(result, run_dir, example))
        self.finished = True

    def _finish(self, result: dict, run_dir: Path, example: Trial) -> None:
        epochs = result["epochs_trained"]
        self._metrics(result["test"], epochs, "test_")
        self._metrics(result["best_val"], epochs, "best_")
        files = [run_dir / name for name in (*ARTIFACTS, *LOG_FILES)]
        for path in [*files, *sorted(run_dir.glob("*.png"))]:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        package = run_dir / MODEL_ARTIFACT
        if self.log_model and package.is_dir():
            self._log_model(package, example)
        self.client.set_terminated(self.run_id, "FINISHED")
        log.info("MLflow run %s finished: model at runs:/%s/model", self.run_id, self.run_id)

    def _log_model(self, package: Path, example: Trial) -> None:
        from socal.training import mlflow_model

        with tempfile.TemporaryDirectory() as tmp:
            model = mlflow_model.save(package, Path(tmp) / MODEL_ARTIFACT, example)
            self.client.log_artifacts(self.run_id, str(model), MODEL_ARTIFACT)
        if self.register:
            if not self.client.search_registered_models(f"name = '{self.register}'"):
                self.client.create_registered_model(self.register)
            version = self.client.create_model_version(
                self.register, f"runs:/{self.run_id}/{MODEL_ARTIFACT}", self.run_id
            )
            log.info("registered as models:/%s/%s", self.register, version.version)

    def close(self) -> None:
        if self.run_id and not self.finished:
            status = "FAILED" if sys.exc_info()[0] is not None else "KILLED"
            self.safely("ending the run", lambda: self.client.set_terminated(self.run_id, status))


def start(cfg: DictConfig, run_dir: Path, engine: Any) -> Tracker:
    """The run's tracker (rank 0, tracking on), hooked into ``engine``'s epochs.

    ``engine.tracking_run_id`` is saved in its checkpoints: a resumed run continues that run.
    """
    if cfg.tracking.backend == NONE or not engine.dist.is_main:
        return Tracker()
    tracker = MLflowTracker(cfg)
    tracker.start(cfg, run_dir, engine.tracking_run_id)
    engine.tracking_run_id = tracker.run_id or engine.tracking_run_id
    engine.epoch_hooks.append(tracker.log_epoch)
    return tracker


class SweepRun(Callback):
    """A Hydra multirun as one parent MLflow run; each job's run is its child.

    Does nothing for ``launch.py`` (its jobs run on SageMaker, not in this process).
    """

    def __init__(self) -> None:
        self.tracker: Optional[MLflowTracker] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "launch" in config or config.tracking.backend != MLFLOW:
            return
        self.tracker = MLflowTracker(config)
        sweep_dir = Path(config.hydra.sweep.dir)

        def create() -> str:
            experiment = _experiment_id(self.tracker.client, config.tracking.experiment)
            tags = {"sweep_dir": str(sweep_dir), **_group_tags()}
            run = self.tracker.client.create_run(experiment, run_name=sweep_dir.name, tags=tags)
            return run.info.run_id

        self.tracker.run_id = self.tracker.safely("starting the sweep's run", create)
        if self.tracker.run_id:
            os.environ[PARENT_ENV] = self.tracker.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.tracker and self.tracker.run_id:
            tracker = self.tracker
            tracker.safely("ending the sweep's run", lambda: tracker.client.set_terminated(
                tracker.run_id, "FINISHED"
            ))  # fmt: skip
            os.environ.pop(PARENT_ENV, None)
