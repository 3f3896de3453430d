"""Batch-score the whole base with Ray Data: a pool of model actors over the offline sequence table.

Run:  python -m lam_platform.ray_jobs.score --workdir ./lam-demo [--as-of T] [--actors 2]
        [--batch-size 512] [--capacity 150]
On a cluster:  ray job submit -- python -m lam_platform.ray_jobs.score --workdir <shared path> --as-of T
Reads lam.yaml, the sequence snapshot materialized at T (`lam materialize --as-of T`) and the profiles;
every customer the call-list rules allow is scored for every campaign of the catalogue by `map_batches`
over an actor pool (each actor loads the artifact once). Writes outputs/call_list.{parquet,csv} and
scores.parquet and pushes each customer's best campaign into the `lam_scores` feature view, as `lam score`
does from the online store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

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
from lam_platform.ray_jobs.training import ensure_ray


class CampaignScoringActor:
    """One model replica: loads the artifact and the profiles once, then scores batches of sequences."""

    def __init__(
        self,
        artifact_path: str,
        profiles_path: str,
        contact_time: pd.Timestamp,
        as_of: pd.Timestamp,
        campaigns: list[tuple[str, str]],
        rules: dict,
    ) -> None:
        import torch

        torch.set_num_threads(1)  # one core per actor: the pool size sets the parallelism
        self.scorer = CampaignScorer(ModelArtifact(Path(artifact_path)))
        self.profiles = read_profiles(profiles_path).drop(columns="event_timestamp").set_index("customer_id")
        self.contact_time, self.as_of, self.campaigns = contact_time, as_of, campaigns
        self.rules = CallListRules(**rules)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.join(self.profiles, on="customer_id")
        # The call-list rules of `lam score` and the API: consent, cool-down, already converted.
        rows = rows[call_exclusions(rows, self.as_of, self.rules).isna().to_numpy()].reset_index(drop=True)
        if rows.empty:
            return pd.DataFrame(
                columns=["customer_id", "offer", "method", "p_order_if_called", "p_order_if_not_called", "uplift"]
            )
        return self.scorer.score(rows, self.contact_time, self.campaigns)


def score_with_ray_data(
    sequences: Path,
    artifact: ModelArtifact,
    profiles: Path,
    as_of: pd.Timestamp,
    platform: PlatformConfig,
    actors: int,
    batch_size: int,
) -> pd.DataFrame:
    """Every customer the call-list rules allow x every campaign, scored by `actors` model replicas."""
    import ray.data

    catalogue = platform.require_catalogue()
    contact_time = next_contact_time(as_of, catalogue.contact_slots[0])
    dataset = ray.data.read_parquet(str(sequences), num_cpus=0)
    scored = dataset.map_batches(
        CampaignScoringActor,
        fn_constructor_args=(
            str(artifact.path),
            str(profiles),
            contact_time,
            as_of,
            catalogue.campaigns,
            platform.call_list.model_dump(),
        ),
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    return scored.to_pandas()


def run(
    workdir: Workdir,
    as_of: pd.Timestamp,
    actors: int = 2,
    batch_size: int = 512,
    capacity: int | None = None,
    artifact_path: Path | None = None,
) -> dict:
    """Score from the sequence snapshot at `as_of` and publish, under the workdir's shared governance lock
    (an erasure or consent change waits for it, or finishes before it reads)."""
    with governance_lock(workdir.root, shared=True):
        return _run(workdir, as_of, actors, batch_size, capacity, artifact_path)


def _run(
    workdir: Workdir,
    as_of: pd.Timestamp,
    actors: int,
    batch_size: int,
    capacity: int | None,
    artifact_path: Path | None,
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
    ensure_ray(actors)
    started = time.perf_counter()
    scores = score_with_ray_data(sequences, artifact, workdir.profiles, as_of, platform, actors, batch_size)
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
    parser.add_argument("--batch-size", type=int, default=512, help="customers per batch (default 512)")
    parser.add_argument("--capacity", type=int, default=None, help="calls in the list (default 5%% of customers)")
    parser.add_argument("--artifact", type=Path, default=None, help="artifact folder (default: the latest)")
    args = parser.parse_args(argv)
    workdir = Workdir.at(args.workdir)
    as_of = parse_as_of(args.as_of) if args.as_of else newest_snapshot(workdir)
    print(json.dumps(run(workdir, as_of, args.actors, args.batch_size, args.capacity, args.artifact), default=str))


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
