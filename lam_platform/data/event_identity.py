"""Which event a row is: content ids, and a batch split into new events, exact duplicates and id conflicts.

A row's id is the source's where it has one, else a hash of its content (`content_ids`), so a
re-ingested file finds its events already stored. `dedupe` compares a validated batch with itself and
with the event table: the same id with the same content is a duplicate (counted, not written again);
the same id with different content is a conflict, quarantined as `duplicate_event_id`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.events import EventAttributes, existing_events

CORE_CONTENT = ("channel", "customer_id", "event_timestamp", "object", "action")


def content_ids(events: pd.DataFrame, attributes: EventAttributes) -> pd.Series:
    """A deterministic id from the event's content (the core, then the declared attributes in their
    schema order): the same event always gets the same id."""
    if events.empty:
        return pd.Series([], index=events.index, dtype=object)
    columns = []
    for name in (*CORE_CONTENT, *attributes.names):
        values = events[name]
        if name == "event_timestamp":
            values = values.astype("int64")
        text = pa.array(
            values.astype(object).where(values.notna(), None).astype(str).where(values.notna(), ""), pa.string()
        )  # None and NaN are the same "missing"
        columns.append(text)
    keys = pc.binary_join_element_wise(*columns, "\x1f").to_pylist()
    return pd.Series([hashlib.sha256(k.encode()).hexdigest()[:32] for k in keys], index=events.index, dtype=object)


def dedupe(events: pd.DataFrame, table: Path, attributes: EventAttributes) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """(accepted events, count of exact duplicates, quarantined id conflicts)."""
    events = _with_stored_content(events, table, attributes)
    first_content = events.groupby("event_id", sort=False).content.transform("first")
    first = ~events.duplicated("event_id")
    known_id = events._known.notna()
    same_as_known = known_id & (events._compare == events._known)
    same_as_first = ~first & (events.content == first_content)
    conflict = (known_id & ~same_as_known) | (~known_id & ~first & ~same_as_first)
    duplicate = (same_as_known | (~known_id & same_as_first)) & ~conflict
    accepted = events[~known_id & first]
    return accepted, int(duplicate.sum()), _conflict_rejects(events[conflict], attributes)


def _with_stored_content(events: pd.DataFrame, table: Path, attributes: EventAttributes) -> pd.DataFrame:
    """The batch with `_known` (the content id of the stored event with the same id, None if there is none)
    and `_compare` (the row's content id as comparable with that stored event)."""
    earlier = existing_events(table, events.event_id.unique().tolist()) if len(events) else None
    if earlier is None or not len(earlier):
        return events.assign(_known=None, _compare=events.content)
    for name in attributes.names:  # an attribute declared after those events were written: missing there
        if name not in earlier.columns:
            earlier[name] = None
    earlier = earlier.drop_duplicates("event_id").set_index("event_id", drop=False)
    known = pd.Series(content_ids(earlier, attributes).to_numpy(), index=earlier.index)
    # A stored event is not back-filled with an attribute declared after it was written: its re-read
    # is the same event (a duplicate) when everything the stored row holds agrees.
    comparable = events[events.event_id.isin(known.index)].copy()
    for name in attributes.names:
        stored = comparable.event_id.map(earlier[name])
        comparable[name] = comparable[name].astype(object).where(stored.notna(), None)
    events = events.assign(_known=events.event_id.map(known), _compare=events.content)
    events.loc[comparable.index, "_compare"] = content_ids(comparable, attributes)
    return events


def _conflict_rejects(conflicts: pd.DataFrame, attributes: EventAttributes) -> pd.DataFrame:
    """Rows whose id an event with different content already has, as quarantine rows."""
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
