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
import pyarrow.compute as pc
import torch

from lam_platform import metrics
from lam_platform.events import TIMESTAMP, read_events
from lam_platform.ground_truth import METHODS, OFFERS, GroundTruth
from lam_platform.policies import legacy_segment_policy, random_policy
from lam_platform.sequences import build_sequences
from lam_platform.simulator import load_ground_truth, load_world_config
from lam_platform.workdir import Workdir
from lam_platform.consent import read_profiles
from lightning_modules.artifact import ModelArtifact
from lightning_modules.batches import EventBatch, dataclass_from_arrays

# Not a policy anyone can run: the oracle without responsiveness (who answers calls is latent and shows in no
# event), i.e. the best any model of behaviour alone could do. It says how much of the oracle is reachable.
CEILING = "informed_ceiling"


def gbt_scores(workdir: Workdir, seed: int = 0) -> pd.DataFrame:
    """The order-blind baseline (LightGBM on aggregates, same campaign log): every customer x campaign."""
    from lam_platform.baselines import AggregateUpliftModel
    from lam_platform.training_data import consenting_customers, training_events

    world = load_world_config(workdir)
    profiles = read_profiles(workdir.profiles)
    eligible = consenting_customers(profiles)
    events = training_events(workdir, world.scoring_time, eligible)
    log = pd.read_parquet(workdir.campaign_log)
    log = log[(log.event_timestamp < world.scoring_time) & log.customer_id.isin(eligible)].reset_index(drop=True)
    model = AggregateUpliftModel(seed).fit(events, log, profiles)
    return model.score(events, eligible, profiles, world.scoring_time)


