"""Evaluation without ground truth: measure at --as-of T on what happened after T.

For each event-derived target of lam.yaml (`purchase_30d`, `churn_60d`, ...), over every customer who
may be trained on and has an event before T: the label is whether the target happened in [T, T + horizon)
(so T + horizon must not pass the last event in the table), and three scorers are compared:
- lam: the newest artifact whose head for the target was trained as of T or earlier (never one that
  saw outcomes after T), on each customer's events strictly before T and profile as of T;
- lightgbm_aggregates: LightGBM on 7/30/90-day counts and amounts per channel and action, recency and
  the profile, trained on the same cut-off grid as the LAM's head (`lam_platform.data.targets`);
- recency: days since the last event (fewer is likelier to buy; more is likelier to churn).
Metrics: AUC, precision in the top 10%, and (for probabilities) expected calibration error.
Campaigns (when lam.yaml has a campaign log): the campaign head on the contacts logged at or after T
with a mature outcome, against a LightGBM S-learner on aggregates trained on the contacts whose outcome
was known at T; AUC and calibration of the logged arm's probability, Qini coefficient and AUUC of the
predicted uplift (meaningful when treatment vs control was randomized in those contacts).
Next item: HR@10 / NDCG@10 of each customer's first event at or after T, full ranking, vs popularity.

Run: `lam evaluate --workdir W --as-of 2010-10-01T00:00:00+00:00 --json`
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.campaigns.scorer import CampaignScorer, TargetScorer
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, read_events
from lam_platform.data.platform_config import NoEventWithin, PlatformConfig
from lam_platform.data.targets import CutoffGrid, active_before, labels, target_examples
from lam_platform.evaluation import metrics
from lam_platform.evaluation.next_item import next_item_evaluation
from lam_platform.features.aggregates import build_aggregates
from lam_platform.features.sequences import build_sequences
from lam_platform.features.store import RepoSchema
from lam_platform.governance.consent import consenting_customers
from lam_platform.lightning_modules.artifact import ModelArtifact, versions_with_head


def profiles_at(ledger: pd.DataFrame, customers: list[str], times) -> pd.DataFrame:
    """Each (customer, t)'s profile row as of t (the latest change at or before t), in query order."""
    query = pd.DataFrame({"customer_id": customers, "at": pd.to_datetime(pd.Series(times), utc=True).to_numpy()})
    query["row"] = np.arange(len(query))
    ledger = ledger.sort_values("event_timestamp").rename(columns={"event_timestamp": "at"})
    ledger["at"] = pd.to_datetime(ledger["at"], utc=True).astype(query["at"].dtype)
    joined = pd.merge_asof(query.sort_values("at"), ledger, on="at", by="customer_id", direction="backward")
    return joined.sort_values("row").drop(columns=["row", "at"]).reset_index(drop=True)


def head_as_of(workdir: Workdir, head: str, as_of: pd.Timestamp) -> ModelArtifact:
    """The newest version holding `head` trained as of `as_of` or earlier: a head that saw later outcomes
    would be judged on its own training labels."""
    candidates = [ModelArtifact(p) for p in versions_with_head(workdir.artifacts, head)]
    fitting = [a for a in candidates if _trained_until(a, head) <= as_of]
    if not fitting:
        trained = sorted(a.card["heads"][head].get("as_of", "?") for a in candidates)
        raise FileNotFoundError(
            f"no model with a {head!r} head trained as of {as_of.isoformat()} or earlier "
            f"(trained as of: {trained or 'none'}); run `lam finetune --target {head} "
            f"--as-of {as_of.isoformat()}`"
        )
    return fitting[-1]


NEVER = "2262-01-01T00:00:00+00:00"


def _events_before(artifact: ModelArtifact) -> pd.Timestamp:
    """The cut-off of the events the artifact's backbone was pretrained on."""
    return pd.Timestamp(artifact.card.get("data_range", {}).get("events_before", NEVER))


def _trained_until(artifact: ModelArtifact, head: str) -> pd.Timestamp:
    """The latest time any part of the model (the head's labels, the backbone's events) was trained up to."""
    return max(pd.Timestamp(artifact.card["heads"][head].get("as_of", NEVER)), _events_before(artifact))


def _scores_summary(y: np.ndarray, score: np.ndarray, probability: bool) -> dict:
    top = max(1, int(round(0.1 * len(y))))
    order = np.argsort(-score, kind="stable")
    out = {"auc": round(metrics.roc_auc(y, score), 4), "top_decile_precision": round(float(y[order[:top]].mean()), 4)}
    if probability:
        out["calibration_error"] = round(metrics.expected_calibration_error(metrics.calibration_table(y, score)), 4)
    return out


