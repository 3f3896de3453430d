"""Sequence building: events/s of `build_sequences` against a DuckDB window query computing the same
last-N lists, on a simulated world, for a snapshot (every customer at one time) and an entity frame
(random customers at random times, as training sets use).

Run:  python benchmarks/sequence_builder.py --customers 20000 --repeats 5
Prints medians of `--repeats` runs, events/s (rows of the event table per second) and the ratio.
Both sides read the same in-memory Arrow table; the check at the end compares their lists.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, read_events
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.features.sequences import build_sequences
from lam_platform.simulation.world import WorldConfig, raw_customer_ids
from lam_platform.simulation.world_writer import simulate

LISTS = {
    "event_ids": "event_id",
    "event_timestamps": "event_timestamp",
    "channels": "channel",
    "objects": "object",
    "actions": "action",
    "amount_seq": "amount",
    "duration_s_seq": "duration_s",
    "payment_method_seq": "coalesce(payment_method, '')",
}  # the builder writes "" for missing


def duckdb_sequences(con: duckdb.DuckDBPyConnection, events: pa.Table, queries: pa.Table, max_len: int) -> pa.Table:
    """The reference: join each query to its customer's earlier events, keep the last N, aggregate lists."""
    con.register("events", events)
    con.register("queries", queries)
    lists = ", ".join(f"list({col} ORDER BY event_timestamp) AS {name}" for name, col in LISTS.items())
    sql = f"""
        WITH ranked AS (
            SELECT q.row_id, e.*, row_number() OVER (PARTITION BY q.row_id ORDER BY e.event_timestamp DESC) AS rn
            FROM queries q JOIN events e ON e.customer_id = q.customer_id AND e.event_timestamp < q.as_of
        )
        SELECT row_id, count(*) AS seq_len, {lists} FROM ranked WHERE rn <= {max_len} GROUP BY row_id ORDER BY row_id
    """
    return con.sql(sql).to_arrow_table()


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=50000, help="rows of the entity-frame scenario")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir.at(tmp).make()
        config = WorldConfig(n_customers=args.customers, seed=1)
        pseudonymizer = Pseudonymizer.ephemeral()
        simulate(config, workdir, pseudonymizer)
        events = read_events(workdir.events)
    print(f"event table: {events.num_rows:,} events, {args.customers:,} customers, N={args.max_len}")
    rng = np.random.default_rng(0)
    ids = np.array(pseudonymizer.pseudonyms(raw_customer_ids(args.customers)), dtype=object)
    scenarios = {
        "snapshot (all customers, one time)": (ids, np.full(len(ids), config.scoring_time)),
        f"entity frame ({args.queries:,} random rows)": (
            rng.choice(ids, size=args.queries),
            config.world_start + pd.to_timedelta(rng.integers(0, config.total_days * 86400, args.queries), unit="s"),
        ),
    }
    con = duckdb.connect()
    con.execute("SET threads TO 2")  # this machine's cores; ours is single-threaded
    for title, (customers, times) in scenarios.items():
        as_of = pa.array(
            pd.DatetimeIndex(times).tz_convert("UTC")
            if pd.DatetimeIndex(times).tz
            else pd.DatetimeIndex(times).tz_localize("UTC"),
            TIMESTAMP,
        )
        queries = pa.table(
            {"row_id": np.arange(len(customers)), "customer_id": pa.array(customers, pa.string()), "as_of": as_of}
        )
        ours_s, ours = timed(
            lambda queries=queries, as_of=as_of: build_sequences(
                events, queries.column("customer_id"), as_of, args.max_len
            ),
            args.repeats,
        )
        duck_s, duck = timed(lambda queries=queries: duckdb_sequences(con, events, queries, args.max_len), args.repeats)
        # Same lists? DuckDB drops queries with no earlier event; compare the rows it has.
        ours_objects = ours.column("objects").to_pylist()
        duck_rows = duck.column("row_id").to_pylist()
        mismatches = sum(ours_objects[r] != o for r, o in zip(duck_rows, duck.column("objects").to_pylist()))
        print(f"\n{title}:")
        print(f"  build_sequences  {ours_s * 1000:8.1f} ms  {events.num_rows / ours_s / 1e6:6.2f} M events/s")
        print(f"  duckdb window    {duck_s * 1000:8.1f} ms  {events.num_rows / duck_s / 1e6:6.2f} M events/s")
        print(
            f"  ratio ours/duckdb speed: {duck_s / ours_s:.2f}x   rows compared: {len(duck_rows):,}, "
            f"differing object lists: {mismatches}"
        )


if __name__ == "__main__":
    main()
