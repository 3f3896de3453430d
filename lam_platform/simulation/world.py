"""A small synthetic 4W1H world with known ground truth (first version; the data-layer issue deepens it).

Story: each customer has a profile and latent *wants* (device upgrade, plan change, smart-life
service, support need, churn risk) that start, last a few weeks and end, often with a purchase.
Wants drive behaviour on channels of very different frequency: the app (many small views), the
web, the shop (rare, with amounts and payment method), the call centre (with durations), a
monthly bill and outbound telemarketing. Every two weeks a campaign wave contacts customers chosen
by the legacy segment rule, plus a random-exploration share, with held-out controls; outcomes are
drawn from `ground_truth.response_probability`, so contacts really change what happens next.

This module holds the world's config and reads a generated world back; `customers` draws profiles and
wants, `campaign_waves` the contacts and their outcomes, `touchpoints` the events, `catalogue` what is
sold at what price, and `world_writer` generates the world into a workdir chunk by chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.simulation.ground_truth import GroundTruth


@dataclass(frozen=True)
class WorldConfig:
    """Size and calendar of a simulated world; everything has a default that runs in seconds."""

    n_customers: int = 3000
    seed: int = 7
    start: str = "2026-01-05"  # a Monday, UTC
    train_days: int = 150  # campaigns and training data live here
    holdout_days: int = 30  # evaluation only; scoring happens at its start
    first_campaign_day: int = 28
    campaign_every_days: int = 7
    response_horizon_days: int = 14
    legacy_share: float = 0.06  # share of customers the segment rule contacts per wave
    exploration_share: float = 0.04  # share contacted at random per wave
    control_share: float = 0.10  # share of each selection held out as control (treatment 0)
    consent_rate: float = 0.92
    chunk_customers: int = 20_000  # customers generated at once: bounds memory; part of the output's identity

    @property
    def total_days(self) -> int:
        return self.train_days + self.holdout_days

    @property
    def world_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def scoring_time(self) -> pd.Timestamp:
        """Start of the held-out period: the online store holds sequences as of this instant."""
        return self.world_start + pd.Timedelta(days=self.train_days)


def raw_customer_ids(n: int) -> list[str]:
    """The ids the simulated source systems know customers by (CRM numbers); they never enter the workdir."""
    return [f"CUST-{i:06d}" for i in range(n)]


def load_world_config(workdir: Workdir) -> WorldConfig:
    """The config the world in `workdir` was generated with."""
    if not workdir.world_json.exists():
        raise FileNotFoundError(
            f"no simulated world in {workdir.root}: only a simulator's workdir has ground truth "
            "(oracle, `lam summary`); on your own data run `lam evaluate --as-of T`"
        )
    return WorldConfig(**json.loads(workdir.world_json.read_text()))


def load_ground_truth(workdir: Workdir) -> GroundTruth:
    config = load_world_config(workdir)
    return GroundTruth(pd.read_parquet(workdir.episodes), pd.read_parquet(workdir.responsiveness), config.world_start)
