"""Campaign waves on the simulator: whom each wave contacts, and what each contact leads to.

Contacts are chosen from profiles alone (legacy rule + exploration, with held-out controls) and log
their propensity; outcomes are drawn from the ground truth wave by wave, an order ending the want it met.
Each treated call is answered or not (the customer's responsiveness), as a dialer logs it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lam_platform.simulation.customers import active_episode
from lam_platform.simulation.ground_truth import OFFERS, response_probability
from lam_platform.simulation.policies import legacy_segment_policy, legacy_selection_probability, random_policy
from lam_platform.simulation.world import WorldConfig


def plan_campaigns(config: WorldConfig, profiles: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Who each wave contacts, chosen from profiles alone (legacy rule + exploration), with controls.

    Each row logs its propensity, as a production campaign system should: the probability that the
    logged policy contacts this customer in this wave, times the probability of the arm it got.
    """
    waves = []
    n = len(profiles)
    eligible = profiles[profiles.consent_marketing].reset_index(drop=True)
    last_wave = config.train_days - config.response_horizon_days
    for w, day in enumerate(range(config.first_campaign_day, last_wave + 1, config.campaign_every_days)):
        legacy = legacy_segment_policy(profiles, int(config.legacy_share * n), day, rng).assign(policy="legacy")
        rest = profiles[~profiles.customer_id.isin(legacy.customer_id)]
        explore = random_policy(rest, int(config.exploration_share * n), rng).assign(policy="random")
        wave = pd.concat([legacy, explore], ignore_index=True).drop(columns="priority")
        p_legacy = legacy_selection_probability(eligible, day, legacy.priority.min())
        p_explore = len(explore) / max(len(eligible) - len(legacy), 1)
        p_contact = pd.Series(p_legacy + (1 - p_legacy) * p_explore, index=eligible.customer_id)
        wave["campaign_id"] = f"wave{w:02d}"
        wave["day"] = day + (9 + rng.random(len(wave)) * 9) / 24  # calls between 09:00 and 18:00
        wave["treatment"] = (rng.random(len(wave)) >= config.control_share).astype(np.int8)
        arm = np.where(wave.treatment == 1, 1 - config.control_share, config.control_share)
        wave["propensity"] = p_contact.reindex(wave.customer_id).to_numpy() * arm
        waves.append(wave)
    contacts = pd.concat(waves, ignore_index=True)
    contacts["customer_idx"] = contacts.customer_id.map(pd.Series(np.arange(n), index=profiles.customer_id))
    return contacts.sort_values(["customer_idx", "day"], kind="stable").reset_index(drop=True)


def draw_outcomes(
    contacts: pd.DataFrame, episodes: pd.DataFrame, responsiveness: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Draw each contact's outcome from the ground truth, wave by wave; an order ends the matching want.

    Waves are processed in time order so that an order in one wave is seen by the next (a customer who
    bought is no longer in the market for that want).
    """
    outcome = np.zeros(len(contacts), dtype=bool)
    order_day = np.full(len(contacts), np.nan)
    matched_want = np.zeros(len(contacts), dtype=bool)
    answered = np.zeros(len(contacts), dtype=bool)  # the dialer's result of each treated call
    end_day = episodes.end_day.to_numpy().copy()
    purchased = episodes.purchased.to_numpy().copy()
    by_order = episodes.end_by_order.to_numpy().copy()
    for wave in sorted(contacts.campaign_id.unique()):
        rows = np.flatnonzero(contacts.campaign_id.to_numpy() == wave)
        cust, day = contacts.customer_idx.to_numpy()[rows], contacts.day.to_numpy()[rows]
        offers, methods = contacts.offer.to_numpy()[rows], contacts.method.to_numpy()[rows]
        current = episodes.assign(end_day=end_day)
        matching = active_episode(current, cust, offers, day)
        support = active_episode(current, cust, np.full(len(rows), "support_need"), day) >= 0
        churn = active_episode(current, cust, np.full(len(rows), "churn_risk"), day) >= 0
        age = np.where(matching >= 0, day - episodes.start_day.to_numpy()[np.maximum(matching, 0)], np.nan)
        treated = contacts.treatment.to_numpy()[rows] == 1
        # A treated call is answered with the customer's responsiveness, and only an answered call can move
        # them (so the expected order rate is the ground truth's); an SMS's reading is not observed.
        calls = treated & (methods == "outbound_call")
        answered[rows] = calls & (rng.random(len(rows)) < responsiveness[cust])
        reached = np.where(calls, answered[rows].astype(float), responsiveness[cust])
        p_c, p_n = response_probability(age, support, churn, offers, methods, reached)
        ordered = rng.random(len(rows)) < np.where(treated, p_c, p_n)
        delay = rng.uniform(0.2, 5.0, size=len(rows))
        outcome[rows] = ordered
        order_day[rows] = np.where(ordered, day + delay, np.nan)
        ends = ordered & (matching >= 0)
        matched_want[rows] = ends
        end_day[matching[ends]] = day[ends] + delay[ends]
        purchased[matching[ends]] = True
        by_order[matching[ends]] = True
    # Wants not ended by a campaign order end in an organic purchase 40% of the time.
    organic = ~by_order & episodes.want.isin(OFFERS).to_numpy() & (rng.random(len(episodes)) < 0.4)
    episodes["end_day"], episodes["end_by_order"] = end_day, by_order
    episodes["purchased"] = purchased | organic
    return contacts.assign(outcome=outcome, order_day=order_day, matched_want=matched_want, answered=answered)
