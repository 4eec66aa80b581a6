"""Which validation metrics a run can monitor, and which way is better for each.

Early stopping, ReduceLROnPlateau, the best checkpoint and a sweep's objective all follow the
metric: scores (accuracy, AUROC, F1, R^2, ...) are maximised, losses and errors minimised.
``trainer.early_stopping.mode`` may stay unset (the metric decides) or repeat that direction;
a mode against the metric would keep the worst epoch and is refused. Torch-free, so that the
launcher can use it too.

A hyperparameter search optimises the same thing: ``train.py`` returns, and logs last as
``best_<metric>=<value>``, the best validation value of the early-stopping metric (never a test
metric). Optuna (``hydra/sweeper=optuna``) optimises the returned value; a SageMaker tuning job
(``hydra/sweeper=sagemaker``) reads that log line.
"""

from __future__ import annotations

from typing import Optional

from omegaconf import OmegaConf

from socal.config import Mode
from socal.errors import UserError

MAXIMIZE = ("val_accuracy", "val_balanced_accuracy", "val_auroc", "val_f1", "val_r2")
MINIMIZE = ("val_loss", "val_rmse", "val_mae")
MONITORS = {
    "classification": ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc", "val_f1"),
    "regression": ("val_loss", "val_rmse", "val_mae", "val_r2"),
}
# When the monitor is NaN (AUROC on a one-class validation set, R^2 on one trial), the epoch
# cannot be compared: it is never the best, counts as not improving, and is said.
NAN_RULE = "a NaN epoch is never the best and counts towards the early-stopping patience"
DIRECTION_RESOLVER = "socal_direction"


def monitor_mode(task: str, metric: str, mode: Optional[Mode | str]) -> Mode:
    """The direction of ``metric``; a UserError for a metric of another task or a contrary mode."""
    if metric not in MONITORS[task]:
        raise UserError(
            f"trainer.early_stopping.metric={metric} is not one of "
            f"{', '.join(MONITORS[task])} for {task} (data.target)"
        )
    direction = Mode.max if metric in MAXIMIZE else Mode.min
    if mode is not None and Mode(mode) is not direction:
        raise UserError(
            f"trainer.early_stopping.mode={Mode(mode).value} contradicts "
            f"trainer.early_stopping.metric={metric}, which is better when "
            f"{'higher' if direction is Mode.max else 'lower'}: drop the mode (the metric "
            f"decides) or set mode={direction.value}"
        )
    return direction


def maximised(metric: str) -> bool:
    """``val_auroc`` -> True, ``val_loss`` -> False."""
    return metric not in MINIMIZE


def optuna_direction(metric: str) -> str:
    return "maximize" if maximised(metric) else "minimize"


def objective_name(metric: str) -> str:
    """The log line (and SageMaker metric) holding the run's best value of ``metric``."""
    return f"best_{metric}"


def register_resolver() -> None:
    """``${socal_direction:${trainer.early_stopping.metric}}`` in the optuna sweeper config."""
    OmegaConf.register_new_resolver(DIRECTION_RESOLVER, optuna_direction, replace=True)
