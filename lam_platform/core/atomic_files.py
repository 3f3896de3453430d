"""File rewrites that a crash cannot leave half done, and the lock that serializes governance runs.

A rewrite writes a hidden staging file beside the target (readers, including pyarrow datasets and
Feast's file sources, skip names that start with a dot), fsyncs it, and renames it over the target
with os.replace: any reader, and any restart after a crash, sees the old file or the new one.
Staging files a crash leaves behind are removed by `remove_staging` when the run is resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

STAGING_SUFFIX = ".lam-staging"


def _staging(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{STAGING_SUFFIX}")


def _sync_and_replace(staging: Path, path: Path) -> None:
    with open(staging, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staging, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def replace_parquet(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` atomically (schema and its metadata kept)."""
    with parquet_writer(path, table.schema) as writer:
        writer.write_table(table)


@contextlib.contextmanager
def parquet_writer(path: Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer whose file appears at `path` whole when the block ends, never part written (written
    hidden beside it, then renamed); nothing appears if the block fails."""
    staging = _staging(path)
    try:
        with pq.ParquetWriter(staging, schema) as writer:
            yield writer
        _sync_and_replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def drop_rows(path: Path, unwanted: Callable[[pa.Table], pa.Array], unlink_empty: bool = False) -> int:
    """Rewrite the Parquet file `path` without the rows `unwanted(table)` marks; returns how many went.

    Reads this file alone (no hive partition column is added). With `unlink_empty`, a file left with
    no rows is deleted instead (an unlink is atomic too).
    """
    table = pq.ParquetFile(path).read()
    drop = pc.fill_null(unwanted(table), False)
    removed = pc.sum(drop).as_py() or 0
    if removed and unlink_empty and removed == table.num_rows:
        path.unlink()
    elif removed:
        replace_parquet(table.filter(pc.invert(drop)), path)
    return removed


def replace_text(text: str, path: Path) -> None:
    staging = _staging(path)
    staging.write_text(text)
    _sync_and_replace(staging, path)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write(staging_path)` produce the file (a DataFrame's to_parquet, torch.save, ...), then move it
    into place: readers see the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(path)
    try:
        write(staging)
        _sync_and_replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def remove_staging(root: Path) -> int:
    """Delete staging files an interrupted rewrite left under `root`; returns how many."""
    leftovers = list(root.rglob(f".*{STAGING_SUFFIX}"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


@contextlib.contextmanager
def governance_lock(root: Path, shared: bool = False) -> Iterator[None]:
    """The workdir's one lock discipline. Exclusive (consent, erasure, purge, appends to the campaign log):
    one at a time, and no writer runs meanwhile. Shared (the ordinary writers: ingest, push, materialize,
    score): any number together, never during an exclusive holder, so a writer that read data before an
    erasure cannot write it back after it. Not reentrant: a holder must not take it again."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".governance.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
