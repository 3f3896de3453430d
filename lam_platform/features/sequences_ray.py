"""The sequence builder on Ray Data, for event tables larger than one machine's memory.

Events and queries are hash-partitioned by customer into shards (Ray Data writes the event
shards), then each shard runs the single-machine `build_sequences` as a Ray task. A customer's
events and queries always land in the same shard, so the result equals `build_sequences` on the
whole table, row for row (tested).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lam_platform.data.events import EventAttributes, with_attributes
from lam_platform.features.sequences import build_sequences, sequence_schema, utc_timestamps


def shard_of(customer_ids, num_shards: int) -> np.ndarray:
    """A stable shard number per customer id (the same on every worker and every run)."""
    return (pd.util.hash_array(np.asarray(customer_ids, dtype=object)) % num_shards).astype(np.int64)


def with_shard(batch: pa.RecordBatch | pa.Table, num_shards: int) -> pa.RecordBatch | pa.Table:
    """The events with a `shard` column: each customer's shard (`shard_of`)."""
    ids = batch.column("customer_id").to_numpy(zero_copy_only=False)
    return batch.append_column("shard", pa.array(shard_of(ids, num_shards)))


def build_sequences_ray(
    events_path: Path, customer_ids: list[str], as_of: pa.Array, max_len: int, num_shards: int = 8
) -> pa.Table:
    """Like `build_sequences`, reading the event table with Ray Data and building shards in parallel."""
    import ray

    as_of = utc_timestamps(as_of)
    attributes = EventAttributes.of_events(events_path)
    schema = attributes.schema()
    with tempfile.TemporaryDirectory(prefix="lam-shards-") as tmp:
        shards = Path(tmp)

        def add_shard(batch: pa.Table) -> pa.Table:
            return with_shard(with_attributes(batch, attributes).cast(schema), num_shards)

        events = ray.data.read_parquet(
            str(events_path), partitioning=ray.data.datasource.Partitioning("hive"), file_extensions=["parquet"]
        )
        events.map_batches(add_shard, batch_format="pyarrow").write_parquet(
            str(shards / "events"), partition_cols=["shard"]
        )
        queries = pa.table(
            {
                "customer_id": pa.array(customer_ids, pa.string()),
                "as_of": as_of,
                "row": pa.array(np.arange(len(customer_ids))),
            }
        )
        query_shard = shard_of(customer_ids, num_shards)
        (shards / "queries").mkdir()
        for k in range(num_shards):
            pq.write_table(queries.filter(pa.array(query_shard == k)), shards / "queries" / f"{k}.parquet")

        def build_shard(batch: dict) -> pa.Table:
            k = int(batch["shard"][0])
            folder = shards / "events" / f"shard={k}"
            shard_events = (
                ds.dataset(folder, format="parquet").to_table(columns=schema.names)
                if folder.exists()
                else schema.empty_table()
            )
            shard_queries = pq.read_table(shards / "queries" / f"{k}.parquet")
            table = build_sequences(
                shard_events.cast(schema), shard_queries.column("customer_id"), shard_queries.column("as_of"), max_len
            )
            return table.append_column("row", shard_queries.column("row"))

        built = ray.data.from_items([{"shard": k} for k in range(num_shards)]).map_batches(
            build_shard, batch_size=1, batch_format="numpy"
        )
        result = pa.concat_tables(ray.get(built.to_arrow_refs()))
    return result.sort_by("row").drop_columns(["row"]).cast(sequence_schema(attributes))
