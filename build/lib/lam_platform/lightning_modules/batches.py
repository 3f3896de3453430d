"""Typed batches. Shapes, dtypes and padding are written where each field is defined.

Events are right-aligned: the latest event sits at position L-1, padding (mask False) on the left.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class EventBatch:
    categorical: Tensor  # (B, L, 3) int64: channel, object, action ids; 0 = pad, 1 = out-of-vocabulary
    attributes: Tensor  # (B, L, A) int64: declared categorical attribute ids; 0 = missing or pad, 1 = unseen
    numeric: Tensor  # (B, L, F) float32: declared numeric attributes, scaled, 0 where missing
    numeric_missing: Tensor  # (B, L, F) bool: True where the attribute is missing
    log_gap_hours: Tensor  # (B, L) float32: log1p(hours since the previous event), 0 for the first
    hour: Tensor  # (B, L) int64: hour of day, UTC
    weekday: Tensor  # (B, L) int64: 0 = Monday
    day: Tensor  # (B, L) int64: days since 1970-01-01 (the hierarchical window key)
    mask: Tensor  # (B, L) bool: True = a real event


@dataclass
class NextActionTargets:
    categorical: Tensor  # (B, R, 3) int64: the next event's channel, object, action; 0 = no next event
    log_gap_hours: Tensor  # (B, R) float32: log1p(hours until the next event)


@dataclass
class CampaignContext:
    profile: Tensor  # (B, P) int64: one id per declared categorical profile field; 0 = unknown
    profile_numeric: Tensor  # (B, Q) float32: declared numeric profile fields, scaled; 0 = unknown
    offer: Tensor  # (B,) int64
    method: Tensor  # (B,) int64
    log_hours_since_last_event: Tensor  # (B,) float32: at contact time; the gap to the prediction time
    contact_hour: Tensor  # (B,) int64
    contact_weekday: Tensor  # (B,) int64


@dataclass
class CustomerContext:
    """What a target head sees besides the backbone's state, at the prediction time t."""

    profile: Tensor  # (B, P) int64, as in CampaignContext
    profile_numeric: Tensor  # (B, Q) float32, as in CampaignContext
    log_hours_since_last_event: Tensor  # (B,) float32: log1p(hours from the latest event to t)


@dataclass
class TargetLabels:
    label: Tensor  # (B,) float32: 1 when the target happened within its horizon after t


@dataclass
class CampaignLabels:
    treatment: Tensor  # (B,) int64: 1 contacted, 0 held-out control
    outcome: Tensor  # (B,) float32: 1 ordered within the horizon
    weight: Tensor  # (B,) float32: inverse propensity of the logged (selection, arm), mean 1; all 1 if unknown


def dataclass_from_arrays(cls, arrays: dict):
    """Build any of the batch dataclasses above from a dict of arrays keyed by field name."""
    return cls(**{f.name: torch.as_tensor(arrays[f.name]) for f in fields(cls)})
