"""The order-blind baseline: gradient-boosted trees (LightGBM) on aggregate features.

It learns from the same campaign log as the LAM's campaign head: each contact's 7/30/90-day
aggregates (exact, point in time), its profile, the offer and method, and whether it was a
treated contact or a control (an S-learner: uplift = P(order | treated) - P(order | control)).
It sees how much a customer did, never in what order. That is the comparison the LAM must win.
Like any S-learner, on a small log the trees may never split on the treatment flag; its uplift is
then 0 and its ranking falls back to P(order), which is still a strong baseline for the order rate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.aggregates import aggregate_feature_names, build_aggregates
from lam_platform.events import TIMESTAMP
from lam_platform.ground_truth import METHODS, OFFERS

PROFILE_COLUMNS = ("age_band", "gender", "plan", "region")


def _design(aggregates: pd.DataFrame, profiles: pd.DataFrame, offers, methods, treatment) -> pd.DataFrame:
    """One feature row per (customer state, campaign, treatment); categoricals as pandas categories."""
    frame = aggregates[[name for name, _ in aggregate_feature_names()]].reset_index(drop=True).copy()
    for column in PROFILE_COLUMNS:
        frame[column] = pd.Categorical(profiles[column].to_numpy())
    frame["tenure_months"] = profiles["tenure_months"].to_numpy()
    frame["offer"] = pd.Categorical(np.asarray(offers), categories=OFFERS)
    frame["method"] = pd.Categorical(np.asarray(methods), categories=METHODS)
    frame["treatment"] = np.asarray(treatment)
    return frame


class AggregateUpliftModel:
    """LightGBM S-learner on aggregates + profile + campaign; uplift by toggling the treatment flag."""

    def __init__(self, seed: int = 0, rounds: int = 300) -> None:
        self.params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 20,
                       "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8, "seed": seed,
                       "deterministic": True, "num_threads": 2, "verbose": -1}
        self.rounds = rounds
        self.booster = None
        self.categories: dict[str, list] = {}

    def fit(self, events: pa.Table, campaign_log: pd.DataFrame, profiles: pd.DataFrame) -> "AggregateUpliftModel":
        aggregates = build_aggregates(events, campaign_log.customer_id.tolist(),
                                      pa.array(campaign_log.event_timestamp, TIMESTAMP)).to_pandas()
        customer_profiles = profiles.set_index("customer_id").loc[campaign_log.customer_id].reset_index()
        design = _design(aggregates, customer_profiles, campaign_log.offer, campaign_log.method, campaign_log.treatment)
        import lightgbm

        self.categories = {c: list(design[c].cat.categories) for c in PROFILE_COLUMNS}
        data = lightgbm.Dataset(design, label=campaign_log.outcome.to_numpy(), categorical_feature="auto")
        self.booster = lightgbm.train(self.params, data, num_boost_round=self.rounds)
        return self

    def score(self, events: pa.Table, customers: list[str], profiles: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift for every customer and candidate campaign."""
        aggregates = build_aggregates(events, customers, pa.array([at] * len(customers), TIMESTAMP)).to_pandas()
        customer_profiles = profiles.set_index("customer_id").loc[customers].reset_index()
        frames = []
        for offer, method in itertools.product(OFFERS, METHODS):
            n = len(customers)
            p = {}
            for treated in (1, 0):
                design = _design(aggregates, customer_profiles, [offer] * n, [method] * n, [treated] * n)
                for column, categories in self.categories.items():
                    design[column] = pd.Categorical(design[column].astype(object), categories=categories)
                p[treated] = self.booster.predict(design)
            frames.append(pd.DataFrame({"customer_id": customers, "offer": offer, "method": method,
                                        "p_order_if_called": p[1], "p_order_if_not_called": p[0],
                                        "uplift": p[1] - p[0]}))
        return pd.concat(frames, ignore_index=True)
