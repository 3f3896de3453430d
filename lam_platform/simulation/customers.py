"""The simulated customers: profiles, responsiveness, and the latent wants that start, last a few weeks and end.

Wants are drawn as a renewal process per customer and want, at rates that profiles shift (which is what
makes a segment rule better than random); `active_episode` finds the want active at a given day.
Responsiveness is each customer's chance of answering an outbound call: latent, but every call's result is
in the dialer log (`expected_responsiveness` is what that log reveals).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lam_platform.simulation.catalogue import DEVICES, SERVICES
from lam_platform.simulation.ground_truth import WANTS
from lam_platform.simulation.world import WorldConfig, raw_customer_ids

AGE_BANDS = ("18-29", "30-44", "45-59", "60+")
PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
WANT_RATE_PER_DAY = {
    "device_upgrade": 1 / 110,
    "plan_change": 1 / 140,
    "smart_life": 1 / 180,
    "support_need": 1 / 90,
    "churn_risk": 1 / 240,
}
NEVER_ANSWER_SHARE = 0.25  # customers who never answer an outbound call
ANSWER_BETA = (4.0, 2.0)  # the others' chance of answering a call: Beta(4, 2), mean 2/3


def sample_profiles(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    n = config.n_customers
    profiles = pd.DataFrame(
        {
            "customer_id": raw_customer_ids(n),
            "age_band": rng.choice(AGE_BANDS, size=n, p=[0.2, 0.3, 0.3, 0.2]),
            "gender": rng.choice(("f", "m"), size=n),
            "plan": rng.choice(PLANS, size=n, p=[0.4, 0.4, 0.2]),
            "tenure_months": rng.integers(1, 120, size=n),
            "region": rng.choice(REGIONS, size=n),
            "consent_marketing": rng.random(n) < config.consent_rate,
            "billing_day": rng.integers(1, 28, size=n),
        }
    )
    # A quarter never answer a call; the rest answer each call with their own chance.
    responsiveness = np.where(rng.random(n) < NEVER_ANSWER_SHARE, 0.0, rng.beta(*ANSWER_BETA, size=n))
    return profiles, responsiveness


def expected_responsiveness(answered: np.ndarray, unanswered: np.ndarray) -> np.ndarray:
    """E[responsiveness | `answered` and `unanswered` outbound calls in the dialer log], elementwise.

    What a customer's call history reveals under the prior above (responsiveness is the chance that a call
    is answered): one answered call rules out "never answers"; every unanswered one shifts the Beta part
    down. With no calls it is the prior mean.
    """
    a, b = ANSWER_BETA
    answered, unanswered = np.asarray(answered, float), np.asarray(unanswered, float)
    log_beta = np.vectorize(lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y))
    # P(history | responsive) / P(history | never answers) * prior odds; the latter is 0 once a call was answered.
    answering = (1 - NEVER_ANSWER_SHARE) * np.exp(log_beta(a + answered, b + unanswered) - log_beta(a, b))
    never = NEVER_ANSWER_SHARE * (answered == 0)
    return answering / (answering + never) * (a + answered) / (a + b + answered + unanswered)


def _want_rate_multiplier(want: str, profiles: pd.DataFrame) -> np.ndarray:
    """Profiles shift how often wants arise, which is what makes a segment rule better than random."""
    if want == "device_upgrade":
        return np.where(profiles.tenure_months.to_numpy() >= 24, 1.6, 0.6)
    if want == "plan_change":
        return np.where(profiles.plan.to_numpy() == "basic", 1.6, 0.7)
    if want == "smart_life":
        return np.where(profiles.age_band.isin(("30-44", "45-59")).to_numpy(), 1.5, 0.7)
    if want == "churn_risk":
        return np.where(profiles.tenure_months.to_numpy() < 12, 2.0, 0.8)
    return np.ones(len(profiles))


def sample_episodes(
    config: WorldConfig, profiles: pd.DataFrame, rng: np.random.Generator, offset: int = 0
) -> pd.DataFrame:
    """Latent want episodes per customer: a renewal process of (gap, duration) from 20 days before day 0.

    Sorted by `key` = customer_idx * len(WANTS) + want index, then start: one customer's episodes of
    one want never overlap, which is what the vectorised lookups below rely on.
    """
    rows: list[pd.DataFrame] = []
    n = len(profiles)
    for w, want in enumerate(WANTS):
        rate = WANT_RATE_PER_DAY[want] * _want_rate_multiplier(want, profiles)
        t = np.full(n, -20.0) + rng.exponential(1.0 / rate)
        alive = t < config.total_days
        while alive.any():
            idx = np.flatnonzero(alive)
            duration = 8.0 + rng.exponential(18.0, size=len(idx))
            preferred = _preferred_object(want, profiles.plan.to_numpy()[idx], rng)
            rows.append(
                pd.DataFrame(
                    {
                        "customer_idx": idx + offset,
                        "want": want,
                        "start_day": t[idx],
                        "end_day": t[idx] + duration,
                        "preferred": preferred,
                        "key": (idx + offset) * len(WANTS) + w,
                    }
                )
            )
            t[idx] = t[idx] + duration + rng.exponential(1.0 / rate[idx])
            alive = t < config.total_days
    episodes = pd.concat(rows, ignore_index=True)
    episodes["purchased"] = False
    episodes["end_by_order"] = False
    return episodes.sort_values(["key", "start_day"], kind="stable").reset_index(drop=True)


def active_episode(episodes: pd.DataFrame, customer_idx: np.ndarray, want: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Row of the episode of `want` active at `day` for each customer, or -1 (vectorised lookup)."""
    want_index = {w: i for i, w in enumerate(WANTS)}
    key = customer_idx * len(WANTS) + np.array([want_index[w] for w in want], dtype=np.int64)
    ep_key, ep_end = episodes.key.to_numpy(), episodes.end_day.to_numpy()
    # One sorted float: key, then start day (shifted positive). Exact while key * 1000 < 2**53 / 1e6.
    composite = ep_key * 1000.0 + (episodes.start_day.to_numpy() + 100.0)
    row = np.searchsorted(composite, key * 1000.0 + (day + 100.0), side="right") - 1  # last start <= day
    safe = np.maximum(row, 0)
    active = (row >= 0) & (ep_key[safe] == key) & (ep_end[safe] > day)
    return np.where(active, row, -1)


def _preferred_object(want: str, plans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(plans)
    if want == "device_upgrade":
        return rng.choice(DEVICES, size=n)
    if want == "plan_change":  # someone on basic looks at standard/family, others at premium/family
        return np.where(
            plans == "basic",
            rng.choice(("plan:standard", "plan:family"), size=n),
            rng.choice(("plan:premium", "plan:family"), size=n),
        )
    if want == "smart_life":
        return rng.choice(SERVICES, size=n)
    return np.full(n, "page:support" if want == "support_need" else "page:cancel", dtype=object)