def offline_rows(events: pa.Table, customers: list[str], at, profiles: pd.DataFrame, max_len: int) -> pd.DataFrame:
    """What the online store would serve at `at` (one time, or one per customer row): each customer's last
    events strictly before it and profile."""
    times = [at] * len(customers) if isinstance(at, pd.Timestamp) else list(at)
    sequences = build_sequences(events, customers, pa.array(times, TIMESTAMP), max_len).to_pandas()
    return pd.concat(
        [sequences.reset_index(drop=True), profiles.drop(columns=["customer_id", "event_timestamp"], errors="ignore")],
        axis=1,
    )


def evaluate_target(
    workdir: Workdir,
    platform: PlatformConfig,
    name: str,
    as_of: pd.Timestamp,
    events: pa.Table,
    ledger: pd.DataFrame,
    customers: list[str],
    grid: CutoffGrid,
    seed: int = 0,
) -> dict:
    """One target's comparison at `as_of` (see the module docstring)."""
    from lam_platform.evaluation.baselines import AggregateTargetModel

    target = platform.target(name)
    last_event = pd.Timestamp(pc.max(events.column("event_timestamp")).as_py())
    if as_of + target.horizon > last_event:
        raise UserError(
            f"{name}: labels need events up to {(as_of + target.horizon).isoformat()}, but the event "
            f"table ends at {last_event.isoformat()}; evaluate at an earlier --as-of"
        )
    before = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(as_of, TIMESTAMP)))
    evaluated = active_before(before, customers, as_of)
    y = labels(events, evaluated, [as_of] * len(evaluated), target)
    profiles = profiles_at(ledger, evaluated, [as_of] * len(evaluated))

    artifact = head_as_of(workdir, name, as_of)
    rows = offline_rows(before, evaluated, as_of, profiles, artifact.tokenizer.max_len)
    lam = TargetScorer(artifact, [name]).score(rows, as_of)[name].to_numpy()

    examples = target_examples(before, customers, as_of, target, grid)
    aggregates = RepoSchema.load(workdir).aggregates
    gbm = AggregateTargetModel(aggregates, platform.categorical_profile, platform.numeric_profile, seed).fit(
        before, examples, profiles_at(ledger, examples.customer_id.tolist(), examples.event_timestamp)
    )
    tree = gbm.predict(before, evaluated, as_of, profiles)

    recency_days = (
        build_aggregates(before, evaluated, pa.array([as_of] * len(evaluated), TIMESTAMP), aggregates)
        .column("days_since_last_event")
        .to_numpy()
    )
    recency = recency_days if isinstance(target, NoEventWithin) else -recency_days
    return {
        "target": name,
        "as_of": as_of.isoformat(),
        "customers": len(evaluated),
        "base_rate": round(float(y.mean()), 4) if len(y) else None,
        "model_version": artifact.path.name,
        "training_examples": len(examples),
        "models": {
            "lam": _scores_summary(y, lam, True),
            "lightgbm_aggregates": _scores_summary(y, tree, True),
            "recency": _scores_summary(y, recency, False),
        },
    }


def campaign_holdout(
    workdir: Workdir,
    platform: PlatformConfig,
    as_of: pd.Timestamp,
    events: pa.Table,
    ledger: pd.DataFrame,
    customers: list[str],
    seed: int = 0,
) -> dict:
    """The campaign head on contacts logged at or after `as_of` with a mature outcome, against LightGBM on
    aggregates trained on the contacts whose outcome was known at `as_of` (the rule the head used).

    Qini and AUUC assume the held-out contacts' treatment was randomized (treated vs control within the
    same selection); each contact is scored on the events strictly before its own contact time.
    """
    log, held = _held_out_contacts(workdir, platform, as_of, events, customers)
    artifact = head_as_of(workdir, "campaign_response", as_of)
    times = pd.DatetimeIndex(pd.to_datetime(held.event_timestamp, utc=True))
    rows = offline_rows(
        events,
        held.customer_id.tolist(),
        times,
        profiles_at(ledger, held.customer_id.tolist(), times),
        artifact.tokenizer.max_len,
    )
    lam = CampaignScorer(artifact).score_contacts(rows, held.offer.to_numpy(), held.method.to_numpy(), times)
    n_train, tree = _aggregate_uplift_scores(workdir, platform, as_of, events, ledger, log, held, times, seed)

    treated = held.treatment.to_numpy() == 1
    outcome = held.outcome.to_numpy()
    return {
        "as_of": as_of.isoformat(),
        "contacts": len(held),
        "treated": int(treated.sum()),
        "controls": int((~treated).sum()),
        "training_contacts": n_train,
        "model_version": artifact.path.name,
        "observed_uplift": round(float(outcome[treated].mean() - outcome[~treated].mean()), 4),
        "models": {"lam": _uplift_summary(held, lam), "lightgbm_aggregates": _uplift_summary(held, tree)},
    }


