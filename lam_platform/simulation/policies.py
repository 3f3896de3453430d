"""Contact-selection policies that need no model: the legacy segment rule and random selection.

The legacy rule is the conventional selection the LAM is measured against: it looks only at
profile segments (plan, tenure, age), never at behaviour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lam_platform.simulation.ground_truth import METHODS, OFFERS

MID_AGE_BANDS = ("30-44", "45-59")
LEGACY_NOISE = 0.3  # uniform tie-breaking noise added to the segment score


def segment_offer(profiles: pd.DataFrame, tenure_months: np.ndarray) -> np.ndarray:
    """The offer the segment rule gives each customer: plan change to basic plans, upgrades to the loyal."""
    return np.select(
        [profiles.plan.to_numpy() == "basic", tenure_months >= 24, profiles.plan.to_numpy() == "premium"],
        ["plan_change", "device_upgrade", "smart_life"],
        default="device_upgrade",
    )


def legacy_priority(eligible: pd.DataFrame, day: float) -> np.ndarray:
    """The segment rule's score before its tie-breaking noise: long tenure, middle age, basic plan first."""
    tenure = eligible.tenure_months.to_numpy() + day / 30.0
    return (
        np.minimum(tenure, 120) / 120
        + 0.5 * eligible.age_band.isin(MID_AGE_BANDS).to_numpy()
        + 0.3 * (eligible.plan.to_numpy() == "basic")
    )


def legacy_segment_policy(profiles: pd.DataFrame, k: int, day: float, rng: np.random.Generator) -> pd.DataFrame:
    """Top-k consenting customers by segment priority; `priority` is each chosen customer's noisy score."""
    eligible = profiles[profiles.consent_marketing].reset_index(drop=True)
    tenure = eligible.tenure_months.to_numpy() + day / 30.0
    # Segments are coarse: who inside one gets called is luck.
    priority = legacy_priority(eligible, day) + LEGACY_NOISE * rng.random(len(eligible))
    top = np.argsort(-priority, kind="stable")[:k]
    return pd.DataFrame(
        {
            "customer_id": eligible.customer_id.to_numpy()[top],
            "offer": segment_offer(eligible, tenure)[top],
            "method": "outbound_call",
            "priority": priority[top],
        }
    )


def legacy_selection_probability(eligible: pd.DataFrame, day: float, threshold: float) -> np.ndarray:
    """P(the segment rule picks each customer) when its cut-off score is `threshold` (the k-th best score).

    The score is priority + LEGACY_NOISE * U(0, 1), so P(score >= threshold) is linear in the priority.
    """
    return np.clip((legacy_priority(eligible, day) + LEGACY_NOISE - threshold) / LEGACY_NOISE, 0.0, 1.0)


def random_policy(profiles: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """k consenting customers drawn uniformly, each with a uniformly drawn offer and method."""
    eligible = profiles.customer_id[profiles.consent_marketing].to_numpy()
    chosen = rng.choice(eligible, size=min(k, len(eligible)), replace=False)
    return pd.DataFrame(
        {
            "customer_id": chosen,
            "offer": rng.choice(np.array(OFFERS), size=len(chosen)),
            "method": rng.choice(np.array(METHODS), size=len(chosen)),
        }
    )
