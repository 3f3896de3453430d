"""The 4W1H event contract (see docs/ARCHITECTURE.md): one row per customer touchpoint.

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


def check_event_table(table: pa.Table, channels: tuple[str, ...] = CHANNELS) -> pa.Table:
    """Return `table` cast to EVENT_SCHEMA, or raise naming the offending column."""
    missing = [name for name in EVENT_SCHEMA.names if name not in table.column_names]
    if missing:
        raise EventContractError(f"event table lacks required columns {missing}")
    table = table.select(EVENT_SCHEMA.names)
    for field in EVENT_SCHEMA:
        if not field.nullable and table.column(field.name).null_count:
            raise EventContractError(f"column {field.name!r} has nulls but is required")
    unknown = set(pc.unique(table.column("channel")).to_pylist()) - set(channels)
    if unknown:
        raise EventContractError(f"unknown channels {sorted(unknown)}; known: {list(channels)} "
                                 "(declare new channels in the channel config)")
    try:
        return table.cast(EVENT_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise EventContractError(f"event table does not cast to the 4W1H schema: {err}") from err


def write_events(table: pa.Table, root: Path, append: bool = False, basename: str | None = None,
                 channels: tuple[str, ...] = CHANNELS) -> None:
    """Write events as a Parquet dataset partitioned by UTC date (event_date=YYYY-MM-DD).

    Files are written to a staging folder beside `root` and then moved in, so no partition ever
    holds a half-written file. append=True adds the new files to the table; append=False replaces
    the whole table (old and new are swapped by renaming folders). `basename` names the files
    (deterministic output, e.g. the simulator's chunks); by default a random name avoids collisions.
    """
    table = check_event_table(table, channels)
    staging = root.with_name(f"{root.name}.staging-{uuid.uuid4().hex}")
    dates = pc.strftime(table.column("event_timestamp"), format="%Y-%m-%d")
    ds.write_dataset(
        table.append_column("event_date", dates),
        staging,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
        basename_template=f"{basename or 'part-' + uuid.uuid4().hex}-{{i}}.parquet",
    )
    if append:
        for file in sorted(staging.rglob("*.parquet")):
            target = root / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            file.rename(target)  # atomic per file on one filesystem
        shutil.rmtree(staging)
    else:
        old = root.with_name(f"{root.name}.old-{uuid.uuid4().hex}")
        if root.exists():
            root.rename(old)
        staging.rename(root)
        shutil.rmtree(old, ignore_errors=True)


def existing_events(root: Path, event_ids: list[str]):
    """The rows of the event table whose event_id is in `event_ids` (a pandas DataFrame)."""
    if not root.exists() or not event_ids:
        return EVENT_SCHEMA.empty_table().to_pandas()
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    wanted = pc.field("event_id").isin(pa.array(event_ids, pa.string()))
    return dataset.to_table(columns=EVENT_SCHEMA.names, filter=wanted).cast(EVENT_SCHEMA).to_pandas()


def read_events(root: Path) -> pa.Table:
    """Read the whole event table back, in the contract's schema, sorted by customer and time."""
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=EVENT_SCHEMA.names)
    return table.cast(EVENT_SCHEMA).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file, creating its folder (timestamps stay microseconds, UTC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
