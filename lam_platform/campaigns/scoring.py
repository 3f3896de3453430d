"""Online scoring: sequences from the Feast online store -> LAM -> per-campaign uplift -> call list,
or -> the probability of an event-derived target.

Run: `lam score --workdir ./lam-demo [--as-of T]` (after `lam finetune`). Writes outputs/call_list.{parquet,csv}
(top-K by uplift, one best campaign per customer, the call-list rules of lam.yaml applied) and
outputs/scores.parquet (every eligible customer). `lam score --target NAME` writes outputs/targets/NAME.parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time, rank_call_list
from lam_platform.campaigns.scorer import CampaignScorer, TargetScorer, online_event_batch
from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock, write_atomically
from lam_platform.core.workdir import Workdir
from lam_platform.data.platform_config import PlatformConfig, PlatformConfigError
from lam_platform.features.store import online_features, open_store, push_scores, schema_fingerprint
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version

CALL_LIST_COLUMNS = [
    "rank",
    "customer_id",
    "offer",
    "method",
    "contact_time",
    "p_order_if_called",
    "p_order_if_not_called",
    "uplift",
    "reason",
    "driving_events",
    "model_version",
    "scored_at",
]


def score(
    workdir: Workdir, as_of: pd.Timestamp, capacity: int | None = None, artifact_path: Path | None = None
) -> dict:
    """Score every customer the call-list rules allow from the online store and write the call list."""
    with governance_lock(workdir.root, shared=True):  # an erasure or consent change waits, or goes first
        return _score(workdir, as_of, capacity, artifact_path)


def _score(workdir: Workdir, as_of: pd.Timestamp, capacity: int | None, artifact_path: Path | None) -> dict:
    platform = PlatformConfig.load(workdir.root)
    if not platform.contact_allowed:
        raise PlatformConfigError(
            f"{workdir.config}: consent is `analysis_only`, so no call list is built; "
            "score targets with `lam score --target NAME`, or declare a customers table "
            "with consent"
        )
    catalogue = platform.require_catalogue()
    store = open_store(workdir)
    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts, "campaign_response"))
    artifact.check_schema(schema_fingerprint(store))
    customer_ids = read_profiles(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
    progress.stage(f"reading {len(customer_ids):,} customers from the online store")
    online = online_features(store, customer_ids)
    reasons = call_exclusions(online, as_of, platform.call_list)
    eligible = online[reasons.isna().to_numpy()].reset_index(drop=True)
    capacity = capacity or platform.call_list.calls_for(len(customer_ids))
    scorer = CampaignScorer(artifact)
    scores = scorer.score(eligible, next_contact_time(as_of, catalogue.contact_slots[0]), catalogue.campaigns)
    published = publish_scores(workdir, store, scores, as_of, artifact, capacity, scorer)
    return {**published, "scored": len(eligible), "excluded": reasons.value_counts().to_dict()}


def score_target(workdir: Workdir, target: str, as_of: pd.Timestamp, artifact_path: Path | None = None) -> dict:
    """Score target `target` for every customer who may be trained on (consent per lam.yaml), from the online
    store; writes outputs/targets/<target>.parquet (customer_id, probability, model_version, scored_at)."""
    with governance_lock(workdir.root, shared=True):
        return _score_target(workdir, target, as_of, artifact_path)


def _score_target(workdir: Workdir, target: str, as_of: pd.Timestamp, artifact_path: Path | None) -> dict:
    platform = PlatformConfig.load(workdir.root)
    platform.target(target)
    store = open_store(workdir)
    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts, target))
    artifact.check_schema(schema_fingerprint(store))
    customers = consenting_customers(read_profiles(workdir.profiles), platform.consent_mode)
    rows = online_features(store, customers)
    rows = rows[rows.seq_len.fillna(0) > 0].reset_index(drop=True)  # no history, nothing to score
    scores = TargetScorer(artifact, [target]).score(rows, as_of).rename(columns={target: "probability"})
    scores = scores.assign(model_version=artifact.path.name, scored_at=as_of).sort_values(
        "probability", ascending=False, kind="stable"
    )
    path = workdir.outputs / "targets" / f"{target}.parquet"
    write_atomically(path, lambda p: scores.to_parquet(p, index=False))
    return {
        "target": target,
        "scores": str(path),
        "scored": len(scores),
        "model_version": artifact.path.name,
        "as_of": as_of.isoformat(),
        "mean_probability": round(float(scores.probability.mean()), 4) if len(scores) else None,
    }


def publish_scores(
    workdir: Workdir,
    store,
    scores: pd.DataFrame,
    as_of: pd.Timestamp,
    artifact: ModelArtifact,
    capacity: int,
    scorer: CampaignScorer | None = None,
) -> dict:
    """Write the call list (top `capacity`) and all scores, and push each customer's best campaign to lam_scores."""
    best = rank_call_list(scores, len(scores))  # every customer's best campaign, best first
    call_list = best.head(capacity).assign(model_version=artifact.path.name, scored_at=as_of)
    # The person who makes the call sees why: driving events (JSON) and a reason, from the online rows
    # (identical to the offline snapshot the batch path scored, by the no-skew contract).
    rows = online_features(store, call_list.customer_id.tolist())
    explained = (scorer or CampaignScorer(artifact)).explain(rows, call_list, as_of)
    call_list["reason"] = [why for _, why in explained]
    call_list["driving_events"] = [json.dumps([vars(e) for e in driving]) for driving, _ in explained]
    call_list = call_list[CALL_LIST_COLUMNS]
    # Each file whole or not at all: the call centre's export and the service read them while we write.
    write_atomically(workdir.call_list, lambda p: call_list.to_parquet(p, index=False))
    write_atomically(workdir.call_list_csv, lambda p: call_list.to_csv(p, index=False))
    write_atomically(workdir.outputs / "scores.parquet", lambda p: scores.to_parquet(p, index=False))
    push_scores(
        store,
        pd.DataFrame(
            {
                "customer_id": best.customer_id,
                "event_timestamp": as_of,
                "best_offer": best.offer,
                "best_method": best.method,
                "p_order_if_called": best.p_order_if_called,
                "p_order_if_not_called": best.p_order_if_not_called,
                "uplift": best.uplift,
                "model_version": artifact.path.name,
            }
        ),
    )
    return {
        "call_list": str(workdir.call_list),
        "call_list_csv": str(workdir.call_list_csv),
        "pushed_to": "lam_scores",
        "capacity": capacity,
        "model_version": artifact.path.name,
        "as_of": as_of.isoformat(),
    }


