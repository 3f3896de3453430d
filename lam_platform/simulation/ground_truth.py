"""The simulator's ground truth: who wants what when, and how a contact changes the odds of an order.

A customer's latent *wants* are episodes (want, start_day, end_day). A campaign offer converts
mostly when the matching want is active, and more when the want has lasted a few days (the
customer has looked around: the "interest" stage) than when it has just started. Some customers
never answer calls (responsiveness 0), some order anyway. The same function draws the logged
outcomes in the simulator and scores every policy's call list on the held-out period, so the
comparison is against the truth, not against another model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

WANTS = ("device_upgrade", "plan_change", "smart_life", "support_need", "churn_risk")
OFFERS = ("device_upgrade", "plan_change", "smart_life")  # each offer serves the want of the same name
METHODS = ("outbound_call", "sms")

ORGANIC_ORDER_P = 0.08  # P(order within the horizon) when the want is active and nobody calls
BASE_ORDER_P = 0.01  # ... when it is not
INTEREST_AGE_DAYS = 4.0  # a want this old has been researched: a call now converts best
UPLIFT_INTEREST = 0.45
UPLIFT_AWARENESS = 0.15
SMS_FACTOR = 0.4  # an SMS moves people less than a call
SUPPORT_FACTOR = 0.5  # someone with an open support issue is annoyed by a sales call
RETENTION_UPLIFT = 0.10  # a plan offer to a customer at churn risk retains some


def response_probability(
    matching_age_days: np.ndarray,
    support_active: np.ndarray,
    churn_active: np.ndarray,
    offers: np.ndarray,
    methods: np.ndarray,
    responsiveness: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """P(order | contacted), P(order | not contacted), elementwise.

    matching_age_days: days since the want matching the offer started, NaN if that want is not active.
    """
    active = ~np.isnan(matching_age_days)
    p_not = np.where(active, ORGANIC_ORDER_P, BASE_ORDER_P)
    stage_uplift = np.where(matching_age_days >= INTEREST_AGE_DAYS, UPLIFT_INTEREST, UPLIFT_AWARENESS)
    uplift = np.where(active, stage_uplift, 0.01)
    uplift = uplift * np.where(methods == "sms", SMS_FACTOR, 1.0)
    uplift = uplift * np.where(support_active, SUPPORT_FACTOR, 1.0)
    uplift = uplift + np.where(churn_active & (offers == "plan_change"), RETENTION_UPLIFT, 0.0)
    p_contacted = np.clip(p_not + responsiveness * uplift, 0.0, 1.0)
    return p_contacted, p_not


@dataclass
class GroundTruth:
    """Answers "what is the true order probability" for any (customer, offer, method, time)."""

    episodes: pd.DataFrame  # customer_id, want, start_day, end_day, purchased
    customers: pd.DataFrame  # customer_id, responsiveness
    world_start: pd.Timestamp

    def day_of(self, at: datetime) -> float:
        return (pd.Timestamp(at) - self.world_start) / pd.Timedelta(days=1)

    def active_age(self, customer_ids: np.ndarray, wants: np.ndarray, day: float) -> np.ndarray:
        """Days since the active episode of `wants[i]` started for `customer_ids[i]`, NaN if none."""
        active = self.episodes[(self.episodes.start_day <= day) & (self.episodes.end_day > day)]
        age = pd.Series(
            day - active.start_day.to_numpy(), index=pd.MultiIndex.from_frame(active[["customer_id", "want"]])
        )
        age = age[~age.index.duplicated()]
        keys = pd.MultiIndex.from_arrays([customer_ids, wants])
        return age.reindex(keys).to_numpy(dtype=float)

    def order_probability(
        self, customer_ids: np.ndarray, offers: np.ndarray, methods: np.ndarray, at: datetime
    ) -> tuple[np.ndarray, np.ndarray]:
        """(P(order | contacted), P(order | not contacted)) for each row, at time `at`."""
        customer_ids = np.asarray(customer_ids, dtype=object)
        offers = np.asarray(offers, dtype=object)
        methods = np.asarray(methods, dtype=object)
        day = self.day_of(at)
        n = len(customer_ids)
        responsiveness = (
            self.customers.set_index("customer_id").responsiveness.reindex(customer_ids).fillna(0.0).to_numpy()
        )
        return response_probability(
            self.active_age(customer_ids, offers, day),
            ~np.isnan(self.active_age(customer_ids, np.full(n, "support_need", dtype=object), day)),
            ~np.isnan(self.active_age(customer_ids, np.full(n, "churn_risk", dtype=object), day)),
            offers,
            methods,
            responsiveness,
        )

    def campaign_grid(self, customer_ids: np.ndarray, at: datetime) -> pd.DataFrame:
        """True P(order | contacted) and uplift of every (customer, offer, method), offer-major."""
        rows = []
        for offer in OFFERS:
            for method in METHODS:
                p_c, p_n = self.order_probability(
                    customer_ids, np.full(len(customer_ids), offer), np.full(len(customer_ids), method), at
                )
                rows.append(
                    pd.DataFrame(
                        {
                            "customer_id": customer_ids,
                            "offer": offer,
                            "method": method,
                            "p_contacted": p_c,
                            "uplift": p_c - p_n,
                        }
                    )
                )
        return pd.concat(rows, ignore_index=True)

    def best_campaign(self, customer_ids: np.ndarray, at: datetime) -> pd.DataFrame:
        """The oracle: for each customer, the (offer, method) with the largest true uplift."""
        candidates = self.campaign_grid(customer_ids, at)
        best = candidates.sort_values("uplift", ascending=False, kind="stable").drop_duplicates("customer_id")
        return best.reset_index(drop=True)
