"""Held-out evaluation on the simulator: next action, campaign response and uplift, and the policy comparison.

Everything is measured at the start of the held-out period (the scoring time), on customers the
model never saw after it:
- next action: the first held-out event of each consenting customer, ranked among all objects;
- campaign response: a randomized trial the simulator runs at the scoring time (each customer gets a
  random campaign and a fair coin for contact vs control; outcomes are drawn from the ground truth),
  on which AUC, calibration, Qini and AUUC are computed, as a real A/B holdout would give them;
- policies: the order rate of each policy's top-K list, scored with the ground truth's expected values
  (no sampling noise), as in `lam summary`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, events_dataset, read_events
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.evaluation import metrics
from lam_platform.evaluation.next_item import next_item_evaluation
from lam_platform.features.store import online_features, open_store
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.simulation.customers import expected_responsiveness
from lam_platform.simulation.ground_truth import METHODS, OFFERS, GroundTruth
from lam_platform.simulation.policies import legacy_segment_policy, random_policy
from lam_platform.simulation.touchpoints import CALL_ANSWERED, CALL_RESULTS
from lam_platform.simulation.world import load_ground_truth, load_world_config

# Not a policy anyone can run: the oracle that knows every want but of each customer's responsiveness only what
# the dialer log reveals (the results of their calls before the scoring time, the events every model sees),
# i.e. the best any model of the event stream could do. It says how much of the oracle is reachable.
CEILING = "informed_ceiling"


# The stacking row (informational): LightGBM on aggregates with the LAM's customer state as more columns.
STACKED = "gbt_aggregates+lam_state"


def baseline_scores(workdir: Workdir, seed: int = 0, stack: ModelArtifact | None = None) -> dict[str, pd.DataFrame]:
    """The order-blind baseline (LightGBM on aggregates, same campaign log) as `gbt_aggregates`, every customer x
    campaign; with `stack`, also `STACKED`: the same model given that version's pretrained customer state, at each
    contact's time for training and at the scoring time for scoring. Events, log and profiles are read once.
    """
    from lam_platform.campaigns.training_data import training_events
    from lam_platform.evaluation.baselines import AggregateUpliftModel
    from lam_platform.evaluation.stacking import lam_states

    world = load_world_config(workdir)
    platform = PlatformConfig.load(workdir.root)
    profiles = read_profiles(workdir.profiles)
    eligible = consenting_customers(profiles)
    events = training_events(workdir, world.scoring_time, eligible)
    log = pd.read_parquet(workdir.campaign_log)
    log = log[(log.event_timestamp < world.scoring_time) & log.customer_id.isin(eligible)].reset_index(drop=True)

    def fitted(fit_states=None, score_states=None) -> pd.DataFrame:
        model = AggregateUpliftModel.of_workdir(workdir, platform, seed).fit(events, log, profiles, fit_states)
        return model.score(events, eligible, profiles, world.scoring_time, score_states)

    scores = {"gbt_aggregates": fitted()}
    if stack is not None:  # one backbone pass: the contacts at their times, then everyone at the scoring time
        states = lam_states(
            stack, events, [*log.customer_id, *eligible], [*log.event_timestamp, *[world.scoring_time] * len(eligible)]
        )
        scores[STACKED] = fitted(states[: len(log)], states[len(log) :])
    return scores


def callable_customers(workdir: Workdir, as_of: pd.Timestamp) -> list[str]:
    """Customers the call-list rules of lam.yaml allow at `as_of` (the pool every policy draws from, as the
    LAM's list does), read from the online store like `lam score`."""
    from lam_platform.campaigns.call_list import call_exclusions

    ids = read_profiles(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
    rows = online_features(open_store(workdir), ids)
    reasons = call_exclusions(rows, as_of, PlatformConfig.load(workdir.root).call_list)
    return rows.customer_id[reasons.isna().to_numpy()].tolist()


def compare_policies(
    workdir: Workdir,
    call_list: pd.DataFrame,
    seed: int = 0,
    gbt: pd.DataFrame | None = None,
    informational: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per policy: customers called, order rate, incremental orders per call, ratio to legacy.

    `gbt`: the baseline's scores if already computed (else they are fitted here). `informational`: more
    scored models (name -> every customer x campaign), each ranked into a list like the baseline's.
    """
    from lam_platform.campaigns.call_list import rank_call_list

    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    eligible = np.array(callable_customers(workdir, world.scoring_time), dtype=object)
    profiles = read_profiles(workdir.profiles)
    profiles = profiles[profiles.customer_id.isin(eligible)].reset_index(drop=True)
    capacity = len(call_list)
    rng = np.random.default_rng(seed)
    gbt = gbt if gbt is not None else baseline_scores(workdir, seed)["gbt_aggregates"]
    scored = {"gbt_aggregates": gbt, **(informational or {})}  # each ranked among the callable customers
    informed = _informed(truth, workdir, world.scoring_time)
    lists = {
        "random": random_policy(profiles, capacity, rng),
        "legacy_segment": legacy_segment_policy(profiles, capacity, world.train_days, rng),
        **{name: rank_call_list(s[s.customer_id.isin(eligible)], capacity) for name, s in scored.items()},
        "lam": call_list,
        "oracle": truth.best_campaign(eligible, world.scoring_time).head(capacity),
        CEILING: informed.best_campaign(eligible, world.scoring_time).head(capacity),
    }
    rows = []
    for name, chosen in lists.items():
        p_called, p_not = truth.order_probability(
            chosen.customer_id.to_numpy(), chosen.offer.to_numpy(), chosen.method.to_numpy(), world.scoring_time
        )
        rows.append(
            {
                "policy": name,
                "called": len(chosen),
                "order_rate": float(p_called.mean()),
                "incremental_per_call": float((p_called - p_not).mean()),
            }
        )
    table = pd.DataFrame(rows)
    rates = table.set_index("policy").order_rate
    table["vs_legacy"] = table.order_rate / rates["legacy_segment"]
    table["vs_gbt"] = table.order_rate / rates["gbt_aggregates"]
    table["of_oracle"] = table.order_rate / rates["oracle"]
    return table


def call_results(workdir: Workdir, before: pd.Timestamp) -> pd.DataFrame:
    """Answered and unanswered outbound calls per customer in the event table before `before`."""
    wanted = (ds.field("event_timestamp") < pa.scalar(before, TIMESTAMP)) & ds.field("action").isin(CALL_RESULTS)
    calls = events_dataset(workdir.events).to_table(columns=["customer_id", "action"], filter=wanted).to_pandas()
    per_customer = (calls.action == CALL_ANSWERED).groupby(calls.customer_id)
    answered, called = per_customer.sum(), per_customer.size()
    return pd.DataFrame({"answered": answered, "unanswered": called - answered})


def _informed(truth: GroundTruth, workdir: Workdir, at: pd.Timestamp) -> GroundTruth:
    """The ground truth with each customer's responsiveness replaced by what their calls before `at` reveal."""
    calls = call_results(workdir, at).reindex(truth.customers.customer_id, fill_value=0)
    revealed = expected_responsiveness(calls.answered.to_numpy(), calls.unanswered.to_numpy())
    return GroundTruth(truth.episodes, truth.customers.assign(responsiveness=revealed), truth.world_start)


def format_table(table: pd.DataFrame) -> str:
    width = max(18, *(len(name) + 2 for name in table.policy))
    header = (
        f"{'policy':<{width}}{'called':>7}{'order rate':>12}{'incremental':>13}{'vs legacy':>11}{'vs gbt':>8}"
        f"{'of oracle':>11}"
    )
    lines = [header]
    for row in table.itertuples():
        lines.append(
            f"{row.policy:<{width}}{row.called:>7}{row.order_rate:>12.3f}{row.incremental_per_call:>13.3f}"
            f"{row.vs_legacy:>10.2f}x{row.vs_gbt:>7.2f}x{row.of_oracle:>10.0%}"
        )
    return "\n".join(lines)


def next_action_evaluation(
    workdir: Workdir, artifact: ModelArtifact, exclude_seen: bool = False, ks: tuple[int, ...] = (1, 5, 10, 20)
) -> dict:
    """HR@k / NDCG@k of each consenting customer's first held-out object (after the world's scoring time)."""
    world = load_world_config(workdir)
    customers = consenting_customers(read_profiles(workdir.profiles))
    return next_item_evaluation(artifact, read_events(workdir.events), customers, world.scoring_time, exclude_seen, ks)


def randomized_trial(workdir: Workdir, customers: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """The held-out A/B trial: a random campaign per customer, contact with probability 1/2, outcome drawn."""
    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    rng = np.random.default_rng([seed, 1])
    trial = pd.DataFrame(
        {
            "customer_id": customers,
            "offer": rng.choice(np.array(OFFERS), size=len(customers)),
            "method": rng.choice(np.array(METHODS), size=len(customers)),
            "treatment": (rng.random(len(customers)) < 0.5).astype(int),
        }
    )
    p_called, p_not = truth.order_probability(
        trial.customer_id.to_numpy(), trial.offer.to_numpy(), trial.method.to_numpy(), world.scoring_time
    )
    trial["outcome"] = (rng.random(len(trial)) < np.where(trial.treatment == 1, p_called, p_not)).astype(int)
    trial["true_uplift"] = p_called - p_not
    return trial


def campaign_evaluation(trial: pd.DataFrame, scores: pd.DataFrame) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """AUC, calibration and uplift metrics of one model's scores on the trial; returns (metrics, curves, bins)."""
    joined = trial.merge(scores, on=["customer_id", "offer", "method"], how="inner", validate="one_to_one")
    predicted = np.where(joined.treatment == 1, joined.p_order_if_called, joined.p_order_if_not_called)
    bins = metrics.calibration_table(joined.outcome, predicted)
    curves = metrics.uplift_curves(joined.treatment, joined.outcome, joined.uplift)
    true_curves = metrics.uplift_curves(joined.treatment, joined.outcome, joined.true_uplift)
    summary = {
        "customers": len(joined),
        "auc": metrics.roc_auc(joined.outcome, predicted),
        "expected_calibration_error": metrics.expected_calibration_error(bins),
        "mean_predicted": float(predicted.mean()),
        "observed_rate": float(joined.outcome.mean()),
        **metrics.uplift_summary(curves),
        # Noise-free: how well the predicted uplift orders the true uplift (Spearman).
        "uplift_rank_correlation": float(pd.Series(joined.uplift).corr(pd.Series(joined.true_uplift), "spearman")),
        "oracle_qini_coefficient": metrics.uplift_summary(true_curves)["qini_coefficient"],
    }
    return summary, curves, bins
