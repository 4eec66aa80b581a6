"""Class imbalance: how much the success class weighs in the loss."""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
from omegaconf import DictConfig

from socal.config import ClassWeight
from socal.errors import UserError

log = logging.getLogger(__name__)


def positive_weight(trainer: DictConfig, task: str, labels: np.ndarray) -> Optional[float]:
    """The loss weight of the success class: ``trainer.pos_weight``, or failures / successes of
    the training split for ``trainer.class_weight=balanced``; None (weight 1) by default."""
    if trainer.pos_weight is None and trainer.class_weight is None:
        return None
    if task != "classification":
        raise UserError("trainer.pos_weight and trainer.class_weight apply to data.target=success")
    if trainer.pos_weight is not None and trainer.class_weight is not None:
        raise UserError("set trainer.pos_weight or trainer.class_weight=balanced, not both")
    if trainer.pos_weight is not None:
        if trainer.pos_weight <= 0:
            raise UserError(f"trainer.pos_weight={trainer.pos_weight} must be > 0")
        weight = float(trainer.pos_weight)
    else:
        assert ClassWeight(trainer.class_weight) is ClassWeight.balanced
        positives = int(labels.sum())
        if positives in (0, len(labels)):
            raise UserError("trainer.class_weight=balanced needs both classes in the train split")
        weight = (len(labels) - positives) / positives
    log.info("loss: success class weighted %.4f (failures count 1)", weight)
    return weight
