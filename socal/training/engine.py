"""The training loop: train, validate, early-stop, checkpoint, and stop cleanly on a signal.

Everything that decides what happens next (weights, optimizer, scheduler, scaler, counters,
position inside the epoch, RNG of every rank) is in the checkpoint, and the order of the data
is a function of (seed, epoch), so a resumed run ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from socal.config import Mode, Precision
from socal.console import report_epoch
from socal.data.transforms import finish_clips
from socal.errors import UserError
from socal.monitor import NAN_RULE, monitor_mode
from socal.training import checkpoint
from socal.training.distributed import (
    Dist,
    all_gather,
    any_rank,
    barrier,
    broadcast,
    broadcast_module,
)
from socal.training.interrupt import StopSignal
from socal.training.metrics import task_metrics
from socal.training.optim import base_lr
from socal.training.runtime import autocast, compile_model, rng_state, set_rng_state, use_tf32
from socal.training.task import TASKS

log = logging.getLogger(__name__)
# Batch losses stay on the device and are read on the host (one wait for the device) this
# often, at an epoch's end and before a checkpoint: the divergence check and the progress bar
# follow, without a synchronisation per batch.
LOSS_READ_EVERY = 16


@dataclass
class Predictions:
    """Per-trial outputs of one pass: probabilities (classification) or values (regression)."""

    indices: np.ndarray
    labels: np.ndarray
    outputs: np.ndarray
    loss: float


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
        dist: Optional[Dist] = None,
        stop: Optional[StopSignal] = None,
        pos_weight: Optional[float] = None,
    ) -> None:
        dist = dist or Dist()
        use_tf32(device)
        self.model = model.to(device)
        self.module = model  # unwrapped, for state dicts (never a compiled or DDP wrapper's keys)
        if dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if trainer.compile and optimizer is not None:  # a Predictor's engine runs the plain one
            self.model = compile_model(self.model)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.trainer = trainer
        self.device = device
        self.precision = precision
        self.task = TASKS[task]
        self.target_scale = target_scale
        self.checkpoint_dir = checkpoint_dir
        self.config = config
        self.dist = dist
        self.stop = stop if stop is not None else StopSignal()
        self.save_clock = checkpoint.SaveClock(trainer.checkpoint_every_minutes)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision is Precision.fp16_mixed)
        self.monitor = trainer.early_stopping.metric
        mode = monitor_mode(task, self.monitor, trainer.early_stopping.mode)
        self.maximize = mode is Mode.max
        self.pos_weight = None if pos_weight is None else torch.tensor(pos_weight, device=device)
        self.epoch = 0
        self.step = 0
        self.batches_done = 0  # inside the current epoch
        self.loss_sum, self.loss_count = 0.0, 0
        self.loss_read_every = LOSS_READ_EVERY
        self._unread: list[tuple[torch.Tensor, int]] = []  # (mean loss on the device, samples)
        self.group_samples = 0  # since the last optimizer step (steps and saves coincide)
        self.best: Optional[float] = None
        self.bad_epochs = 0
        self.stopped = False
        self.interrupted = False
        self.history: list[dict] = []
        self.tracking_run_id: Optional[str] = None  # checkpointed: a resumed run continues it
        self.epoch_hooks: list[Callable[[dict], None]] = []  # called with each history row
        # trainer.ema: the average's copy of the model is what is validated, tested, packaged
        # (a Predictor's engine has no optimizer: its weights already are the average).
        self.ema: Optional[AveragedModel] = None
        if trainer.ema is not None and optimizer is not None:
            if not 0 < trainer.ema < 1:
                raise UserError(f"trainer.ema={trainer.ema}: a decay in (0, 1), e.g. 0.999")
            self.ema = AveragedModel(
                self.module, multi_avg_fn=get_ema_multi_avg_fn(trainer.ema), use_buffers=True
            )

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights a run validates, keeps as best, tests and packages (the EMA's when on)."""
        return self.module if self.ema is None else self.ema.module

    # -- checkpointed state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        self._read_losses()  # a diverged run raises before it writes a checkpoint
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "precision": self.precision.value,
            "epoch": self.epoch,
            "step": self.step,
            "batches_done": self.batches_done,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
            "history": self.history,
            # What differs between ranks: their RNGs and their share of the epoch's loss.
            "ranks": all_gather(
                {"rng": rng_state(), "loss_sum": self.loss_sum, "loss_count": self.loss_count},
                self.dist,
            ),
            "config": self.config,
            "tracking_run_id": self.tracking_run_id,
        }

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        self._load_scaler(state)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        ranks = state["ranks"]
        if len(ranks) != self.dist.world_size:
            raise UserError(
                f"{self.checkpoint_dir} was written by {len(ranks)} training process(es), this "
                f"run has {self.dist.world_size}: the batch per step and the data shards differ; "
                "resume with the same count, or trainer.resume=false to start fresh"
            )
        for key in ("epoch", "step", "batches_done", "best"):
            setattr(self, key, state[key])
        mine = ranks[self.dist.rank]
        self.loss_sum, self.loss_count = mine["loss_sum"], mine["loss_count"]
        self.bad_epochs, self.stopped = state["bad_epochs"], state["stopped"]
        self.history = state["history"]
        self.tracking_run_id = state.get("tracking_run_id")
        set_rng_state(mine["rng"])

    def _load_scaler(self, state: dict) -> None:
        """The grad scaler's state, unless the checkpoint ran at another precision: the same
        ``trainer.precision`` resolves differently on another GPU (bf16 on an A10G, fp16 on a
        T4), and a scaler's state means nothing to another precision."""
        saved = state.get("precision", self.precision.value)
        if saved == self.precision.value:
            self.scaler.load_state_dict(state["scaler"])
        else:
            log.warning(
                "the checkpoint was trained at precision %s, this device runs %s: continuing "
                "with a fresh gradient scaler", saved, self.precision.value,
            )  # fmt: skip

    def save(self) -> None:
        state = self.state_dict()  # every rank takes part in gathering the RNG states
        if self.dist.is_main:
            path = checkpoint.save_step(state, self.checkpoint_dir, self.step)
            # Said when it is news (inside an epoch: by the clock, a step count or a stop); an
            # epoch's own save would break the one-line-per-epoch console.
            log.log(
                logging.INFO if self.batches_done else logging.DEBUG,
                "checkpoint %s: %d epochs + %d batches done",
                path.name,
                self.epoch,
                self.batches_done,
            )
        barrier(self.dist)
        self.save_clock.reset()

    # -- one pass ----------------------------------------------------------------------------
    def _loss(self, out: torch.Tensor, labels: torch.Tensor, weighted: bool = True) -> torch.Tensor:
        """Per-sample loss (a mean is taken by the caller). ``weighted=False`` leaves out
        ``pos_weight``: validation losses of runs with different class weights stay comparable."""
        pos_weight = self.pos_weight if weighted else None
        return self.task.loss(out, labels, self.target_scale, pos_weight)

    def _outputs(self, out: torch.Tensor) -> torch.Tensor:
        return self.task.outputs(out, self.target_scale)

    def _forward(self, batch: dict, model: Optional[torch.nn.Module] = None) -> torch.Tensor:
        pixels = batch["pixel_values"].to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:  # ClipDataset's clips: augment + normalise on the device
            pixels = finish_clips(pixels, batch["augment"])
        inputs = [pixels]
        if "tools" in batch:  # data.tools: (B, T, classes) presence per clip second
            inputs.append(batch["tools"].to(self.device, non_blocking=True))
        with autocast(self.precision, self.device):
            return (self.model if model is None else model)(*inputs)  # (B,) raw outputs

    def _stop_and_save_agreed(self) -> tuple[bool, bool]:
        """Whether any rank got a stop signal, and whether rank 0's save clock is due.

        All ranks must stop, and save, at the same step: one small all-reduce per step.
        """
        due = self.dist.is_main and self.save_clock.due()
        stop, clock_due = any_rank([bool(self.stop), due], self.dist, self.device)
        return stop, clock_due

    def _read_losses(self, bar: Optional[tqdm] = None) -> None:
        """The batch losses kept on the device, added on the host in batch order (the same
        sums whenever they are read); a non-finite one stops the run with its batch."""
        if not self._unread:
            return
        values = torch.stack([loss for loss, _ in self._unread]).tolist()  # one device wait
        first = self.batches_done - len(values) + 1
        for i, (value, (_, count)) in enumerate(zip(values, self._unread, strict=True)):
            if not math.isfinite(value):
                raise UserError(
                    f"training diverged: the loss is {value} at epoch {self.epoch + 1} step "
                    f"{first + i}; lower optimizer.lr or set trainer.grad_clip"
                )
            self.loss_sum += value * count
            self.loss_count += count
        self._unread = []
        if bar is not None:
            bar.set_postfix(loss=f"{self.loss_sum / self.loss_count:.4f}", refresh=False)

    def train_epoch(self, loader: DataLoader) -> Optional[float]:
        """Train from the current position to the end of the epoch; None if stopped by a signal."""
        self.model.train()
        accum = self.trainer.grad_accum_steps
        total_batches = self.batches_done + len(loader)
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.trainer.epochs}",
            initial=self.batches_done,
            total=total_batches,
            disable=not (self.trainer.progress and self.dist.is_main),
            mininterval=1.0,
            dynamic_ncols=True,
            leave=False,  # the epoch's summary line takes its place
        )
        for batch in bar:
            labels = batch["label"].to(self.device, dtype=torch.float32)
            losses = self._loss(self._forward(batch), labels)
            self._unread.append((losses.detach().mean(), len(labels)))
            self.scaler.scale(losses.sum() / self._full_group).backward()
            self.group_samples += len(labels)
            self.batches_done += 1
            if self.batches_done % self.loss_read_every == 0:
                self._read_losses(bar)
            if self.batches_done % accum and self.batches_done != total_batches:
                continue
            self._optimizer_step()
            every = self.trainer.checkpoint_every_steps
            stop, clock_due = self._stop_and_save_agreed()
            if stop:
                bar.close()
                return None
            due = clock_due or (every and self.step % every == 0)
            if due and self.batches_done != total_batches:
                self.save()
        self._read_losses()
        sums = all_gather((self.loss_sum, self.loss_count), self.dist)
        return sum(s for s, _ in sums) / max(sum(c for _, c in sums), 1)

    @property
    def _full_group(self) -> int:
        return self.trainer.batch_size * self.trainer.grad_accum_steps

    def _optimizer_step(self) -> None:
        """One step on the mean gradient of the samples since the last one.

        Losses are summed and divided by a full group's size, so a short last batch or group
        (fewer samples) is rescaled here to the mean over the samples it really has, as one
        big batch of them would give.
        """
        if self.group_samples != self._full_group:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self._full_group / self.group_samples)
        self.group_samples = 0
        if self.trainer.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.trainer.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.ema is not None:
            self.ema.update_parameters(self.module)
        if self.scheduler is not None and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()

    @torch.inference_mode()
    def predict(self, loader: DataLoader) -> Predictions:
        """Outputs for every trial of the subset, gathered from all ranks, each trial once.

        A trial's output is the mean of its views' (``eval.clips``, ``eval.flip``); the loss is
        the mean of the views' own losses, so one view per trial gives exactly its loss.
        """
        # The EMA's copy, or the (possibly DDP-wrapped) model that trains.
        model = self.evaluated if self.ema is not None else self.model
        model.eval()
        parts = []
        for batch in loader:
            labels = batch["label"].to(self.device, dtype=torch.float32)
            out = self._forward(batch, model)
            parts.append(
                (
                    batch.get("sample", batch["index"]).numpy(),  # one view: the trial's
                    batch["index"].numpy(),
                    labels.cpu().numpy(),
                    self._outputs(out).cpu().numpy(),
                    self._loss(out, labels, weighted=False).cpu().numpy(),
                )
            )
        gathered = [p for rank_parts in all_gather(parts, self.dist) for p in rank_parts]
        samples, indices, labels, outputs, losses = (
            np.concatenate(c) for c in zip(*gathered, strict=True)
        )
        _, once = np.unique(samples, return_index=True)  # drop the sampler's padding repeats
        trials, first, views = np.unique(indices[once], return_index=True, return_inverse=True)
        mean = np.bincount(views, weights=outputs[once]) / np.bincount(views)
        return Predictions(
            trials, labels[once][first], mean.astype(outputs.dtype), float(losses[once].mean())
        )

    # -- the loop ----------------------------------------------------------------------------
    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.maximize else value < self.best

    def fit(self, train: DataLoader, val: DataLoader) -> None:
        """Train until ``trainer.epochs``, early stopping or a stop signal, checkpointing.

        Sets ``self.interrupted`` when a signal stopped it (a checkpoint has then been written).
        """
        while self.epoch < self.trainer.epochs and not self.stopped:
            train.sampler.set_epoch(self.epoch, start=self.batches_done * train.batch_size)
            train.dataset.set_epoch(self.epoch)
            train_loss = self.train_epoch(train)
            if train_loss is None:
                self.save()
                self.interrupted = True
                return
            self._end_epoch(train_loss, self.predict(val))
            self.save()

    def _end_epoch(self, train_loss: float, val: Predictions) -> None:
        metrics = {"loss": val.loss, **task_metrics(self.task.name, val.labels, val.outputs)}
        row = {
            "epoch": self.epoch + 1,
            "train_loss": train_loss,
            **{f"val_{k}": v for k, v in metrics.items() if not isinstance(v, list)},
            "lr": base_lr(self.optimizer),
        }
        value = row[self.monitor]
        if math.isnan(value):
            log.warning(
                "%s is NaN at epoch %d (e.g. AUROC on a validation set with one class): %s",
                self.monitor, row["epoch"], NAN_RULE,
            )  # fmt: skip
        improved = self._improved(value)
        if improved:
            self.best, self.bad_epochs = value, 0
            if self.dist.is_main:
                checkpoint.atomic_save(
                    self.evaluated.state_dict(), self.checkpoint_dir / checkpoint.BEST
                )
        else:
            self.bad_epochs += 1
        # With the objective so far (best_<monitor>=): SageMaker tuning's early stopping reads it.
        report_epoch(row, self.trainer.epochs, improved, self.monitor, self.best)
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(value)
        self.epoch += 1
        self.batches_done, self.loss_sum, self.loss_count = 0, 0.0, 0
        self.history.append(row)
        for hook in self.epoch_hooks:
            hook(row)
        if self.bad_epochs >= self.trainer.early_stopping.patience:
            self.stopped = True
            log.info(
                "early stopping: %s has not improved for %d epochs (best %s)",
                self.monitor, self.bad_epochs, "none" if self.best is None else f"{self.best:.4f}",
            )  # fmt: skip

    def load_best(self) -> None:
        """The best epoch's weights on every rank; the last ones if no epoch ever improved.

        Only rank 0 has ``best.pt`` (on another node it is not even on the same disk): it loads
        the file and broadcasts the weights.
        """
        barrier(self.dist)
        best = self.checkpoint_dir / checkpoint.BEST
        found = broadcast(best.exists() if self.dist.is_main else None, self.dist)
        if not found:
            log.warning("%s never improved (no best.pt): testing the last weights", self.monitor)
            return
        if self.dist.is_main:
            self.evaluated.load_state_dict(checkpoint.load(best))
        broadcast_module(self.evaluated, self.dist)
