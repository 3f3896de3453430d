"""Training sets, built point-in-time: every example sees only events strictly before its time.

- pretraining: for sampled target events of consenting customers in the training period, the
  `max_len + 1` events up to and including the target; inputs are all but the last, targets are
  each input's successor.
- fine-tuning: the campaign log is the entity frame. Profiles come from Feast's
  `get_historical_features` (as of each contact); sequences from the exact sequence builder
  (events strictly before the contact).
- target heads: the cut-off grid of `lam_platform.data.targets` is the entity frame, the same way.
Both are written as Parquet shards of tokenized arrays (lam_platform.campaigns.training_shards) that the Ray
Train workers stream through Ray Data. The jobs build them one customer shard of the event table at a time
(lam_platform.campaigns.training_events); the functions here take a whole table or one shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.campaigns.training_shards import EXAMPLE_TIME, TrainingShardWriter
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, EventAttributes, read_events
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.sequences import build_sequences, list_columns, list_items
from lam_platform.features.store import historical_profiles
from lam_platform.governance.consent import consented_rows, consenting_customers, current_profiles
from lam_platform.lightning_modules.token_statistics import EventValueStatistics
from lam_platform.lightning_modules.tokenizer import EventTokenizer

ONE_MICROSECOND = pd.Timedelta(microseconds=1)


def training_events(workdir: Workdir, until: pd.Timestamp, customers: list[str]) -> pa.Table:
    """Events strictly before `until` of the given customers."""
    events = read_events(workdir.events)
    return events.filter(trained_on(events, until, customers))


def trained_on(events: pa.Table, until: pd.Timestamp, customers: list[str] | pa.Array) -> pa.ChunkedArray:
    """Which events a model trained as of `until` may learn from: strictly before it, of `customers` (those who
    may be trained on; an Arrow array to reuse it across calls)."""
    value_set = customers if isinstance(customers, pa.Array) else pa.array(customers, pa.string())
    return pc.and_(
        pc.less(events.column("event_timestamp"), pa.scalar(until, TIMESTAMP)),
        pc.is_in(events.column("customer_id"), value_set=value_set),
    )


def fit_tokenizer(
    events: pa.Table | Iterable[pa.Table],
    profiles: pd.DataFrame,
    until: pd.Timestamp,
    max_len: int,
    platform: PlatformConfig,
) -> EventTokenizer:
    """Vocabularies and scaling from the training period, for the catalogue and profile fields lam.yaml declares.
    `events`: the table, or its parts (`TrainingEvents.each`), counted one at a time."""
    customers = consenting_customers(profiles, platform.consent_mode)
    value_set = pa.array(customers, pa.string())
    statistics = EventValueStatistics()
    for part in [events] if isinstance(events, pa.Table) else events:
        statistics.add(event_values(part, value_set, until))
    # Vocabularies and scaling see only what was known before `until`, of customers who may be trained on.
    profiles = current_profiles(profiles, as_of=until - ONE_MICROSECOND)
    profiles = profiles[profiles.customer_id.isin(customers)]
    catalogue = platform.catalogue
    return EventTokenizer.fit(
        statistics,
        profiles,
        catalogue.offers if catalogue else [],
        catalogue.methods if catalogue else [],
        max_len,
        categorical_profile=platform.categorical_profile,
        numeric_profile=platform.numeric_profile,
    )


def event_values(events: pa.Table, customers: list[str] | pa.Array, until: pd.Timestamp) -> pa.Table:
    """Every event of `customers` before `until` as one row of list columns: the values a snapshot of each
    customer's whole history would hold (`build_sequences`' columns and missing values), for fitting the
    tokenizer, which counts tokens and takes quantiles (order and grouping do not matter). Building each
    customer's history instead copied the event table once more."""
    keep = trained_on(events, until, customers).to_numpy(zero_copy_only=False)
    events = events if keep.all() else events.filter(pa.array(keep))
    attributes = EventAttributes.of_table(events)
    one_row = pa.array([0, events.num_rows], pa.int32())
    columns = {}
    for list_name, event_name in list_columns(attributes).items():
        values = list_items(events.column(event_name).combine_chunks(), event_name, attributes)
        columns[list_name] = pa.ListArray.from_arrays(one_row, values)
    return pa.table(columns)


TARGET_SAMPLING = ("random", "latest")


