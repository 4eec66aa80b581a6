"""The built wheel works outside the checkout: its console scripts find their configs, train the
demo and build a dry-run SageMaker request from another folder.

The fresh venv gets the wheel with ``pip install --no-deps`` and sees the shared venv's
site-packages through a ``.pth`` line (a plain path: the shared venv's own ``.pth`` files, such
as the editable socal finder, are not run), so nothing is downloaded and the wheel's socal is the
one imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import pytest

from support import REPO, TINY
from test_launch import offline_env

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin/`` folder of a fresh venv holding only the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(base / "dist"), str(REPO)],
        cwd=base, env=env,
    )  # fmt: skip
    (wheel,) = (base / "dist").glob("socal-*.whl")
    target = base / "venv"
    venv.create(target, with_pip=False)
    purelib = sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)})
    shared = sysconfig.get_path("purelib")
    (Path(purelib) / "shared-venv.pth").write_text(shared + "\n")
    run(
        [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        cwd=base, env=env,
    )  # fmt: skip
    return target / "bin"


def installed_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in offline_env().items() if k != "PYTHONPATH"} | extra


def test_the_wheel_holds_the_configs_and_imports_from_its_own_folder(
    installed: Path, tmp_path: Path
) -> None:
    where = run(
        [str(installed / "python"), "-c", "import socal.config as c; print(c.CONF_DIR)"],
        cwd=tmp_path, env=installed_env(),
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed.parent)
    assert (Path(where) / "train.yaml").is_file() and (Path(where) / "model").is_dir()


def test_the_demo_trains_and_a_dry_run_launches_from_another_folder(
    installed: Path, tmp_path: Path
) -> None:
    env = installed_env(SOCAL_CACHE_DIR=str(tmp_path / "cache"))
    short = [*TINY, "trainer.epochs=1", "data.synthetic.trials=16"]
    run(
        [str(installed / "socal-train"), "experiment=demo", *short, "hydra.run.dir=demo"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 1 and "test" in metrics

    run(
        [str(installed / "socal-launch"), "experiment=demo", "sagemaker.region=eu-west-1",
         "launch.dry_run=true", "hydra.run.dir=launch"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    request = json.loads((tmp_path / "launch" / "request.json").read_text())
    assert request["HyperParameters"]["trainer__epochs"] == "15"
    with tarfile.open(tmp_path / "launch" / "sourcedir.tar.gz") as tar:
        members = set(tar.getnames())
        entry = tar.extractfile("train.py").read().decode()
    assert {"socal/conf/train.yaml", "socal/requirements/instance.txt", "train.py"} <= members
    assert "from socal.apps.train import main" in entry

    checked = subprocess.run(
        [str(installed / "socal-check"), "experiment=demo", *short],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
