"""Generate a simulated world into a workdir, chunk by chunk: events, profiles, campaign log and ground truth.

Run: `LAM_PSEUDONYM_KEY=... lam simulate --workdir ./lam-demo --customers 3000 --seed 7`
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, write_events, write_table
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.simulation.campaign_waves import draw_outcomes, plan_campaigns
from lam_platform.simulation.catalogue import price_of_offer
from lam_platform.simulation.customers import sample_episodes, sample_profiles
from lam_platform.simulation.touchpoints import generate_events
from lam_platform.simulation.world import WorldConfig


def simulate(config: WorldConfig, workdir: Workdir, pseudonymizer: Pseudonymizer) -> dict[str, int]:
    """Generate the world chunk by chunk and write events, profiles, campaign log and ground truth.

    The simulator plays the source systems: its customers have raw ids (`raw_customer_ids`), and what
    it hands the platform is keyed by their pseudonyms, as ingestion would key it.

    Profiles and the campaign plan are drawn for everyone at once (they are small); wants, outcomes
    and events are drawn per chunk of `chunk_customers` with a generator seeded by (seed, chunk), and
    written as they are made, so memory stays bounded and the same config gives the same bytes.
    """
    rng = np.random.default_rng([config.seed, 0])
    profiles, responsiveness = sample_profiles(config, rng)
    profiles["customer_id"] = pseudonymizer.pseudonyms(profiles.customer_id)  # what the platform is handed
    contacts = plan_campaigns(config, profiles, rng)
    shutil.rmtree(workdir.events, ignore_errors=True)
    logs, episode_parts, n_events = [], [], 0
    edges = np.append(np.arange(0, len(profiles), config.chunk_customers), len(profiles))
    bounds = np.searchsorted(contacts.customer_idx.to_numpy(), edges)  # contacts are sorted by customer
    for k, lo in enumerate(range(0, len(profiles), config.chunk_customers)):
        hi = min(len(profiles), lo + config.chunk_customers)
        chunk_rng = np.random.default_rng([config.seed, k + 1])
        episodes = sample_episodes(config, profiles.iloc[lo:hi], chunk_rng, offset=lo)
        chunk_contacts = contacts.iloc[bounds[k] : bounds[k + 1]].reset_index(drop=True)
        log = draw_outcomes(chunk_contacts, episodes, responsiveness, chunk_rng)
        events = generate_events(config, profiles, episodes, log, chunk_rng, lo, hi)
        write_events(events, workdir.events, append=True, basename=f"chunk-{k:05d}")
        n_events += events.num_rows
        logs.append(log)
        episode_parts.append(episodes)
    campaign_log = pd.concat(logs, ignore_index=True)
    episodes = pd.concat(episode_parts, ignore_index=True)

    write_table(pa.Table.from_pandas(_profile_table(config, profiles), preserve_index=False), workdir.profiles)
    write_table(_campaign_table(config, campaign_log), workdir.campaign_log)
    episodes.assign(customer_id=profiles.customer_id.to_numpy()[episodes.customer_idx]).drop(
        columns=["customer_idx", "key"]
    ).to_parquet(workdir.episodes, index=False)
    pd.DataFrame({"customer_id": profiles.customer_id, "responsiveness": responsiveness}).to_parquet(
        workdir.responsiveness, index=False
    )
    workdir.world_json.write_text(json.dumps(asdict(config), indent=2))
    return {
        "customers": len(profiles),
        "events": n_events,
        "contacts": len(campaign_log),
        "orders": int(campaign_log.outcome.sum()),
    }


def _profile_table(config: WorldConfig, profiles: pd.DataFrame) -> pd.DataFrame:
    """Profiles as a Feast source: one row per customer, valid from the day before the world starts."""
    table = profiles.drop(columns="billing_day").copy()
    table["tenure_months"] = table.tenure_months.astype("int64")
    table["event_timestamp"] = config.world_start - pd.Timedelta(days=1)
    return table


def _campaign_table(config: WorldConfig, log: pd.DataFrame) -> pa.Table:
    frame = pd.DataFrame(
        {
            "customer_id": log.customer_id.to_numpy(),
            "event_timestamp": config.world_start + pd.to_timedelta(np.round(log.day.to_numpy() * 86_400e6), unit="us"),
            "campaign_id": log.campaign_id.to_numpy(),
            "offer": log.offer.to_numpy(),
            "method": log.method.to_numpy(),
            "treatment": log.treatment.to_numpy().astype("int64"),
            "policy": log.policy.to_numpy(),
            "outcome": log.outcome.to_numpy().astype("int64"),
            "outcome_value": np.where(log.outcome, price_of_offer(log.offer.to_numpy()), np.nan),
            "propensity": log.propensity.to_numpy(dtype=float),
        }
    )
    frame = frame.sort_values(["event_timestamp", "customer_id"], kind="stable")
    return pa.Table.from_pandas(frame, preserve_index=False).cast(
        pa.schema(
            [
                ("customer_id", pa.string()),
                ("event_timestamp", TIMESTAMP),
                ("campaign_id", pa.string()),
                ("offer", pa.string()),
                ("method", pa.string()),
                ("treatment", pa.int64()),
                ("policy", pa.string()),
                ("outcome", pa.int64()),
                ("outcome_value", pa.float64()),
                ("propensity", pa.float64()),
            ]
        )
    )
