"""The 4W1H event contract (see docs/ARCHITECTURE.md): one row per customer touchpoint.

who = customer_id, when = event_timestamp (UTC, microseconds), where = channel,
what = object, how = action, plus the attributes a workdir declares (in the channel mappings of its
lam.yaml): numeric ones (float64, null = missing) and categorical ones (string). The core is fixed;
the attributes are data: an event table records them in `_attributes.json` at its root (Parquet
readers skip files whose name starts with an underscore), so every reader knows the full schema
even when older files lack a column a later ingest added.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lam_platform.core.errors import UserError
from lam_platform.data import event_id_index

CHANNELS = ("app", "web", "shop", "call_centre", "telemarketing", "billing")

TIMESTAMP = pa.timestamp("us", tz="UTC")

CORE_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("event_timestamp", TIMESTAMP, nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
    ]
)
ATTRIBUTES_FILE = "_attributes.json"
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
RESERVED_NAMES = frozenset(CORE_SCHEMA.names) | {"event_date", "content", "shard", "row"}


class EventContractError(UserError):
    """An event table does not match the 4W1H contract."""


@dataclass(frozen=True)
class EventAttributes:
    """The declared attributes of a workdir's events, each list sorted by name."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", tuple(sorted(self.numeric)))
        object.__setattr__(self, "categorical", tuple(sorted(self.categorical)))
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise EventContractError(f"attributes {sorted(both)} are declared both numeric and categorical")
        for name in (*self.numeric, *self.categorical):
            if name in RESERVED_NAMES or not ATTRIBUTE_NAME.fullmatch(name):
                raise EventContractError(
                    f"attribute name {name!r} is not allowed: use lower-case letters, digits and '_', starting "
                    f"with a letter, and none of the contract's own names {sorted(RESERVED_NAMES)}"
                )

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    def schema(self) -> pa.Schema:
        """The event table's schema: the 4W1H core, then numeric, then categorical attributes."""
        return pa.schema(
            [
                *CORE_SCHEMA,
                *(pa.field(n, pa.float64()) for n in self.numeric),
                *(pa.field(n, pa.string()) for n in self.categorical),
            ]
        )

    def union(self, other: EventAttributes) -> EventAttributes:
        """Both declarations together; one name with two kinds is an error that names it."""
        return EventAttributes(
            tuple(set(self.numeric) | set(other.numeric)), tuple(set(self.categorical) | set(other.categorical))
        )

    def to_dict(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def of_table(cls, table: pa.Table | pa.Schema) -> EventAttributes:
        """The attributes a table carries beyond the core: numbers are numeric, strings categorical."""
        schema = table.schema if isinstance(table, pa.Table) else table
        numeric, categorical = [], []
        for field in schema:
            if field.name in CORE_SCHEMA.names or field.name == "event_date":
                continue
            if pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_null(field.type):
                numeric.append(field.name)
            elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                categorical.append(field.name)
            else:
                raise EventContractError(
                    f"column {field.name!r} has type {field.type}; an event attribute is "
                    "a number (numeric) or a string (categorical)"
                )
        return cls(tuple(numeric), tuple(categorical))

    @classmethod
    def of_events(cls, root: Path) -> EventAttributes:
        """The attributes recorded for the event table at `root` (none for a table not yet written)."""
        record = Path(root) / ATTRIBUTES_FILE
        if record.exists():
            raw = json.loads(record.read_text())
            return cls(tuple(raw["numeric"]), tuple(raw["categorical"]))
        files = event_files(Path(root)) if Path(root).exists() else []
        return cls.of_table(pq.read_schema(files[0])) if files else cls()

    def record(self, root: Path) -> None:
        """Write the declaration into the table's folder (atomically: a reader never sees half of it)."""
        tmp = Path(root) / f".{ATTRIBUTES_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(Path(root) / ATTRIBUTES_FILE)


def check_event_table(
    table: pa.Table, channels: tuple[str, ...] = CHANNELS, attributes: EventAttributes | None = None
) -> pa.Table:
    """Return `table` cast to the contract with `attributes` (default: the columns it carries beyond the
    core), or raise naming the offending column."""
    missing = [name for name in CORE_SCHEMA.names if name not in table.column_names]
    if missing:
        raise EventContractError(f"event table lacks required columns {missing}")
    attributes = EventAttributes.of_table(table) if attributes is None else attributes
    undeclared = [n for n in table.column_names if n not in CORE_SCHEMA.names and n not in attributes.names]
    if undeclared:
        raise EventContractError(
            f"columns {undeclared} are not declared attributes; declared: "
            f"numeric {list(attributes.numeric)}, categorical {list(attributes.categorical)}"
        )
    schema = attributes.schema()
    table = with_attributes(table, attributes)
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise EventContractError(f"column {field.name!r} has nulls but is required")
    unknown = set(pc.unique(table.column("channel")).to_pylist()) - set(channels)
    if unknown:
        raise EventContractError(
            f"unknown channels {sorted(unknown)}; known: {list(channels)} (declare new channels in the channel config)"
        )
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise EventContractError(f"event table does not cast to the 4W1H schema: {err}") from err


def with_attributes(table: pa.Table, attributes: EventAttributes) -> pa.Table:
    """The table's contract columns in schema order, a declared attribute it lacks added as nulls (an
    event file written before that attribute was declared)."""
    schema = attributes.schema()
    for name in attributes.names:
        if name not in table.column_names:
            table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names)


