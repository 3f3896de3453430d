"""Contact-selection policies that need no model: the legacy segment rule and random selection.

The legacy rule is the conventional selection the LAM is measured against: it looks only at
profile segments (plan, tenure, age), never at behaviour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lam_platform.ground_truth import METHODS, OFFERS

MID_AGE_BANDS = ("30-44", "45-59")


def segment_offer(profiles: pd.DataFrame, tenure_months: np.ndarray) -> np.ndarray:
    """The offer the segment rule gives each customer: plan change to basic plans, upgrades to the loyal."""
    return np.select(
        [profiles.plan.to_numpy() == "basic", tenure_months >= 24, profiles.plan.to_numpy() == "premium"],
        ["plan_change", "device_upgrade", "smart_life"],
        default="device_upgrade",
    )


def legacy_segment_policy(
    profiles: pd.DataFrame, k: int, day: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Top-k consenting customers by segment priority: long tenure, middle age, basic plan first."""
    eligible = profiles[profiles.consent_marketing].reset_index(drop=True)
    tenure = eligible.tenure_months.to_numpy() + day / 30.0
    priority = (
        np.minimum(tenure, 120) / 120
        + 0.5 * eligible.age_band.isin(MID_AGE_BANDS).to_numpy()
        + 0.3 * (eligible.plan.to_numpy() == "basic")
        + 0.3 * rng.random(len(eligible))  # segments are coarse: who inside one gets called is luck
    )
    top = np.argsort(-priority, kind="stable")[:k]
    return pd.DataFrame(
        {
            "customer_id": eligible.customer_id.to_numpy()[top],
            "offer": segment_offer(eligible, tenure)[top],
            "method": "outbound_call",
        }
    )


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
