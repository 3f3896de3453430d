"""The event table's id index: under which dates an event id may be stored, so that looking a batch's ids
up (deduplication at ingest and push) reads those date partitions only, not every stored id.

It lives in the table's root as `.ids/`: runs of (id_hash, event_date) rows, each sorted by id_hash, in
row groups of ROW_GROUP rows whose min/max statistics say which hashes they can hold, each with a Bloom
filter of its hashes beside it (`.bloom`, lam_platform/data/id_filter.py). A lookup hashes the wanted ids and
reads, in each run, only the row groups whose range holds one, then finds the matches by binary search: a
push of a few events reads a few row groups (2 ms at a million events). A batch of many ids would touch every
row group (the hashes are uniform), so it first drops the ids a run's filter rules out (all but about one in
10,000 of the new ones): an ingest batch reads the row groups of its duplicates and of a few false positives,
not the whole index (11 bytes an event per batch, which made a bulk load grow with the square of the table).
The event table is then read only in the partitions that hold a match. The names start with a dot: Parquet
dataset readers, `lam purge` and the erasure's scan skip them.

- What is stored is a 64-bit hash of the id, never the id (an id may embed a pseudonym, and the erasure
  does not scrub this folder). The index is a superset: a hash collision, or an event removed since
  (erasure, purge), only makes the caller read a partition that holds no match.
- The first lookup builds it, from one scan of the table's ids (`build`); from then on `write_events`
  adds a run for each write before it moves the events in (a crash leaves a superset). Both hold `locked`,
  so a build sees every file moved in before it, and every write after it finds the index. A table never
  looked up (a simulated world) never pays for one; one written by an earlier version gets it like a new one.
- Runs of one size tier (rows in [4^k, 4^(k+1))) are merged once MERGE_AT of them exist, up to runs of
  4^LARGEST_MERGED_TIER rows, so a lookup opens a few runs per power of four of the table's size (and one per
  4 to 17M events beyond), and each id is rewritten at most a few times.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import shutil
import uuid
from collections.abc import Iterable, Iterator
from hashlib import blake2b
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lam_platform.core.atomic_files import write_atomically
from lam_platform.data.id_filter import build_filter, may_hold, read_filter, write_filter

INDEX = ".ids"
LOCK = ".ids.lock"
RUN_SCHEMA = pa.schema([("id_hash", pa.int64()), ("event_date", pa.string())])
ROW_GROUP = 16_384
MERGE_AT = 4
BUILD_RUN = 1 << 22  # rows a build gathers into one run (files are small: one run each would be slow)
# Runs of 4^11 rows (4.2M) and more are not merged: a merge holds at most 4 x 4.2M rows (about 0.4 GiB),
# whatever the table's size; 205M events are then a few dozen runs, each with its filter.
LARGEST_MERGED_TIER = 11
READ_GROUPS = 64  # row groups read at a time by a lookup (about 12 MB)
FILTER_SUFFIX = ".bloom"
_FILTERS: dict[Path, np.ndarray] = {}  # filters read by this process, by run (runs never change once written)


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash of each id: the first 8 bytes of its blake2b digest, read as a signed integer."""
    digests = b"".join(blake2b(i, digest_size=8).digest() for i in ids.cast(pa.binary()).to_pylist())
    return np.frombuffer(digests, "<i8") if digests else np.zeros(0, np.int64)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Held by a writer while it adds a run and moves its files in, and by a lookup (which may build the
    index first)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def exists(root: Path) -> bool:
    return (root / INDEX).is_dir()


def add(root: Path, ids: pa.Array | pa.ChunkedArray, dates: pa.Array | pa.ChunkedArray) -> None:
    """Record that each id is stored under its date (the caller holds `locked(root)`)."""
    folder = root / INDEX
    folder.mkdir(exist_ok=True)
    if len(ids):
        _write_run(folder, id_hashes(ids), dates)
        _merge_tiers(folder)


def build(root: Path, stored: Iterable[pa.RecordBatch]) -> None:
    """The index of a table written without one, from batches of its (event_id, event_date): written in a
    staging folder and renamed into place, so it is complete or absent (the caller holds `locked(root)`)."""
    for leftover in root.glob(f"{INDEX}.building-*"):  # of a build that crashed: none runs while we hold the lock
        shutil.rmtree(leftover)
    staging = root / f"{INDEX}.building-{uuid.uuid4().hex}"
    staging.mkdir()
    hashes: list[np.ndarray] = []
    dates: list[pa.Array] = []
    for batch in itertools.chain(stored, [None]):  # None: the end, where what is gathered is written
        if batch is not None:
            hashes.append(id_hashes(batch.column("event_id")))
            dates.append(pc.fill_null(batch.column("event_date"), ""))
        if hashes and (batch is None or sum(map(len, hashes)) >= BUILD_RUN):
            _write_run(staging, np.concatenate(hashes), pa.chunked_array(dates))
            _merge_tiers(staging)
            hashes, dates = [], []
    staging.rename(root / INDEX)


