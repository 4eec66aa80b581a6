"""One training run from a composed config: data -> split -> model -> fit -> test -> results."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from socal import checkpoint
from socal.check import summary
from socal.config import Precision, Target, fingerprint, semantic_config
from socal.dataset import ClipDataset
from socal.engine import Engine, log_metrics
from socal.errors import UserError
from socal.index import Trial, index_folder
from socal.metrics import baselines, results_table, task_metrics
from socal.model import build_model
from socal.optim import build_optimizer, build_scheduler
from socal.runtime import resolve_device, resolve_precision, seed_everything
from socal.splits import split_table, split_trials
from socal.synthetic import SyntheticSpec, ensure_synthetic

log = logging.getLogger(__name__)

MONITORS = {
    "classification": ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc", "val_f1"),
    "regression": ("val_loss", "val_rmse", "val_mae", "val_r2"),
}


def prepare_data(cfg: DictConfig) -> Path:
    """The data folder, generating the synthetic one on first use (``data=synthetic``)."""
    root = Path(cfg.data.root).expanduser()
    if cfg.data.synthetic is not None:
        spec = SyntheticSpec(**OmegaConf.to_container(cfg.data.synthetic))
        try:
            ensure_synthetic(root, spec, progress=cfg.trainer.progress)
        except ValueError as err:
            raise UserError(str(err)) from err
    return root


def check_settings(cfg: DictConfig, task: str) -> Precision:
    """Config values a schema cannot express, checked before any data is touched."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(
            f"{', '.join(missing)} must be set, e.g. python train.py data.root=/path/to/SOCAL "
            "(or experiment=demo for the built-in synthetic demo)"
        )
    try:
        precision = Precision(cfg.trainer.precision)
    except ValueError:
        choices = ", ".join(p.value for p in Precision)
        raise UserError(
            f"trainer.precision={cfg.trainer.precision} is not one of {choices}"
        ) from None
    if cfg.trainer.early_stopping.metric not in MONITORS[task]:
        raise UserError(
            f"trainer.early_stopping.metric={cfg.trainer.early_stopping.metric} is not one of "
            f"{', '.join(MONITORS[task])} for data.target={cfg.data.target.value}"
        )
    return precision


def _loader(dataset: ClipDataset, cfg: DictConfig, shuffle: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.trainer.batch_size,
        shuffle=shuffle,
        num_workers=cfg.trainer.num_workers,
        generator=torch.Generator(),
        pin_memory=torch.cuda.is_available(),
    )


def _predictions_table(subset: str, trials: list[Trial], result, task: str) -> pd.DataFrame:
    chosen = [trials[i] for i in result.indices]
    prediction = result.outputs >= 0.5 if task == "classification" else result.outputs
    return pd.DataFrame(
        {
            "trial": [t.trial_id for t in chosen],
            "participant": [t.participant for t in chosen],
            "label": result.labels,
            "probability" if task == "classification" else "predicted": result.outputs,
            "prediction": prediction.astype(int) if task == "classification" else prediction,
            "subset": subset,
        }
    )


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train and test one config; write results into ``run_dir``; return the test metrics."""
    task = "classification" if cfg.data.target is Target.success else "regression"
    precision = check_settings(cfg, task)
    device = resolve_device(cfg.trainer.device)
    precision = resolve_precision(precision, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("run directory: %s (config %s)", run_dir, fingerprint(cfg))

    trials, report = index_folder(prepare_data(cfg), cfg.data.target.value)
    for line in summary(trials, report, cfg.data.target.value):
        log.info("data check: %s", line)
    subsets = split_trials(trials, cfg.split, regression=task == "regression")
    split_table(subsets).to_csv(run_dir / "split.csv", index=False)
    log.info(
        "split=%s: %s",
        cfg.split.strategy.value,
        ", ".join(f"{k} {len(v)} trials" for k, v in subsets.items()),
    )

    seed_everything(cfg.trainer.seed)
    model = build_model(cfg.model, cfg.data.num_frames, cfg.trainer.dropout)
    image_size = model.config.image_size
    datasets = {
        name: ClipDataset(subsets[name], cfg.data, image_size, name == "train", cfg.trainer.seed)
        for name in subsets
    }
    loaders = {name: _loader(ds, cfg, shuffle=name == "train") for name, ds in datasets.items()}
    optimizer = build_optimizer(cfg.optimizer, model)
    steps = -(-len(loaders["train"]) // cfg.trainer.grad_accum_steps)
    mode = cfg.trainer.early_stopping.mode.value
    scheduler = build_scheduler(cfg.scheduler, optimizer, steps, cfg.trainer.epochs, mode)
    train_labels = np.array([t.label for t in subsets["train"]])
    scale = (
        (0.0, 1.0) if task == "classification" else (train_labels.mean(), train_labels.std() or 1.0)
    )
    checkpoint_dir = run_dir / cfg.trainer.checkpoint_dir
    engine = Engine(
        model,
        optimizer,
        scheduler,
        cfg.trainer,
        device,
        precision,
        task,
        scale,
        checkpoint_dir,
        semantic_config(cfg),
    )
    if cfg.trainer.resume and (state := checkpoint.find_resumable(checkpoint_dir, engine.config)):
        engine.load_state_dict(state)
        log.info("resuming from %s after epoch %d", checkpoint_dir, engine.epoch)

    engine.fit(loaders["train"], loaders["val"])
    pd.DataFrame(engine.history).to_csv(run_dir / "history.csv", index=False)

    engine.load_best()
    test = engine.predict(loaders["test"])
    metrics = task_metrics(task, test.labels, test.outputs)
    log_metrics("test_", metrics)
    reference = baselines(task, subsets["train"], subsets["test"])
    log.info(
        "test results (%d trials):\n%s", len(test.labels), results_table(task, metrics, reference)
    )
    tables = [
        _predictions_table(name, subsets[name], engine.predict(loaders[name]), task)
        for name in ("val",)
    ] + [_predictions_table("test", subsets["test"], test, task)]
    pd.concat(tables).to_csv(run_dir / "predictions.csv", index=False)
    result = {
        "task": task,
        "target": cfg.data.target.value,
        "test": metrics,
        "baselines": reference,
        "n_trials": {k: len(v) for k, v in subsets.items()},
        "best_epoch": int(np.argmax([r[engine.monitor] == engine.best for r in engine.history]))
        + 1,
        "config_fingerprint": fingerprint(cfg),
    }
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
