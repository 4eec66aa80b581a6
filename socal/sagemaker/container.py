"""``train.py`` on a SageMaker instance: rebuild the config, check it, report, publish results.

SageMaker starts the script as ``train.py --optimizer__lr 0.001 ...``: a training job through
SDK v3's driver (values JSON-encoded), a tuning job's trial through the image's legacy training
toolkit (values ``str()``-encoded). Both export the same values as JSON in ``SM_HPS``. Hydra does
not take ``--key value``, so before Hydra parses argv this module turns ``SM_HPS`` into the Hydra
overrides it stands for, checks that the config they compose is the one the launcher sent (only
the tuned values may differ; see socal.sagemaker.hyperparams.verify), and points the run
directory at ``SM_OUTPUT_DATA_DIR``. Anything that goes wrong writes a one-line reason to
``SM_OUTPUT_FAILURE`` (/opt/ml/output/failure), which SageMaker shows as the FailureReason.
Outside SageMaker (no ``SM_HPS`` in the environment) every function here does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from socal.errors import UserError
from socal.sagemaker.hyperparams import (
    CONTAINER_CHECKPOINT_DIR,
    FINGERPRINT_KEY,
    TUNED_KEY,
    hydra_quote,
    rebuild,
    received,
    verify,
)
from socal.sagemaker.source_archive import PROJECT_ROOT

log = logging.getLogger("socal.sagemaker.container")

OUTPUT_DIR = "/opt/ml/output"
MAX_FAILURE_CHARS = 1024
# Set by socal.sagemaker.local_container (instance=local); SageMaker itself has no variable for it.
CHECKPOINT_ENV = "SOCAL_CHECKPOINT_DIR"
# model.tar.gz: the run's model package (its folder in the run directory), these run files, and
# code/ with the serving handler and what it needs.
MODEL_PACKAGE = "model"
RUN_FILES = ("config.yaml", "metrics.json")
SERVING_REQUIREMENTS = "socal/requirements/instance.txt"
HANDLER = (
    '"""SageMaker PyTorch serving handler of a socal model (socal.serving.endpoint)."""\n\n'
    "from socal.serving.endpoint import input_fn, model_fn, output_fn, predict_fn  # noqa: F401\n"
)


def active() -> bool:
    """True inside a SageMaker training container (or instance=local's imitation of one)."""
    return "SM_HPS" in os.environ


def is_leader() -> bool:
    """The process that writes shared results (rank 0 of torchrun, else the only one)."""
    return os.environ.get("RANK", "0") == "0"


def write_failure(message: str) -> None:
    """One line into the failure file, unless a reason is already there."""
    # SM_OUTPUT_FAILURE: v3's driver; SM_OUTPUT_DIR: also the legacy toolkit (tuning jobs).
    output_dir = Path(os.environ.get("SM_OUTPUT_DIR", OUTPUT_DIR))
    path = Path(os.environ.get("SM_OUTPUT_FAILURE") or output_dir / "failure")
    line = " ".join(message.split())[:MAX_FAILURE_CHARS]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or not path.read_text().strip():
            path.write_text(line + "\n")
    except OSError as err:
        log.error("cannot write the failure file %s: %s", path, err)


def placement() -> dict[str, str]:
    """This host's data and checkpoint paths (the channel SageMaker mounted, ...)."""
    return {
        "data.root": os.environ.get("SM_CHANNEL_TRAINING") or _sent_data_root(),
        "trainer.checkpoint_dir": os.environ.get(CHECKPOINT_ENV, CONTAINER_CHECKPOINT_DIR),
    }


def trial_placement(hps: dict[str, str]) -> dict[str, str]:
    """``placement()``, with a tuning trial's checkpoints in a folder named after its job.

    A tuning job has one CheckpointConfig for all of its training jobs, the API documents no
    per-trial prefix, and SDK v3's HyperparameterTuner passes the ModelTrainer's unchanged: every
    trial would sync (and resume) the same step checkpoints. ``TRAINING_JOB_NAME`` differs between
    trials and stays the same when SageMaker restarts one (spot), so each trial resumes only its
    own checkpoints.
    """
    where = placement()
    if TUNED_KEY in hps:
        job = os.environ.get("TRAINING_JOB_NAME")
        if not job:
            raise UserError("TRAINING_JOB_NAME is not set: a tuning trial needs its job name")
        where["trainer.checkpoint_dir"] = f"{where['trainer.checkpoint_dir'].rstrip('/')}/{job}"
    return where


def _sent_data_root() -> str:
    """No training channel (data=synthetic): the path the launcher sent, generated there."""
    return received([], os.environ.get("SM_HPS"))["data__root"]


def hydra_argv(argv: list[str]) -> list[str]:
    """argv for Hydra: the rebuilt, verified overrides plus this host's output directory.

    Exits non-zero with the failure file written when the config cannot be rebuilt exactly.
    """
    try:
        hps = received(argv[1:], os.environ.get("SM_HPS"))
        cfg, overrides = rebuild(hps, trial_placement(hps))
        changed = verify(hps, cfg)
    except UserError as err:
        write_failure(f"config check failed: {err}")
        log.error("error: config check failed: %s", err)
        sys.exit(3)
    if changed:
        log.warning(
            "hyperparameters changed since launch (tuning job): %s; config fingerprint %s -> %s",
            ", ".join(changed),
            hps[FINGERPRINT_KEY],
            _fingerprint(cfg),
        )
    else:
        log.info(
            "config rebuilt from %d hyperparameters; fingerprint %s matches",
            len(hps),
            hps[FINGERPRINT_KEY],
        )
    run_dir = os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    return [argv[0], *overrides, f"hydra.run.dir={hydra_quote(run_dir)}"]


def _fingerprint(cfg: DictConfig) -> str:
    from socal.config import fingerprint

    return fingerprint(cfg)


def prepare_argv() -> None:
    """On SageMaker, replace ``sys.argv`` by the Hydra overrides (call before Hydra runs)."""
    if active():
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
        sys.argv = hydra_argv(sys.argv)


@contextlib.contextmanager
def report_failure() -> Iterator[None]:
    """On SageMaker, put the reason of any error into the failure file, then re-raise."""
    try:
        yield
    except UserError as err:
        if active():
            write_failure(f"error: {err}")
        raise
    except Exception as err:
        if active():
            write_failure(f"{type(err).__name__}: {err}")
        raise


def publish(cfg: DictConfig, run_dir: Path) -> None:
    """On SageMaker, put what an endpoint serves into ``SM_MODEL_DIR`` (see write_model_dir)."""
    if not (active() and is_leader()):
        return
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    write_model_dir(run_dir, model_dir)
    log.info("model package, config, metrics and endpoint handler copied to %s", model_dir)


def write_model_dir(run_dir: Path, model_dir: Path) -> None:
    """What ``model.tar.gz`` holds: the run's model package (``save_pretrained`` files and
    socal.json), its config and metrics, and ``code/`` for the PyTorch serving container:
    ``inference.py`` (the handler), ``requirements.txt`` and the ``socal`` package it uses."""
    package = run_dir / MODEL_PACKAGE
    if not package.is_dir():
        raise UserError(f"{package} not found: the run wrote no model package")
    shutil.copytree(package, model_dir, dirs_exist_ok=True)
    for name in RUN_FILES:
        shutil.copy2(run_dir / name, model_dir / name)
    code = model_dir / "code"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT_ROOT / "socal", code / "socal", dirs_exist_ok=True, ignore=ignore)
    shutil.copy2(PROJECT_ROOT / SERVING_REQUIREMENTS, code / "requirements.txt")
    (code / "inference.py").write_text(HANDLER)
