"""Batch scoring throughput: Ray Data with 1 and 2 model actors vs a single-process loop over the same data.

Run (after `lam demo --workdir ./lam-demo`):
    python benchmarks/batch_scoring.py --workdir ./lam-demo [--repeats 3] [--copies 20]

Every run scores every customer the call-list rules of lam.yaml allow (consent, cool-down, already
converted) for every campaign of its catalogue, from the sequence snapshot at the world's scoring time.
Reports customers/s (median of the repeats) and the ratio to the single-process loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.core.workdir import Workdir
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import snapshot_path
from lam_platform.governance.consent import read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.orchestration.demo import world_clock
from lam_platform.ray_jobs.score import score_with_ray_data
from lam_platform.ray_jobs.training import ensure_ray


def single_process(sequences, artifact, profiles, as_of, platform: PlatformConfig) -> int:
    catalogue = platform.require_catalogue()
    rows = pd.read_parquet(sequences).join(
        read_profiles(profiles).drop(columns="event_timestamp").set_index("customer_id"), on="customer_id"
    )
    rows = rows[call_exclusions(rows, as_of, platform.call_list).isna().to_numpy()].reset_index(drop=True)
    contact_time = next_contact_time(as_of, catalogue.contact_slots[0])
    scores = CampaignScorer(artifact).score(rows, contact_time, catalogue.campaigns, 512)
    return scores.customer_id.nunique()


def _replicate(sequences: Path, profiles: Path, copies: int, folder: Path) -> tuple[Path, Path]:
    """The snapshot and profiles `copies` times over, customer ids suffixed with the copy number."""
    out = []
    for path, name in ((sequences, "sequences.parquet"), (profiles, "profiles.parquet")):
        frame = pd.read_parquet(path)
        frame = pd.concat(
            [frame.assign(customer_id=frame.customer_id + f"-{k}") for k in range(copies)], ignore_index=True
        )
        frame.to_parquet(folder / name, index=False)
        out.append(folder / name)
    return out[0], out[1]


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
    args = parser.parse_args()
    workdir = Workdir.at(args.workdir)
    as_of = world_clock(workdir)
    platform = PlatformConfig.load(workdir.root)
    sequences = snapshot_path(workdir.sequences, as_of)
    profiles = workdir.profiles
    scratch = tempfile.TemporaryDirectory()
    if args.copies > 1:
        sequences, profiles = _replicate(sequences, profiles, args.copies, Path(scratch.name))
    artifact = ModelArtifact(latest_version(workdir.artifacts, "campaign_response"))
    ensure_ray(2)
    rates: dict[str, list[float]] = {"single process (1 thread)": [], "ray data, 1 actor": [], "ray data, 2 actors": []}
    for _ in range(args.repeats):
        torch.set_num_threads(1)
        started = time.perf_counter()
        n = single_process(sequences, artifact, profiles, as_of, platform)
        rates["single process (1 thread)"].append(n / (time.perf_counter() - started))
        for actors in (1, 2):
            started = time.perf_counter()
            n = score_with_ray_data(sequences, artifact, profiles, as_of, platform, actors, 512).customer_id.nunique()
            rates[f"ray data, {actors} actor{'s' if actors > 1 else ''}"].append(n / (time.perf_counter() - started))
    base = statistics.median(rates["single process (1 thread)"])
    print(f"{n} eligible customers x {len(platform.require_catalogue().campaigns)} campaigns, median of {args.repeats}")
    for name, values in rates.items():
        print(f"  {name:<28}{statistics.median(values):>9.0f} customers/s   {statistics.median(values) / base:.2f}x")


if __name__ == "__main__":
    main()
