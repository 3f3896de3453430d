"""Streaming: push new events into the platform as they happen.

`push_events` appends events to the offline event table and to each customer's online sequence
(keeping the latest N), under one lock shared by every process that pushes to the same store (the backend's
`push_lock`: a file lock next to a SQLite online store, a Redis lock for a Redis one). Pushes are
idempotent: an event id already in the customer's online sequence or in the offline table is
skipped, so a retried push adds nothing.

Ordering: online lists hold whole-second timestamps (Feast's Array(UnixTimestamp)); a pushed event
is placed after stored events of the same second. Offline sequences order by full-resolution time,
so the two agree whenever events arrive in time order (the normal case for a stream).

Run: `lam push --workdir ./lam-demo --events new_events.parquet`
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig
from lam_platform.data.events import EventAttributes, check_event_table, existing_events, write_events
from lam_platform.data.ingest import validate_pushed, write_quarantine
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.suppression import ErasedCustomers, retention_cutoff
from lam_platform.features.online_backends import online_store_for
from lam_platform.features.sequences import attribute_list, list_columns
from lam_platform.features.store import RepoSchema


def sequence_length(workdir: Workdir) -> int:
    """N of the sequence view, as recorded by the last full materialization."""
    path = workdir.sequence_view
    if not path.exists():
        raise FileNotFoundError(f"no sequence view in {workdir.root}: run `lam materialize` before pushing events")
    return int(json.loads(path.read_text())["max_len"])


def push_events(
    workdir: Workdir, store, events: pa.Table | pd.DataFrame, pseudonymizer: Pseudonymizer, source: str = "push"
) -> dict[str, int]:
    """See `_push_events`; runs under the workdir's shared governance lock (an erasure waits, or goes first)."""
    with governance_lock(workdir.root, shared=True):
        return _push_events(workdir, store, events, pseudonymizer, source)


def _push_events(
    workdir: Workdir, store, events: pa.Table | pd.DataFrame, pseudonymizer: Pseudonymizer, source: str
) -> dict[str, int]:
    """Append `events` (the contract's columns, keyed by raw customer ids) offline and online, through
    ingestion's validation (pseudonyms at entry, quarantine with reasons, erased customers suppressed);
    returns counts: pushed = new + already present + quarantined + suppressed.

    `events`: a table, or a DataFrame of text cells as `ingest.read_raw` reads a CSV (ids stay text, so
    000042 is not 42).
    """
    schema = RepoSchema.load(workdir)  # the channels and attributes the workdir's views were built for
    channels = schema.channels
    raw = events.to_pandas() if isinstance(events, pa.Table) else events.copy()
    pushed = len(raw)
    if "_line" not in raw:
        raw["_line"] = np.arange(len(raw)) + 1
    limits = _event_limits(workdir)
    now = pd.Timestamp.now(tz="UTC")
    valid, rejects, suppressed = validate_pushed(
        raw,
        source,
        channels,
        schema.attributes,
        limits,
        pseudonymizer,
        ErasedCustomers.load(workdir),
        now,
        retention_cutoff(workdir, now),
    )
    quarantine = write_quarantine(rejects, workdir.quarantine, "push") if len(rejects) else None
    attributes = EventAttributes(
        tuple(n for n in schema.attributes.numeric if n in valid),
        tuple(n for n in schema.attributes.categorical if n in valid),
    )
    table = pa.Table.from_pandas(valid[attributes.schema().names], schema=attributes.schema(), preserve_index=False)
    events = check_event_table(table, channels, schema.attributes)
    events = events.sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])
    new, customers = _append(workdir, store, events, schema)
    return {
        "pushed": pushed,
        "new": new.num_rows,
        "already_present": events.num_rows - new.num_rows,
        "quarantined": len(rejects),
        "suppressed": suppressed,
        "quarantine_file": quarantine,
        "customers": customers,
    }


