"""Sequence and aggregate snapshots of many customers in bounded memory: the event table split by customer.

`EventShards.split` reads the event table once, a batch at a time, and writes it into temporary Parquet
shards by a hash of the customer (`shard_of`), collecting on the way what the feature views need to know of
the whole table (its channels and actions, and which customers have events in a window). Each shard's
customers are then built by the single-machine builders (`build_sequences`, `build_aggregates`) and appended
to the snapshot files. A customer's events all fall in one shard, so every row is the one the builders give
on the whole table (tested); memory holds one shard's events, about SHARD_EVENTS of them. A table of at most
SHARD_EVENTS events is one shard, read as it is (no temporary copy).
"""

from __future__ import annotations

import fcntl
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lam_platform.data.events import TIMESTAMP, EventAttributes, event_batches, events_dataset, read_events
from lam_platform.features.aggregates import AggregateSpec
from lam_platform.features.sequences_ray import shard_of, with_shard

SHARD_EVENTS = 4_000_000  # events per shard: about 2-3 GiB while its snapshots are built
SPLIT_ROW_GROUP = 65_536  # rows per row group of a shard file while the table is split


@dataclass
class EventShards:
    """The event table split by customer (or whole, as one shard), with what was learnt reading it."""

    root: Path  # the event table
    schema: pa.Schema  # its schema (the contract's, with the attributes it declares)
    folder: Path | None  # the shards (shard=<k>/), None when the table is one shard
    num_shards: int
    channels: set[str] = field(default_factory=set)
    actions: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)  # customers with an event in the window asked for

    @classmethod
    def split(
        cls, root: Path, folder: Path, window: tuple[datetime, datetime] | None = None, shard_events: int | None = None
    ) -> EventShards:
        """Read the table at `root` once; write it by customer under `folder` when it holds more than
        `shard_events` (default SHARD_EVENTS) events. `window` [since, until): note who has events in it."""
        dataset = events_dataset(root)
        num_shards = math.ceil(dataset.count_rows() / (shard_events or SHARD_EVENTS))
        shards = cls(root, dataset.schema, folder if num_shards > 1 else None, max(num_shards, 1))
        batches = (shards._note(batch, window) for batch in event_batches(root))
        if shards.folder is None:
            for _ in batches:  # one pass for the channels, actions and active customers; nothing written
                pass
            return shards
        ds.write_dataset(
            (with_shard(b, num_shards) for batch in batches for b in batch.to_batches()),
            folder,
            schema=dataset.schema.append(pa.field("shard", pa.int64())),
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("shard", pa.int64())]), flavor="hive"),
            max_partitions=max(num_shards, 1024),
            existing_data_behavior="overwrite_or_ignore",  # the folder is new; it holds only its owner's lock file
            # Each open shard file buffers its row group until it is full: at the default (a million rows) and 52
            # shards (a million customers) that was 7.5 GiB; this keeps the buffers near 0.3 GiB.
            max_rows_per_group=SPLIT_ROW_GROUP,
            # Scan order kept: events that tie on (customer, time) stay in table order through the stable sorts.
            preserve_order=True,
        )
        return shards

    def _note(self, batch: pa.Table, window: tuple[datetime, datetime] | None) -> pa.Table:
        self.channels.update(v for v in pc.unique(batch.column("channel")).to_pylist() if v)
        self.actions.update(v for v in pc.unique(batch.column("action")).to_pylist() if v)
        if window is not None:
            ts = batch.column("event_timestamp")
            since, until = (pa.scalar(t, TIMESTAMP) for t in window)
            inside = pc.and_(pc.greater_equal(ts, since), pc.less(ts, until))
            self.active.update(pc.unique(batch.filter(inside).column("customer_id")).to_pylist())
        return batch

    def spec(self) -> AggregateSpec:
        """The channels and actions seen and the numeric attributes declared: what the aggregates count."""
        return AggregateSpec(
            tuple(sorted(self.channels)), tuple(sorted(self.actions)), EventAttributes.of_events(self.root).numeric
        )

    def each(self, customers: list[str]) -> Iterator[tuple[pa.Table, list[str]]]:
        """(a shard's events, those of `customers` in it, in their order) for every shard."""
        if self.folder is None:
            yield read_events(self.root), customers
            return
        schema = self.schema
        of_customer = shard_of(customers, self.num_shards)
        for k in range(self.num_shards):
            part = self.folder / f"shard={k}"
            events = ds.dataset(part, format="parquet").to_table(columns=schema.names) if part.exists() else None
            mine = [c for c, s in zip(customers, of_customer) if s == k]
            yield (events.cast(schema) if events is not None else schema.empty_table()), mine


class ShardFolder:
    """A hidden folder beside `near` for the shards (on its filesystem: the shards are as large as the table),
    removed when the `with` block ends; `with ShardFolder(near) as folder:` gives its path.

    Its owner holds a lock on the folder's `.owner` file for as long as it runs. A job killed outright (out of
    memory, SIGKILL) leaves its folder behind, as large as the event table, and its lock goes with its process:
    the next ShardFolder beside it removes every folder whose lock it can take. (A lock, not a process id: a job
    in another container on the same host and workdir has a pid this one cannot see.)"""

    def __init__(self, near: Path) -> None:
        self.parent = Path(near).parent
        self.path: Path | None = None
        self._lock: IO | None = None

    def __enter__(self) -> str:
        self.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(self.parent)
        self.path = Path(tempfile.mkdtemp(prefix=".shards-", dir=self.parent))
        staging = self.path / ".owner.staging"
        self._lock = staging.open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        staging.rename(self.path / ".owner")  # seen by a sweep only once locked
        return str(self.path)

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()


def _remove_abandoned(parent: Path) -> None:
    for folder in parent.glob(".shards-*"):
        try:
            with (folder / ".owner").open() as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: its job is gone
                shutil.rmtree(folder, ignore_errors=True)
        except (BlockingIOError, FileNotFoundError, NotADirectoryError):
            continue  # a live job's folder, or one with no owner file (being made, or of an earlier release)
