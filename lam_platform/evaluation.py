"""The held-out comparison: the order rate of each policy's top-K call list, scored by the ground truth.

Every list is scored with the simulator's true response model at the start of the held-out period,
so "order rate" is the expected share of called customers who order (no sampling noise), and
"incremental" is the expected extra orders per call that the call itself causes (uplift).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lam_platform.policies import legacy_segment_policy, random_policy
from lam_platform.simulator import load_ground_truth, load_world_config
from lam_platform.workdir import Workdir

POLICIES = ("random", "legacy_segment", "gbt_aggregates", "lam", "oracle")


def gbt_call_list(workdir: Workdir, capacity: int, seed: int = 0) -> pd.DataFrame:
    """The order-blind baseline's call list: LightGBM on aggregates, trained on the same campaign log."""
    from lam_platform.baselines import AggregateUpliftModel
    from lam_platform.scoring import rank_call_list
    from lam_platform.training_data import consenting_customers, training_events

    world = load_world_config(workdir)
    profiles = pd.read_parquet(workdir.profiles)
    eligible = consenting_customers(profiles)
    events = training_events(workdir, world.scoring_time, eligible)
    log = pd.read_parquet(workdir.campaign_log)
    log = log[(log.event_timestamp < world.scoring_time) & log.customer_id.isin(eligible)].reset_index(drop=True)
    model = AggregateUpliftModel(seed).fit(events, log, profiles)
    return rank_call_list(model.score(events, eligible, profiles, world.scoring_time), capacity)


def compare_policies(workdir: Workdir, call_list: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per policy: customers called, order rate, incremental orders per call, ratio to legacy."""
    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    profiles = pd.read_parquet(workdir.profiles)
    capacity = len(call_list)
    rng = np.random.default_rng(seed)
    eligible = profiles.customer_id[profiles.consent_marketing].to_numpy()
    lists = {
        "random": random_policy(profiles, capacity, rng),
        "legacy_segment": legacy_segment_policy(profiles, capacity, world.train_days, rng),
        "gbt_aggregates": gbt_call_list(workdir, capacity, seed)[["customer_id", "offer", "method"]],
        "lam": call_list[["customer_id", "offer", "method"]],
        "oracle": truth.best_campaign(eligible, world.scoring_time).head(capacity),
    }
    rows = []
    for name in POLICIES:
        chosen = lists[name]
        p_called, p_not = truth.order_probability(chosen.customer_id.to_numpy(), chosen.offer.to_numpy(),
                                                  chosen.method.to_numpy(), world.scoring_time)
        rows.append({"policy": name, "called": len(chosen), "order_rate": float(p_called.mean()),
                     "incremental_per_call": float((p_called - p_not).mean())})
    table = pd.DataFrame(rows)
    legacy = table.set_index("policy").loc["legacy_segment", "order_rate"]
    table["vs_legacy"] = table.order_rate / legacy
    return table


def format_table(table: pd.DataFrame) -> str:
    lines = [f"{'policy':<16}{'called':>8}{'order rate':>12}{'incremental':>13}{'vs legacy':>11}"]
    for row in table.itertuples():
        lines.append(f"{row.policy:<16}{row.called:>8}{row.order_rate:>12.3f}{row.incremental_per_call:>13.3f}"
                     f"{row.vs_legacy:>10.2f}x")
    return "\n".join(lines)
