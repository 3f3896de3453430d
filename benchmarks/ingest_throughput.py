"""Ingestion throughput: `ingest` (map, validate, dedupe, quarantine, write) against the floor it
adds to, pyarrow reading the same raw files and writing the same rows as a date-partitioned
Parquet dataset with no validation.

Run:  python benchmarks/ingest_throughput.py --customers 5000 --repeats 3
Raw tables come from the simulator (`export_raw_channels`) and infra/channels.example.yaml. The last line
times one re-ingest of the same files into the first workdir (not part of the ratio): deduplication
against a stored table, through its id index (lam_platform/data/event_id_index.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig
from lam_platform.data.events import read_events
from lam_platform.data.ingest import ingest
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.simulation.raw_export import export_raw_channels
from lam_platform.simulation.world import WorldConfig, raw_customer_ids
from lam_platform.simulation.world_writer import simulate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def floor(config: ChannelConfig, out: Path) -> int:
    """Read every raw file with pyarrow and write its rows partitioned by date, nothing else."""
    rows = 0
    for mapping in config.channels.values():
        for path in mapping.source_files(config.base):
            table = pcsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
            stamps = table.column(mapping.when)
            dates = pc.utf8_slice_codeunits(stamps.cast(pa.string()), 0, 10)
            ds.write_dataset(
                table.append_column("event_date", dates),
                out,
                format="parquet",
                partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
                existing_data_behavior="overwrite_or_ignore",
                basename_template=f"{path.parent.name}-{path.stem}-{{i}}.parquet",
            )
            rows += table.num_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = Workdir.at(tmp / "world").make()
        pseudonymizer = Pseudonymizer.ephemeral()
        simulate(WorldConfig(n_customers=args.customers, seed=1), world, pseudonymizer)
        export_raw_channels(
            read_events(world.events), tmp / "raw", pseudonymizer.matcher(raw_customer_ids(args.customers))
        )
        shutil.copy(PROJECT_ROOT / "infra" / "channels.example.yaml", tmp / "channels.yaml")
        config = ChannelConfig.load(tmp / "channels.yaml")
        ours, base = [], []
        for k in range(args.repeats):
            started = time.perf_counter()
            report = ingest(config, Workdir.at(tmp / f"ingest-{k}"), pseudonymizer)
            ours.append(time.perf_counter() - started)
            assert report.balanced() and report.accepted == report.rows_in
            started = time.perf_counter()
            rows = floor(config, tmp / f"floor-{k}")
            base.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = ingest(config, Workdir.at(tmp / "ingest-0"), pseudonymizer)
        again_s = time.perf_counter() - started
        assert again.balanced() and again.duplicates == again.rows_in
        ours_s, base_s = statistics.median(ours), statistics.median(base)
        print(f"{rows:,} raw rows in {len(list((tmp / 'raw').rglob('*.*')))} files (CSV and Parquet)")
        print(f"  lam ingest            {ours_s:7.2f}s  {rows / ours_s / 1e3:8.0f}k events/s")
        print(f"  pyarrow read + write  {base_s:7.2f}s  {rows / base_s / 1e3:8.0f}k events/s")
        print(f"  ingest takes {ours_s / base_s:.1f}x the floor's time (median of {args.repeats})")
        print(f"  the same files again  {again_s:7.2f}s  (every row a duplicate; the first lookup builds the id index)")


if __name__ == "__main__":
    main()
