"""Online scoring: sequences from the Feast online store -> LAM -> per-campaign uplift -> call list,
or -> the probability of an event-derived target.

Run: `lam score --workdir ./lam-demo [--as-of T]` (after `lam finetune`). Writes outputs/call_list.{parquet,csv}
(top-K by uplift, one best campaign per customer, the call-list rules of lam.yaml applied) and
outputs/scores.parquet (every eligible customer). `lam score --target NAME` writes outputs/targets/NAME.parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lam_platform.campaigns.explanations import DrivingEvent, driving_events, reason
from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock, write_atomically
from lam_platform.core.workdir import Workdir
from lam_platform.data.platform_config import CallListRules, PlatformConfig, PlatformConfigError
from lam_platform.features.store import online_features, open_store, push_scores, schema_fingerprint
from lam_platform.governance.consent import consented, consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.lightning_modules.attribution import integrated_gradients
from lam_platform.lightning_modules.batches import CampaignContext, CustomerContext, EventBatch, dataclass_from_arrays

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


def online_rows_to_sequences(rows: pd.DataFrame, list_types: dict[str, pa.DataType]) -> pa.Table:
    """Online-store rows (lists, or None for unknown customers) as a table of the list columns a
    tokenizer reads (`EventTokenizer.list_types`)."""
    return pa.table(
        {
            name: pa.array([v if isinstance(v, (list, np.ndarray)) else [] for v in rows[name]], kind)
            for name, kind in list_types.items()
        }
    )


def online_event_batch(tokenizer, rows: pd.DataFrame) -> tuple[EventBatch, np.ndarray]:
    """Online rows as an EventBatch, and each row's last event time (us since the epoch)."""
    arrays = tokenizer.encode_events(online_rows_to_sequences(rows, tokenizer.list_types()))
    last_event_us = arrays.pop("last_event_us")
    return dataclass_from_arrays(EventBatch, arrays), last_event_us


