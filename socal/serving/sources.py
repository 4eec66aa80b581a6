"""Where a model comes from: a run folder, a ``model.tar.gz`` (local or ``s3://``), or MLflow.

``fetch`` turns any of them into a local folder holding the model package (``socal.json`` plus
the ``save_pretrained`` files). boto3 and mlflow are imported only for the sources that need
them.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

from socal.errors import UserError
from socal.s3 import split_s3
from socal.training.package import find

log = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")


def _extract(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise UserError(f"cannot read the model archive {archive}: {err}") from err
    return dest


def _from_s3(uri: str, dest: Path) -> Path:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise UserError(f"run={uri}: reading s3:// needs boto3 (pip install boto3)") from None
    bucket, key = split_s3(uri)
    local = dest.parent / "model.tar.gz"
    local.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", uri)
    try:
        boto3.client("s3").download_file(bucket, key, str(local))
    except (BotoCoreError, ClientError) as err:
        raise UserError(f"cannot download run={uri}: {err}") from err
    return _extract(local, dest)


def _from_mlflow(uri: str, dest: Path) -> Path:
    try:
        import mlflow
    except ImportError:
        raise UserError(
            f"run={uri}: MLflow URIs need mlflow (pip install 'socal[tracking]')"
        ) from None
    dest.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from MLflow at %s", uri, mlflow.get_tracking_uri())
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except Exception as err:  # MlflowException, connection errors: say which source failed
        raise UserError(f"cannot download run={uri} from MLflow: {err}".splitlines()[0]) from err


def fetch(source: str, dest: Path) -> Path:
    """The local package folder for ``source`` (downloads and archives go under ``dest``)."""
    if source.startswith("s3://"):
        return find(_from_s3(source, dest))
    if source.startswith(MLFLOW_SCHEMES):
        return find(_from_mlflow(source, dest))
    path = Path(source).expanduser()
    if path.is_dir():
        return find(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return find(_extract(path, dest))
    raise UserError(
        f"run={source} is neither a run folder, a model.tar.gz, an s3:// URI nor an MLflow "
        f"model URI ({', '.join(MLFLOW_SCHEMES)}...)"
    )