def build_pretrain_set(
    events: pa.Table | Iterable[pa.Table],
    tokenizer: EventTokenizer,
    samples_per_customer: int,
    recent: int,
    seed: int,
    path: Path,
    sampling: str = "random",
) -> int:
    """Pick target events per customer and write inputs and next-event targets as shards in `path`.

    `events`: sorted by customer and time, whole or in parts that each hold whole customers
    (`TrainingEvents.each`); one random generator runs through the parts in order.
    random: `samples_per_customer` targets drawn from all but each customer's first event (windows overlap,
    so the hierarchical mode's long history is seen from several ends). latest: each customer's last event
    only, its window of `tokenizer.max_len` events trained at its last `recent` positions: with recent equal
    to max_len, every position once, as SASRec trains (no position counted twice in an epoch).
    """
    if sampling not in TARGET_SAMPLING:
        raise ValueError(f"target_sampling {sampling!r}: expected one of {TARGET_SAMPLING}")
    rng = np.random.default_rng(seed)
    with TrainingShardWriter(path) as writer:
        for part in [events] if isinstance(events, pa.Table) else events:
            writer.write(_pretrain_examples(part, tokenizer, samples_per_customer, recent, rng, sampling))
    return writer.rows


def _pretrain_examples(
    events: pa.Table,
    tokenizer: EventTokenizer,
    samples_per_customer: int,
    recent: int,
    rng: np.random.Generator,
    sampling: str,
) -> dict[str, np.ndarray]:
    """The tokenized pretraining examples of one part's customers."""
    customers = events.column("customer_id").to_numpy(zero_copy_only=False)
    times = events.column("event_timestamp").to_numpy(zero_copy_only=False)
    # Targets: any event but a customer's first (it needs at least one event before it).
    first = np.r_[True, customers[1:] != customers[:-1]]
    if sampling == "latest":
        last = np.r_[customers[1:] != customers[:-1], True]
        picked = np.flatnonzero(last & ~first)
    else:
        candidates = np.flatnonzero(~first)
        per_customer = (
            pd.Series(candidates)
            .groupby(customers[candidates])
            .apply(lambda idx: rng.choice(idx.to_numpy(), size=min(samples_per_customer, len(idx)), replace=False))
        )
        picked = np.sort(np.concatenate(per_customer.to_numpy())) if len(per_customer) else np.array([], int)
    as_of = pa.array(pd.DatetimeIndex(times[picked]).tz_localize("UTC") + ONE_MICROSECOND, TIMESTAMP)
    sequences = build_sequences(events, pa.array(customers[picked], pa.string()), as_of, tokenizer.max_len + 1)
    full = tokenizer.encode_events(sequences, max_len=tokenizer.max_len + 1)
    arrays = {k: v[:, :-1] for k, v in full.items() if k != "last_event_us"}  # inputs: all but the target
    arrays["next_categorical"] = full["categorical"][:, 1:][:, -recent:]  # each input position's successor
    arrays["next_log_gap_hours"] = full["log_gap_hours"][:, 1:][:, -recent:]
    arrays[EXAMPLE_TIME] = pd.DatetimeIndex(times[picked]).as_unit("us").asi8  # the predicted event's time
    return arrays


def finetune_frame(
    store, events: pa.Table, campaign_log: pd.DataFrame, max_len: int, eligible: list[str], consent_mode: str = "ledger"
) -> tuple[pd.DataFrame, pd.DataFrame, pa.Table, int]:
    """The campaign log joined point-in-time: (log rows, Feast profiles, sequences, rows dropped for consent).

    Profiles come from Feast as of each contact; sequences hold only events strictly before it.
    A row is kept only if the customer consented at the contact and still consents now (`eligible`,
    from `consenting_customers`): a withdrawal removes the customer's whole history from the set. A contact
    before the customer's first profile row has no profile (and no consent) as of it.
    """
    profiles = historical_profiles(store, campaign_log[["customer_id", "event_timestamp"]])
    without_consent = ~consented_rows(profiles.consent_marketing, consent_mode)
    without_consent |= ~campaign_log.customer_id.isin(eligible).to_numpy()
    log = campaign_log.reset_index(drop=True)[~without_consent].reset_index(drop=True)
    profiles = profiles[~without_consent].reset_index(drop=True)
    sequences = build_sequences(
        events, pa.array(log.customer_id, pa.string()), pa.array(log.event_timestamp, TIMESTAMP), max_len
    )
    return log, profiles, sequences, int(without_consent.sum())


def inverse_propensity_weights(log: pd.DataFrame, cap_quantile: float = 0.99) -> np.ndarray:
    """Weights that undo the logged policy's selection: 1 / propensity, capped, mean 1 within each arm.

    A log without a `propensity` column gets weight 1 everywhere (plain, selection-biased training).
    Capping at a high quantile bounds the variance a few near-zero propensities would add; normalising
    per arm (self-normalised IPW) keeps each arm's loss on its usual scale.
    """
    if "propensity" not in log or log.propensity.isna().all():  # a source that logs no propensities
        return np.ones(len(log), np.float32)
    propensity = log.propensity.to_numpy(dtype=float)
    bad = ~((propensity > 0) & (propensity <= 1))
    if bad.any():
        first = log[bad].iloc[0]
        raise ValueError(
            f"campaign log: {int(bad.sum())} rows have a propensity outside (0, 1] (first: customer "
            f"{first.customer_id} in {first.get('campaign_id', '?')}: {first.propensity}); fix the log "
            "or drop its propensity column to train without weighting"
        )
    weight = 1.0 / propensity
    weight = np.minimum(weight, np.quantile(weight, cap_quantile))
    treated = log.treatment.to_numpy() == 1
    for arm in (treated, ~treated):
        if arm.any():
            weight[arm] /= weight[arm].mean()
    return weight.astype(np.float32)


