"""Errors a user can fix, reported as one line instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from hydra.errors import HydraException

log = logging.getLogger("socal")


class UserError(Exception):
    """Bad input or configuration: the message says what is wrong and how to fix it."""


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a UserError (or a config that does not compose) into one ``error:`` line, exit 2."""
    try:
        yield
    except (UserError, HydraException) as err:
        log.error("error: %s", " ".join(str(err).split()))
        sys.exit(2)