def compare_policies(workdir: Workdir, call_list: pd.DataFrame, seed: int = 0,
                     gbt: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per policy: customers called, order rate, incremental orders per call, ratio to legacy.

    `gbt`: the baseline's scores if already computed (else they are fitted here).
    """
    from lam_platform.scoring import rank_call_list

    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    profiles = read_profiles(workdir.profiles)
    capacity = len(call_list)
    rng = np.random.default_rng(seed)
    eligible = profiles.customer_id[profiles.consent_marketing].to_numpy()
    gbt = gbt if gbt is not None else gbt_scores(workdir, seed)
    lists = {
        "random": random_policy(profiles, capacity, rng),
        "legacy_segment": legacy_segment_policy(profiles, capacity, world.train_days, rng),
        "gbt_aggregates": rank_call_list(gbt, capacity),
        "lam": call_list,
        "oracle": truth.best_campaign(eligible, world.scoring_time).head(capacity),
        CEILING: _without_responsiveness(truth).best_campaign(eligible, world.scoring_time).head(capacity),
    }
    rows = []
    for name, chosen in lists.items():
        p_called, p_not = truth.order_probability(chosen.customer_id.to_numpy(), chosen.offer.to_numpy(),
                                                  chosen.method.to_numpy(), world.scoring_time)
        rows.append({"policy": name, "called": len(chosen), "order_rate": float(p_called.mean()),
                     "incremental_per_call": float((p_called - p_not).mean())})
    table = pd.DataFrame(rows)
    rates = table.set_index("policy").order_rate
    table["vs_legacy"] = table.order_rate / rates["legacy_segment"]
    table["vs_gbt"] = table.order_rate / rates["gbt_aggregates"]
    table["of_oracle"] = table.order_rate / rates["oracle"]
    return table


def _without_responsiveness(truth: GroundTruth) -> GroundTruth:
    mean = truth.customers.responsiveness.mean()
    return GroundTruth(truth.episodes, truth.customers.assign(responsiveness=mean), truth.world_start)


def format_table(table: pd.DataFrame) -> str:
    header = (f"{'policy':<18}{'called':>7}{'order rate':>12}{'incremental':>13}{'vs legacy':>11}{'vs gbt':>8}"
              f"{'of oracle':>11}")
    lines = [header]
    for row in table.itertuples():
        lines.append(f"{row.policy:<18}{row.called:>7}{row.order_rate:>12.3f}{row.incremental_per_call:>13.3f}"
                     f"{row.vs_legacy:>10.2f}x{row.vs_gbt:>7.2f}x{row.of_oracle:>10.0%}")
    return "\n".join(lines)


def first_held_out_events(events: pa.Table, customers: list[str], start: pd.Timestamp) -> pd.DataFrame:
    """Each customer's first event at or after `start` (customer_id, event_timestamp, channel, object, action)."""
    later = events.filter(pc.and_(pc.greater_equal(events.column("event_timestamp"), pa.scalar(start, TIMESTAMP)),
                                  pc.is_in(events.column("customer_id"), value_set=pa.array(customers, pa.string()))))
    frame = later.select(["customer_id", "event_timestamp", "channel", "object", "action"]).to_pandas()
    return frame.drop_duplicates("customer_id").reset_index(drop=True)  # events are sorted by customer, time


@torch.no_grad()
def rank_next_objects(backbone, head, tokenizer, events: pa.Table, targets: pd.DataFrame, exclude_seen: bool = False,
                      batch_size: int = 512) -> np.ndarray:
    """0-based rank of each target object among all objects, given the customer's events strictly before `as_of`.

    targets: customer_id, as_of, object. Full ranking over every object in the vocabulary; pad and the
    out-of-vocabulary bucket are not items, so a target the tokenizer never saw counts as ranked last
    (a miss at every k). exclude_seen drops objects already in the input history from the ranking.
    """
    device = next(backbone.parameters()).device
    n_items = len(tokenizer.vocabularies["objects"])
    sequences = build_sequences(events, pa.array(targets.customer_id, pa.string()),
                                pa.array(targets.as_of, TIMESTAMP), tokenizer.max_len)
    target_ids = tokenizer.encode_tokens("objects", targets.object)
    ranks = []
    for lo in range(0, len(targets), batch_size):
        arrays = tokenizer.encode_events(sequences.slice(lo, batch_size))
        arrays.pop("last_event_us")
        batch = dataclass_from_arrays(EventBatch, {k: torch.as_tensor(v).to(device) for k, v in arrays.items()})
        scores = head.object_logits(backbone(batch).state).float().cpu().numpy()
        exclude = np.zeros(scores.shape, bool)
        if exclude_seen:
            np.put_along_axis(exclude, arrays["categorical"][..., 1], True, axis=1)
        exclude[:, :2] = True  # pad and out-of-vocabulary are not items
        t = target_ids[lo : lo + batch_size]
        ranks.append(np.where(t >= 2, metrics.target_ranks(scores, t, exclude), n_items))
    return np.concatenate(ranks)


def popularity_ranks(training_objects: pd.Series, targets: pd.Series, tokenizer) -> np.ndarray:
    """Ranks of the targets under 'most frequent objects in training first': the floor any model must beat."""
    ids = tokenizer.encode_tokens("objects", training_objects)
    counts = np.bincount(ids, minlength=len(tokenizer.vocabularies["objects"]) + 2).astype(float)
    counts[:2] = -np.inf
    target = tokenizer.encode_tokens("objects", targets)
    return np.where(target >= 2, (counts[None, :] > counts[target][:, None]).sum(1), len(counts) - 2)


def next_action_evaluation(workdir: Workdir, artifact: ModelArtifact, exclude_seen: bool = False,
                           ks: tuple[int, ...] = (1, 5, 10, 20)) -> dict:
    """HR@k / NDCG@k of each consenting customer's first held-out object, full ranking, vs popularity."""
    from lam_platform.training_data import consenting_customers

    world = load_world_config(workdir)
    events = read_events(workdir.events)
    targets = first_held_out_events(events, consenting_customers(read_profiles(workdir.profiles)),
                                    world.scoring_time).assign(as_of=world.scoring_time)
    pretrained = artifact.with_head("next_action")  # a fine-tuned backbone keeps no next-action head
    tokenizer = artifact.tokenizer  # read from disk once (the property parses tokenizer.json on each access)
    ranks = rank_next_objects(pretrained.load_backbone(), pretrained.load_head("next_action"), tokenizer,
                              events, targets, exclude_seen)
    training = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(world.scoring_time, TIMESTAMP)))
    popular = popularity_ranks(training.column("object").to_pandas(), targets.object, tokenizer)
    return {"model_version": pretrained.path.name, "customers": len(targets),
            "items": len(tokenizer.vocabularies["objects"]),
            "exclude_seen": exclude_seen, "unseen_targets": int((tokenizer.encode_tokens(
                "objects", targets.object) < 2).sum()),
            "lam": metrics.ranking_metrics(ranks, ks), "popularity": metrics.ranking_metrics(popular, ks)}


def randomized_trial(workdir: Workdir, customers: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """The held-out A/B trial: a random campaign per customer, contact with probability 1/2, outcome drawn."""
    world = load_world_config(workdir)
    truth = load_ground_truth(workdir)
    rng = np.random.default_rng([seed, 1])
    trial = pd.DataFrame({"customer_id": customers, "offer": rng.choice(np.array(OFFERS), size=len(customers)),
                          "method": rng.choice(np.array(METHODS), size=len(customers)),
                          "treatment": (rng.random(len(customers)) < 0.5).astype(int)})
    p_called, p_not = truth.order_probability(trial.customer_id.to_numpy(), trial.offer.to_numpy(),
                                              trial.method.to_numpy(), world.scoring_time)
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
        "customers": len(joined), "auc": metrics.roc_auc(joined.outcome, predicted),
        "expected_calibration_error": metrics.expected_calibration_error(bins),
        "mean_predicted": float(predicted.mean()), "observed_rate": float(joined.outcome.mean()),
        **metrics.uplift_summary(curves),
        # Noise-free: how well the predicted uplift orders the true uplift (Spearman).
        "uplift_rank_correlation": float(pd.Series(joined.uplift).corr(pd.Series(joined.true_uplift), "spearman")),
        "oracle_qini_coefficient": metrics.uplift_summary(true_curves)["qini_coefficient"],
    }
    return summary, curves, bins
