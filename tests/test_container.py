"""The container side: hyperparameters -> the same config, checked; failures reported.

Jobs run through ``socal.sagemaker.local_container`` (instance=local): train.py in a real
subprocess, from the extracted source archive, with argv and SM_* as SageMaker SDK v3 gives them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers
from omegaconf import OmegaConf

from socal.config import semantic_config
from socal.data.synthetic import SyntheticSpec, generate
from socal.errors import UserError
from socal.sagemaker import hyperparams, local_container, source_archive
from socal.sagemaker import job as sagemaker_job
from socal.training.checkpoint import step_files

from support import TINY_JOB, encoded, local_plan

CONF = str(hyperparams.CONF_DIR)
TINY = [*TINY_JOB, "trainer.progress=false"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_archive.build(
        tmp_path_factory.mktemp("src"), "socal/requirements/instance.txt", 5
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SyntheticSpec(trials=16, min_frames=60, max_frames=90)
    return generate(tmp_path_factory.mktemp("data") / "SOCAL", spec, progress=False)


def test_transport_matches_the_sdk_driver() -> None:
    """Our model of v3's transport equals the SDK's own container-driver functions."""
    from sagemaker.train.container_drivers.common import utils

    hps, _ = encoded(["optimizer=sgd", "model.source=MCG-NJU/videomae-base"])
    hps.update({"trainer__precision": "32", "model__source": "null", "odd": '"quoted"'})
    stored = {k: utils.safe_serialize(v) for k, v in hps.items()}  # CreateTrainingJob strings
    sm_hps = {k: utils.safe_deserialize(v) for k, v in stored.items()}  # environment.py
    assert hyperparams.received([], json.dumps(sm_hps)) == hyperparams.received(
        hyperparams.driver_argv(hps), None
    )
    assert hyperparams.driver_argv(hps) == utils.hyperparameters_to_cli_args(sm_hps)


def test_values_that_cannot_travel_are_refused_naming_the_key() -> None:
    hps, _ = encoded(TINY)
    hyperparams.check_limits(hps)
    too_many = {**hps, **{f"extra_{i}": "1" for i in range(101 - len(hps))}}
    with pytest.raises(UserError, match="101 hyperparameters, SageMaker accepts at most 100"):
        hyperparams.check_limits(too_many)
    with pytest.raises(UserError, match=r"^model\.source: value has 2501 characters"):
        hyperparams.check_limits({**hps, "model__source": "x" * 2501})
    with pytest.raises(UserError, match=r"^model\.source: value contains a single quote"):
        hyperparams.check_limits({**hps, "model__source": "it's"})
    with pytest.raises(UserError, match="must be a shell identifier"):
        hyperparams.check_limits({**hps, "optimizer.lr": "0.1"})


def test_rebuild_detects_lost_and_unknown_values() -> None:
    hps, _ = encoded(TINY)
    given = hyperparams.received(hyperparams.driver_argv(hps), None)
    placement = {"data.root": "/data", "trainer.checkpoint_dir": "/ckpt"}
    cfg, overrides = hyperparams.rebuild(given, placement)
    assert hyperparams.verify(given, cfg) == []
    assert "optimizer.lr=5e-05" in overrides and "optimizer=adamw" in overrides
    assert cfg.data.root == "/data" and cfg.trainer.checkpoint_dir == "/ckpt"

    with pytest.raises(UserError, match="hyperparameter bogus__key is not a key"):
        hyperparams.rebuild({**given, "bogus__key": "1"}, placement)
    dropped = {k: v for k, v in given.items() if k != "trainer__seed"}
    cfg, _ = hyperparams.rebuild(dropped, placement)
    with pytest.raises(UserError, match="trainer__seed is missing"):
        hyperparams.verify(dropped, cfg)


def test_tampered_fingerprint_fails_with_failure_file(
    archive: Path, data: Path, tmp_path: Path
) -> None:
    plan = local_plan(TINY)
    plan.hyperparameters[hyperparams.FINGERPRINT_KEY] = "0123456789abcdef"
    job = local_container.run(plan, archive, data, tmp_path / "opt_ml")
    assert job.returncode != 0
    assert job.failure.startswith("config check failed: config fingerprint ")
    assert "differs from the 0123456789abcdef sent by the launcher" in job.failure
    assert len(job.failure_file.read_text().splitlines()) == 1
    assert not any(job.output_dir.iterdir())  # stopped before touching data


def test_crash_during_training_writes_the_failure_file(archive: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    job = local_container.run(local_plan(TINY), archive, empty, tmp_path / "opt_ml")
    assert job.returncode != 0
    assert job.failure.startswith("error: ")
    assert not (job.model_dir / "model.safetensors").exists()


@pytest.mark.slow
def test_local_job_rebuilds_the_sent_config_and_trains(
    archive: Path, data: Path, tmp_path: Path
) -> None:
    hps, sent = encoded(TINY)
    plan = local_plan(TINY)
    assert plan.hyperparameters == hps
    job = local_container.run(plan, archive, data, tmp_path / "opt_ml")
    assert job.returncode == 0, job.failure
    assert sorted(p.name for p in job.model_dir.iterdir()) == [
        "code",
        "config.yaml",
        "metrics.json",
        "model.safetensors",
        "socal.json",
    ]
    assert {"inference.py", "requirements.txt", "socal"} <= {
        p.name for p in (job.model_dir / "code").iterdir()
    }
    rebuilt = semantic_config(OmegaConf.load(job.model_dir / "config.yaml"))
    assert rebuilt == sent
    metrics = json.loads((job.model_dir / "metrics.json").read_text())
    assert metrics["config_fingerprint"] == hps[hyperparams.FINGERPRINT_KEY]
    assert metrics["versions"]["torch"] == torch.__version__  # what the instance ran with
    assert metrics["versions"]["transformers"] == transformers.__version__
    assert {"history.csv", "predictions.csv", "split.csv"} <= {
        p.name for p in job.output_dir.iterdir()
    }
    assert len(step_files(job.checkpoint_dir)) == 1
    assert (job.checkpoint_dir / "finished.json").exists() and not job.failure_file.exists()
    log = job.log_file.read_text()  # the SDK's chain: sm_train.sh, environment.py, exec_driver
    assert "Setting up environment variables" in log and "exec_driver: exec" in log
    # What CloudWatch gets: one name=value line per epoch, read by the job's metric definitions.
    assert re.search(r"^epoch=1/1 train_loss=\S+ val_loss=\S+ .* best=1\b", log, re.M)
    for definition in sagemaker_job.metric_definitions():
        names = ("train_loss", "val_loss", "val_auroc", "test_accuracy", "lr", "best_val_loss")
        if definition["Name"] in names:
            assert re.search(definition["Regex"], log), definition["Name"]


def test_instance_requirements_pin_every_dependency_within_the_project_ranges() -> None:
    """The shipped requirements file is exact pins only, covers every runtime dependency of
    pyproject.toml (torch and torchvision come with the image), inside its ranges."""
    from packaging.requirements import Requirement

    root = hyperparams.CONF_DIR.parent.parent
    pins = {}
    for line in (root / "socal" / "requirements" / "instance.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and "," not in version and " " not in line, line
            pins[name.lower().replace("_", "-")] = version
    assert "torch" not in pins and "torchvision" not in pins
    project = (root / "pyproject.toml").read_text()
    dependencies = project.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    for text in re.findall(r'^\s*"([^"]+)",', dependencies, re.MULTILINE):
        req = Requirement(text)
        if req.name in ("torch", "torchvision"):  # the image's
            continue
        assert req.name in pins, f"{req.name} is not pinned in socal/requirements/instance.txt"
        assert req.specifier.contains(pins[req.name]), (req, pins[req.name])


def test_the_fingerprint_survives_sagemakers_transport() -> None:
    """A hex fingerprint of digits and one ``e`` is a JSON number: the driver passed it on as
    ``Infinity`` and every such job failed its config check. A fingerprint starts with a letter."""
    assert hyperparams.transported("2068559982e89758") == "Infinity"
    hps, _ = encoded(TINY)
    fingerprint = hps[hyperparams.FINGERPRINT_KEY]
    assert fingerprint[0].isalpha() and hyperparams.transported(fingerprint) == fingerprint
