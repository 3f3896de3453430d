"""The order-blind baselines: gradient-boosted trees (LightGBM) on aggregate features.

- `AggregateUpliftModel`: campaign response, as below.
- `AggregateTargetModel`: an event-derived target (purchase within 30 days, churn), trained on the same
  cut-off grid of examples as the LAM's target head, on the aggregates and profile at each cut-off.


It learns from the same campaign log as the LAM's campaign head: each contact's 7/30/90-day
aggregates (exact, point in time), its profile, the offer and method, and whether it was a
treated contact or a control (an S-learner: uplift = P(order | treated) - P(order | control)).
It sees how much a customer did, never in what order. That is the comparison the LAM must win.
Like any S-learner, on a small log the trees may never split on the treatment flag; its uplift is
then 0 and its ranking falls back to P(order), which is still a strong baseline for the order rate.

Stacking (an informational row of the policy comparison): the same model given the LAM's customer state
at each row's time as extra columns (`states=`, `lam_state_<i>`), to tell whether the state holds what
the aggregates lack.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP
from lam_platform.data.platform_config import Catalogue, PlatformConfig
from lam_platform.features.aggregates import AggregateSpec, aggregate_feature_names, build_aggregates
from lam_platform.features.store import RepoSchema


def _params(seed: int) -> dict:
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.8,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }


def _customer_design(
    aggregates: pd.DataFrame, profiles: pd.DataFrame, spec: AggregateSpec, categorical: list[str], numeric: list[str]
) -> pd.DataFrame:
    """Aggregates and declared profile fields, one row per customer state; categoricals as pandas categories."""
    frame = aggregates[[name for name, _ in aggregate_feature_names(spec)]].reset_index(drop=True).copy()
    for column in categorical:
        frame[column] = pd.Categorical(profiles[column].astype(object).to_numpy())
    for column in numeric:
        frame[column] = pd.to_numeric(profiles[column], errors="coerce").to_numpy()
    return frame


def _with_states(frame: pd.DataFrame, states: np.ndarray | None) -> pd.DataFrame:
    """The design with the LAM's customer state of each row as columns lam_state_0.. (unchanged without)."""
    if states is None:
        return frame
    if len(states) != len(frame):
        raise ValueError(f"{len(states)} customer states for {len(frame)} design rows")
    columns = pd.DataFrame(
        np.asarray(states, dtype=np.float32), columns=[f"lam_state_{i}" for i in range(states.shape[1])]
    )
    return pd.concat([frame, columns], axis=1)


def _align(design: pd.DataFrame, categories: dict[str, list]) -> pd.DataFrame:
    """Categoricals with the training categories (unseen values become missing)."""
    for column, known in categories.items():
        design[column] = pd.Categorical(design[column].astype(object), categories=known)
    return design


