"""Online scoring: sequences from the Feast online store -> LAM -> per-campaign uplift -> call list.

Run: `lam score --workdir ./lam-demo` (after `lam finetune`). Writes outputs/call_list.{parquet,csv}
(top-K by uplift, one best campaign per customer) and outputs/scores.parquet (every eligible customer).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lam_platform.features import online_features, open_store, push_scores, schema_fingerprint
from lam_platform.ground_truth import METHODS, OFFERS
from lam_platform.sequences import SEQUENCE_SCHEMA
from lam_platform.simulator import load_world_config
from lam_platform.workdir import Workdir
from lightning_modules.artifact import ModelArtifact, latest_version
from lightning_modules.batches import CampaignContext, EventBatch, dataclass_from_arrays

CONTACT_HOUR = 10  # call lists are worked from 10:00 (the simulator's campaigns call between 09:00 and 18:00)
CALL_LIST_COLUMNS = ["rank", "customer_id", "offer", "method", "p_order_if_called", "p_order_if_not_called",
                     "uplift", "model_version", "scored_at"]


def online_rows_to_sequences(rows: pd.DataFrame) -> pa.Table:
    """Online-store rows (lists, or None for unknown customers) as a table in the sequence schema."""
    columns = {}
    for field in SEQUENCE_SCHEMA:
        if pa.types.is_list(field.type):
            columns[field.name] = pa.array([v if isinstance(v, (list, np.ndarray)) else [] for v in rows[field.name]],
                                           field.type)
    return pa.table(columns)


@dataclass
class CampaignScorer:
    """A loaded model (backbone + campaign-response head + tokenizer) that scores candidate campaigns."""

    artifact: ModelArtifact

    def __post_init__(self) -> None:
        self.tokenizer = self.artifact.tokenizer
        self.backbone = self.artifact.load_backbone()
        self.head = self.artifact.load_head("campaign_response")

    @torch.no_grad()
    def score(self, rows: pd.DataFrame, contact_time: pd.Timestamp, campaigns: list[tuple[str, str]],
              batch_size: int = 1024) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift for every (customer row, campaign) pair.

        contact_time: when the calls would be placed; its hour, weekday and gap since each customer's last
        event are campaign features, so it should look like the contact times the head was trained on.
        """
        frames = []
        for lo in range(0, len(rows), batch_size):
            chunk = rows.iloc[lo : lo + batch_size].reset_index(drop=True)
            arrays = self.tokenizer.encode_events(online_rows_to_sequences(chunk))
            last_event_us = arrays.pop("last_event_us")
            state = self.backbone(dataclass_from_arrays(EventBatch, arrays)).state
            for offer, method in campaigns:
                n = len(chunk)
                context = self.tokenizer.encode_campaigns(chunk, [offer] * n, [method] * n,
                                                          pd.Series([contact_time] * n), last_event_us)
                out = self.head(state, dataclass_from_arrays(CampaignContext, context))
                frames.append(pd.DataFrame({
                    "customer_id": chunk.customer_id, "offer": offer, "method": method,
                    "p_order_if_called": torch.sigmoid(out.logit_contacted).numpy(),
                    "p_order_if_not_called": torch.sigmoid(out.logit_not_contacted).numpy(),
                    "uplift": out.uplift.numpy()}))
        return pd.concat(frames, ignore_index=True)


