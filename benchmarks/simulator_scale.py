"""Simulator throughput and peak memory at a given size.

Run:  python benchmarks/simulator_scale.py --customers 100000
      python benchmarks/simulator_scale.py --customers 1000000 --keep ./world-1m   (keeps the output)
One size per process, so the peak resident memory printed belongs to that size alone.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.simulation.world import WorldConfig
from lam_platform.simulation.world_writer import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="write the world here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lam-sim-"))
    started = time.perf_counter()
    counts = simulate(
        WorldConfig(n_customers=args.customers, seed=args.seed), Workdir.at(root).make(), Pseudonymizer.ephemeral()
    )
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
    size_gib = sum(f.stat().st_size for f in Workdir.at(root).events.rglob("*.parquet")) / 2**30
    print(f"customers {counts['customers']:,}  events {counts['events']:,}  contacts {counts['contacts']:,}")
    print(
        f"wall {seconds:.1f}s  {counts['events'] / seconds / 1e3:.0f}k events/s  peak RSS {peak_gib:.2f} GiB  "
        f"event table {size_gib:.2f} GiB on disk"
    )
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
