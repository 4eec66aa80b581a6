"""The training loop: train an epoch, validate, early-stop, checkpoint; predict a subset."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm import tqdm

from socal import checkpoint
from socal.config import Precision
from socal.metrics import task_metrics
from socal.runtime import autocast

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Per-trial outputs of one pass: probabilities (classification) or values (regression)."""

    indices: np.ndarray
    labels: np.ndarray
    outputs: np.ndarray
    loss: float


def log_metrics(prefix: str, metrics: dict) -> None:
    """One ``name=value`` line per metric: SageMaker metric definitions scrape these."""
    for name, value in metrics.items():
        if not isinstance(value, list):
            log.info("%s%s=%.6g", prefix, name, value)


class Engine:
    """Owns model, optimizer and scheduler for one run, and their checkpointed state."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Optional[object],
        trainer: DictConfig,
        device: torch.device,
        precision: Precision,
        task: str,
        target_scale: tuple[float, float],
        checkpoint_dir: Path,
        config: dict,
    ) -> None:
        self.model = model.to(device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.trainer = trainer
        self.device = device
        self.precision = precision
        self.task = task
        self.target_mean, self.target_std = target_scale
        self.checkpoint_dir = checkpoint_dir
        self.config = config
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision is Precision.fp16_mixed)
        self.monitor = trainer.early_stopping.metric
        self.maximize = trainer.early_stopping.mode.value == "max"
        self.epoch = 0
        self.best: Optional[float] = None
        self.bad_epochs = 0
        self.stopped = False
        self.history: list[dict] = []

    # -- checkpointed state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
            "history": self.history,
            "rng": torch.get_rng_state(),
            "config": self.config,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best = state["epoch"], state["best"]
        self.bad_epochs, self.stopped = state["bad_epochs"], state["stopped"]
        self.history = state["history"]
        torch.set_rng_state(state["rng"])

    # -- one pass ----------------------------------------------------------------------------
    def _loss(self, out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = out.squeeze(-1).float()
        if self.task == "classification":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, labels)
        return torch.nn.functional.mse_loss(out, (labels - self.target_mean) / self.target_std)

    def _outputs(self, out: torch.Tensor) -> torch.Tensor:
        out = out.squeeze(-1).float()
        if self.task == "classification":
            return torch.sigmoid(out)
        return out * self.target_std + self.target_mean

    def _forward(self, batch: dict) -> torch.Tensor:
        pixels = batch["pixel_values"].to(self.device, non_blocking=True)
        with autocast(self.precision, self.device):
            return self.model(pixel_values=pixels).logits

    def train_epoch(self, loader: DataLoader) -> float:
        self.model.train()
        accum = self.trainer.grad_accum_steps
        total, count = 0.0, 0
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.trainer.epochs}",
            disable=not self.trainer.progress,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        for step, batch in enumerate(bar):
            labels = batch["label"].to(self.device, dtype=torch.float32)
            loss = self._loss(self._forward(batch), labels)
            self.scaler.scale(loss / accum).backward()
            if (step + 1) % accum == 0 or step + 1 == len(loader):
                self._optimizer_step()
            total += loss.item() * len(labels)
            count += len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    def _optimizer_step(self) -> None:
        if self.trainer.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.trainer.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()

    @torch.inference_mode()
    def predict(self, loader: DataLoader) -> Predictions:
        self.model.eval()
        indices, labels, outputs, total = [], [], [], 0.0
        for batch in loader:
            label = batch["label"].to(self.device, dtype=torch.float32)
            out = self._forward(batch)
            total += self._loss(out, label).item() * len(label)
            indices.append(batch["index"].numpy())
            labels.append(label.cpu().numpy())
            outputs.append(self._outputs(out).cpu().numpy())
        labels_all = np.concatenate(labels)
        return Predictions(
            np.concatenate(indices), labels_all, np.concatenate(outputs), total / len(labels_all)
        )

    # -- the loop ----------------------------------------------------------------------------
    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.maximize else value < self.best

    def fit(self, train: DataLoader, val: DataLoader) -> None:
        """Train until ``trainer.epochs`` or early stopping, saving ``best.pt`` and ``last.pt``."""
        while self.epoch < self.trainer.epochs and not self.stopped:
            train.dataset.set_epoch(self.epoch)
            train.generator.manual_seed(self.trainer.seed * 100_003 + self.epoch)
            train_loss = self.train_epoch(train)
            result = self.predict(val)
            metrics = {
                "loss": result.loss,
                **task_metrics(self.task, result.labels, result.outputs),
            }
            row = {
                "epoch": self.epoch + 1,
                "train_loss": train_loss,
                **{f"val_{k}": v for k, v in metrics.items() if not isinstance(v, list)},
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            log.info("epoch=%d", row["epoch"])
            log_metrics("", {k: v for k, v in row.items() if k != "epoch"})
            value = row[self.monitor]
            if self._improved(value):
                self.best, self.bad_epochs = value, 0
                checkpoint.atomic_save(
                    self.model.state_dict(), self.checkpoint_dir / checkpoint.BEST
                )
            else:
                self.bad_epochs += 1
            if isinstance(self.scheduler, ReduceLROnPlateau):
                self.scheduler.step(value)
            self.epoch += 1
            self.history.append(row)
            if self.bad_epochs >= self.trainer.early_stopping.patience:
                self.stopped = True
                log.info(
                    "early stopping: %s has not improved for %d epochs (best %.4f)",
                    self.monitor,
                    self.bad_epochs,
                    self.best,
                )
            checkpoint.save_last(self.state_dict(), self.checkpoint_dir)

    def load_best(self) -> None:
        self.model.load_state_dict(checkpoint.load(self.checkpoint_dir / checkpoint.BEST))
