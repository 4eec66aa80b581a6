"""Explain trials with a model package: what ``explain.py`` and ``eval.explain=true`` run.

Each trial is explained through the run's own evaluation views (``eval.clips``, ``eval.flip``):
the attribution of a second is the mean over the views of its change of their output, which is
the change of the trial's prediction (their mean) when that second is replaced in every view.
Writes into ``explanations/``: ``temporal.csv`` (trial, second, attribution), ``trials.csv``
(label, output, prediction, the gradient method, the trial's length and the window), one
``<trial>.npz`` with the centre view's frames and maps, one ``<trial>.png`` and ``summary.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from socal.config import ExplainSettings, OcclusionBaseline, check_set
from socal.data.dataset import ClipDataset
from socal.data.index import Trial, index_folder
from socal.data.transforms import finish_clips
from socal.errors import UserError
from socal.explain.attribution import Output, gradient_map, spatial_occlusion, temporal
from socal.report.explain_plots import summary_figure, trial_figure
from socal.serving.sources import fetch
from socal.training.package import Predictor
from socal.training.runtime import autocast

log = logging.getLogger(__name__)
FOLDER = "explanations"  # inside a run folder


def output_function(
    predictor: Predictor, evidence: float = 0.0, tools: Optional[torch.Tensor] = None
) -> Output:
    """Normalised clips -> the model's output in the task's units (probability or mL); with
    ``evidence`` (+1 or -1), the raw output times it instead: the logit of the predicted
    class, which gradients explain without the sigmoid's saturation. ``tools``: the view's
    (T, classes) tool presence, held fixed (a model with tool input; the frames are explained)."""
    engine = predictor.engine
    model = engine.module.eval()
    held = None if tools is None else tools.to(engine.device)[None]

    def output(clips: torch.Tensor) -> torch.Tensor:
        inputs = [clips] if held is None else [clips, held.expand(len(clips), -1, -1)]
        with autocast(engine.precision, engine.device):
            raw = model(*inputs)
        return raw.float() * evidence if evidence else engine.task.outputs(raw, engine.target_scale)

    return output


def _normalised(sample: dict, device: torch.device) -> torch.Tensor:
    augment = {key: value[None] for key, value in sample["augment"].items()}
    return finish_clips(sample["pixel_values"][None].to(device), augment)


def explain_trial(
    predictor: Predictor, dataset: ClipDataset, index: int, settings: Any
) -> dict[str, Any]:
    """One trial's attributions: per second over all views, maps of its top seconds."""
    device = predictor.engine.device
    per_view = len(dataset.views)
    samples = [dataset[index * per_view + view] for view in range(per_view)]
    clips = [_normalised(sample, device) for sample in samples]
    of_view = [output_function(predictor, tools=sample.get("tools")) for sample in samples]
    baseline = OcclusionBaseline(settings.baseline)
    with torch.no_grad():
        outputs = [float(output(clip)[0]) for output, clip in zip(of_view, clips, strict=True)]
    views = [
        temporal(output, clip, sample["positions"].numpy(), baseline, settings.batch)
        for output, clip, sample in zip(of_view, clips, samples, strict=True)
    ]
    seconds = sorted(set().union(*views))
    attribution = np.array([np.mean([view.get(s, 0.0) for view in views]) for s in seconds])
    centre = (dataset.clips // 2) * (per_view // dataset.clips)  # the middle offset, unflipped
    positions = samples[centre]["positions"].numpy()
    ranked = [seconds[i] for i in np.argsort(-np.abs(attribution), kind="stable")]
    top = [s for s in ranked if s in positions][: settings.top_seconds]
    model: Any = predictor.engine.module
    layer = model.family.gradcam_layer(model.net)
    predicted_failure = (
        predictor.task == "classification" and np.mean(outputs) < predictor.threshold
    )
    tools = samples[centre].get("tools")
    evidence = output_function(predictor, -1.0 if predicted_failure else 1.0, tools)
    occlusion, gradient, method = [], [], ""
    for second in top:
        frames = [int(f) for f in np.flatnonzero(positions == second)]
        clip = clips[centre]
        occlusion.append(
            spatial_occlusion(of_view[centre], clip, frames, settings.patches, settings.batch)
        )
        if settings.gradient:
            method, grad = gradient_map(
                evidence, clip.clone().requires_grad_(), frames[0], layer, settings.ig_steps,
                settings.batch,
            )  # fmt: skip
            gradient.append(grad)
    return {
        "output": float(np.mean(outputs)),
        "seconds": np.array(seconds),
        "attribution": attribution,
        "frames": samples[centre]["pixel_values"].numpy(),
        "positions": positions,
        "top": np.array(top, dtype=np.int64),
        "occlusion": np.array(occlusion, dtype=np.float32),
        "gradient": np.array(gradient, dtype=np.float32),
        "method": method,
    }


def explain(
    predictor: Predictor,
    trials: list[Trial],
    root: Path,
    out_dir: Path,
    settings: Any = None,
    cache: str = "off",
    progress: bool = True,
) -> pd.DataFrame:
    """Explain ``trials`` (frames under ``root``) into ``out_dir``; the trials table."""
    settings = settings if settings is not None else OmegaConf.structured(ExplainSettings)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"root": str(root), "cache": cache, "cache_dir": None}
    config = cast(DictConfig, OmegaConf.merge(predictor.config, {"data": data}))
    model: Any = predictor.engine.module
    presence = predictor.tool_presence(trials, root)
    dataset = ClipDataset.of_run(trials, config, model.spec.image_size, False, presence)
    classification = predictor.task == "classification"
    column = "probability" if classification else "predicted"
    rows, table = [], []
    span = predictor.config.data.window
    window = (
        "whole trial"
        if span.length_s is None
        else f"{span.start_s}-{span.start_s + span.length_s} s"
    )
    for index, trial in enumerate(tqdm(trials, desc="explaining", disable=not progress)):
        result = explain_trial(predictor, dataset, index, settings)
        np.savez_compressed(out_dir / f"{trial.trial_id}.npz", **result)
        rows += [
            {"trial": trial.trial_id, "second": int(s), "attribution": float(a)}
            for s, a in zip(result["seconds"], result["attribution"], strict=True)
        ]
        info = {
            "trial": trial.trial_id,
            "participant": trial.participant,
            "label": trial.label,
            column: result["output"],
            "prediction": int(result["output"] >= predictor.threshold)
            if classification
            else result["output"],
            "gradient": result["method"],
            "n_frames": trial.n_frames,
            "window": window,
        }
        table.append(info)
        trial_figure(out_dir / f"{trial.trial_id}.npz", info, out_dir / f"{trial.trial_id}.png")
    temporal_table, trials_table = pd.DataFrame(rows), pd.DataFrame(table)
    temporal_table.to_csv(out_dir / "temporal.csv", index=False)
    trials_table.to_csv(out_dir / "trials.csv", index=False)
    summary_figure(temporal_table, trials_table, out_dir / "summary.png")
    log.info("explanations of %d trials: %s", len(trials), out_dir / "summary.png")
    return trials_table


