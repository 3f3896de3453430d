"""Order-blind aggregates per customer: event counts per channel and action, sums of each numeric
event attribute per channel (`shop_amount_sum_30d`), over the 7, 30 and 90 days strictly before t,
and the days since the last event (recency).
They feed the `customer_event_aggregates` view and the baselines that ignore order.

Feature names follow the channels, actions and numeric attributes of the workdir's event table (recorded in the feature
repo's repo_schema.json at materialization), so new data adds its fields without code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.events import EventAttributes
from lam_platform.features.sequences import PointInTimeQuery

WINDOWS_DAYS = (7, 30, 90)
US_PER_DAY = 86_400_000_000
NO_EVENT_DAYS = 3650.0  # days_since_last_event of a customer with no event before t


@dataclass(frozen=True)
class AggregateSpec:
    """The channels and actions aggregates are counted for and the numeric attributes summed (what the
    event table holds)."""

    channels: tuple[str, ...]
    actions: tuple[str, ...]
    numeric: tuple[str, ...] = ()

    @classmethod
    def of(cls, events: pa.Table) -> AggregateSpec:
        values = {
            c: tuple(sorted(v for v in pc.unique(events.column(c)).to_pylist() if v)) for c in ("channel", "action")
        }
        return cls(values["channel"], values["action"], EventAttributes.of_table(events).numeric)


def aggregate_feature_names(spec: AggregateSpec) -> list[tuple[str, str]]:
    """(name, kind) of every aggregate feature; kind is "count" (Int64) or "sum"/"days" (Float64)."""
    names = [("days_since_last_event", "days")]
    for days in WINDOWS_DAYS:
        names += [(f"{c}_events_{days}d", "count") for c in spec.channels]
        names += [(f"{a}_events_{days}d", "count") for a in spec.actions]
        names += [(f"{c}_{n}_sum_{days}d", "sum") for n in spec.numeric for c in spec.channels]
    return names


def build_aggregates(events: pa.Table, customer_ids, as_of, spec: AggregateSpec) -> pa.Table:
    """Exact point-in-time aggregates for each (customer_ids[i], as_of[i]) over events strictly before it."""
    return aggregates_of(PointInTimeQuery.prepare(events, customer_ids, as_of), spec)


def aggregates_of(query: PointInTimeQuery, spec: AggregateSpec) -> pa.Table:
    """`build_aggregates` on a prepared query (its events sorted once for the sequences and the aggregates)."""
    events, positions, query_us = query.events, query.positions, query.as_of_us
    end = positions.count_before(query_us)
    channel = events.column("channel").to_numpy(zero_copy_only=False)
    action = events.column("action").to_numpy(zero_copy_only=False)
    # Prefix sums over the sorted events: a window's total is prefix[end] - prefix[start].
    indicators = {f"{c}_events": channel == c for c in spec.channels}
    indicators.update({f"{a}_events": action == a for a in spec.actions})
    for name in spec.numeric:  # a missing value adds nothing to the sum
        values = np.nan_to_num(events.column(name).to_numpy(zero_copy_only=False).astype(np.float64))
        indicators.update({f"{c}_{name}_sum": np.where(channel == c, values, 0.0) for c in spec.channels})
    prefix = {k: np.concatenate([[0], np.cumsum(v)]) for k, v in indicators.items()}
    has_event = end > positions.first_of_customer
    last_us = (
        positions.event_us[np.clip(end - 1, 0, max(len(positions.event_us) - 1, 0))]
        if len(positions.event_us)
        else np.zeros(len(end), np.int64)
    )
    recency = np.where(has_event, (query_us - last_us) / US_PER_DAY, NO_EVENT_DAYS)
    columns = {
        "customer_id": query.customer_ids,
        "event_timestamp": query.as_of,
        "days_since_last_event": pa.array(recency.astype(np.float64)),
    }
    for days in WINDOWS_DAYS:
        start = positions.count_before(query_us - days * US_PER_DAY)
        for name, kind in aggregate_feature_names(spec):
            if name.endswith(f"_{days}d"):
                base = name[: -len(f"_{days}d")]
                total = prefix[base][end] - prefix[base][start]
                columns[name] = pa.array(total.astype(np.int64) if kind == "count" else total)
    return pa.table(columns)
