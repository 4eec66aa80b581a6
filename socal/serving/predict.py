"""``python predict.py run=PATH data.root=FOLDER``: a trained model's predictions on new trials.

The model, window, frame count, normalisation, precision and threshold come from the run's
package, and clips go through the run's own evaluation path, so predicting a run's test trials
reproduces its ``predictions.csv``. Writes ``predictions.csv`` (every trial with frames) and,
when the folder has outcomes, ``metrics.json`` on the labelled trials.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from socal.config import check_set
from socal.data.dataset import ClipDataset
from socal.data.index import index_folder
from socal.serving.sources import fetch
from socal.training.metrics import classification_metrics, predictions_table, regression_metrics
from socal.training.package import Predictor

log = logging.getLogger(__name__)


def predict(cfg: DictConfig, out_dir: Path) -> dict:
    """Predict every trial under ``cfg.data.root``; write the results into ``out_dir``."""
    check_set(cfg, "python predict.py run=outputs/DATE/TIME data.root=/path/to/new/SOCAL")
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.load(fetch(cfg.run, out_dir / "downloaded"), cfg.device.value)
    root = Path(cfg.data.root).expanduser()
    target = predictor.config.data.target.value
    trials, report = index_folder(root, target, labelled_only=False)
    for line in report.lines():
        log.warning("data check: %s", line)
    loader = ClipDataset.loader_settings(cfg.loader, persistent=False)
    batch_size = cfg.batch_size or predictor.config.trainer.batch_size
    result = predictor.predict(trials, root, batch_size, cfg.data.cache.value, loader)
    chosen = [trials[i] for i in result.indices]
    threshold = predictor.threshold if predictor.task == "classification" else None
    table = predictions_table(chosen, result.outputs, result.labels, predictor.task, threshold)
    table.to_csv(out_dir / "predictions.csv", index=False)
    labelled = table[table["label"].notna()]
    summary = {
        "run": cfg.run,
        "data_root": str(root),
        "task": predictor.task,
        "target": target,
        "threshold": predictor.threshold,
        "n_trials": len(table),
        "n_labelled": len(labelled),
    }
    log.info("predictions for %d trials: %s", len(table), out_dir / "predictions.csv")
    if len(labelled):
        labels, outputs = labelled["label"].to_numpy(), result.outputs[table["label"].notna()]
        if predictor.task == "classification":
            metrics = classification_metrics(labels, outputs, predictor.threshold)
        else:
            metrics = regression_metrics(labels, outputs)
        summary["test"] = metrics
        lines = [f"{k:<20}{v:>8.4f}" for k, v in metrics.items() if not isinstance(v, list)]
        log.info("metrics on the %d labelled trials:\n%s", len(labelled), "\n".join(lines))
        (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
