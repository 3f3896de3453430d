"""The pretraining learning-rate schedule: a linear warm-up, then a cosine decay to a floor.

A short pretraining (a few hundred optimizer steps at the demo's size) spends its first steps with Adam's
moment estimates still unsettled and its last ones at a rate too high to settle into a minimum; warming up
and decaying the rate addresses both. The systems take it as a plain dict in their hyperparameters (saved
in every checkpoint), and `lam_platform.ray_jobs.training` sizes it from the run's steps per worker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

# Where the cosine ends, as a fraction of the peak rate: the last steps still learn, only more gently.
FLOOR = 0.1


@dataclass(frozen=True)
class WarmupCosine:
    """Factor of the peak learning rate at each optimizer step (LambdaLR counts from 0)."""

    warmup_steps: int
    total_steps: int
    floor: float = FLOOR

    def __post_init__(self) -> None:
        if self.total_steps < 1 or not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"need 0 <= warmup_steps <= total_steps, total >= 1; got {asdict(self)}")

    @classmethod
    def for_run(cls, total_steps: int, warmup_fraction: float) -> WarmupCosine:
        total = max(1, total_steps)
        return cls(min(total, round(total * warmup_fraction)), total)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        return asdict(self)


def optimizers(params, learning_rate: float, weight_decay: float, schedule: dict | None):
    """What a LightningModule's configure_optimizers returns: AdamW, stepped by the schedule when one is
    given (a `WarmupCosine.to_dict()`), else at a constant rate."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    if not schedule:
        return optimizer
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(**schedule).factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
