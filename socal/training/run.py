"""One training run from a composed config: data -> split -> model -> fit -> test -> results."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from socal.config import Precision, Target, WindowConfig, check_set, fingerprint, semantic_config
from socal.console import interval_column, report_results
from socal.data.check import checked_tools, checked_trials
from socal.data.dataset import ClipDataset
from socal.data.index import Trial
from socal.data.sampling import EpochSampler
from socal.data.splits import split_table, split_trials
from socal.data.synthetic import data_root
from socal.data.tools import TOOLS_CSV, ToolFeatures, tool_features
from socal.errors import UserError
from socal.models import build_model
from socal.monitor import monitor_mode
from socal.report.metrics import parse_threshold
from socal.report.plots import run_plots
from socal.report.run_results import (
    BASELINE_PREFIX,
    baseline_thresholds,
    choose_threshold,
    format_results,
    published_results,
)
from socal.report.runs import record_evaluation
from socal.training import checkpoint, distributed, package, tracking
from socal.training.distributed import Dist
from socal.training.engine import Engine, Predictions
from socal.training.interrupt import StopSignal
from socal.training.metrics import (
    baseline_outputs,
    predictions_table,
    results_table,
    task_metrics,
)
from socal.training.optim import build_optimizer, build_scheduler
from socal.training.precision import resolve_precision
from socal.training.runtime import (
    installed_versions,
    resolve_device,
    seed_everything,
)
from socal.training.task import TASKS
from socal.training.weighting import positive_weight

log = logging.getLogger(__name__)


def task_of(cfg: DictConfig) -> str:
    return "classification" if cfg.data.target is Target.success else "regression"


def check_settings(cfg: DictConfig, task: str) -> None:
    """Config values a schema cannot express, checked before any data is touched."""
    check_set(
        cfg,
        "python train.py data.root=/path/to/SOCAL (or experiment=demo for the built-in synthetic "
        "demo)",
    )
    try:
        Precision(cfg.trainer.precision)
    except ValueError:
        choices = ", ".join(p.value for p in Precision)
        raise UserError(
            f"trainer.precision={cfg.trainer.precision} is not one of {choices}"
        ) from None
    if cfg.trainer.epochs < 1 or cfg.trainer.batch_size < 1 or cfg.trainer.grad_accum_steps < 1:
        raise UserError(
            "trainer.epochs, trainer.batch_size and trainer.grad_accum_steps must be >= 1"
        )
    monitor_mode(task, cfg.trainer.early_stopping.metric, cfg.trainer.early_stopping.mode)
    parse_threshold(cfg.eval.threshold)


def _loader(dataset: ClipDataset, cfg: DictConfig, shuffle: bool, dist: Dist) -> DataLoader:
    sampler = EpochSampler(len(dataset), shuffle, cfg.trainer.seed, dist.rank, dist.world_size)
    return DataLoader(
        dataset,
        batch_size=cfg.trainer.batch_size,
        sampler=sampler,
        generator=torch.Generator(),
        **ClipDataset.loader_settings(cfg.trainer, persistent=shuffle),
    )


def _predictions_table(
    subset: str,
    subsets: dict,
    result: Predictions,
    task: str,
    threshold: Optional[dict],
    window: Optional[WindowConfig],
    tools: Optional[ToolFeatures],
) -> pd.DataFrame:
    """predictions.csv rows of one subset; ``prediction`` at the chosen threshold."""
    chosen = [subsets[subset][i] for i in result.indices]
    value = threshold["value"] if threshold else None
    table = predictions_table(chosen, result.outputs, result.labels, task, value)
    apms = tools.apms if tools else None
    reference = baseline_outputs(task, subsets["train"], chosen, window, apms)
    return table.assign(
        subset=subset, **{BASELINE_PREFIX + name: out for name, out in reference.items()}
    )


def load_trials(cfg: DictConfig, run_dir: Path, dist: Dist) -> dict[str, list[Trial]]:
    """Index the folder (generating synthetic data once), check it, split it, save split.csv."""
    if dist.is_node_main:  # each node has its own disk (SageMaker: one instance per node)
        data_root(cfg.data, progress=cfg.trainer.progress and dist.is_main)
    distributed.barrier(dist)
    trials = checked_trials(Path(cfg.data.root).expanduser(), cfg.data.target.value)
    subsets = split_trials(trials, cfg.split, regression=task_of(cfg) == "regression")
    if dist.is_main:
        split_table(subsets).to_csv(run_dir / "split.csv", index=False)
    sizes = ", ".join(f"{name} {len(trials)} trials" for name, trials in subsets.items())
    log.info("split=%s: %s", cfg.split.strategy.value, sizes)
    window = cfg.data.window
    if window.length_s is not None:
        end = window.start_s + window.length_s
        padded = {name: sum(t.n_frames < end for t in subset) for name, subset in subsets.items()}
        if any(padded.values()):
            log.warning(
                "trials shorter than the %d s window are padded with their last frame (%s): "
                "on SOCAL short videos are successes, so a model can learn the padding",
                end, ", ".join(f"{name} {n}" for name, n in padded.items()),
            )  # fmt: skip
    return subsets


def load_tools(
    cfg: DictConfig, subsets: dict, run_dir: Path, dist: Dist
) -> tuple[Optional[ToolFeatures], bool]:
    """The tool features of the run's trials when the folder has ``socal.csv`` (written to
    ``tools.csv`` and ``apms.csv``), and whether they reach the model (``data.tools``)."""
    root = Path(cfg.data.root).expanduser()
    trials = [trial for subset in subsets.values() for trial in subset]
    classes = list(cfg.data.tool_classes)
    annotations = checked_tools(root, trials, classes)
    wanted = cfg.data.tools
    if annotations is None:
        if wanted:
            raise UserError(f"data.tools=true: {root} has no {TOOLS_CSV}")
        return None, False
    features = tool_features(annotations, trials, cfg.data.window, classes)
    model_input = bool(cfg.model.get("tools", False)) if wanted is None else bool(wanted)
    if dist.is_main:
        features.tracks.to_csv(run_dir / "tools.csv", index=False)
        features.apms.to_csv(run_dir / "apms.csv")
    log.info(
        "tool annotations used: the tool baseline (baseline_tools) on %d APMs; tool input to "
        "the model: %s", features.apms.shape[1], "yes" if model_input else "no",
    )  # fmt: skip
    return features, model_input


def build_engine(
    cfg: DictConfig,
    subsets: dict,
    run_dir: Path,
    dist: Dist,
    stop: StopSignal,
    device: torch.device,
    tools: Optional[ToolFeatures] = None,
) -> tuple[Engine, dict[str, DataLoader]]:
    """Model, data loaders, optimizer and scheduler; resumed from a checkpoint when one fits.
    ``tools``: the tool features the model takes with each clip (``data.tools``)."""
    task = task_of(cfg)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    precision = resolve_precision(Precision(cfg.trainer.precision), device)
    seed_everything(cfg.trainer.seed)
    classes = tools.classes if tools else ()
    model = build_model(cfg.model, cfg.data.num_frames, cfg.trainer.dropout, classes)
    if cfg.model.source and cfg.data.normalization != model.spec.normalization:
        log.warning(
            "data.normalization=%s, but %s's weights were trained with %s statistics",
            cfg.data.normalization.value, cfg.model.source, model.spec.normalization.value,
        )  # fmt: skip
    torch.manual_seed(cfg.trainer.seed + dist.rank)  # dropout differs per rank, init does not
    presence = tools.presence if tools else None
    datasets = {
        name: ClipDataset.of_run(
            subsets[name], cfg, model.spec.image_size, name == "train", presence
        )
        for name in subsets
    }
    loaders = {name: _loader(ds, cfg, name == "train", dist) for name, ds in datasets.items()}
    optimizer = build_optimizer(cfg.optimizer, model, device)
    steps = -(-len(loaders["train"]) // cfg.trainer.grad_accum_steps)
    stopping = cfg.trainer.early_stopping
    mode = monitor_mode(task, stopping.metric, stopping.mode).value
    scheduler = build_scheduler(cfg.scheduler, optimizer, steps, cfg.trainer.epochs, mode)
    labels = np.array([t.label for t in subsets["train"]])
    scale = TASKS[task].target_scale(labels)
    checkpoint_dir = run_dir / cfg.trainer.checkpoint_dir
    engine = Engine(
        model, optimizer, scheduler, cfg.trainer, device, precision, task, scale,
        checkpoint_dir, semantic_config(cfg), dist, stop,
        positive_weight(cfg.trainer, task, labels),
    )  # fmt: skip
    if not cfg.trainer.resume and dist.is_main:
        checkpoint.clear(checkpoint_dir)
    distributed.barrier(dist)
    if state := _resumable(cfg, checkpoint_dir, engine.config, dist):
        engine.load_state_dict(state)
        log.info(
            "resuming from %s: %d epochs and %d steps of epoch %d done",
            checkpoint_dir, engine.epoch, engine.batches_done, engine.epoch + 1,
        )  # fmt: skip
    return engine, loaders


def _resumable(cfg: DictConfig, directory: Path, config: dict, dist: Dist) -> Optional[dict]:
    """Rank 0's newest usable checkpoint, on every rank (other nodes have other disks)."""
    state, error = None, None
    if cfg.trainer.resume and dist.is_main:
        try:
            state = checkpoint.find_resumable(directory, config)
        except UserError as err:  # raised on every rank, not only where it was found
            error = str(err)
    state, error = distributed.broadcast((state, error), dist)
    if error:
        raise UserError(error)
    return state


