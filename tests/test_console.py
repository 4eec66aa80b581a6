"""The console: one readable line per epoch on the terminal, name=value lines in train.log, and a
combined line that SageMaker's metric definitions still parse."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest

from socal import console
from socal.sagemaker.job import METRICS, metric_definitions

ROW = {
    "epoch": 3,
    "train_loss": 0.44121,
    "val_loss": 0.310012,
    "val_accuracy": 0.9,
    "val_balanced_accuracy": 0.875,
    "val_auroc": 0.97,
    "val_f1": 0.91,
    "val_sensitivity": 1.0,
    "val_specificity": 0.75,
    "lr": 8.1e-4,
}


def test_the_terminal_line_is_short_and_readable() -> None:
    line = console.epoch_line(ROW, 15, best=True, monitor="val_loss", machine=False)
    assert line == (
        "epoch 3/15  train_loss 0.44  val_loss 0.31  val_accuracy 0.90  val_auroc 0.97  "
        "lr 8.1e-04  *best"
    )
    other = console.epoch_line(ROW, 15, best=False, monitor="val_f1", machine=False)
    assert "val_f1 0.91" in other and not other.endswith("*best")


def test_sagemaker_metric_definitions_parse_the_combined_line() -> None:
    """Every metric of the epoch, and every test metric, read back by the job's own regexes."""
    regexes = {m["Name"]: re.compile(m["Regex"]) for m in metric_definitions()}
    line = console.epoch_line(ROW, 15, best=True, machine=True)
    shown = "[2026-01-01 10:00:00,000][socal.console][INFO] - " + line
    for name, value in ROW.items():
        if name != "epoch":
            assert float(regexes[name].search(shown).group(1)) == pytest.approx(value, rel=1e-5)
    for name in METRICS:  # a test metric is not in an epoch line, nor mistaken for one
        if name.startswith("test_"):
            assert regexes[name].search(shown) is None
    test_metrics = {"accuracy": 0.85, "auroc": 0.9125, "r2": -0.25}
    console.route(machine=True, logger=logging.getLogger("unused"))
    try:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        console.console_log.addHandler(handler)
        console.console_log.setLevel(logging.INFO)
        console.report_results("test_", test_metrics)
        console.report_epoch(ROW, 15, False, "val_auroc", best_value=0.985)
    finally:
        console.console_log.setLevel(logging.NOTSET)
        console.console_log.removeHandler(handler)
        console.route(machine=False, logger=logging.getLogger("unused"))
    for name, value in test_metrics.items():
        assert float(regexes[f"test_{name}"].search(stream.getvalue()).group(1)) == value
    # The objective so far is on every epoch line: SageMaker tuning's early stopping reads it.
    assert float(regexes["best_val_auroc"].search(stream.getvalue()).group(1)) == 0.985


def test_route_sends_name_value_lines_to_the_file_and_the_epoch_line_to_the_terminal(
    tmp_path: Path,
) -> None:
    root = logging.getLogger("socal-test-route")
    root.setLevel(logging.INFO)
    terminal, log_file = io.StringIO(), tmp_path / "train.log"
    handlers = [logging.StreamHandler(terminal), logging.FileHandler(log_file)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(handler)
    loggers = (console.metrics_log, console.console_log)
    for logger in loggers:
        logger.parent = root
    try:
        console.route(logger=root)
        console.route(logger=root)  # once per Hydra job: filters are not stacked
        console.report_epoch(ROW, 15, True, "val_loss")
    finally:
        for logger in loggers:
            logger.parent = logging.getLogger()
        for handler in handlers:
            handler.close()
    assert terminal.getvalue().splitlines() == [
        console.epoch_line(ROW, 15, True, "val_loss", machine=False)
    ]
    lines = log_file.read_text().splitlines()
    assert lines[0] == "[socal.metrics] epoch=3"
    assert "[socal.metrics] val_loss=0.310012" in lines and len(lines) == len(ROW)


def test_the_results_table_shows_intervals_when_metrics_json_has_them() -> None:
    from socal.training.metrics import results_table

    model = {"accuracy": 0.8, "auroc": 0.9, "confusion_matrix": [[4, 1], [1, 4]]}
    reference = {
        "majority": {"accuracy": 0.5, "auroc": 0.5},
        "trial_length": {"accuracy": 0.6, "auroc": 0.6},
    }
    plain = results_table("classification", model, reference, intervals=console.interval_column({}))
    assert "95% CI" not in plain
    result = {"intervals": {"bootstrap": {"accuracy": [0.61, 0.93], "auroc": None}}}
    table = results_table(
        "classification", model, reference, intervals=console.interval_column(result)
    )
    header, accuracy, auroc = table.splitlines()[:3]
    assert header.split() == ["model", "95%", "CI", "majority", "trial_length"]
    assert accuracy.split() == ["accuracy", "0.8000", "[0.610,", "0.930]", "0.5000", "0.6000"]
    assert auroc.split() == ["auroc", "0.9000", "0.5000", "0.6000"]  # no interval: blank
