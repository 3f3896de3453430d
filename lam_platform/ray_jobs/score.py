"""Batch-score the whole base with Ray Data: a pool of model actors over the offline sequence table.

Run:  python -m lam_platform.ray_jobs.score --workdir ./lam-demo [--as-of T] [--actors 2]
        [--cpus-per-actor 1] [--batch-size 2048] [--capacity 150]
On a cluster:  ray job submit -- python -m lam_platform.ray_jobs.score --workdir <shared path> --as-of T
Reads lam.yaml, the sequence snapshot materialized at T (`lam materialize --as-of T`) and the profiles;
every customer the call-list rules allow is scored for every campaign of the catalogue by `map_batches`
over an actor pool (each actor loads the artifact and the profiles once). Writes
outputs/call_list.{parquet,csv} and scores.parquet and pushes each customer's best campaign into the
`lam_scores` feature view, as `lam score` does from the online store.

Throughput against one process doing the same work: benchmarks/batch_scoring.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.campaigns.scoring import publish_scores
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import CallListRules, PlatformConfig, PlatformConfigError
from lam_platform.features.store import open_store, schema_fingerprint, snapshot_path, snapshot_times
from lam_platform.governance.consent import read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.lightning_modules.batches import EventBatch, dataclass_from_arrays
from lam_platform.ray_jobs.training import ensure_ray

if TYPE_CHECKING:
    import ray.data

DEFAULT_BATCH_SIZE = 2048  # customers per actor call: per-call costs (pandas, the rules) stay ~3% of it
MODEL_BATCH = 512  # customers per backbone call inside a batch: bounds the activations' memory
# The sequence lists `call_exclusions` reads: only these become pandas (the tokenizer reads Arrow).
RULE_LISTS = ["event_timestamps", "channels", "actions"]
SCORE_DTYPES = {
    "customer_id": "object",
    "offer": "object",
    "method": "object",
    "contact_time": "datetime64[us, UTC]",
    "p_order_if_called": "float32",
    "p_order_if_not_called": "float32",
    "uplift": "float32",
}  # the columns and types of `CampaignScorer.score_state`, for a batch in which no one may be called


def empty_scores() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in SCORE_DTYPES.items()})


def snapshot_columns(artifact: ModelArtifact) -> list[str]:
    """The snapshot columns batch scoring reads: the customer and the event lists the tokenizer encodes (the
    call-list rules read a subset of them). Event ids, `seq_len` and the snapshot time are left on disk."""
    return ["customer_id", *artifact.tokenizer.list_types()]


class SnapshotScorer:
    """Scores Arrow batches of the sequence snapshot: profiles, call-list rules, then every campaign.

    A Ray Data actor (`score_with_ray_data`) and the single-process reference of benchmarks/batch_scoring.py
    run this same class, so the two differ only in how batches reach it. Loads the artifact and the current
    profiles once (in an actor: once per replica, not per batch).
    """

    def __init__(
        self,
        artifact_path: str,
        profiles_path: str,
        contact_time: pd.Timestamp,
        as_of: pd.Timestamp,
        campaigns: list[tuple[str, str]],
        rules: dict,
        threads: int | None = None,
    ) -> None:
        if threads is not None:
            # An actor uses the cores Ray gave it (its num_cpus); more threads than that oversubscribe them.
            torch.set_num_threads(threads)
        self.scorer = CampaignScorer(ModelArtifact(Path(artifact_path)))
        # Indexed once: each batch looks its customers up in this hash index (`reindex`); a DataFrame.join
        # would factorize every profile again on every batch. Current profiles hold one row per customer.
        self.profiles = read_profiles(profiles_path).drop(columns="event_timestamp").set_index("customer_id")
        self.list_types = self.scorer.tokenizer.list_types()
        self.contact_time, self.as_of, self.campaigns = contact_time, as_of, campaigns
        self.rules = CallListRules(**rules)

    def __call__(self, batch: pa.Table) -> pd.DataFrame:
        rows = self.with_profiles(batch)
        # The call-list rules of `lam score` and the API: consent, cool-down, already converted.
        allowed = call_exclusions(rows, self.as_of, self.rules).isna().to_numpy()
        if not allowed.any():
            return empty_scores()
        return self.score_allowed(batch.filter(allowed), rows[allowed].reset_index(drop=True))

    def with_profiles(self, batch: pa.Table) -> pd.DataFrame:
        """The customers and the lists the rules read, as pandas, with each customer's profile columns
        (missing for a customer with no profile, as a left join gives)."""
        rows = batch.select(["customer_id", *RULE_LISTS]).to_pandas()
        profiles = self.profiles.reindex(rows.customer_id.to_numpy())
        return pd.concat([rows, profiles.reset_index(drop=True)], axis=1)

    @torch.no_grad()
    def score_allowed(self, sequences: pa.Table, rows: pd.DataFrame) -> pd.DataFrame:
        """Every campaign for customers who may be called: `sequences` (Arrow) and `rows` (pandas, with the
        profiles) hold the same customers in the same order."""
        frames = []
        for lo in range(0, len(rows), MODEL_BATCH):
            state, last_event_us = self.encode(sequences.slice(lo, MODEL_BATCH))
            chunk = rows.iloc[lo : lo + MODEL_BATCH].reset_index(drop=True)
            frames.append(self.scorer.score_state(chunk, state, last_event_us, self.campaigns, [self.contact_time]))
        return pd.concat(frames, ignore_index=True)

    def encode(self, sequences: pa.Table) -> tuple[torch.Tensor, np.ndarray]:
        """Customer states and last event times, the event lists encoded straight from Arrow.

        `CampaignScorer.encode` takes pandas rows and rebuilds these Arrow lists from them
        (`online_rows_to_sequences`); the snapshot already holds them, so that round trip is skipped. A null
        list encodes as an empty one either way (no events).
        """
        table = pa.table({name: sequences.column(name).cast(kind) for name, kind in self.list_types.items()})
        arrays = self.scorer.tokenizer.encode_events(table)
        last_event_us = arrays.pop("last_event_us")
        return self.scorer.backbone(dataclass_from_arrays(EventBatch, arrays)).customer, last_event_us


def score_with_ray_data(
    sequences: Path,
    artifact: ModelArtifact,
    profiles: Path,
    as_of: pd.Timestamp,
    platform: PlatformConfig,
    actors: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cpus_per_actor: int = 1,
) -> pd.DataFrame:
    """Every customer the call-list rules allow x every campaign, scored by `actors` model replicas of
    `cpus_per_actor` cores (torch threads) each, `batch_size` customers per call."""
    import ray.data

    catalogue = platform.require_catalogue()
    contact_time = next_contact_time(as_of, catalogue.contact_slots[0])
    # Only the columns scoring reads leave the file (event ids are most of the snapshot's bytes).
    dataset = ray.data.read_parquet(str(sequences), num_cpus=0).select_columns(snapshot_columns(artifact))
    # A snapshot file is one or a few row groups, so the read gives a few large blocks, and an actor takes
    # a block whole: split them (streaming, no shuffle) into batch-sized blocks that the actors share evenly.
    dataset = dataset.repartition(target_num_rows_per_block=batch_size)
    scored = dataset.map_batches(
        SnapshotScorer,
        fn_constructor_args=(
            str(artifact.path),
            str(profiles),
            contact_time,
            as_of,
            catalogue.campaigns,
            platform.call_list.model_dump(),
            cpus_per_actor,
        ),
        batch_size=batch_size,
        batch_format="pyarrow",  # the snapshot's lists stay Arrow for the tokenizer; see SnapshotScorer.encode
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    return collect(scored)


def collect(scored: ray.data.Dataset) -> pd.DataFrame:
    """The scores in the driver with the column types of the single-process path (numpy-backed).

    `Dataset.to_pandas` gives Arrow-backed columns instead, on which e.g. `==` against a numpy timestamp
    column is False for equal times. A batch with no one to call has untyped (null) string columns:
    `promote_options` lets them join the typed ones.
    """
    tables = list(scored.iter_batches(batch_format="pyarrow", batch_size=None))
    if not tables:  # an empty snapshot
        return empty_scores()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def run(
    workdir: Workdir,
    as_of: pd.Timestamp,
    actors: int = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    capacity: int | None = None,
    artifact_path: Path | None = None,
    cpus_per_actor: int = 1,
) -> dict:
    """Score from the sequence snapshot at `as_of` and publish, under the workdir's shared governance lock
    (an erasure or consent change waits for it, or finishes before it reads)."""
    with governance_lock(workdir.root, shared=True):
        return _run(workdir, as_of, actors, batch_size, capacity, artifact_path, cpus_per_actor)


def _run(
    workdir: Workdir,
    as_of: pd.Timestamp,
    actors: int,
    batch_size: int,
    capacity: int | None,
    artifact_path: Path | None,
    cpus_per_actor: int,
) -> dict:
    platform = PlatformConfig.load(workdir.root)
    if not platform.contact_allowed:
        raise PlatformConfigError(f"{workdir.config}: consent is `analysis_only`, so no call list is built")
    sequences = snapshot_path(workdir.sequences, as_of)
    if not sequences.exists():
        raise FileNotFoundError(
            f"no sequence snapshot at {as_of.isoformat()} in {workdir.sequences}: "
            f"run `lam materialize --workdir {workdir.root}` first"
        )
    store = open_store(workdir)
    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts, "campaign_response"))
    artifact.check_schema(schema_fingerprint(store))
    ensure_ray(actors * cpus_per_actor)
    started = time.perf_counter()
    scores = score_with_ray_data(
        sequences, artifact, workdir.profiles, as_of, platform, actors, batch_size, cpus_per_actor
    )
    seconds = time.perf_counter() - started
    customers = scores.customer_id.nunique()
    n_customers = len(read_profiles(workdir.profiles, columns=["customer_id"]))
    published = publish_scores(
        workdir, store, scores, as_of, artifact, capacity or platform.call_list.calls_for(n_customers)
    )
    return {
        **published,
        "scored": customers,
        "actors": actors,
        "cpus_per_actor": cpus_per_actor,
        "seconds": round(seconds, 2),
        "customers_per_second": round(customers / seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument(
        "--as-of",
        default=None,
        help="scoring time, with zone: a materialized snapshot's (default: the newest snapshot)",
    )
    parser.add_argument("--actors", type=int, default=2, help="model replicas in the actor pool (default 2)")
    parser.add_argument(
        "--cpus-per-actor", type=int, default=1, help="cores (torch threads) per model replica (default 1)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"customers per actor call (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--capacity", type=int, default=None, help="calls in the list (default 5%% of customers)")
    parser.add_argument("--artifact", type=Path, default=None, help="artifact folder (default: the latest)")
    args = parser.parse_args(argv)
    workdir = Workdir.at(args.workdir)
    as_of = parse_as_of(args.as_of) if args.as_of else newest_snapshot(workdir)
    result = run(workdir, as_of, args.actors, args.batch_size, args.capacity, args.artifact, args.cpus_per_actor)
    print(json.dumps(result, default=str))


def newest_snapshot(workdir: Workdir) -> pd.Timestamp:
    """The as-of time of the last materialization: what batch scoring scores by default."""
    times = snapshot_times(workdir)
    if not times:
        raise FileNotFoundError(
            f"no sequence snapshot in {workdir.sequences}: run `lam materialize --workdir "
            f"{workdir.root} --as-of T` first"
        )
    return times[-1]


if __name__ == "__main__":
    main()