def evaluate(
    cfg: DictConfig,
    engine: Engine,
    subsets: dict,
    loaders: dict,
    run_dir: Path,
    tools: Optional[ToolFeatures] = None,
) -> dict:
    """Test the best checkpoint once; write predictions.csv and metrics.json (rank 0).
    ``tools``: the run's tool features (the tool baseline), when the folder has them."""
    engine.load_best()
    test = engine.predict(loaders["test"])
    val = engine.predict(loaders["val"])
    window = cfg.data.window
    task = engine.task.name
    threshold = choose_threshold(task, cfg.eval, val.labels, val.outputs)
    tables = [
        _predictions_table(name, subsets, predictions, task, threshold, window, tools)
        for name, predictions in (("val", val), ("test", test))
    ]
    value = threshold["value"] if threshold else None
    cuts = baseline_thresholds(task, cfg.eval, tables[0])
    published = published_results(task, tables[1], value, cfg.eval, cuts)
    metrics = published.pop("test")
    reference = published.pop("baselines")
    result = {
        "task": task,
        "target": cfg.data.target.value,
        "test": metrics,
        # The best epoch's validation metrics (the weights tested); for choosing, never test.
        "val": {"loss": val.loss, **task_metrics(task, val.labels, val.outputs)},
        "baselines": reference,  # each at its own validation-chosen threshold
        "baseline_thresholds": cuts,
        "n_trials": {name: len(trials) for name, trials in subsets.items()},
        "epochs_trained": engine.epoch,
        "best_val": {engine.monitor: engine.best},
        "config_fingerprint": fingerprint(cfg),
        "versions": installed_versions(),  # socal/requirements/instance.txt pins them on SageMaker
        "threshold": threshold,
        "tools": {
            "annotations": tools is not None,
            "classes": list(tools.classes) if tools else [],
            "model_input": list(engine.module.tool_classes),
        },
        **published,
    }
    if engine.dist.is_main:
        report_results("test_", metrics)
        # Last metric line: the objective a sweeper or a SageMaker tuning job reads (never test).
        # NaN when no epoch had a value (see socal.monitor.NAN_RULE), never a missing line.
        report_results("best_", {engine.monitor: math.nan if engine.best is None else engine.best})
        table = results_table(task, metrics, reference, window, interval_column(result))
        log.info("test results (%d trials):\n%s", len(test.labels), table)
        log.info("test results with intervals:\n%s", format_results(result))
        pd.concat(tables).to_csv(run_dir / "predictions.csv", index=False)
        (run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        settings = OmegaConf.to_container(cfg.eval, resolve=True)
        record_evaluation(run_dir, settings, threshold, metrics)
        if cfg.eval.plots:
            run_plots(run_dir)
    return result


def run(cfg: DictConfig, run_dir: Path) -> Optional[dict]:
    """Train and test one config into ``run_dir``; None when a signal stopped it (resumable)."""
    check_settings(cfg, task_of(cfg))
    device = resolve_device(cfg.trainer.device)
    dist = distributed.init(device)
    if not dist.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    run_dir = Path(distributed.broadcast(str(run_dir), dist))
    stop = StopSignal().install()
    tracker = tracking.Tracker()
    try:
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        log.info("run directory: %s (config %s)", run_dir, fingerprint(cfg))
        subsets = load_trials(cfg, run_dir, dist)
        tools, tool_input = load_tools(cfg, subsets, run_dir, dist)
        engine, loaders = build_engine(
            cfg, subsets, run_dir, dist, stop, device, tools if tool_input else None
        )
        tracker = tracking.start(cfg, run_dir, engine)  # tracking=mlflow: rank 0, resumable
        engine.fit(loaders["train"], loaders["val"])
        if engine.interrupted:
            log.warning(
                "stopped by %s after epoch %d step %d; checkpoint saved in %s: run the same "
                "command (same hydra.run.dir or trainer.checkpoint_dir) to resume",
                stop.received, engine.epoch, engine.batches_done, engine.checkpoint_dir,
            )  # fmt: skip
            return None
        if dist.is_main:
            pd.DataFrame(engine.history).to_csv(run_dir / "history.csv", index=False)
        result = evaluate(cfg, engine, subsets, loaders, run_dir, tools)
        if dist.is_main:  # the best weights and what predicting needs: python predict.py run=...
            package.save(
                engine.evaluated, cfg, result, engine.target_scale, run_dir / package.MODEL_DIR
            )
        tracker.finish(result, run_dir, subsets["test"][0])
        if dist.is_main:
            checkpoint.mark_finished(engine.checkpoint_dir, result["config_fingerprint"])
        return result
    finally:
        tracker.close()
        distributed.shutdown(dist)