class AggregateUpliftModel:
    """LightGBM S-learner on aggregates + profile + campaign; uplift by toggling the treatment flag."""

    def __init__(
        self,
        spec: AggregateSpec,
        catalogue: Catalogue,
        categorical: list[str],
        numeric: list[str],
        seed: int = 0,
        rounds: int = 300,
    ) -> None:
        self.spec, self.catalogue, self.categorical, self.numeric = spec, catalogue, categorical, numeric
        self.params = _params(seed)
        self.rounds = rounds
        self.booster = None
        self.categories: dict[str, list] = {}

    @classmethod
    def of_workdir(
        cls, workdir: Workdir, platform: PlatformConfig, seed: int = 0, rounds: int = 300
    ) -> AggregateUpliftModel:
        """The baseline as a workdir declares it: its feature repo's aggregates, lam.yaml's catalogue and profile."""
        return cls(
            RepoSchema.load(workdir).aggregates,
            platform.require_catalogue(),
            platform.categorical_profile,
            platform.numeric_profile,
            seed,
            rounds,
        )

    def _design(
        self, aggregates: pd.DataFrame, profiles: pd.DataFrame, offers, methods, treatment, states=None
    ) -> pd.DataFrame:
        """One feature row per (customer state, campaign, treatment)."""
        frame = _with_states(_customer_design(aggregates, profiles, self.spec, self.categorical, self.numeric), states)
        frame["offer"] = pd.Categorical(np.asarray(offers), categories=self.catalogue.offers)
        frame["method"] = pd.Categorical(np.asarray(methods), categories=self.catalogue.methods)
        frame["treatment"] = np.asarray(treatment)
        return frame

    def fit(
        self, events: pa.Table, campaign_log: pd.DataFrame, profiles: pd.DataFrame, states: np.ndarray | None = None
    ) -> AggregateUpliftModel:
        """Train on the log's contacts; `profiles`: one current row per customer (`states` as in `fit_contacts`)."""
        return self.fit_contacts(
            events, campaign_log, profiles.set_index("customer_id").loc[campaign_log.customer_id].reset_index(), states
        )

    def _contact_design(
        self, events: pa.Table, log: pd.DataFrame, profiles: pd.DataFrame, treatment, states=None
    ) -> pd.DataFrame:
        aggregates = build_aggregates(
            events, log.customer_id.tolist(), pa.array(log.event_timestamp, TIMESTAMP), self.spec
        ).to_pandas()
        return self._design(aggregates, profiles.reset_index(drop=True), log.offer, log.method, treatment, states)

    def fit_contacts(
        self, events: pa.Table, campaign_log: pd.DataFrame, profiles: pd.DataFrame, states: np.ndarray | None = None
    ) -> AggregateUpliftModel:
        """Train on the log's contacts; `profiles`: one row per contact (as of its time), in log order;
        `states`: the LAM's customer state of each contact before its time (stacking), in log order."""
        design = self._contact_design(events, campaign_log, profiles, campaign_log.treatment, states)
        import lightgbm

        self.categories = {c: list(design[c].cat.categories) for c in self.categorical}
        data = lightgbm.Dataset(design, label=campaign_log.outcome.to_numpy(), categorical_feature="auto")
        self.booster = lightgbm.train(self.params, data, num_boost_round=self.rounds)
        return self

    def score_contacts(self, events: pa.Table, contacts: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift of each logged contact's own campaign, on the
        aggregates strictly before its time (`profiles`: one row per contact, in order)."""
        p = {
            treated: self.booster.predict(
                _align(self._contact_design(events, contacts, profiles, [treated] * len(contacts)), self.categories)
            )
            for treated in (1, 0)
        }
        return pd.DataFrame({"p_order_if_called": p[1], "p_order_if_not_called": p[0], "uplift": p[1] - p[0]})

    def score(
        self,
        events: pa.Table,
        customers: list[str],
        profiles: pd.DataFrame,
        at: pd.Timestamp,
        states: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift for every customer and candidate campaign
        (`states`: each customer's LAM state at `at`, aligned with `customers`, when fitted with states)."""
        aggregates = build_aggregates(
            events, customers, pa.array([at] * len(customers), TIMESTAMP), self.spec
        ).to_pandas()
        customer_profiles = profiles.set_index("customer_id").loc[customers].reset_index()
        frames = []
        for offer, method in self.catalogue.campaigns:
            n = len(customers)
            p = {}
            for treated in (1, 0):
                design = self._design(aggregates, customer_profiles, [offer] * n, [method] * n, [treated] * n, states)
                p[treated] = self.booster.predict(_align(design, self.categories))
            frames.append(
                pd.DataFrame(
                    {
                        "customer_id": customers,
                        "offer": offer,
                        "method": method,
                        "p_order_if_called": p[1],
                        "p_order_if_not_called": p[0],
                        "uplift": p[1] - p[0],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


class AggregateTargetModel:
    """LightGBM on aggregates + profile at each cut-off -> P(target within its horizon)."""

    def __init__(
        self, spec: AggregateSpec, categorical: list[str], numeric: list[str], seed: int = 0, rounds: int = 300
    ) -> None:
        self.spec, self.categorical, self.numeric = spec, categorical, numeric
        self.params, self.rounds = _params(seed), rounds
        self.booster = None
        self.categories: dict[str, list] = {}

    def _design(self, events: pa.Table, customers: list[str], times, profiles: pd.DataFrame) -> pd.DataFrame:
        aggregates = build_aggregates(events, customers, pa.array(times, TIMESTAMP), self.spec).to_pandas()
        return _customer_design(aggregates, profiles, self.spec, self.categorical, self.numeric)

    def fit(self, events: pa.Table, examples: pd.DataFrame, profiles: pd.DataFrame) -> AggregateTargetModel:
        """examples: customer_id, event_timestamp (cut-off), label; profiles aligned with the examples' rows."""
        import lightgbm

        design = self._design(events, examples.customer_id.tolist(), examples.event_timestamp, profiles)
        self.categories = {c: list(design[c].cat.categories) for c in self.categorical}
        data = lightgbm.Dataset(design, label=examples.label.to_numpy(), categorical_feature="auto")
        self.booster = lightgbm.train(self.params, data, num_boost_round=self.rounds)
        return self

    def predict(self, events: pa.Table, customers: list[str], at: pd.Timestamp, profiles: pd.DataFrame) -> np.ndarray:
        design = self._design(events, customers, [at] * len(customers), profiles)
        return self.booster.predict(_align(design, self.categories))
