"""The task a run learns: its loss, output transform, target scaling and monitored metrics.

``TASKS[name]`` replaces comparing the string ``"classification"``: binary classification
(success: a logit, BCE, sigmoid) or regression (blood loss: an output in units of the training
split's standard deviation, MSE, scaled back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from socal.monitor import MONITORS


@dataclass(frozen=True)
class Task:
    name: str
    classification: bool

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The validation metrics a run of this task can monitor (socal.monitor)."""
        return MONITORS[self.name]

    def target_scale(self, labels: np.ndarray) -> tuple[float, float]:
        """(mean, std) the model's raw output is scaled by: the training labels' (regression)."""
        if self.classification:
            return 0.0, 1.0
        return float(labels.mean()), float(labels.std() or 1.0)

    def loss(
        self,
        out: torch.Tensor,
        labels: torch.Tensor,
        scale: tuple[float, float],
        pos_weight: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Per-sample loss of raw outputs ``(B,)`` (the caller takes the mean)."""
        out = out.float()
        if self.classification:
            return torch.nn.functional.binary_cross_entropy_with_logits(
                out, labels, pos_weight=pos_weight, reduction="none"
            )
        mean, std = scale
        return torch.nn.functional.mse_loss(out, (labels - mean) / std, reduction="none")

    def outputs(self, out: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """Raw outputs -> probabilities (classification) or values in the target's units."""
        out = out.float()
        if self.classification:
            return torch.sigmoid(out)
        mean, std = scale
        return out * std + mean


TASKS = {
    "classification": Task("classification", classification=True),
    "regression": Task("regression", classification=False),
}
