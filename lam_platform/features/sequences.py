"""Point-in-time event sequences: for each (customer, t), the most recent N events strictly before t.

This is the one definition of "what the model sees" shared by training (offline, at each contact
time) and serving (the snapshot materialized into the online store), so the two cannot drift.
An event at exactly t is never included (no leakage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.event_index import EventPositions
from lam_platform.data.events import TIMESTAMP, EventAttributes

CORE_LISTS = {
    "event_ids": "event_id",
    "event_timestamps": "event_timestamp",
    "channels": "channel",
    "objects": "object",
    "actions": "action",
}
CORE_LIST_TYPES = {
    "event_ids": pa.string(),
    "event_timestamps": TIMESTAMP,
    "channels": pa.string(),
    "objects": pa.string(),
    "actions": pa.string(),
}


def attribute_list(name: str) -> str:
    """The list column that carries event attribute `name` (e.g. amount -> amount_seq)."""
    return f"{name}_seq"


def list_columns(attributes: EventAttributes) -> dict[str, str]:
    """List column -> event column: the core lists, then one per declared attribute."""
    return {**CORE_LISTS, **{attribute_list(n): n for n in attributes.names}}


def sequence_schema(attributes: EventAttributes) -> pa.Schema:
    """The sequence snapshot's schema for events with `attributes`; numeric lists hold NaN for missing."""
    return pa.schema(
        [
            ("customer_id", pa.string()),
            ("event_timestamp", TIMESTAMP),  # the as-of time t of the snapshot
            ("seq_len", pa.int64()),
            # event_ids make pushes idempotent (an id already present is skipped); timestamps are oldest
            # first, whole seconds (see build_sequences)
            *((name, pa.list_(kind)) for name, kind in CORE_LIST_TYPES.items()),
            *((attribute_list(n), pa.list_(pa.float64())) for n in attributes.numeric),  # NaN = missing
            *((attribute_list(n), pa.list_(pa.string())) for n in attributes.categorical),  # "" = missing
        ]
    )


def build_sequences(events: pa.Table, customer_ids: pa.Array | list, as_of: pa.Array | list, max_len: int) -> pa.Table:
    """Last `max_len` events strictly before `as_of[i]` for `customer_ids[i]`, as list columns.

    `events` must follow the 4W1H contract; it need not be sorted. Its attribute columns become
    attribute lists. Customers without events get empty lists (seq_len 0), not an error.
    """
    return sequences_of(PointInTimeQuery.prepare(events, customer_ids, as_of), max_len)


def sequences_of(query: PointInTimeQuery, max_len: int) -> pa.Table:
    """`build_sequences` on a prepared query (its events sorted once for the sequences and the aggregates)."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    attributes = EventAttributes.of_table(query.events)
    events, customer_ids, as_of, positions = query.events, query.customer_ids, query.as_of, query.positions
    end = positions.count_before(query.as_of_us)
    start = np.maximum(positions.first_of_customer, end - max_len)
    lengths = end - start

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    take = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
    columns = {
        "customer_id": customer_ids.cast(pa.string()),
        "event_timestamp": as_of,
        "seq_len": pa.array(lengths, pa.int64()),
    }
    for list_name, event_name in list_columns(attributes).items():
        values = list_items(events.column(event_name).combine_chunks().take(pa.array(take)), event_name, attributes)
        columns[list_name] = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pa.table(columns, schema=sequence_schema(attributes))


def list_items(values: pa.Array, event_name: str, attributes: EventAttributes) -> pa.Array:
    """An event column's values as the items of its list column: numbers as float64 with NaN for missing,
    categories with "" for missing (Feast's string lists hold no nulls), timestamps in whole seconds."""
    if event_name in attributes.numeric:
        return pc.fill_null(values.cast(pa.float64()), np.nan)
    if event_name in attributes.categorical:
        return pc.fill_null(values, "")
    if event_name == "event_timestamp":
        # Feast keeps Array(UnixTimestamp) items as whole seconds; emit what the online store will
        # return so offline and online sequences are identical. Selection used full resolution.
        return pc.floor_temporal(values, unit="second")
    return values


def utc_timestamps(as_of) -> pa.Array:
    """`as_of` as timestamp[us, UTC]; naive or non-timestamp input is an error that says so."""
    as_of = pa.array(as_of) if not isinstance(as_of, pa.Array) else as_of
    if not pa.types.is_timestamp(as_of.type) or as_of.type.tz is None:
        raise ValueError(f"as_of must be timezone-aware timestamps (UTC); got {as_of.type}")
    return as_of.cast(TIMESTAMP)


@dataclass
class PointInTimeQuery:
    """Query rows (customer_ids[i], as_of[i]) against events sorted by (customer, time)."""

    events: pa.Table
    customer_ids: pa.Array
    as_of: pa.Array
    as_of_us: np.ndarray
    positions: EventPositions

    @classmethod
    def prepare(cls, events: pa.Table, customer_ids, as_of) -> PointInTimeQuery:
        as_of = utc_timestamps(as_of)
        customer_ids = pa.array(customer_ids, pa.string()) if not isinstance(customer_ids, pa.Array) else customer_ids
        events = events.sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])
        return cls(
            events,
            customer_ids,
            as_of,
            as_of.cast(pa.int64()).to_numpy(zero_copy_only=False),
            EventPositions(events, customer_ids),
        )
