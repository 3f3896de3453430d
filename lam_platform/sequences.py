"""Point-in-time event sequences: for each (customer, t), the most recent N events strictly before t.

This is the one definition of "what the model sees" shared by training (offline, at each contact
time) and serving (the snapshot materialized into the online store), so the two cannot drift.
An event at exactly t is never included (no leakage).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.events import NUMERIC_FIELDS, TIMESTAMP

SEQUENCE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("event_timestamp", TIMESTAMP),  # the as-of time t of the snapshot
        ("seq_len", pa.int64()),
        ("event_timestamps", pa.list_(TIMESTAMP)),  # oldest first, whole seconds (see below)
        ("channels", pa.list_(pa.string())),
        ("objects", pa.list_(pa.string())),
        ("actions", pa.list_(pa.string())),
        ("amounts", pa.list_(pa.float64())),  # NaN = missing
        ("durations_s", pa.list_(pa.float64())),  # NaN = missing
    ]
)
LIST_COLUMNS = {"event_timestamps": "event_timestamp", "channels": "channel", "objects": "object",
                "actions": "action", "amounts": "amount", "durations_s": "duration_s"}


def build_sequences(events: pa.Table, customer_ids: pa.Array | list, as_of: pa.Array | list, max_len: int) -> pa.Table:
    """Last `max_len` events strictly before `as_of[i]` for `customer_ids[i]`, as list columns.

    `events` must follow the 4W1H contract; it need not be sorted. Customers without events get
    empty lists (seq_len 0), not an error.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    as_of = pa.array(as_of) if not isinstance(as_of, pa.Array) else as_of
    if not pa.types.is_timestamp(as_of.type) or as_of.type.tz is None:
        raise ValueError(f"as_of must be timezone-aware timestamps (UTC); got {as_of.type}")
    as_of = as_of.cast(TIMESTAMP)
    customer_ids = pa.array(customer_ids, pa.string()) if not isinstance(customer_ids, pa.Array) else customer_ids
    events = events.sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])

    # Encode customers as integers shared by events and queries.
    dictionary = pc.unique(pa.concat_arrays([events.column("customer_id").combine_chunks(), customer_ids.cast(pa.string())]))
    ev_code = pc.index_in(events.column("customer_id"), value_set=dictionary).to_numpy()
    q_code = pc.index_in(customer_ids, value_set=dictionary).to_numpy()
    ev_ts = events.column("event_timestamp").combine_chunks().cast(pa.int64()).to_numpy()
    q_ts = as_of.cast(pa.int64()).to_numpy(zero_copy_only=False)

    # Merge events and queries ordered by (customer, time, kind) with queries (kind 0) before events
    # at the same instant: the events counted before a query are exactly those strictly before t.
    code = np.concatenate([ev_code, q_code])
    ts = np.concatenate([ev_ts, q_ts])
    kind = np.concatenate([np.ones(len(ev_code), np.int8), np.zeros(len(q_code), np.int8)])
    order = np.lexsort((kind, ts, code))
    events_before = np.cumsum(kind[order])  # events at sorted positions <= p
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    end = events_before[position[len(ev_code):]]  # exclusive end index into sorted events, per query
    first_of_customer = np.searchsorted(ev_code, q_code, side="left")
    start = np.maximum(first_of_customer, end - max_len)
    lengths = end - start

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    take = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
    columns = {"customer_id": customer_ids.cast(pa.string()), "event_timestamp": as_of,
               "seq_len": pa.array(lengths, pa.int64())}
    for list_name, event_name in LIST_COLUMNS.items():
        values = events.column(event_name).combine_chunks().take(pa.array(take))
        if event_name in NUMERIC_FIELDS:
            values = pc.fill_null(values.cast(pa.float64()), np.nan)
        elif event_name == "event_timestamp":
            # Feast keeps Array(UnixTimestamp) items as whole seconds; emit what the online store will
            # return so offline and online sequences are identical. Selection above used full resolution.
            values = pc.floor_temporal(values, unit="second")
        columns[list_name] = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pa.table(columns, schema=SEQUENCE_SCHEMA)


def snapshot_sequences(events: pa.Table, customer_ids: list[str], as_of, max_len: int) -> pa.Table:
    """Every customer's sequence as of one instant: what the online store should hold at `as_of`."""
    times = pa.array([as_of] * len(customer_ids), TIMESTAMP)
    return build_sequences(events, customer_ids, times, max_len)
