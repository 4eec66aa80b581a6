"""Optimizer and learning-rate scheduler from their config groups.

The optimizer gets one parameter group per model layer group (``socal.models``), split into
decayed and non-decayed parameters: layer-wise learning-rate decay, a separate head learning
rate and no weight decay on biases, norms, position embeddings and tokens (the fine-tuning
recipe of VideoMAE, BEiT and the other ViT-based encoders).
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any, Optional

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from transformers import get_cosine_schedule_with_warmup

from socal.models.spec import VideoModel

log = logging.getLogger(__name__)
# Keys of the optimizer group that socal applies itself (socal.config.OptimizerConfig).
GROUPING_KEYS = ("layer_decay", "head_lr_scale", "decay_biases_and_norms")
# Parameters (by name) that are never weight-decayed, beside every 1-D one (biases, norms).
NO_DECAY_NAMES = ("pos_embed", "position", "time_embed", "token", "cls_", "mask_")


def param_groups(cfg: DictConfig, model: VideoModel) -> list[dict[str, Any]]:
    """The trainable parameters of each layer group at its learning rate and weight decay."""
    names = {id(p): name for name, p in model.named_parameters()}
    layers = model.layer_groups()
    deepest = max(group.depth for group in layers)
    groups = []
    for layer in layers:
        scale = (
            cfg.head_lr_scale
            if layer.depth == deepest
            else cfg.layer_decay ** (deepest - layer.depth)
        )
        trainable = [p for p in layer.params if p.requires_grad]
        exempt = [
            p for p in trainable
            if not cfg.decay_biases_and_norms
            and (p.ndim <= 1 or any(n in names[id(p)] for n in NO_DECAY_NAMES))
        ]  # fmt: skip
        exempt_ids = {id(p) for p in exempt}
        decayed = [p for p in trainable if id(p) not in exempt_ids]
        for params, decay, suffix in ((decayed, cfg.weight_decay, ""), (exempt, 0.0, "/no_decay")):
            if params:
                groups.append(
                    {"params": params, "lr": cfg.lr * scale, "weight_decay": decay,
                     "name": layer.name + suffix, "lr_scale": scale}
                )  # fmt: skip
    return groups


def fused_arguments(optimizer_class: type, device: Optional[torch.device]) -> dict[str, bool]:
    """``fused=True`` for a CUDA ``device`` when the class has fused kernels (AdamW, Adam, SGD:
    one kernel for all parameters instead of several per tensor); nothing elsewhere."""
    if device is None or device.type != "cuda":
        return {}
    if "fused" not in inspect.signature(optimizer_class).parameters:
        return {}
    return {"fused": True}


def build_optimizer(
    cfg: DictConfig, model: VideoModel, device: Optional[torch.device] = None
) -> torch.optim.Optimizer:
    """``_target_`` in the optimizer group names the class; the rest are its arguments.

    ``device``: where the model trains (fused kernels on CUDA; null: the CPU).
    """
    groups = param_groups(cfg, model)
    arguments = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(arguments, dict)
    optimizer_class = get_class(arguments.pop("_target_"))
    for key in GROUPING_KEYS:
        arguments.pop(key)
    arguments |= fused_arguments(optimizer_class, device)
    optimizer = optimizer_class(groups, **arguments)
    for group in groups:
        count = sum(p.numel() for p in group["params"])
        log.info(
            "optimizer group %s: lr %.3g, weight decay %g, %d parameters",
            group["name"], group["lr"], group["weight_decay"], count,
        )  # fmt: skip
    return optimizer


def build_scheduler(
    cfg: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, mode: str
) -> Optional[LRScheduler | ReduceLROnPlateau]:
    """``cosine`` steps once per optimizer step, ``plateau`` once per epoch, ``none`` never."""
    if cfg.name == "cosine":
        warmup = math.ceil(cfg.warmup_epochs * steps_per_epoch)
        return get_cosine_schedule_with_warmup(optimizer, warmup, steps_per_epoch * epochs)
    if cfg.name == "plateau":
        return ReduceLROnPlateau(
            optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
        )
    return None


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's current ``optimizer.lr`` (each group runs at its own multiple of it)."""
    group = optimizer.param_groups[0]
    return float(group["lr"] / group.get("lr_scale", 1.0))
