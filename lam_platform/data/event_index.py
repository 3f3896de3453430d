"""Where each customer's events sit in the event table sorted by (customer, time).

Sequences, aggregates and event-derived targets all ask the same question of the sorted table: which
events of this customer come strictly before t. `EventPositions` answers it once for many queries.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class EventPositions:
    """Index arithmetic shared by sequences and aggregates over events sorted by (customer, time).

    For query rows (customer, t), `count_before(t)` is the exclusive end index, into the sorted
    events, of that customer's events strictly before t; `first_of_customer` is where they start.
    """

    def __init__(self, sorted_events: pa.Table, customer_ids: pa.Array) -> None:
        ev_ids = sorted_events.column("customer_id").combine_chunks()
        # unique() numbers values by first appearance; events are sorted by customer, so event codes
        # never decrease (searchsorted below needs that) and query-only customers come after them.
        dictionary = pc.unique(pa.concat_arrays([ev_ids, customer_ids.cast(pa.string())]))
        self.event_code = pc.index_in(ev_ids, value_set=dictionary).to_numpy()
        self.query_code = pc.index_in(customer_ids, value_set=dictionary).to_numpy()
        self.event_us = sorted_events.column("event_timestamp").combine_chunks().cast(pa.int64()).to_numpy()
        self.first_of_customer = np.searchsorted(self.event_code, self.query_code, side="left")

    def count_before(self, query_us: np.ndarray) -> np.ndarray:
        # Merge events and queries ordered by (customer, time, kind) with queries (kind 0) before
        # events at the same instant: the events counted before a query are exactly those before t.
        n_events = len(self.event_code)
        code = np.concatenate([self.event_code, self.query_code])
        ts = np.concatenate([self.event_us, query_us])
        kind = np.concatenate([np.ones(n_events, np.int8), np.zeros(len(self.query_code), np.int8)])
        order = np.lexsort((kind, ts, code))
        events_before = np.cumsum(kind[order])  # events at sorted positions <= p
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        return events_before[position[n_events:]]
