"""Batch scoring throughput: Ray Data actor pools vs one process doing the same work.

Run (after `lam demo --workdir ./lam-demo`):
    python benchmarks/batch_scoring.py --workdir ./lam-demo [--repeats 3] [--copies 20]
        [--actors 1 2] [--cpus-per-actor 1] [--threads 1] [--batch-size 2048]
Scaling with actors on a machine with more cores (say 16), against one process with 1 and with 15 threads:
    python benchmarks/batch_scoring.py --workdir ./lam-demo --copies 100 --actors 1 2 4 8 15 --threads 1 15
Leave a core for the driver, Ray's own processes and the reads (hence 15), and score enough customers
(--copies) that each actor gets several batches: at --copies 100 a 3,000-customer demo is ~150 batches.

Every row scores every customer the call-list rules of lam.yaml allow (consent, cool-down, already
converted) for every campaign of its catalogue, from the sequence snapshot at the world's scoring time.
`--copies N` scores the base N times over (ids suffixed), to see throughput past start-up.

What is timed, the same for every row: reading the snapshot (the same columns), loading the artifact and
the profiles, the call-list rules, scoring, and the scores as one DataFrame in this process. Both sides
score with `SnapshotScorer` (lam_platform/ray_jobs/score.py):
- single process: one `SnapshotScorer` call over the whole snapshot, torch threads = --threads.
- ray data: `score_with_ray_data`, which includes starting the actor pool. Each actor is a fresh worker
  process that imports torch and the model code and loads the artifact (a few seconds on 2 cores), as each
  run of the batch job pays.
Not timed, on either side: this process's own imports, and starting Ray (`ray.init`, once before the first
repeat: a batch job on a cluster joins a running one). There is no untimed warm-up and nothing is kept
between repeats (each Ray run starts new actors); the rows run in turn within each repeat, so background
load falls on all of them alike. Reports the median of --repeats: customers/s, seconds, and the ratio to
the first --threads row.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from lam_platform.campaigns.call_list import next_contact_time
from lam_platform.core.workdir import Workdir
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import snapshot_path
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.orchestration.demo import world_clock
from lam_platform.ray_jobs.score import DEFAULT_BATCH_SIZE, SnapshotScorer, score_with_ray_data, snapshot_columns
from lam_platform.ray_jobs.training import ensure_ray


def single_process(
    sequences: Path, artifact: ModelArtifact, profiles: Path, as_of: pd.Timestamp, platform: PlatformConfig
) -> pd.DataFrame:
    """The whole snapshot through one `SnapshotScorer` in this process (torch threads as set by the caller)."""
    catalogue = platform.require_catalogue()
    contact_time = next_contact_time(as_of, catalogue.contact_slots[0])
    scorer = SnapshotScorer(
        str(artifact.path), str(profiles), contact_time, as_of, catalogue.campaigns, platform.call_list.model_dump()
    )
    return scorer(pq.read_table(sequences, columns=snapshot_columns(artifact)))


def _replicate(sequences: Path, profiles: Path, copies: int, folder: Path) -> tuple[Path, Path]:
    """The snapshot and profiles `copies` times over, customer ids suffixed with the copy number. In Arrow:
    the types stay the file's (a pandas round trip drops the zone of listed timestamps), and pandas would
    hold every event id of every copy as a Python string."""
    out = []
    for path, name in ((sequences, "sequences.parquet"), (profiles, "profiles.parquet")):
        table = pq.read_table(path)
        ids, column = table.column("customer_id"), table.schema.get_field_index("customer_id")
        copied = [
            table.set_column(column, "customer_id", pc.binary_join_element_wise(ids, f"-{k}", ""))
            for k in range(copies)
        ]
        pq.write_table(pa.concat_tables(copied), folder / name)
        out.append(folder / name)
    return out[0], out[1]


def _runs(args: argparse.Namespace, sequences: Path, profiles: Path) -> dict[str, Callable[[], pd.DataFrame]]:
    """Each row's run, by name: single process with each --threads, then Ray Data with each --actors."""
    workdir = Workdir.at(args.workdir)
    as_of = world_clock(workdir)
    platform = PlatformConfig.load(workdir.root)
    artifact = ModelArtifact(latest_version(workdir.artifacts, "campaign_response"))
    runs: dict[str, Callable[[], pd.DataFrame]] = {}
    for threads in args.threads:

        def single(threads: int = threads) -> pd.DataFrame:
            torch.set_num_threads(threads)
            return single_process(sequences, artifact, profiles, as_of, platform)

        runs[f"single process ({threads} thread{'s' if threads > 1 else ''})"] = single
    cpus = args.cpus_per_actor
    for actors in args.actors:

        def pool(actors: int = actors) -> pd.DataFrame:
            return score_with_ray_data(sequences, artifact, profiles, as_of, platform, actors, args.batch_size, cpus)

        name = f"ray data, {actors} actor{'s' if actors > 1 else ''}" + (f" x {cpus} cpus" if cpus > 1 else "")
        runs[name] = pool
    return runs


def _measure(runs: dict[str, Callable[[], pd.DataFrame]], repeats: int) -> tuple[int, dict[str, list[float]]]:
    """Seconds of each run per repeat, and the customers scored (the same for every run, or it fails)."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    scored: set[int] = set()
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            scores = run()
            seconds[name].append(time.perf_counter() - started)
            scored.add(scores.customer_id.nunique())
    if len(scored) != 1:
        raise AssertionError(f"the runs scored different numbers of customers: {sorted(scored)}")
    return scored.pop(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="score the base this many times over (ids suffixed), to see throughput past start-up",
    )
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor pool sizes (default 1 2)")
    parser.add_argument("--cpus-per-actor", type=int, default=1, help="cores (torch threads) per actor (default 1)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="single-process torch threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="customers per actor call")
    args = parser.parse_args()
    workdir = Workdir.at(args.workdir)
    sequences, profiles = snapshot_path(workdir.sequences, world_clock(workdir)), workdir.profiles
    scratch = tempfile.TemporaryDirectory()
    if args.copies > 1:
        sequences, profiles = _replicate(sequences, profiles, args.copies, Path(scratch.name))
    ensure_ray(max(args.actors) * args.cpus_per_actor)
    customers, seconds = _measure(_runs(args, sequences, profiles), args.repeats)
    campaigns = len(PlatformConfig.load(workdir.root).require_catalogue().campaigns)
    print(f"{customers} eligible customers x {campaigns} campaigns, median of {args.repeats}")
    base = customers / statistics.median(next(iter(seconds.values())))
    for name, values in seconds.items():
        rate = customers / statistics.median(values)
        print(f"  {name:<28}{rate:>9.0f} customers/s  {statistics.median(values):>6.2f} s   {rate / base:.2f}x")


if __name__ == "__main__":
    main()
