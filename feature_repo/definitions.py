"""LAM feature definitions, in dependency order: entity, sources, feature views, feature services.

Apply with `lam materialize` (or `feast -c <repo> apply` in a prepared workdir). Source paths are
relative to the repo folder; environments differ only in `feature_store.yaml`.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String, UnixTimestamp

# The customer: the "who" of every 4W1H event.
customer = Entity(
    name="customer", join_keys=["customer_id"], value_type=ValueType.STRING, description="A customer, by pseudonymous id."
)

# Profiles: slowly changing attributes and consent flags, one row per change (as-of event_timestamp).
customer_profile_source = FileSource(
    name="customer_profile_source", path="data/customer_profile.parquet", timestamp_field="event_timestamp"
)

# Sequences: each customer's most recent N events before each snapshot time (lam_platform.sequences).
customer_event_sequence_source = FileSource(
    name="customer_event_sequence_source",
    path="data/customer_event_sequence.parquet",
    timestamp_field="event_timestamp",
)

# Profile features: what the legacy segment rule uses, plus consent (never score without it).
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="age_band", dtype=String),
        Field(name="gender", dtype=String),
        Field(name="plan", dtype=String),
        Field(name="tenure_months", dtype=Int64),
        Field(name="region", dtype=String),
        Field(name="consent_marketing", dtype=Bool),
    ],
    source=customer_profile_source,
    online=True,
)

# The most recent N events as raw, model-agnostic arrays (NaN = missing numeric value).
customer_event_sequence = FeatureView(
    name="customer_event_sequence",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="seq_len", dtype=Int64),
        Field(name="event_timestamps", dtype=Array(UnixTimestamp)),
        Field(name="channels", dtype=Array(String)),
        Field(name="objects", dtype=Array(String)),
        Field(name="actions", dtype=Array(String)),
        Field(name="amounts", dtype=Array(Float64)),
        Field(name="durations_s", dtype=Array(Float64)),
    ],
    source=customer_event_sequence_source,
    online=True,
)

# Fine-tuning reads profiles point-in-time at each contact; sequences come from the exact builder.
lam_finetune_v1 = FeatureService(name="lam_finetune_v1", features=[customer_profile])

# Online scoring reads the current sequence and profile (consent included) of each customer.
lam_scoring_v1 = FeatureService(name="lam_scoring_v1", features=[customer_profile, customer_event_sequence])
