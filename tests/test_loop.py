"""The training loop's arithmetic and decisions, on a model small enough to check by hand:
gradient accumulation, class weights, the monitor's direction, NaN epochs, early stopping,
the plateau scheduler, bf16 autocast on the CPU, and resuming at another precision."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from socal.config import EarlyStoppingConfig, Mode, Precision, TrainerConfig
from socal.data.sampling import EpochSampler
from socal.errors import UserError
from socal.monitor import NAN_RULE, monitor_mode
from socal.training.engine import Engine, Predictions
from socal.training.optim import build_scheduler
from socal.training.weighting import positive_weight

FEATURES = 6


class Linear(torch.nn.Module):
    """Stands in for a VideoModel: the engine only needs ``model(clips) -> (B,)`` outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(FEATURES, 1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(clips.flatten(1)).squeeze(-1)


def samples(n: int) -> list[dict]:
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(n, FEATURES)), dtype=torch.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    y[:2] = (0, 1)
    return [{"pixel_values": x[i], "label": float(y[i]), "index": i} for i in range(n)]


def loader(data: list[dict], batch_size: int) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, sampler=EpochSampler(len(data), False, 0))


def engine(
    tmp_path: Path,
    precision: Precision = Precision.fp32,
    scheduler: str = "none",
    pos_weight: float | None = None,
    **trainer: object,
) -> Engine:
    config = OmegaConf.structured(TrainerConfig(progress=False, grad_clip=None, **trainer))
    model = Linear()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    mode = monitor_mode("classification", config.early_stopping.metric, config.early_stopping.mode)
    schedule = OmegaConf.create({"name": scheduler, "factor": 0.5, "patience": 1, "min_lr": 0.0})
    weighting = {} if pos_weight is None else {"pos_weight": pos_weight}
    return Engine(
        model, optimizer, build_scheduler(schedule, optimizer, 1, config.epochs, mode.value),
        config, torch.device("cpu"), precision, "classification", (0.0, 1.0), tmp_path, {},
        **weighting,
    )  # fmt: skip


def one_big_batch_step(data: list[dict], lr: float = 0.1) -> torch.Tensor:
    """Plain torch: one SGD step on the mean loss of ``data``; the weights after it."""
    model = Linear()
    x = torch.stack([d["pixel_values"] for d in data])
    y = torch.tensor([d["label"] for d in data])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    with torch.no_grad():
        return torch.cat([(p - lr * p.grad).flatten() for p in model.parameters()])


def weights(e: Engine) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in e.module.parameters()])


def test_accumulated_steps_equal_one_big_batch_of_the_samples_they_saw(tmp_path: Path) -> None:
    data = samples(7)
    # Batches of 2, 2, 2, 1 and one optimizer step over all four: the mean over 7 samples.
    e = engine(tmp_path, grad_accum_steps=4)
    e.train_epoch(loader(data, 2))
    assert e.step == 1
    assert torch.allclose(weights(e), one_big_batch_step(data), atol=1e-6)
    # Batches 2, 2, 2 | 1: the short last group is the mean over its single sample.
    e = engine(tmp_path, grad_accum_steps=3)
    e.train_epoch(loader(data, 2))
    assert e.step == 2
    first = one_big_batch_step(data[:6])
    manual = Linear()
    torch.nn.utils.vector_to_parameters(first, manual.parameters())
    x, y = data[6]["pixel_values"][None], torch.tensor([data[6]["label"]])
    torch.nn.functional.binary_cross_entropy_with_logits(manual(x), y).backward()
    expected = torch.cat([(p - 0.1 * p.grad).flatten() for p in manual.parameters()])
    assert torch.allclose(weights(e), expected.detach(), atol=1e-6)


def test_pos_weight_scales_the_success_class_loss(tmp_path: Path) -> None:
    e = engine(tmp_path, pos_weight=3.0)
    out, labels = torch.tensor([0.3, -1.2]), torch.tensor([1.0, 0.0])
    expected = torch.stack([3 * torch.nn.functional.softplus(-out[0]),
                            torch.nn.functional.softplus(out[1])])  # fmt: skip
    assert torch.allclose(e._loss(out, labels), expected)


def test_validation_loss_is_unweighted_so_runs_with_other_class_weights_compare(
    tmp_path: Path,
) -> None:
    """Issue 26, defect 2: val_loss included pos_weight, so weighted runs ranked on other scales."""
    data = samples(9)
    x = torch.stack([d["pixel_values"] for d in data])
    y = torch.tensor([d["label"] for d in data])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(Linear()(x), y)
    for pos_weight in (None, 3.0):
        assert engine(tmp_path, pos_weight=pos_weight).predict(loader(data, 4)).loss == (
            pytest.approx(plain.item(), rel=1e-6)
        )


