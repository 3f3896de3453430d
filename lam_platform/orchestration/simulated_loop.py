"""The closed loop on the simulator: call -> outcome -> update, outcomes drawn from the ground truth.

Run: `lam simulate-loop --workdir ./lam-demo --rounds 3` (after `lam finetune`). Writes
WORKDIR/outputs/closed_loop/round-<r>.parquet and rounds.json (order rate per round, shown by `lam report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time, rank_call_list
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.core.workdir import Workdir
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import online_features, open_store
from lam_platform.governance.consent import read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, versions_with_head
from lam_platform.orchestration.closed_loop import close_loop
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.simulation.ground_truth import GroundTruth
from lam_platform.simulation.world import load_ground_truth, load_world_config


@dataclass(frozen=True)
class RoundOutcomes:
    """One round's listed customers, who of them was called, and what the ground truth drew for them."""

    outcomes: pd.DataFrame  # the round's campaign log rows, as close_loop reads them
    treated: np.ndarray  # called (True) or held out as control (False), per listed row
    p_called: np.ndarray  # the ground truth's P(order | called) at the contact time
    p_not: np.ndarray  # and P(order | not called)


def simulate_rounds(
    workdir: Workdir,
    job: JobConfig,
    rounds: int = 3,
    capacity: int = 50,
    holdout: float = 0.2,
    days_between: int = 7,
    seed: int = 0,
) -> pd.DataFrame:
    """Call -> outcome -> update, `rounds` times, on the simulator; returns and saves the order rate per round.

    Each round scores the consenting customers not called in an earlier round with the newest version,
    calls the top `capacity` (a random `holdout` share of them is held out as controls), draws outcomes
    from the ground truth at the contact time, and closes the loop on them.
    """
    rng = np.random.default_rng(seed)
    platform = PlatformConfig.load(workdir.root)
    catalogue = platform.require_catalogue()
    # Consent only: the loop calls each customer once, and its contacts are not events the store holds.
    rules = platform.call_list.model_copy(update={"cooldown_days": 0.0, "converted_within_days": 0.0})
    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    store = open_store(workdir)
    profiles = read_profiles(workdir.profiles)
    called: set[str] = set()
    rows = []
    for r in range(1, rounds + 1):
        as_of = world.scoring_time + pd.Timedelta(days=days_between * (r - 1))
        contact = next_contact_time(as_of, catalogue.contact_slots[0])
        version = versions_with_head(workdir.artifacts, "campaign_response")[-1]
        scorer = CampaignScorer(ModelArtifact(version))
        online = online_features(store, profiles.customer_id.tolist())
        eligible = online[call_exclusions(online, as_of, rules).isna().to_numpy() & ~online.customer_id.isin(called)]
        scores = scorer.score(eligible.reset_index(drop=True), contact, catalogue.campaigns)
        listed = rank_call_list(scores, capacity)
        drawn = _call_and_observe(listed, truth, contact, holdout, rng, campaign_id=f"loop-{r}")
        path = workdir.outputs / "closed_loop" / f"round-{r}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        drawn.outcomes.to_parquet(path, index=False)
        update = close_loop(workdir, path, job)
        called |= set(listed.customer_id)
        rows.append(_round_summary(r, version, drawn, update))
    table = pd.DataFrame(rows)
    (workdir.outputs / "closed_loop" / "rounds.json").write_text(json.dumps(rows, indent=2))
    return table


def _call_and_observe(
    listed: pd.DataFrame,
    truth: GroundTruth,
    contact: pd.Timestamp,
    holdout: float,
    rng: np.random.Generator,
    campaign_id: str,
) -> RoundOutcomes:
    """Hold out a random `holdout` share of the list as controls, call the rest, draw every row's outcome."""
    treated = rng.random(len(listed)) >= holdout
    p_called, p_not = truth.order_probability(
        listed.customer_id.to_numpy(), listed.offer.to_numpy(), listed.method.to_numpy(), contact
    )
    p = np.where(treated, p_called, p_not)
    outcomes = pd.DataFrame(
        {
            "customer_id": listed.customer_id,
            "event_timestamp": contact,
            "campaign_id": campaign_id,
            "offer": listed.offer,
            "method": listed.method,
            "treatment": treated.astype(int),
            "outcome": (rng.random(len(listed)) < p).astype(int),
            "policy": "lam",
            "propensity": np.where(treated, 1 - holdout, holdout),
        }
    )
    return RoundOutcomes(outcomes, treated, p_called, p_not)


def _round_summary(r: int, version: Path, drawn: RoundOutcomes, update: dict) -> dict:
    """One row of rounds.json: who was called, their observed and expected order rates, and the update."""
    treated, p_called, p_not = drawn.treated, drawn.p_called, drawn.p_not
    return {
        "round": r,
        "model_version": version.name,
        "called": int(treated.sum()),
        "held_out": int((~treated).sum()),
        "order_rate_called": float(drawn.outcomes.outcome[treated].mean()) if treated.any() else float("nan"),
        "expected_order_rate_called": float(p_called[treated].mean()) if treated.any() else float("nan"),
        "expected_uplift_called": float((p_called - p_not)[treated].mean()) if treated.any() else float("nan"),
        "updated_to": Path(update["artifact"]).name,
        "auc_before": update["before"]["auc"],
        "auc_after_in_sample": update["after_in_sample"]["auc"],
    }