def rank_call_list(scores: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """One best campaign per customer (largest uplift), then the top `capacity` customers by uplift."""
    best = scores.sort_values(["uplift", "customer_id"], ascending=[False, True], kind="stable")
    best = best.drop_duplicates("customer_id").head(capacity).reset_index(drop=True)
    return best.assign(rank=np.arange(1, len(best) + 1))


def next_contact_time(as_of: pd.Timestamp, hour: int = CONTACT_HOUR) -> pd.Timestamp:
    """The first `hour`:00 at or after `as_of`: when a call list scored at `as_of` is worked."""
    start = as_of.normalize() + pd.Timedelta(hours=hour)
    return start if start >= as_of else start + pd.Timedelta(days=1)


def score(workdir: Workdir, capacity: int | None = None, artifact_path: Path | None = None) -> dict:
    """Score every consenting customer from the online store and write the call list."""
    world = load_world_config(workdir)
    as_of = world.scoring_time
    store = open_store(workdir)
    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts))
    artifact.check_schema(schema_fingerprint(store))
    customer_ids = pd.read_parquet(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
    online = online_features(store, customer_ids)
    eligible = online[online.consent_marketing.fillna(False).astype(bool)].reset_index(drop=True)
    capacity = capacity or max(1, round(0.05 * len(customer_ids)))
    scores = CampaignScorer(artifact).score(eligible, next_contact_time(as_of), list(itertools.product(OFFERS, METHODS)))
    published = publish_scores(workdir, store, scores, as_of, artifact, capacity)
    return {**published, "scored": len(eligible), "excluded_without_consent": len(online) - len(eligible)}


def publish_scores(workdir: Workdir, store, scores: pd.DataFrame, as_of: pd.Timestamp, artifact: ModelArtifact,
                   capacity: int) -> dict:
    """Write the call list (top `capacity`) and all scores, and push each customer's best campaign to lam_scores."""
    best = rank_call_list(scores, len(scores))  # every customer's best campaign, best first
    call_list = best.head(capacity).assign(model_version=artifact.path.name, scored_at=as_of)[CALL_LIST_COLUMNS]
    workdir.outputs.mkdir(parents=True, exist_ok=True)
    call_list.to_parquet(workdir.outputs / "call_list.parquet", index=False)
    call_list.to_csv(workdir.outputs / "call_list.csv", index=False)
    scores.to_parquet(workdir.outputs / "scores.parquet", index=False)
    push_scores(store, pd.DataFrame({
        "customer_id": best.customer_id, "event_timestamp": as_of, "best_offer": best.offer, "best_method": best.method,
        "p_order_if_called": best.p_order_if_called, "p_order_if_not_called": best.p_order_if_not_called,
        "uplift": best.uplift, "model_version": artifact.path.name}))
    return {"call_list": str(workdir.outputs / "call_list.parquet"), "call_list_csv": str(workdir.outputs / "call_list.csv"),
            "pushed_to": "lam_scores", "capacity": capacity, "model_version": artifact.path.name,
            "as_of": as_of.isoformat()}


def rollout_customers(workdir: Workdir, customer_ids: list[str], steps: int = 5, temperature: float = 1.0,
                      seed: int = 0, artifact_path: Path | None = None) -> pd.DataFrame:
    """Sample each customer's next `steps` events from the pretrained LAM, starting from the online sequence."""
    from lightning_modules.rollout import rollout

    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts)).with_head("next_action")
    rows = online_features(open_store(workdir), customer_ids)
    missing = rows.customer_id[rows.event_timestamps.isna()].tolist()
    if missing:
        raise ValueError(f"no events in the online store for {missing}: check the ids, or run `lam materialize`")
    tokenizer = artifact.tokenizer
    arrays = tokenizer.encode_events(online_rows_to_sequences(rows))
    last_event_us = arrays.pop("last_event_us")
    future = rollout(artifact.load_backbone(), artifact.load_head("next_action"),
                     dataclass_from_arrays(EventBatch, arrays), steps, temperature,
                     torch.Generator().manual_seed(seed))
    frame = tokenizer.decode_events(future.categorical.numpy(), future.hours_after.numpy())
    last = pd.to_datetime(last_event_us[frame.row.to_numpy()], unit="us", utc=True)
    frame["event_timestamp"] = (last + pd.to_timedelta(frame.hours_after.to_numpy(), unit="h")).floor("min")
    frame.insert(0, "customer_id", rows.customer_id.to_numpy()[frame.row.to_numpy()])
    return frame.drop(columns="row").assign(model_version=artifact.path.name)
