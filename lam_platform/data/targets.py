"""Event-derived targets: labels a team gets from its event log alone (lead scoring, churn).

A target declared in lam.yaml (`purchase_30d: {action: purchase, within: 30d}`, `churn_60d:
{no_event_within: 60d}`) is, for a customer at time t, whether it happens in [t, t + horizon): the
model sees only events strictly before t, so an event at t is future, never input.

Training examples come from a grid of cut-offs t_k = as_of - horizon - k * every (k = 0..snapshots-1):
each label is mature at as_of (t_k + horizon <= as_of), so a model trained "as of T" never saw an
outcome that was unknown at T. At each cut-off, every trainable customer with at least one earlier
event is an example. The same examples train the LAM's target head and the LightGBM baseline.

Run: `lam finetune --workdir W --target purchase_30d --as-of 2010-10-01T00:00:00+00:00`
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.errors import UserError
from lam_platform.data.event_index import EventPositions
from lam_platform.data.events import TIMESTAMP
from lam_platform.data.platform_config import ActionWithin, NoEventWithin

Target = ActionWithin | NoEventWithin


@dataclass(frozen=True)
class CutoffGrid:
    """Where training examples are cut: `snapshots` cut-offs, `every` apart, the newest mature at as-of."""

    snapshots: int = 6
    every: pd.Timedelta = pd.Timedelta(days=14)

    @classmethod
    def from_dict(cls, values: dict | None) -> CutoffGrid:
        """The job YAML's `target:` section: snapshots (>= 1) and every (a duration such as 14d)."""
        values = dict(values or {})
        unknown = set(values) - {"snapshots", "every"}
        if unknown:
            raise UserError(f"target section: unknown keys {sorted(unknown)}; allowed: ['every', 'snapshots']")
        snapshots, every = values.get("snapshots", 6), str(values.get("every", "14d"))
        if not isinstance(snapshots, int) or snapshots < 1:
            raise UserError(f"target.snapshots must be a whole number >= 1; got {snapshots!r}")
        if not re.fullmatch(r"\d+(\.\d+)?\s*[a-z]+", every.strip()):
            raise UserError(f"target.every must be a duration with a unit, e.g. 14d or 36h; got {every!r}")
        return cls(snapshots, pd.Timedelta(every))

    def cutoffs(self, as_of: pd.Timestamp, horizon: pd.Timedelta) -> list[pd.Timestamp]:
        newest = as_of - horizon
        return [newest - k * self.every for k in range(self.snapshots)][::-1]


def _count_between(events: pa.Table, customers: list[str], start_us: np.ndarray, end_us: np.ndarray) -> np.ndarray:
    """Events of each customer in [start, end) (events need not be sorted)."""
    events = events.select(["customer_id", "event_timestamp"]).sort_by(
        [("customer_id", "ascending"), ("event_timestamp", "ascending")]
    )
    positions = EventPositions(events, pa.array(customers, pa.string()))
    return positions.count_before(end_us) - positions.count_before(start_us)


def _micros(times) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(pd.Series(times), utc=True)).as_unit("us").asi8


def action_within(events: pa.Table, customers: list[str], times, action: str, horizon: pd.Timedelta) -> np.ndarray:
    """Whether each customer has an event with `action` in [t, t + horizon)."""
    chosen = events.filter(pc.equal(events.column("action"), action))
    start = _micros(times)
    return _count_between(chosen, customers, start, start + int(horizon / pd.Timedelta(microseconds=1))) > 0


def labels(events: pa.Table, customers: list[str], times, target: Target) -> np.ndarray:
    """The target's 0/1 label for each (customer, t)."""
    if isinstance(target, ActionWithin):
        return action_within(events, customers, times, target.action, target.horizon).astype(np.float32)
    start = _micros(times)
    end = start + int(target.horizon / pd.Timedelta(microseconds=1))
    return (_count_between(events, customers, start, end) == 0).astype(np.float32)


def active_before(events: pa.Table, customers: list[str], at: pd.Timestamp) -> list[str]:
    """The customers among `customers` with at least one event strictly before `at`."""
    before = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(at, TIMESTAMP)))
    seen = set(pc.unique(before.column("customer_id")).to_pylist())
    return [c for c in customers if c in seen]


def target_examples(
    events: pa.Table, customers: list[str], as_of: pd.Timestamp, target: Target, grid: CutoffGrid, required: bool = True
) -> pd.DataFrame:
    """(customer_id, event_timestamp = cut-off t, label) for every cut-off of the grid; labels mature at as_of.
    No example at all is an error unless `required` is False (one customer shard of many may have none)."""
    frames = []
    for t in grid.cutoffs(as_of, target.horizon):
        active = active_before(events, customers, t)
        if active:
            frames.append(
                pd.DataFrame(
                    {
                        "customer_id": active,
                        "event_timestamp": t,
                        "label": labels(events, active, [t] * len(active), target),
                    }
                )
            )
    if not frames and required:
        raise no_target_examples(as_of, target, grid)
    if not frames:
        return pd.DataFrame(
            {
                "customer_id": pd.Series([], dtype=object),
                "event_timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
                "label": np.array([], np.float32),
            }
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["event_timestamp"] = frame.event_timestamp.astype("datetime64[us, UTC]")
    return frame


def no_target_examples(as_of: pd.Timestamp, target: Target, grid: CutoffGrid) -> UserError:
    """The error of a target without a single training example."""
    return UserError(
        f"no training example: no customer has an event before the first cut-off "
        f"{grid.cutoffs(as_of, target.horizon)[0].isoformat()} (as-of {as_of.isoformat()} minus the "
        f"horizon {target.horizon}); choose a later --as-of"
    )
