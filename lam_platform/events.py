"""The 4W1H event contract (see DESIGN.md): one row per customer touchpoint.

who = customer_id, when = event_timestamp (UTC, microseconds), where = channel,
what = object, how = action, plus nullable numeric and categorical attributes.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

CHANNELS = ("app", "web", "shop", "call_centre", "telemarketing", "billing")
NUMERIC_FIELDS = ("amount", "duration_s")
CATEGORICAL_FIELDS = ("channel", "object", "action")

TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("event_timestamp", TIMESTAMP, nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("amount", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("payment_method", pa.string()),
    ]
)


class EventContractError(ValueError):
    """An event table does not match the 4W1H contract."""


def check_event_table(table: pa.Table) -> pa.Table:
    """Return `table` cast to EVENT_SCHEMA, or raise naming the offending column."""
    missing = [name for name in EVENT_SCHEMA.names if name not in table.column_names]
    if missing:
        raise EventContractError(f"event table lacks required columns {missing}")
    table = table.select(EVENT_SCHEMA.names)
    for field in EVENT_SCHEMA:
        if not field.nullable and table.column(field.name).null_count:
            raise EventContractError(f"column {field.name!r} has nulls but is required")
    unknown = set(pc.unique(table.column("channel")).to_pylist()) - set(CHANNELS)
    if unknown:
        raise EventContractError(f"unknown channels {sorted(unknown)}; known: {list(CHANNELS)}")
    try:
        return table.cast(EVENT_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise EventContractError(f"event table does not cast to the 4W1H schema: {err}") from err


def write_events(table: pa.Table, root: Path, append: bool = False) -> None:
    """Write events as a Parquet dataset partitioned by UTC date (event_date=YYYY-MM-DD).

    append=True adds new files beside the existing ones. append=False replaces the whole table:
    it is written beside `root` and swapped in, so readers never see a half-written table.
    """
    table = check_event_table(table)
    target = root if append else root.with_name(f"{root.name}.writing-{uuid.uuid4().hex}")
    dates = pc.strftime(table.column("event_timestamp"), format="%Y-%m-%d")
    ds.write_dataset(
        table.append_column("event_date", dates),
        target,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
        # A unique file name per write, so an append never overwrites an earlier file.
        basename_template=f"part-{uuid.uuid4().hex}-{{i}}.parquet",
    )
    if not append:
        old = root.with_name(f"{root.name}.old-{uuid.uuid4().hex}")
        if root.exists():
            root.rename(old)
        target.rename(root)
        shutil.rmtree(old, ignore_errors=True)


def read_events(root: Path) -> pa.Table:
    """Read the whole event table back, in the contract's schema, sorted by customer and time."""
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=EVENT_SCHEMA.names)
    return table.cast(EVENT_SCHEMA).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file, creating its folder (timestamps stay microseconds, UTC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