def chosen(trials: list[Trial], ids: Any) -> list[Trial]:
    """The trials named by ``explain.trials`` (all when null); an unknown id is one line."""
    if ids is None:
        return trials
    by_id = {t.trial_id: t for t in trials}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UserError(f"explain.trials: no trial with frames named {', '.join(unknown)}")
    return [by_id[i] for i in ids]


def explain_folder(cfg: DictConfig, out_dir: Path) -> pd.DataFrame:
    """``explain.py``: the trials under ``cfg.data.root`` with the model at ``cfg.run``."""
    check_set(cfg, "python explain.py run=outputs/DATE/TIME data.root=/path/to/SOCAL")
    predictor = Predictor.load(fetch(cfg.run, out_dir / "downloaded"), cfg.device.value)
    root = Path(cfg.data.root).expanduser()
    trials, report = index_folder(root, predictor.config.data.target.value, labelled_only=False)
    for line in report.lines():
        log.warning("data check: %s", line)
    selected = chosen(trials, cfg.explain.trials)
    return explain(predictor, selected, root, out_dir, cfg.explain, cfg.data.cache.value)


def explain_run(run_dir: Path, cfg: DictConfig) -> pd.DataFrame:
    """``eval.explain=true``: the run's test trials, into ``<run>/explanations``."""
    predictor = Predictor.load(run_dir, cfg.trainer.device.value)
    root = Path(cfg.data.root).expanduser()
    trials, _ = index_folder(root, cfg.data.target.value)
    split = pd.read_csv(run_dir / "split.csv")
    test = split.loc[split["subset"] == "test", "trial"].tolist()
    progress = bool(cfg.trainer.progress)
    return explain(predictor, chosen(trials, test), root, run_dir / FOLDER, progress=progress)
