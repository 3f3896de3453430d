"""Order-blind aggregates per customer: event counts per channel and action, and amount sums per
channel, over the 7, 30 and 90 days strictly before t. They feed the `customer_event_aggregates`
view and the baselines that ignore order.

Feature names are generated from the channel list of the feature repo's channels.yaml (the channel
config), so a new channel adds its fields here and in the feature view without code.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lam_platform.events import CHANNELS
from lam_platform.sequences import PointInTimeQuery

WINDOWS_DAYS = (7, 30, 90)
AGGREGATE_ACTIONS = ("view", "search", "purchase", "inquire", "complain", "call_outbound")
US_PER_DAY = 86_400_000_000


def aggregate_feature_names(channels: tuple[str, ...] = CHANNELS) -> list[tuple[str, str]]:
    """(name, kind) of every aggregate feature; kind is "count" (Int64) or "sum" (Float64)."""
    names = []
    for days in WINDOWS_DAYS:
        names += [(f"{c}_events_{days}d", "count") for c in channels]
        names += [(f"{a}_events_{days}d", "count") for a in AGGREGATE_ACTIONS]
        names += [(f"{c}_amount_{days}d", "sum") for c in channels]
    return names


def build_aggregates(events: pa.Table, customer_ids, as_of, channels: tuple[str, ...] = CHANNELS) -> pa.Table:
    """Exact point-in-time aggregates for each (customer_ids[i], as_of[i]) over events strictly before it."""
    query = PointInTimeQuery.prepare(events, customer_ids, as_of)
    events, positions, query_us = query.events, query.positions, query.as_of_us
    end = positions.count_before(query_us)
    channel = events.column("channel").to_numpy(zero_copy_only=False)
    action = events.column("action").to_numpy(zero_copy_only=False)
    amount = np.nan_to_num(events.column("amount").to_numpy(zero_copy_only=False).astype(np.float64))
    # Prefix sums over the sorted events: a window's total is prefix[end] - prefix[start].
    indicators = {f"{c}_events": channel == c for c in channels}
    indicators.update({f"{a}_events": action == a for a in AGGREGATE_ACTIONS})
    indicators.update({f"{c}_amount": np.where(channel == c, amount, 0.0) for c in channels})
    prefix = {k: np.concatenate([[0], np.cumsum(v)]) for k, v in indicators.items()}
    columns = {"customer_id": query.customer_ids, "event_timestamp": query.as_of}
    for days in WINDOWS_DAYS:
        start = positions.count_before(query_us - days * US_PER_DAY)
        for name, kind in aggregate_feature_names(channels):
            if name.endswith(f"_{days}d"):
                base = name[: -len(f"_{days}d")]
                total = prefix[base][end] - prefix[base][start]
                columns[name] = pa.array(total.astype(np.int64) if kind == "count" else total)
    return pa.table(columns)
