"""Upload a SOCAL folder to S3 for SageMaker: ``python -m socal.upload ./SOCAL s3://bucket/prefix``.

Uploads in parallel with a progress bar, skips objects already there with the same size (so a
second run, or one resumed after an interruption, uploads only what is missing), and checks at
the end that the prefix holds every local file. Needs boto3 only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm import tqdm

from socal.config import CACHE_DIR_NAME
from socal.errors import UserError, exit_on_user_error
from socal.s3 import split_s3

log = logging.getLogger("socal.sagemaker.upload")
OUTCOMES = "socal_trial_outcomes.csv"
FRAMES = "JPEGImages"


def count_objects(s3: Any, bucket: str, prefix: str, limit: int | None = None) -> int:
    """Objects under ``prefix`` (stops early once ``limit`` are seen)."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        count += page.get("KeyCount", 0)
        if limit and count >= limit:
            break
    return count


def remote_sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        sizes.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return sizes


def local_files(folder: Path) -> dict[str, Path]:
    """Relative POSIX path -> file; hidden files and folders left out, but for the frame cache.

    The cache (``python -m socal.prepare``) travels inside the data, so the instance finds it
    where ``data.cache=auto`` looks: ``<training channel>/.socal-cache``.
    """

    def wanted(parts: tuple[str, ...]) -> bool:
        return not any(p.startswith(".") for p in parts[parts[0] == CACHE_DIR_NAME :])

    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and wanted(p.relative_to(folder).parts)
    }


def parse_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise UserError(f"{uri} is not an S3 URI (s3://bucket/prefix)")
    bucket, prefix = split_s3(uri)
    return bucket, prefix.strip("/")


def upload(
    folder: Path, uri: str, workers: int = 16, progress: bool = True, s3: Any = None
) -> dict[str, int]:
    """Upload ``folder`` under ``uri``; return counts of uploaded, skipped and remote files."""
    folder = folder.expanduser()
    if not (folder / OUTCOMES).is_file() or not (folder / FRAMES).is_dir():
        raise UserError(f"{folder} is not a SOCAL folder: it needs {OUTCOMES} and {FRAMES}/")
    bucket, prefix = parse_uri(uri)
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    key_of = (lambda rel: f"{prefix}/{rel}") if prefix else (lambda rel: rel)
    files = local_files(folder)
    existing = remote_sizes(s3, bucket, f"{prefix}/" if prefix else "")
    todo = {
        rel: path for rel, path in files.items() if existing.get(key_of(rel)) != path.stat().st_size
    }
    log.info(
        "%d files, %d already in %s with the same size, %d to upload",
        len(files),
        len(files) - len(todo),
        uri,
        len(todo),
    )
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(todo), unit="file", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(s3.upload_file, str(path), bucket, key_of(rel)): rel
            for rel, path in todo.items()
        }
        for future in as_completed(futures):
            future.result()
            bar.update()
    after = remote_sizes(s3, bucket, f"{prefix}/" if prefix else "")
    missing = [rel for rel, path in files.items() if after.get(key_of(rel)) != path.stat().st_size]
    if missing:
        raise UserError(
            f"{len(missing)} of {len(files)} files are not in {uri} after the "
            f"upload, e.g. {missing[0]}: run the command again"
        )
    return {
        "files": len(files),
        "uploaded": len(todo),
        "skipped": len(files) - len(todo),
        "remote": len(after),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m socal.upload", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("folder", type=Path, help="the SOCAL folder (JPEGImages/ and the CSVs)")
    parser.add_argument("uri", help="destination, e.g. s3://my-bucket/socal/data")
    parser.add_argument("--workers", type=int, default=min(32, 4 * (os.cpu_count() or 1)))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error():
        counts = upload(args.folder, args.uri, args.workers, not args.no_progress)
    print(
        f"{args.uri}: {counts['files']} files checked, {counts['uploaded']} uploaded, "
        f"{counts['skipped']} already there"
    )


if __name__ == "__main__":
    sys.exit(main())