def write_events(
    table: pa.Table,
    root: Path,
    append: bool = False,
    basename: str | None = None,
    channels: tuple[str, ...] = CHANNELS,
    attributes: EventAttributes | None = None,
) -> None:
    """Write events as a Parquet dataset partitioned by UTC date (event_date=YYYY-MM-DD).

    Files are written to a staging folder beside `root` and then moved in, so no partition ever
    holds a half-written file. append=True adds the new files to the table; append=False replaces
    the whole table (old and new are swapped by renaming folders). `basename` names the files
    (deterministic output, e.g. the simulator's chunks); by default a random name avoids collisions.
    `attributes` (default: the table's own) is recorded; appending adds to what the table declares.
    """
    table = check_event_table(table, channels, attributes)
    declared = EventAttributes.of_table(table)
    if append and root.exists():
        declared = EventAttributes.of_events(root).union(declared)
    staging = root.with_name(f"{root.name}.staging-{uuid.uuid4().hex}")
    # The UTC date as YYYY-MM-DD (a cast to date32 gives strftime's text, ten times faster).
    dates = table.column("event_timestamp").cast(pa.date32()).cast(pa.string())
    ds.write_dataset(
        table.append_column("event_date", dates),
        staging,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
        basename_template=f"{basename or 'part-' + uuid.uuid4().hex}-{{i}}.parquet",
        # Rows of one date arrive in many small slices (sources are ordered by customer); without a
        # minimum each slice becomes a row group of its own, which made writing 2-4x slower.
        min_rows_per_group=1 << 14,
    )
    if append:
        with event_id_index.locked(root):
            # The ids first: a crash before the files are in leaves the index a superset, which it may be.
            # A table without an index gets one, whole, at its first lookup (event_id_index.py).
            if event_id_index.exists(root):
                event_id_index.add(root, table.column("event_id"), dates)
            for file in sorted(staging.rglob("*.parquet")):
                target = root / file.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                file.rename(target)  # atomic per file on one filesystem
        shutil.rmtree(staging)
        declared.record(root)
    else:
        declared.record(staging)
        old = root.with_name(f"{root.name}.old-{uuid.uuid4().hex}")
        if root.exists():
            root.rename(old)
        staging.rename(root)
        shutil.rmtree(old, ignore_errors=True)


def events_dataset(root: Path) -> ds.Dataset:
    """The event table as a pyarrow dataset in its full schema (columns a file lacks read as null)."""
    return ds.dataset(root, format="parquet", partitioning="hive", schema=EventAttributes.of_events(root).schema())


def event_files(root: Path, event_date: str | None = None) -> list[Path]:
    """The table's Parquet files (those of one date partition; "": those outside any), without the hidden
    and underscored ones that dataset readers skip too (the id index, staging files)."""
    return sorted(_visible_files(root, event_date))


def _visible_files(root: Path, event_date: str | None = None) -> Iterator[Path]:
    if event_date is None:
        found = root.rglob("*.parquet")
    else:
        found = (root / f"event_date={event_date}" if event_date else root).glob("*.parquet")
    return (f for f in found if not any(part.startswith((".", "_")) for part in f.relative_to(root).parts))


def stored_events(root: Path, event_ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The stored events whose event_id is in `event_ids`, in the table's schema. Reads only the date
    partitions the id index (event_id_index.py) says may hold them, never every stored id."""
    schema = EventAttributes.of_events(root).schema()
    if not root.exists() or not len(event_ids):
        return schema.empty_table()
    with event_id_index.locked(root):
        if not event_id_index.exists(root):
            event_id_index.build(root, _stored_ids(root))
        dates = event_id_index.candidate_dates(root, event_ids)
    files = [file for date in dates for file in event_files(root, date)]
    if not files:
        return schema.empty_table()
    if isinstance(event_ids, pa.ChunkedArray):
        event_ids = event_ids.combine_chunks()
    wanted = pc.field("event_id").isin(event_ids)
    return ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table(filter=wanted)


def _stored_ids(root: Path) -> Iterator[pa.RecordBatch]:
    """(event_id, event_date) of every stored event, in batches: what a first build of the id index reads."""
    files = event_files(root)
    if not files:
        return
    partitioning = ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive")
    dataset = ds.dataset(
        [str(f) for f in files], format="parquet", partitioning=partitioning, partition_base_dir=str(root)
    )
    yield from dataset.to_batches(columns=["event_id", "event_date"], batch_size=1 << 20)


def existing_events(root: Path, event_ids: list[str]):
    """The rows of the event table whose event_id is in `event_ids` (a pandas DataFrame)."""
    return stored_events(root, pa.array(event_ids, pa.string())).to_pandas()


def event_batches(root: Path, rows: int = 1 << 20) -> Iterator[pa.Table]:
    """The event table in the contract's schema, about `rows` events at a time in file order (not sorted): for
    a pass that needs every event once, never the whole table in memory."""
    pending, count = [], 0
    for batch in events_dataset(root).to_batches(batch_size=rows):
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def read_events(root: Path) -> pa.Table:
    """Read the whole event table back, in the contract's schema, sorted by customer and time."""
    table = events_dataset(root).to_table()
    return table.sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file, creating its folder (timestamps stay microseconds, UTC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