def rollout_customers(
    workdir: Workdir,
    customer_ids: list[str],
    steps: int = 5,
    temperature: float = 1.0,
    seed: int = 0,
    artifact_path: Path | None = None,
) -> pd.DataFrame:
    """Sample each customer's next `steps` events from the pretrained LAM, starting from the online sequence."""
    from lam_platform.lightning_modules.rollout import rollout

    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts)).with_head("next_action")
    rows = online_features(open_store(workdir), customer_ids)
    missing = rows.customer_id[rows.event_timestamps.isna()].tolist()
    if missing:
        raise ValueError(f"no events in the online store for {missing}: check the ids, or run `lam materialize`")
    tokenizer = artifact.tokenizer
    events, last_event_us = online_event_batch(tokenizer, rows)
    future = rollout(
        artifact.load_backbone(),
        artifact.load_head("next_action"),
        events,
        steps,
        temperature,
        torch.Generator().manual_seed(seed),
    )
    frame = tokenizer.decode_events(future.categorical.numpy(), future.hours_after.numpy())
    last = pd.to_datetime(last_event_us[frame.row.to_numpy()], unit="us", utc=True)
    frame["event_timestamp"] = (last + pd.to_timedelta(frame.hours_after.to_numpy(), unit="h")).floor("min")
    frame.insert(0, "customer_id", rows.customer_id.to_numpy()[frame.row.to_numpy()])
    return frame.drop(columns="row").assign(model_version=artifact.path.name)