def _append(workdir: Workdir, store, events: pa.Table, schema: RepoSchema) -> tuple[pa.Table, int]:
    """Under the store's push lock: append the events not yet offline, then merge them into the changed
    customers' online sequences (the latest N). Returns the new events and the customers updated online."""
    max_len = sequence_length(workdir)
    with online_store_for(store).push_lock():
        new = _drop_known_offline(workdir, events)
        rows = []
        if new.num_rows:
            write_events(new, workdir.events, append=True, channels=schema.channels, attributes=schema.attributes)
            customers = sorted(set(new.column("customer_id").to_pylist()))  # only these change
            current = _online_sequences(store, customers, schema)
            merged = (
                _merge(current[c], group, max_len, schema.attributes)
                for c, group in new.to_pandas().groupby("customer_id")
            )
            rows = [row for row in merged if row is not None]
        if rows:
            store.write_to_online_store("customer_event_sequence", pd.DataFrame(rows))
    return new, len(rows)


def _event_limits(workdir: Workdir) -> ChannelConfig | None:
    """The future bound and string length of the workdir's events section (None: the defaults)."""
    if not workdir.config.exists():
        return None
    platform = PlatformConfig.load(workdir.root)
    return platform.channel_config() if platform.events.get("channels") else None


def _drop_known_offline(workdir: Workdir, events: pa.Table) -> pa.Table:
    """Events whose id is not yet in the offline table (nor earlier in this push)."""
    ids = events.column("event_id").to_numpy(zero_copy_only=False)
    known = set(existing_events(workdir.events, sorted(set(ids))).event_id)
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(len(ids), bool)
    keep[first] = True  # the same id twice in one push counts once
    keep &= np.array([i not in known for i in ids], dtype=bool)
    return events.filter(pa.array(keep))


def _online_sequences(store, customers: list[str], schema: RepoSchema) -> dict[str, dict]:
    refs = [f"customer_event_sequence:{f}" for f in schema.sequence_features]
    response = store.get_online_features(features=refs, entity_rows=[{"customer_id": c} for c in customers])
    values = response.to_dict(include_event_timestamps=True)
    names = (*list_columns(schema.attributes), "seq_len__ts")
    return {c: {name: values[name][i] for name in names} for i, c in enumerate(customers)}


def _merge(current: dict, new: pd.DataFrame, max_len: int, attributes: EventAttributes) -> dict | None:
    """The customer's stored list plus new events (by time, skipping known ids), truncated to `max_len`."""
    known = set(current["event_ids"] or [])
    new = new[~new.event_id.isin(known)].sort_values("event_timestamp", kind="stable")
    if new.empty:
        return None
    lists = list_columns(attributes)  # list column -> event column
    stored = {name: list(current[name] or []) for name in lists}
    appended = {name: new[column] for name, column in lists.items()}
    appended["event_timestamps"] = new.event_timestamp.dt.floor("s")
    merged = pd.DataFrame({name: stored[name] + list(appended[name]) for name in lists})
    merged["event_timestamps"] = pd.to_datetime(merged.event_timestamps, utc=True)
    merged = merged.sort_values("event_timestamps", kind="stable").tail(max_len)  # stored first within a second
    # Redis skips a write whose row timestamp is not newer than the stored one: move strictly forward.
    previous = pd.Timestamp(current["seq_len__ts"] or 0, unit="s", tz="UTC")
    row_time = max(merged.event_timestamps.iloc[-1], previous + pd.Timedelta(seconds=1))
    row = {"customer_id": new.customer_id.iloc[0], "event_timestamp": row_time, "seq_len": len(merged)}
    row.update({name: merged[name].tolist() for name in lists})
    row["event_timestamps"] = [t.to_pydatetime() for t in merged.event_timestamps]
    for name in map(attribute_list, attributes.categorical):
        row[name] = ["" if v is None or v != v else v for v in row[name]]  # "" = missing, as in build_sequences
    for name in map(attribute_list, attributes.numeric):
        # Typed arrays, not Python lists: Feast (0.67) writes a list that is all NaN, typed by
        # inference as list<null>, as zeros. A float64 array keeps every missing value NaN.
        row[name] = np.asarray(row[name], dtype=np.float64)
    return row
