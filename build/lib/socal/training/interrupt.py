"""SIGTERM (SageMaker stop, spot notice) or Ctrl-C: finish the step, checkpoint, exit cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Optional

log = logging.getLogger(__name__)


class StopSignal:
    """Records the first SIGTERM/SIGINT; a second one gets the default behaviour (exit now)."""

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self.pid = os.getpid()

    def install(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self.pid:  # a data-loader worker inherited the handler: not its job
            return
        self.received = signal.Signals(signum).name
        signal.signal(signum, signal.SIG_DFL)
        log.warning(
            "%s received: finishing the current step, then saving a checkpoint", self.received
        )

    def __bool__(self) -> bool:
        return self.received is not None
