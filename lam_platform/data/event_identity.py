"""Which event a row is: content ids, and a batch split into new events, exact duplicates and id conflicts.

A row's id is the source's where it has one, else a hash of its content (`content_ids`), so a
re-ingested file finds its events already stored. `dedupe` compares a validated batch with itself and
with the event table: the same id with the same content is a duplicate (counted, not written again);
the same id with different content is a conflict, quarantined as `duplicate_event_id`.

Content is compared as its key text (`content_keys`); only rows that need a derived id are hashed.
The stored events are looked up through the table's id index (`stored_events`), which reads only the
date partitions that can hold the batch's ids.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.events import EventAttributes, stored_events, with_attributes

CORE_CONTENT = ("channel", "customer_id", "event_timestamp", "object", "action")


def content_keys(events: pa.Table, attributes: EventAttributes) -> pa.ChunkedArray:
    """Each event's content as one text: the core, then the declared attributes in their schema order, joined
    by \\x1f; a missing value is empty. Timestamps are microseconds since the epoch, numbers Python's str()."""
    fields = [_field_text(events.column(name)) for name in (*CORE_CONTENT, *attributes.names)]
    return pc.binary_join_element_wise(*fields, "\x1f")


def content_ids(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A deterministic id from a content key (`content_keys`): the first 32 hex digits of its sha256, so the
    same event always gets the same id, in this version and the earlier ones."""
    return pa.array([sha256(k).hexdigest()[:32] for k in keys.cast(pa.binary()).to_pylist()], pa.string())


def _field_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type):
        text = column.cast(pa.int64()).cast(pa.string())
    elif pa.types.is_floating(column.type):
        text = _float_text(column)
    else:
        text = column.cast(pa.string())
    return pc.fill_null(text, "")


def _float_text(column: pa.ChunkedArray) -> pa.Array:
    """Python's str() of each number (Arrow's own cast writes 1.0 as "1"), computed once per distinct value;
    NaN is missing, as pandas read it."""
    values = column.to_numpy()  # nulls read as NaN
    valid = ~np.isnan(values)
    # Distinct bit patterns, not values: -0.0 == 0.0, but str() writes them differently.
    distinct, position = np.unique(values[valid].view(np.int64), return_inverse=True)
    texts = pa.array([str(float(v)) for v in distinct.view(np.float64)], pa.string())
    where = np.zeros(len(values), np.int64)
    where[valid] = position
    return texts.take(pa.array(where, mask=~valid)) if len(texts) else pa.nulls(len(values), pa.string())


def dedupe(events: pa.Table, table: Path, attributes: EventAttributes) -> tuple[pa.Table, int, pd.DataFrame]:
    """(accepted events, count of exact duplicates, quarantined id conflicts)."""
    ids = events.column("event_id").combine_chunks().dictionary_encode()  # each distinct id once
    code = ids.indices.to_numpy(zero_copy_only=False)
    content = events.column("content")
    known, compare = _stored_content(events, ids.dictionary, code, table, attributes)
    first_row = np.unique(code, return_index=True)[1]  # of each distinct id, by its code
    first = np.zeros(len(code), bool)
    first[first_row] = True
    again = np.flatnonzero(~first)  # few rows: content is compared only where an id repeats
    same_as_first = np.zeros(len(code), bool)
    same_as_first[again] = _equal(content.take(again), content.take(first_row[code[again]]))
    known_id = known.is_valid().to_numpy(zero_copy_only=False)
    same_as_known = np.zeros(len(code), bool)
    stored = np.flatnonzero(known_id)
    same_as_known[stored] = _equal(compare.take(stored), known.take(stored))
    conflict = (known_id & ~same_as_known) | (~known_id & ~first & ~same_as_first)
    duplicate = (same_as_known | (~known_id & same_as_first)) & ~conflict
    accepted = rows_where(events, ~known_id & first)
    return accepted, int(duplicate.sum()), _conflict_rejects(events.filter(pa.array(conflict)), attributes)


def rows_where(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """The rows where `keep` is true; the table itself when that is all of them (a filter copies every column,
    and in a first ingest nearly every row is kept)."""
    return table if keep.all() else table.filter(pa.array(keep))


def _equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)


def _stored_content(
    events: pa.Table, distinct: pa.Array, code: np.ndarray, table: Path, attributes: EventAttributes
) -> tuple[pa.Array, pa.ChunkedArray]:
    """(the content key of the stored event with the row's id, null if there is none; the row's content key
    as comparable with that stored event). `distinct`: the batch's ids, `code`: each row's among them."""
    content = events.column("content")
    earlier = stored_events(table, distinct) if len(distinct) else None
    if earlier is None or not earlier.num_rows:
        return pa.nulls(events.num_rows, pa.string()), content
    # An attribute declared after those events were written is missing there.
    earlier = with_attributes(earlier, attributes)
    earlier_ids = earlier.column("event_id").combine_chunks().dictionary_encode()
    earlier = earlier.take(pa.array(np.unique(earlier_ids.indices, return_index=True)[1]))  # one per id
    at = pc.index_in(distinct, value_set=earlier_ids.dictionary).take(pa.array(code))
    known = content_keys(earlier, attributes).combine_chunks().take(at)
    return known, _comparable_content(events, earlier, at, attributes)


def _comparable_content(
    events: pa.Table, earlier: pa.Table, at: pa.Array, attributes: EventAttributes
) -> pa.ChunkedArray:
    """Each row's content key with the attributes its stored event (`earlier`, row `at`) lacks left out: a
    stored event is not back-filled with an attribute declared after it was written, so its re-read is the
    same event (a duplicate) when everything the stored row holds agrees."""
    rows = np.flatnonzero(at.is_valid().to_numpy(zero_copy_only=False))
    stored_at = at.take(pa.array(rows))
    lacking = {}  # attribute -> where the batch has a value and the stored event none
    for name in attributes.names:
        stored_null = earlier.column(name).take(stored_at).is_null(nan_is_null=True).to_numpy(zero_copy_only=False)
        lacking[name] = stored_null & events.column(name).take(rows).is_valid().to_numpy(zero_copy_only=False)
    changed = np.logical_or.reduce(list(lacking.values())) if lacking else np.zeros(len(rows), bool)
    if not changed.any():  # the usual case: the key is the row's own
        return events.column("content")
    comparable = events.take(pa.array(rows[changed]))
    for name, drop in lacking.items():
        kept = pc.if_else(
            pa.array(drop[changed]), pa.scalar(None, comparable.schema.field(name).type), comparable[name]
        )
        comparable = comparable.set_column(comparable.schema.get_field_index(name), name, kept)
    mask = np.zeros(events.num_rows, bool)
    mask[rows[changed]] = True
    keys = content_keys(comparable, attributes).combine_chunks()
    return pa.chunked_array([pc.replace_with_mask(events.column("content").combine_chunks(), pa.array(mask), keys)])


def _conflict_rejects(conflicts: pa.Table, attributes: EventAttributes) -> pd.DataFrame:
    """Rows whose id an event with different content already has, as quarantine rows."""
    conflicts = conflicts.to_pandas()
    return pd.DataFrame(
        {
            "source_file": conflicts._source_file,
            "source_line": conflicts._source_line.astype("int64"),
            "channel": conflicts.channel,
            "reason": "duplicate_event_id",
            "detail": "event_id " + conflicts.event_id + " already used by an event with different content",
            "raw": conflicts[[*CORE_CONTENT, *attributes.names, "event_id"]].astype(str).to_dict("records"),
        }
    ).assign(raw=lambda f: f.raw.map(json.dumps))
