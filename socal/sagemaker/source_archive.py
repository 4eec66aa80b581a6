"""The source code a training job runs: the ``socal`` package (its configs and the instance's
requirements files inside) and a ``train.py`` entry script, as one deterministic
``sourcedir.tar.gz``; never data, outputs, multirun folders, virtual environments, ``.git`` or
tests (they are not under the shipped paths, and caches inside them are skipped). Works the same
from a checkout and from an installed wheel.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Optional

from socal.errors import UserError
from socal.sagemaker.job import ENTRY_SCRIPT

# The folder holding the ``socal`` package: the checkout, or site-packages when installed.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("socal",)
# The job's entry script (job.ENTRY_SCRIPT): the same ``main`` as socal-train and train.py.
ENTRY_SCRIPT_TEXT = '"""The training job entry script: socal.apps.train."""\n\n' + (
    "from socal.apps.train import main\n\nmain()\n"
)
ARCHIVE_NAME = "sourcedir.tar.gz"
# Tuning jobs run the image's legacy training toolkit, which installs only this file.
ROOT_REQUIREMENTS = "requirements.txt"
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


def shipped_files(root: Path, requirements: Optional[str]) -> list[str]:
    """Relative paths of every file that goes into the archive, sorted."""
    files = set()
    if requirements is not None:  # null: nothing installed (a prebuilt sagemaker.image)
        if not (root / requirements).is_file():
            raise UserError(f"sagemaker.requirements={requirements}: no such file under {root}")
        files.add(Path(requirements).as_posix())
    for name in SHIPPED:
        path = root / name
        if not path.exists():
            raise UserError(f"{path} is missing: not a folder holding the socal package")
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            rel = file.relative_to(root)
            if (
                file.is_file()
                and not SKIPPED_DIRS.intersection(rel.parts)
                and not file.name.endswith(SKIPPED_SUFFIXES)
                and not file.name.startswith(".")
            ):
                files.add(rel.as_posix())
    return sorted(files)


def build(
    dest_dir: Path,
    requirements: Optional[str],
    max_mb: float,
    root: Path = PROJECT_ROOT,
    root_requirements: bool = False,
    extra: Optional[dict[str, bytes]] = None,
) -> Path:
    """Write ``dest_dir/sourcedir.tar.gz``; refuse it above ``max_mb`` megabytes.

    ``root_requirements``: also ship the requirements as ``requirements.txt`` (tuning jobs);
    ``extra``: more files by archive path (a packed job's ``socal_pack.json``).
    """
    entries = {rel: (root / rel).read_bytes() for rel in shipped_files(root, requirements)}
    entries[ENTRY_SCRIPT] = ENTRY_SCRIPT_TEXT.encode()
    entries.update(extra or {})
    if root_requirements and requirements is not None:
        entries[ROOT_REQUIREMENTS] = (root / requirements).read_bytes()
    buffer = io.BytesIO()
    # Fixed mtimes, owners and order: the same sources give the same bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, data in sorted(entries.items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    size_mb = buffer.tell() / 1e6
    if size_mb > max_mb:
        raise UserError(
            f"the source archive is {size_mb:.1f} MB, above "
            f"sagemaker.max_source_mb={max_mb}: is data under conf/ or socal/?"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / ARCHIVE_NAME
    path.write_bytes(buffer.getvalue())
    return path
