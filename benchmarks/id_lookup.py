"""What one ingest batch's dedupe lookup costs against an event id index of N stored ids, with the runs' Bloom
filters and without them (an index written before filters existed), side by side on the same index.

Run:
    python benchmarks/id_lookup.py --stored 10000000 50000000 --batch 1000000 [--repeats 3]

The index is built as `lam ingest` builds it (runs of a batch each, merged by tier), from random 64-bit
hashes with dates over 540 days; the batch holds new ids plus 1% already stored. Reported: the lookup's wall
time (median of the repeats) and how many row groups it read; the filterless lookup reads every row group
once the batch has more ids than the index has row groups.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lam_platform.data import event_id_index as index


def build(folder: Path, stored: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """An index of `stored` random hashes written a batch at a time; returns the hashes."""
    days = np.array([f"2025-{1 + d // 28 % 12:02d}-{1 + d % 28:02d}" for d in range(540)])
    hashes = rng.integers(-(2**63), 2**63 - 1, stored, dtype=np.int64)
    for start in range(0, stored, batch):
        part = hashes[start : start + batch]
        index._write_run(folder, part, pa.array(days[rng.integers(0, len(days), len(part))]))
        index._merge_tiers(folder)
    return hashes


def lookup(folder: Path, wanted: np.ndarray, repeats: int) -> tuple[float, int]:
    """Median seconds of `candidate_dates` for the hashes `wanted`, and the row groups it read."""
    read = 0
    original = pq.ParquetFile.read_row_groups

    def counting(self, groups, *args, **kwargs):
        nonlocal read
        read += len(groups)
        return original(self, groups, *args, **kwargs)

    index.id_hashes = lambda ids: np.asarray(ids)  # the wanted ids are hashes already
    pq.ParquetFile.read_row_groups = counting
    try:
        times = []
        for _ in range(repeats):
            read, started = 0, time.perf_counter()
            index.candidate_dates(folder.parent, wanted)
            times.append(time.perf_counter() - started)
    finally:
        pq.ParquetFile.read_row_groups = original
    return statistics.median(times), read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'stored ids':>12} {'runs':>5} {'filters':>8} {'lookup s':>9} {'row groups read':>16}")
    for stored in args.stored:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / index.INDEX
            folder.mkdir()
            hashes = build(folder, stored, args.batch, rng)
            new = rng.integers(-(2**63), 2**63 - 1, args.batch, dtype=np.int64)
            wanted = np.concatenate([new[: -args.batch // 100], rng.choice(hashes, args.batch // 100)])
            runs = len(list(folder.glob(".run-*.parquet")))
            for filters in (True, False):
                index._FILTERS.clear()
                if not filters:
                    for bloom in folder.glob(f".run-*{index.FILTER_SUFFIX}"):
                        bloom.unlink()
                seconds, groups = lookup(folder, wanted, args.repeats)
                print(f"{stored:>12,} {runs:>5} {'yes' if filters else 'no':>8} {seconds:>9.2f} {groups:>16,}")


if __name__ == "__main__":
    main()