def candidate_dates(root: Path, ids: pa.Array | pa.ChunkedArray) -> list[str]:
    """The dates under which any of `ids` may be stored ("" for files outside a date partition)."""
    wanted = np.unique(id_hashes(ids))
    runs = _runs(root / INDEX)
    for gone in [run for run in _FILTERS if run.parent == root / INDEX and run not in runs]:
        del _FILTERS[gone]  # merged away since
    dates: set[str] = set()
    for run in runs:
        file = pq.ParquetFile(run)
        here = _filtered(run, wanted, file.num_row_groups)
        groups = [g for g in range(file.num_row_groups) if _may_hold(file.metadata.row_group(g), here)]
        for start in range(0, len(groups), READ_GROUPS):  # a bounded read, however many groups match
            part = file.read_row_groups(groups[start : start + READ_GROUPS])
            rows = _matching_rows(part.column("id_hash").to_numpy(), here)
            dates.update(pc.unique(part.column("event_date").take(pa.array(rows))).to_pylist())
    return sorted(dates)


def _filtered(run: Path, wanted: np.ndarray, groups: int) -> np.ndarray:
    """The wanted hashes the run's filter does not rule out. A few wanted ids are found from the row groups'
    statistics alone; the filter is read when they would touch more than a quarter of the groups (or is at hand
    from an earlier lookup of this process). A run written before filters existed has none: all are kept."""
    path = run.with_suffix(FILTER_SUFFIX)
    if run not in _FILTERS and (len(wanted) * 4 <= groups or not path.exists()):
        return wanted
    if run not in _FILTERS:
        _FILTERS[run] = read_filter(path)
    return wanted[may_hold(_FILTERS[run], wanted)]


def _matching_rows(hashes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of the sorted `hashes` equal to one of the sorted `wanted`: two binary searches per wanted hash,
    so a large run costs what its few matches do, not a pass over it (a hash may repeat: each date's row)."""
    start, stop = np.searchsorted(hashes, wanted, "left"), np.searchsorted(hashes, wanted, "right")
    count = stop - start
    first = np.repeat(start, count)
    return first + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)


def _may_hold(group: pq.RowGroupMetaData, wanted: np.ndarray) -> bool:
    """Whether a wanted hash lies in the row group's [min, max] (True when it has no statistics)."""
    stats = group.column(0).statistics
    if stats is None or not stats.has_min_max:
        return True
    return int(np.searchsorted(wanted, stats.min, "left")) < int(np.searchsorted(wanted, stats.max, "right"))


def _write_run(folder: Path, hashes: np.ndarray, dates: pa.Array | pa.ChunkedArray) -> None:
    """One run, sorted by hash, written atomically (readers see it whole or not at all); its name carries its
    row count, which is all the merging needs to know of it."""
    order = np.argsort(hashes, kind="stable")
    run = pa.table([pa.array(hashes[order]), dates.take(pa.array(order))], schema=RUN_SCHEMA)
    path = folder / f".run-{len(hashes):012d}-{uuid.uuid4().hex}.parquet"
    # The filter first: a run that can be seen has its filter.
    write_atomically(path.with_suffix(FILTER_SUFFIX), lambda staging: write_filter(staging, build_filter(hashes)))
    write_atomically(path, lambda staging: pq.write_table(run, staging, row_group_size=ROW_GROUP))


def _delete_run(run: Path) -> None:
    run.unlink()
    run.with_suffix(FILTER_SUFFIX).unlink(missing_ok=True)


def _runs(folder: Path) -> list[Path]:
    return sorted(folder.glob(".run-*.parquet")) if folder.is_dir() else []


def _tier(run: Path) -> int:
    """floor(log4(rows)), in integers (math.log(64, 4) is 2.9999999999999996)."""
    return (max(int(run.name.split("-")[1]), 1).bit_length() - 1) // 2


def _merge_tiers(folder: Path) -> None:
    """Merge the runs of any tier that holds MERGE_AT of them, until none does. The merged run is written
    before its parts are deleted: a crash in between leaves every entry twice, never none."""
    for orphan in folder.glob(f".run-*{FILTER_SUFFIX}"):  # of a writer that crashed before its run
        if not orphan.with_suffix(".parquet").exists():
            orphan.unlink()
    while True:
        tiers: dict[int, list[Path]] = {}
        for run in _runs(folder):
            tiers.setdefault(_tier(run), []).append(run)
        full = [runs for tier, runs in tiers.items() if len(runs) >= MERGE_AT and tier < LARGEST_MERGED_TIER]
        if not full:
            return
        merged = pa.concat_tables([pq.read_table(run) for run in full[0]])
        _write_run(folder, merged.column("id_hash").to_numpy(), merged.column("event_date"))
        for run in full[0]:
            _delete_run(run)