def test_class_weight_balanced_is_failures_over_successes() -> None:
    labels = np.array([1, 1, 1, 0, 1, 0, 1, 1, 1, 0], dtype=float)  # 7 successes, 3 failures
    trainer = OmegaConf.structured(TrainerConfig(class_weight="balanced"))
    assert positive_weight(trainer, "classification", labels) == pytest.approx(3 / 7)
    assert positive_weight(OmegaConf.structured(TrainerConfig()), "classification", labels) is None
    both = OmegaConf.structured(TrainerConfig(class_weight="balanced", pos_weight=2.0))
    with pytest.raises(UserError, match="not both"):
        positive_weight(both, "classification", labels)
    with pytest.raises(UserError, match="data.target=success"):
        positive_weight(trainer, "regression", labels)


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("val_loss", Mode.min), ("val_rmse", Mode.min), ("val_mae", Mode.min),
     ("val_auroc", Mode.max), ("val_accuracy", Mode.max), ("val_f1", Mode.max),
     ("val_balanced_accuracy", Mode.max), ("val_r2", Mode.max)],
)  # fmt: skip
def test_the_direction_comes_from_the_metric(metric: str, direction: Mode) -> None:
    task = "regression" if metric in ("val_rmse", "val_mae", "val_r2") else "classification"
    assert monitor_mode(task, metric, None) is direction
    assert monitor_mode(task, metric, direction) is direction
    contrary = Mode.min if direction is Mode.max else Mode.max
    with pytest.raises(UserError, match=f"mode={contrary.value} contradicts"):
        monitor_mode(task, metric, contrary)


def epoch_end(e: Engine, labels: list[float], outputs: list[float]) -> None:
    val = Predictions(np.arange(len(labels)), np.array(labels), np.array(outputs), 0.5)
    e._end_epoch(0.5, val)


LABELS = [0.0, 0.0, 1.0, 1.0, 1.0]
# Validation outputs whose AUROC is 1/6, 4/6, 5/6 and 3/6 of the (positive, negative) pairs.
OUTPUTS = {
    1: [0.9, 0.8, 0.85, 0.1, 0.2],
    4: [0.5, 0.2, 0.6, 0.4, 0.1],
    5: [0.5, 0.2, 0.6, 0.4, 0.7],
    3: [0.5, 0.6, 0.4, 0.7, 0.1],
}


def test_val_auroc_keeps_the_highest_epoch_and_early_stopping_triggers(tmp_path: Path) -> None:
    e = engine(
        tmp_path, epochs=10, early_stopping=EarlyStoppingConfig(metric="val_auroc", patience=2)
    )
    for pairs in (1, 4, 5, 3, 3):
        epoch_end(e, LABELS, OUTPUTS[pairs])
        if e.stopped:
            break
    assert e.best == pytest.approx(5 / 6) and e.history[2]["val_auroc"] == e.best
    assert e.stopped and e.epoch == 5 and e.bad_epochs == 2
    assert torch.equal(torch.load(tmp_path / "best.pt")["fc.weight"], e.module.fc.weight)


def test_plateau_follows_the_metric_direction(tmp_path: Path) -> None:
    stopping = EarlyStoppingConfig(metric="val_auroc", patience=10)
    rising = engine(tmp_path / "a", scheduler="plateau", epochs=10, early_stopping=stopping)
    for pairs in (1, 3, 4, 5):
        epoch_end(rising, LABELS, OUTPUTS[pairs])
    assert rising.optimizer.param_groups[0]["lr"] == 0.1  # improving: never reduced
    flat = engine(tmp_path / "b", scheduler="plateau", epochs=10, early_stopping=stopping)
    for pairs in (5, 4, 4, 3):
        epoch_end(flat, LABELS, OUTPUTS[pairs])
    # Patience 1: halved once two epochs have not beaten the first, then counting again.
    assert [row["lr"] for row in flat.history] == [0.1, 0.1, 0.1, 0.05]


def test_a_nan_monitor_is_said_and_never_the_best(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = engine(tmp_path, early_stopping=EarlyStoppingConfig(metric="val_auroc", patience=2))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            epoch_end(e, [1.0, 1.0], [0.9, 0.7])  # one class: AUROC is undefined
    assert math.isnan(e.history[0]["val_auroc"]) and e.best is None
    assert caplog.text.count(NAN_RULE) == 2
    assert e.stopped and not (tmp_path / "best.pt").exists()


def test_bf16_autocast_trains_on_the_cpu(tmp_path: Path) -> None:
    data = samples(8)
    e = engine(tmp_path, Precision.bf16)
    batch = next(iter(loader(data, 4)))
    assert e._forward(batch).dtype == torch.bfloat16
    before = weights(e).clone()
    loss = e.train_epoch(loader(data, 4))
    assert math.isfinite(loss) and not torch.equal(before, weights(e))
    assert all(p.dtype == torch.float32 for p in e.module.parameters())


@pytest.mark.parametrize(
    ("saved", "resumed"),
    [(Precision.bf16, Precision.fp16_mixed), (Precision.fp16_mixed, Precision.bf16)],
)
def test_resuming_at_another_precision_continues_with_a_fresh_scaler(
    tmp_path: Path, saved: Precision, resumed: Precision, caplog: pytest.LogCaptureFixture
) -> None:
    """The same trainer.precision resolves to bf16 on one GPU and 16-mixed on another."""
    data = samples(8)
    first = engine(tmp_path, saved)
    first.train_epoch(loader(data, 4))
    state = first.state_dict()
    second = engine(tmp_path, resumed)
    with caplog.at_level(logging.WARNING):
        second.load_state_dict(state)
    assert f"trained at precision {saved.value}, this device runs {resumed.value}" in caplog.text
    assert torch.equal(weights(second), weights(first)) and second.step == first.step