def _held_out_contacts(
    workdir: Workdir, platform: PlatformConfig, as_of: pd.Timestamp, events: pa.Table, customers: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The campaign log of `customers`, and its contacts at or after `as_of` whose outcome is mature."""
    from lam_platform.data.campaign_log import campaign_outcomes, read_campaign_log

    if not workdir.campaign_log.exists():
        raise FileNotFoundError("no campaign log in this workdir (lam.yaml has no `campaigns:` section)")
    log = read_campaign_log(workdir)
    log = log[log.customer_id.isin(customers)]
    # A derived outcome is known once its horizon has passed within the event table; a source column, always.
    end = (
        pd.Timestamp(pc.max(events.column("event_timestamp")).as_py())
        if platform.campaigns.outcome_horizon
        else log.event_timestamp.max()
    ) + pd.Timedelta(microseconds=1)
    held = campaign_outcomes(log[log.event_timestamp >= as_of], platform.campaigns, events, end)
    if held.treatment.nunique() < 2:
        raise ValueError(
            f"no randomized controls to compare: {len(held)} contacts with a mature outcome at or "
            f"after {as_of.isoformat()}, {int((held.treatment == 0).sum())} of them controls"
        )
    return log, held


def _aggregate_uplift_scores(
    workdir: Workdir,
    platform: PlatformConfig,
    as_of: pd.Timestamp,
    events: pa.Table,
    ledger: pd.DataFrame,
    log: pd.DataFrame,
    held: pd.DataFrame,
    times: pd.DatetimeIndex,
    seed: int,
) -> tuple[int, pd.DataFrame]:
    """The LightGBM S-learner's scores of the held-out contacts, trained on the contacts whose outcome was
    known at `as_of`; with the number of those training contacts."""
    from lam_platform.data.campaign_log import campaign_outcomes
    from lam_platform.evaluation.baselines import AggregateUpliftModel

    before = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(as_of, TIMESTAMP)))
    train = campaign_outcomes(log, platform.campaigns, before, as_of)
    gbm = AggregateUpliftModel.of_workdir(workdir, platform, seed)
    gbm.fit_contacts(before, train, profiles_at(ledger, train.customer_id.tolist(), train.event_timestamp))
    return len(train), gbm.score_contacts(events, held, profiles_at(ledger, held.customer_id.tolist(), times))


def _uplift_summary(held: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """AUC of the logged arm's probability, its calibration, and Qini / AUUC of the predicted uplift."""
    treated = held.treatment.to_numpy() == 1
    predicted = np.where(treated, scores.p_order_if_called, scores.p_order_if_not_called)
    outcome = held.outcome.to_numpy()
    curves = metrics.uplift_curves(held.treatment.to_numpy(), outcome, scores.uplift.to_numpy())
    return {
        "auc": round(metrics.roc_auc(outcome, predicted), 4),
        "calibration_error": round(
            metrics.expected_calibration_error(metrics.calibration_table(outcome, predicted)), 4
        ),
        **{k: round(v, 5) for k, v in metrics.uplift_summary(curves).items()},
    }


def evaluate_holdout(
    workdir: Workdir,
    as_of: pd.Timestamp,
    grid: CutoffGrid,
    targets: list[str] | None = None,
    seed: int = 0,
    exclude_seen: bool = False,
) -> dict:
    """Every target of lam.yaml (or those named) and the next item at `as_of`; a target with no head trained
    as of `as_of`, or whose labels are not mature in the event table, is skipped with its reason (an error
    when named). Writes
    WORKDIR/outputs/evaluation/holdout-<as_of>.json and returns the summary."""
    platform = PlatformConfig.load(workdir.root)
    events = read_events(workdir.events)
    ledger = pd.read_parquet(workdir.profiles)
    customers = consenting_customers(ledger, platform.consent_mode)
    events = events.filter(pc.is_in(events.column("customer_id"), value_set=pa.array(customers, pa.string())))
    results, skipped = [], []
    for name in targets if targets is not None else list(platform.targets):
        try:
            results.append(evaluate_target(workdir, platform, name, as_of, events, ledger, customers, grid, seed))
        except (FileNotFoundError, ValueError) as reason:
            if targets is not None:  # asked for by name: say why it cannot be evaluated
                raise
            skipped.append({"target": name, "reason": str(reason)})  # no head trained as of T, or labels not mature
    campaigns = None
    if platform.campaigns is not None:
        try:
            campaigns = campaign_holdout(workdir, platform, as_of, events, ledger, customers, seed)
        except (FileNotFoundError, ValueError) as reason:  # no head as of T, or no randomized controls after T
            skipped.append({"target": "campaign_response", "reason": str(reason)})
    pretrained = [
        a
        for a in map(ModelArtifact, versions_with_head(workdir.artifacts, "next_action"))
        if _events_before(a) <= as_of
    ]
    next_item = next_item_evaluation(pretrained[-1], events, customers, as_of, exclude_seen) if pretrained else None
    summary = {
        "as_of": as_of.isoformat(),
        "targets": results,
        "campaigns": campaigns,
        "skipped": skipped,
        "next_item": next_item,
    }
    folder = workdir.outputs / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"holdout-{as_of.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(summary, indent=2))
    return {**summary, "evaluation": str(path)}