@dataclass
class CampaignScorer:
    """A loaded model (backbone + campaign-response head + tokenizer) that scores candidate campaigns."""

    artifact: ModelArtifact
    backbone: torch.nn.Module | None = None  # share one loaded backbone between scorers of a version

    def __post_init__(self) -> None:
        self.tokenizer = self.artifact.tokenizer
        self.backbone = self.backbone or self.artifact.load_backbone()
        self.head = self.artifact.load_head("campaign_response")

    @torch.no_grad()
    def score(
        self,
        rows: pd.DataFrame,
        contact_time: pd.Timestamp | list[pd.Timestamp],
        campaigns: list[tuple[str, str]],
        batch_size: int = 1024,
    ) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift for every (customer row, campaign, contact time).

        contact_time: when the calls would be placed (one time, or candidate time slots); its hour, weekday
        and gap since each customer's last event are campaign features, so it should look like the contact
        times the head was trained on.
        """
        times = contact_time if isinstance(contact_time, list) else [contact_time]
        frames = []
        for chunk in _chunks(rows, batch_size):
            state, last_event_us = self.encode(chunk)
            frames.append(self.score_state(chunk, state, last_event_us, campaigns, times))
        return pd.concat(frames, ignore_index=True)

    @torch.no_grad()
    def score_contacts(
        self, rows: pd.DataFrame, offers, methods, contact_times, batch_size: int = 1024
    ) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift of each row's own (offer, method, contact time):
        a logged contact scored as it happened (rows: its sequence and profile before the contact)."""
        offers, methods = np.asarray(offers, dtype=object), np.asarray(methods, dtype=object)
        times = pd.Series(pd.to_datetime(np.asarray(contact_times), utc=True))
        frames = []
        for lo in range(0, len(rows), batch_size):
            chunk = rows.iloc[lo : lo + batch_size]
            state, last_event_us = self.encode(chunk)
            part = slice(lo, lo + len(chunk))
            context = self.tokenizer.encode_campaigns(
                chunk, offers[part], methods[part], times.iloc[part].reset_index(drop=True), last_event_us
            )
            out = self.head(state, dataclass_from_arrays(CampaignContext, context))
            frames.append(
                pd.DataFrame(
                    {
                        "p_order_if_called": torch.sigmoid(out.logit_contacted).numpy(),
                        "p_order_if_not_called": torch.sigmoid(out.logit_not_contacted).numpy(),
                        "uplift": out.uplift.numpy(),
                    }
                )
            )
        return (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["p_order_if_called", "p_order_if_not_called", "uplift"])
        )

    def event_batch(self, rows: pd.DataFrame) -> tuple[EventBatch, np.ndarray]:
        return online_event_batch(self.tokenizer, rows)

    def encode(self, rows: pd.DataFrame, backbone: torch.nn.Module | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """Customer states (B, d) after each row's latest event (this scorer's backbone unless given one)."""
        events, last_event_us = self.event_batch(rows)
        return (backbone or self.backbone)(events).state, last_event_us

    def contexts(
        self, rows: pd.DataFrame, last_event_us: np.ndarray, campaigns: list[tuple[str, str]], times: list[pd.Timestamp]
    ) -> CampaignContext:
        """The CampaignContext of every (campaign, time, row) triple, in that nesting order (C * T * B rows).

        Profiles are encoded once per row and the contact features in numpy: the same tokenizer code as
        training (`encode_profiles`, `encode_contacts`), without per-pair pandas work.
        """
        n, c, t = len(rows), len(campaigns), len(times)
        row = np.tile(np.arange(n), c * t)
        offers = np.repeat(np.array([o for o, _ in campaigns], dtype=object), t * n)
        methods = np.repeat(np.array([m for _, m in campaigns], dtype=object), t * n)
        contact_us = np.tile(np.repeat(_micros(times), n), c)
        profile = {k: v[row] for k, v in self.tokenizer.encode_profiles(rows).items()}
        return dataclass_from_arrays(
            CampaignContext,
            {**profile, **self.tokenizer.encode_contacts(offers, methods, contact_us, last_event_us[row])},
        )

    @torch.no_grad()
    def score_grid(
        self,
        rows: pd.DataFrame,
        state: torch.Tensor,
        last_event_us: np.ndarray,
        campaigns: list[tuple[str, str]],
        times: list[pd.Timestamp],
    ) -> dict[str, np.ndarray]:
        """P(order | called), P(order | not called) and uplift as (campaigns, times, rows) arrays, one head call."""
        context = self.contexts(rows, last_event_us, campaigns, times)
        out = self.head(state.repeat(len(campaigns) * len(times), 1), context)
        shape = (len(campaigns), len(times), len(rows))
        return {
            "p_order_if_called": torch.sigmoid(out.logit_contacted).numpy().reshape(shape),
            "p_order_if_not_called": torch.sigmoid(out.logit_not_contacted).numpy().reshape(shape),
            "uplift": out.uplift.numpy().reshape(shape),
        }

    def explain(
        self, rows: pd.DataFrame, best: pd.DataFrame, as_of: pd.Timestamp, steps: int = 32, top: int = 3
    ) -> list[tuple[list[DrivingEvent], str]]:
        """Driving events and a reason per row for the uplift of that row's campaign in `best` (aligned rows:
        offer, method, contact_time), by integrated gradients over the event embeddings."""
        if not len(rows):
            return []
        events, last_event_us = self.event_batch(rows)
        context = self.tokenizer.encode_campaigns(
            rows,
            best.offer.to_numpy(),
            best.method.to_numpy(),
            pd.Series(pd.to_datetime(best.contact_time.to_numpy(), utc=True)),
            last_event_us,
        )
        attributions, _ = integrated_gradients(
            self.backbone, self.head, events, dataclass_from_arrays(CampaignContext, context), steps
        )
        explained = []
        for i in range(len(rows)):
            row = rows.iloc[i]
            driving = driving_events(row, attributions[i].numpy(), top)
            explained.append((driving, reason(row, driving, as_of)))
        return explained

    def score_state(
        self,
        rows: pd.DataFrame,
        state: torch.Tensor,
        last_event_us: np.ndarray,
        campaigns: list[tuple[str, str]],
        times: list[pd.Timestamp],
    ) -> pd.DataFrame:
        """Scores of every (row, campaign, time) as a long table (campaign-major), from precomputed states."""
        grid = self.score_grid(rows, state, last_event_us, campaigns, times)
        n, c, t = len(rows), len(campaigns), len(times)
        return pd.DataFrame(
            {
                "customer_id": np.tile(rows.customer_id.to_numpy(), c * t),
                "offer": np.repeat([o for o, _ in campaigns], t * n),
                "method": np.repeat([m for _, m in campaigns], t * n),
                "contact_time": pd.DatetimeIndex(
                    np.tile(np.repeat(_micros(times), n), c).astype("datetime64[us]"), tz="UTC"
                ),
                **{k: v.reshape(-1) for k, v in grid.items()},
            }
        )


def _chunks(rows: pd.DataFrame, size: int):
    """Consecutive row chunks of at most `size`, each indexed from 0: one model call per chunk bounds memory."""
    for lo in range(0, len(rows), size):
        yield rows.iloc[lo : lo + size].reset_index(drop=True)


def _micros(times: list[pd.Timestamp]) -> np.ndarray:
    """Times (with zone) as microseconds since the epoch, UTC."""
    return np.array([pd.Timestamp(t).tz_convert("UTC").value // 1000 for t in times], dtype=np.int64)


@dataclass
class TargetScorer:
    """A loaded model's target heads (lam.yaml `targets`): P(target within its horizon | customer at t)."""

    artifact: ModelArtifact
    names: list[str]
    backbone: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        self.tokenizer = self.artifact.tokenizer
        self.backbone = self.backbone or self.artifact.load_backbone()
        self.heads = {name: self.artifact.load_head(name) for name in self.names}

    @torch.no_grad()
    def score_state(
        self, rows: pd.DataFrame, state: torch.Tensor, last_event_us: np.ndarray, as_of: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        """Each target's probability per row at `as_of`, from precomputed customer states."""
        at_us = np.full(len(rows), _micros([as_of])[0], dtype=np.int64)
        context = dataclass_from_arrays(CustomerContext, self.tokenizer.encode_customers(rows, at_us, last_event_us))
        return {name: torch.sigmoid(head(state, context)).numpy() for name, head in self.heads.items()}

    @torch.no_grad()
    def score(self, rows: pd.DataFrame, as_of: pd.Timestamp, batch_size: int = 1024) -> pd.DataFrame:
        frames = []
        for chunk in _chunks(rows, batch_size):
            events, last_event_us = online_event_batch(self.tokenizer, chunk)
            scores = self.score_state(chunk, self.backbone(events).state, last_event_us, as_of)
            frames.append(pd.DataFrame({"customer_id": chunk.customer_id.to_numpy(), **scores}))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["customer_id", *self.names])


def call_exclusions(rows: pd.DataFrame, as_of: pd.Timestamp, rules: CallListRules) -> pd.Series:
    """Why each online row may not be called at `as_of` (None = eligible), first reason that applies:
    no_consent (unknown consent too: no profile, no consent), contacted_within_cooldown (an event on the
    rules' contact channel in the last `cooldown_days`), already_converted (an event with the conversion
    action in the last `converted_within_days`). The one rule set for the API and the batch list alike.
    """
    cooldown_days, converted_within_days = rules.cooldown_days, rules.converted_within_days
    consent = consented(rows.consent_marketing).to_numpy()
    events = rows[["event_timestamps", "channels", "actions"]].copy()
    events["row"] = np.arange(len(rows))
    events = events[events.event_timestamps.map(lambda v: isinstance(v, (list, np.ndarray)) and len(v) > 0)]
    contacted = np.zeros(len(rows), bool)
    converted = np.zeros(len(rows), bool)
    if len(events):
        flat = events.explode(["event_timestamps", "channels", "actions"])
        ts = pd.to_datetime(flat.event_timestamps, utc=True)
        before = ts <= as_of
        hit = flat.row[
            before & (flat.channels == rules.contact_channel) & (ts > as_of - pd.Timedelta(days=cooldown_days))
        ]
        contacted[hit.to_numpy(dtype=np.int64)] = True
        hit = flat.row[
            before & (flat.actions == rules.conversion_action) & (ts > as_of - pd.Timedelta(days=converted_within_days))
        ]
        converted[hit.to_numpy(dtype=np.int64)] = True
    reasons = np.full(len(rows), None, dtype=object)
    reasons[converted] = "already_converted"  # later assignments win: consent first, then the cool-down
    reasons[contacted] = "contacted_within_cooldown"
    reasons[~consent] = "no_consent"
    return pd.Series(reasons, index=rows.index, dtype=object)


def rank_call_list(scores: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """One best campaign per customer (largest uplift), then the top `capacity` customers by uplift."""
    best = scores.sort_values(["uplift", "customer_id"], ascending=[False, True], kind="stable")
    best = best.drop_duplicates("customer_id").head(capacity).reset_index(drop=True)
    return best.assign(rank=np.arange(1, len(best) + 1))


def next_contact_time(as_of: pd.Timestamp, hour: int) -> pd.Timestamp:
    """The first `hour`:00 at or after `as_of`: when a call list scored at `as_of` is worked."""
    start = as_of.normalize() + pd.Timedelta(hours=hour)
    return start if start >= as_of else start + pd.Timedelta(days=1)


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