def finetune_arrays(
    store,
    events: pa.Table,
    campaign_log: pd.DataFrame,
    tokenizer: EventTokenizer,
    eligible: list[str],
    consent_mode: str = "ledger",
) -> tuple[dict[str, np.ndarray], dict]:
    """The point-in-time campaign set, tokenized (events, campaign context, treatment, outcome, weight), and
    its counts."""
    return weighted_campaign_set([campaign_part(store, events, campaign_log, tokenizer, eligible, consent_mode)])


def campaign_part(
    store,
    events: pa.Table,
    campaign_log: pd.DataFrame,
    tokenizer: EventTokenizer,
    eligible: list[str],
    consent_mode: str = "ledger",
) -> tuple[dict[str, np.ndarray], pd.DataFrame, int]:
    """Campaign rows whose customers' events are all in `events`, tokenized without their weights: (arrays,
    the log rows kept, rows dropped for consent)."""
    log, profiles, sequences, dropped = finetune_frame(
        store, events, campaign_log, tokenizer.max_len, eligible, consent_mode
    )
    arrays = tokenizer.encode_events(sequences)
    arrays.update(
        tokenizer.encode_campaigns(
            profiles, log.offer.tolist(), log.method.tolist(), log.event_timestamp, arrays.pop("last_event_us")
        )
    )
    arrays["treatment"] = log.treatment.to_numpy(np.int64)
    arrays["outcome"] = log.outcome.to_numpy(np.float32)
    arrays[EXAMPLE_TIME] = pd.DatetimeIndex(log.event_timestamp).as_unit("us").asi8  # the contact
    return arrays, log, dropped


def weighted_campaign_set(
    parts: list[tuple[dict[str, np.ndarray], pd.DataFrame, int]],
) -> tuple[dict[str, np.ndarray], dict]:
    """Parts of the campaign set (`campaign_part`) as one, in the log's order (by its `_row` column where the
    parts carry one), weighted by propensity over the whole log (the weights' normalisation is per arm of
    all of it), with its counts."""
    order, log = ordered_campaign_log([part_log for _, part_log, _ in parts])
    arrays = {name: np.concatenate([part[name] for part, _, _ in parts])[order] for name in parts[0][0]}
    arrays["weight"] = inverse_propensity_weights(log)
    return arrays, campaign_set_counts(log, arrays["weight"], sum(dropped for _, _, dropped in parts))


def ordered_campaign_log(logs: list[pd.DataFrame]) -> tuple[np.ndarray, pd.DataFrame]:
    """(the order, the log): the parts' rows as one frame in the log's order (by `_row` where they carry it),
    and where each of its rows is in the parts' concatenation."""
    log = pd.concat(logs, ignore_index=True)
    order = np.argsort(log._row.to_numpy(), kind="stable") if "_row" in log else np.arange(len(log))
    return order, log.iloc[order].reset_index(drop=True)


def campaign_set_counts(log: pd.DataFrame, weight: np.ndarray, dropped: int) -> dict:
    """What the training card records of a campaign set: its rows, arms, orders and the weights' effective size."""
    ess = float(weight.sum() ** 2 / (weight**2).sum()) if len(log) else 0.0
    return {
        "rows": len(log),
        "excluded_without_consent": dropped,
        "propensity_weighted": "propensity" in log and bool(log.propensity.notna().any()),
        "effective_sample_size": round(ess, 1),
        "contacted": int(log.treatment.sum()),
        "orders": int(log.outcome.sum()),
    }


def target_arrays(store, events: pa.Table, examples: pd.DataFrame, tokenizer: EventTokenizer) -> dict[str, np.ndarray]:
    """Target examples (customer_id, event_timestamp = cut-off, label) tokenized: events strictly before each
    cut-off, profiles from Feast as of it, the gap from the latest event to it, and the label."""
    profiles = historical_profiles(store, examples[["customer_id", "event_timestamp"]])
    sequences = build_sequences(
        events,
        pa.array(examples.customer_id, pa.string()),
        pa.array(examples.event_timestamp, TIMESTAMP),
        tokenizer.max_len,
    )
    arrays = tokenizer.encode_events(sequences)
    at_us = pd.DatetimeIndex(examples.event_timestamp).as_unit("us").asi8
    arrays.update(tokenizer.encode_customers(profiles, at_us, arrays.pop("last_event_us")))
    arrays["label"] = examples.label.to_numpy(np.float32)
    arrays[EXAMPLE_TIME] = at_us  # the cut-off
    return arrays
