"""Optimizer and learning-rate scheduler from their config groups."""

from __future__ import annotations

import math
from typing import Optional

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from transformers import get_cosine_schedule_with_warmup


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``_target_`` in the optimizer group names the class; the rest are its arguments."""
    return instantiate(cfg, params=[p for p in model.parameters() if p.requires_grad])


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
