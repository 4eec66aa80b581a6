"""The layering contract in pyproject.toml holds, and breaking it is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = (REPO / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"{declared} kept, 0 broken" in result.stdout


def test_a_data_module_importing_the_engine_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "socal", tmp_path / "socal", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    clips = tmp_path / "socal" / "data" / "clips.py"
    clips.write_text(clips.read_text() + "\nfrom socal.training.engine import Engine  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "socal.data is not allowed to import socal.training" in result.stdout
    assert "socal.data.clips -> socal.training.engine" in result.stdout
