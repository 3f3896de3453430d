"""LAM feature definitions, in dependency order: entity, sources, feature views, feature services.

Apply with `lam materialize` (or `feast -c <repo> apply` in a prepared workdir). Source paths are
relative to the repo folder; environments differ only in `feature_store.yaml`.
"""

import json
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String, UnixTimestamp

# What this workdir's views carry: rewritten by every `lam materialize` from the event table and lam.yaml
# (the declared profile fields, every aggregate feature, the event attributes). This file imports only
# Feast, so `feast apply` runs where only Feast is installed; it is copied once and then yours to edit.
REPO_SCHEMA = json.loads((Path(__file__).resolve().parent / "repo_schema.json").read_text())
ATTRIBUTES = REPO_SCHEMA.get("attributes", {"numeric": [], "categorical": []})
PROFILE_TYPES = {"categorical": String, "numeric": Float64}

# The customer: the "who" of every 4W1H event.
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A customer, by pseudonymous id.",
)

# The 4W1H event table, partitioned by date: the source every sequence and aggregate is built from.
customer_events_source = FileSource(
    name="customer_events_source", path="data/events", timestamp_field="event_timestamp"
)

# Profiles: slowly changing attributes and consent flags, one row per change (as-of event_timestamp).
customer_profile_source = FileSource(
    name="customer_profile_source", path="data/customer_profile.parquet", timestamp_field="event_timestamp"
)

# The campaign log: one row per contact decision; the entity frame of fine-tuning training sets.
campaign_log_source = FileSource(
    name="campaign_log_source", path="data/campaign_log.parquet", timestamp_field="event_timestamp"
)

# Sequence snapshots: each customer's last N events before each materialization time (one file per run).
customer_event_sequence_source = FileSource(
    name="customer_event_sequence_source", path="data/customer_event_sequence", timestamp_field="event_timestamp"
)

# Aggregate snapshots: counts and sums over 7/30/90 days before each materialization time.
customer_event_aggregates_source = FileSource(
    name="customer_event_aggregates_source", path="data/customer_event_aggregates", timestamp_field="event_timestamp"
)

# Scores pushed by `lam score` (online and offline), read by downstream services.
lam_scores_push = PushSource(
    name="lam_scores_push",
    batch_source=FileSource(
        name="lam_scores_source", path="data/lam_scores.parquet", timestamp_field="event_timestamp"
    ),
)

# Profile features: the fields lam.yaml declares, plus consent (unknown = no consent: never contacted).
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        *(Field(name=name, dtype=PROFILE_TYPES[kind]) for name, kind in REPO_SCHEMA["profile"].items()),
        Field(name="consent_marketing", dtype=Bool),
    ],
    source=customer_profile_source,
    online=True,
)

# Order-blind aggregates per channel and action, and recency: what the baselines use.
customer_event_aggregates = FeatureView(
    name="customer_event_aggregates",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name=name, dtype=Int64 if kind == "count" else Float64)
        for name, kind in REPO_SCHEMA["aggregate_features"]
    ],
    source=customer_event_aggregates_source,
    online=True,
)

# The most recent N events as raw, model-agnostic arrays (NaN = missing numeric value).
customer_event_sequence = FeatureView(
    name="customer_event_sequence",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="seq_len", dtype=Int64),
        Field(name="event_ids", dtype=Array(String)),
        Field(name="event_timestamps", dtype=Array(UnixTimestamp)),
        Field(name="channels", dtype=Array(String)),
        Field(name="objects", dtype=Array(String)),
        Field(name="actions", dtype=Array(String)),
        # One list per declared event attribute, named <attribute>_seq (see lam_platform/features/sequences.py).
        *(Field(name=f"{name}_seq", dtype=Array(Float64)) for name in ATTRIBUTES["numeric"]),
        *(Field(name=f"{name}_seq", dtype=Array(String)) for name in ATTRIBUTES["categorical"]),
    ],
    source=customer_event_sequence_source,
    online=True,
)

# The latest LAM scores: best campaign per customer, its uplift and the model version that scored it.
lam_scores = FeatureView(
    name="lam_scores",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[
        Field(name="best_offer", dtype=String),
        Field(name="best_method", dtype=String),
        Field(name="p_order_if_called", dtype=Float64),
        Field(name="p_order_if_not_called", dtype=Float64),
        Field(name="uplift", dtype=Float64),
        Field(name="model_version", dtype=String),
    ],
    source=lam_scores_push,
    online=True,
)

# Pretraining reads sequences of consenting customers.
lam_pretrain_v1 = FeatureService(name="lam_pretrain_v1", features=[customer_profile, customer_event_sequence])

# Fine-tuning reads profiles and aggregates point-in-time at each contact; sequences come from the exact builder.
lam_finetune_v1 = FeatureService(name="lam_finetune_v1", features=[customer_profile, customer_event_aggregates])

# Online scoring reads the current sequence and profile (consent included) of each customer.
lam_scoring_v1 = FeatureService(name="lam_scoring_v1", features=[customer_profile, customer_event_sequence])
