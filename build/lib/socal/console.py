"""What a run prints: one readable line per epoch on the terminal, ``name=value`` lines in the log.

Metrics are logged twice, to two loggers. ``socal.metrics`` gets one ``name=value`` line per
metric (what ``train.log`` keeps and scripts grep); ``socal.console`` gets one line per epoch.
``route()`` (called by ``train.py`` once Hydra has set up logging) sends the first to the log
file only and the second to the terminal only. On a terminal the epoch line is for a person::

    epoch 3/15  train_loss 0.44  val_loss 0.31  val_auroc 0.97  lr 8.1e-04  *best

Inside a SageMaker container (``machine=True``), whose metric definitions are regexes over the
job's stdout, the same line keeps every value as ``name=value``::

    epoch=3/15 train_loss=0.44121 val_loss=0.310012 val_auroc=0.97 lr=0.00081 best=1

Imports neither torch nor the SageMaker SDK (``launch.py`` may import it too).
"""

from __future__ import annotations

import logging
import math
from typing import Optional

METRICS_LOGGER = "socal.metrics"
CONSOLE_LOGGER = "socal.console"
metrics_log = logging.getLogger(METRICS_LOGGER)
console_log = logging.getLogger(CONSOLE_LOGGER)
_style = {"machine": False}
# What the terminal's epoch line shows (plus the early-stopping metric); the log has them all.
HEADLINE = ("train_loss", "val_loss", "val_auroc", "val_accuracy", "val_rmse", "val_r2", "lr")


def _number(value: float, machine: bool) -> str:
    if machine:
        return f"{value:.6g}"
    if value != 0 and not math.isnan(value) and abs(value) < 1e-2:
        return f"{value:.1e}"
    return f"{value:.4g}" if abs(value) >= 100 else f"{value:.2f}"


def log_metrics(prefix: str, metrics: dict) -> None:
    """One ``name=value`` line per scalar metric (the log file's machine-readable record)."""
    for name, value in metrics.items():
        if not isinstance(value, (list, dict)):
            metrics_log.info("%s%s=%.6g", prefix, name, value)


def epoch_line(
    row: dict, epochs: int, best: bool, monitor: str = "", machine: Optional[bool] = None
) -> str:
    """The one line an epoch prints on the console (``row``: the history.csv row).

    A person gets the headline metrics and the early-stopping ``monitor``; a machine all of them.
    """
    machine = _style["machine"] if machine is None else machine
    values = {k: v for k, v in row.items() if k != "epoch" and not isinstance(v, (list, dict))}
    if machine:
        parts = [f"epoch={row['epoch']}/{epochs}"]
        parts += [f"{k}={_number(v, True)}" for k, v in values.items()]
        return " ".join(parts + ([f"best={int(best)}"]))
    parts = [f"epoch {row['epoch']}/{epochs}"]
    shown = (*HEADLINE, monitor)
    parts += [f"{k} {_number(v, False)}" for k, v in values.items() if k in shown]
    return "  ".join(parts + (["*best"] if best else []))


def report_epoch(
    row: dict, epochs: int, best: bool, monitor: str, best_value: Optional[float] = None
) -> None:
    """``name=value`` lines for the log file and the epoch line for the console; with
    ``best_value`` (the best ``monitor`` so far) a ``best_<monitor>=`` value in both."""
    so_far = {} if best_value is None else {f"best_{monitor}": best_value}
    metrics_log.info("epoch=%d", row["epoch"])
    log_metrics("", {k: v for k, v in row.items() if k != "epoch"} | so_far)
    line = epoch_line(row, epochs, best, monitor)
    if _style["machine"] and so_far:
        line += " " + " ".join(f"{k}={_number(v, True)}" for k, v in so_far.items())
    console_log.info("%s", line)


def report_results(prefix: str, metrics: dict) -> None:
    """Final metrics: ``name=value`` lines in the log and, in a container, one combined line."""
    log_metrics(prefix, metrics)
    if _style["machine"]:
        scalars = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
        console_log.info(" ".join(f"{prefix}{k}={_number(v, True)}" for k, v in scalars.items()))


def interval_column(result: dict) -> dict[str, str]:
    """``metric -> "[lo, hi]"`` from the bootstrap intervals metrics.json holds, if any."""
    intervals = result.get("intervals", {}).get("bootstrap", {})
    return {
        name: f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"
        for name, bounds in intervals.items()
        if bounds is not None and len(bounds) == 2
    }


class _Only(logging.Filter):
    """Lets records through unless they come from ``blocked`` (a logger name)."""

    def __init__(self, blocked: str) -> None:
        super().__init__()
        self.blocked = blocked

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != self.blocked


class _PlainConsole(logging.Formatter):
    """The epoch and result lines as they are; every other record in the handler's format."""

    def __init__(self, inner: Optional[logging.Formatter]) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.name == CONSOLE_LOGGER:
            return record.getMessage()
        return self.inner.format(record)


def route(machine: bool = False, logger: Optional[logging.Logger] = None) -> None:
    """Send ``socal.metrics`` to log files only and ``socal.console`` to the terminal only.

    ``machine``: the console is read by SageMaker's metric regexes (name=value epoch lines).
    """
    _style["machine"] = machine
    for handler in (logger or logging.getLogger()).handlers:
        if any(isinstance(f, _Only) for f in handler.filters):
            continue
        if isinstance(handler, logging.FileHandler):
            handler.addFilter(_Only(CONSOLE_LOGGER))
        elif isinstance(handler, logging.StreamHandler):
            handler.addFilter(_Only(METRICS_LOGGER))
            handler.setFormatter(_PlainConsole(handler.formatter))
