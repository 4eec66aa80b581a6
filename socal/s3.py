"""``s3://bucket/key`` URIs, split in one place (the launcher, ``socal.report``, ``predict.py``)."""

from __future__ import annotations


def split_s3(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; the key may be empty or end with ``/``."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
