"""What a hyperparameter search optimises: the objective and its direction, for both sweepers.

``train.py`` returns, and logs last as ``best_<metric>=<value>``, the best validation value of
the early-stopping metric (never a test metric). Optuna (``hydra/sweeper=optuna``) optimises the
returned value; a SageMaker tuning job (``hydra/sweeper=sagemaker``) reads that log line.
Losses and errors are minimised, every other validation metric is maximised. Imports neither
torch nor the SageMaker SDK.
"""

from __future__ import annotations

from omegaconf import OmegaConf

# Validation metrics where lower is better; every other one (auroc, accuracy, f1, r2, ...) is
# maximised.
MINIMISED = ("loss", "rmse", "mae")
DIRECTION_RESOLVER = "socal_direction"


def maximised(metric: str) -> bool:
    """``val_auroc`` -> True, ``val_loss`` -> False."""
    return metric.rsplit("_", 1)[-1] not in MINIMISED


def optuna_direction(metric: str) -> str:
    return "maximize" if maximised(metric) else "minimize"


def objective_name(metric: str) -> str:
    """The log line (and SageMaker metric) holding the run's best value of ``metric``."""
    return f"best_{metric}"


def register_resolver() -> None:
    """``${socal_direction:${trainer.early_stopping.metric}}`` in conf/hydra/sweeper/optuna.yaml."""
    OmegaConf.register_new_resolver(DIRECTION_RESOLVER, optuna_direction, replace=True)
