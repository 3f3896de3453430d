"""The tokenizer: raw 4W1H sequences (list columns) -> padded integer and float arrays.

It belongs to the model artifact, not to the feature store: vocabularies and numeric scaling are
fitted on the training period and saved as JSON next to the weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.lightning_modules.token_statistics import CATEGORICAL_LISTS, EventValueStatistics

PAD, OOV = 0, 1
US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


@dataclass
class EventTokenizer:
    vocabularies: dict[str, list[str]]  # categorical list column (core and attribute) -> tokens; token i has id i + 2
    numeric_scaling: dict[str, tuple[float, float]]  # numeric attribute list -> (median, scale) of log1p(value)
    profile_vocabularies: dict[str, list[str]]  # categorical profile field -> tokens (declared order)
    offers: list[str]
    methods: list[str]
    max_len: int
    profile_scaling: dict[str, tuple[float, float]] = field(default_factory=dict)  # numeric field -> (median, scale)

    def __post_init__(self) -> None:
        # token -> id per profile field, filled on first use; an attribute, not a field: never saved
        self._profile_lookups: dict[str, dict[str, int]] = {}

    @classmethod
    def fit(
        cls,
        sequences: pa.Table | EventValueStatistics,
        profiles: pd.DataFrame,
        offers: list[str],
        methods: list[str],
        max_len: int,
        min_count: int = 5,
        categorical_profile: list[str] = (),
        numeric_profile: list[str] = (),
    ) -> EventTokenizer:
        """Fit on training-period sequences (list columns as in the `customer_event_sequence` view, one per
        declared event attribute), or on their statistics gathered a part at a time, and the declared profile
        fields (none for a workdir without a customer table)."""
        statistics = sequences if isinstance(sequences, EventValueStatistics) else EventValueStatistics.of(sequences)
        vocabularies = {c: statistics.vocabulary(c, min_count) for c in statistics.categorical_columns}
        scaling = {c: statistics.scaling(c) for c in statistics.numeric_columns}
        profile_vocabularies = {
            f: sorted(profiles[f].dropna().astype(str).unique().tolist()) for f in categorical_profile
        }
        profile_scaling = {}
        for name in numeric_profile:
            values = pd.to_numeric(profiles[name], errors="coerce").dropna().to_numpy(dtype=np.float64)
            q25, q50, q75 = np.percentile(values, [25, 50, 75]) if len(values) else (0.0, 0.0, 1.0)
            profile_scaling[name] = (float(q50), float(max(q75 - q25, 1e-3)))
        return cls(
            vocabularies, scaling, profile_vocabularies, sorted(offers), sorted(methods), max_len, profile_scaling
        )

    # -- the event attributes it encodes ------------------------------------------------------------
    @property
    def numeric_lists(self) -> tuple[str, ...]:
        return tuple(sorted(self.numeric_scaling))

    @property
    def attribute_lists(self) -> tuple[str, ...]:
        """The categorical attribute list columns, in the order of EventBatch.attributes."""
        return tuple(sorted(set(self.vocabularies) - set(CATEGORICAL_LISTS)))

    def list_types(self) -> dict[str, pa.DataType]:
        """The list columns the encoder reads, with their Arrow types (to build a table from online rows)."""
        return {
            "event_timestamps": pa.list_(pa.timestamp("us", tz="UTC")),
            **{c: pa.list_(pa.string()) for c in (*CATEGORICAL_LISTS, *self.attribute_lists)},
            **{c: pa.list_(pa.float64()) for c in self.numeric_lists},
        }

    # -- sizes for LAMConfig -------------------------------------------------------------------
    def config_sizes(self) -> dict:
        return {
            "n_channels": len(self.vocabularies["channels"]) + 2,
            "n_objects": len(self.vocabularies["objects"]) + 2,
            "n_actions": len(self.vocabularies["actions"]) + 2,
            "attribute_vocab_sizes": tuple(len(self.vocabularies[c]) + 2 for c in self.attribute_lists),
            "n_numeric": len(self.numeric_lists),
            "profile_vocab_sizes": tuple(len(tokens) + 2 for tokens in self.profile_vocabularies.values()),
            "n_profile_numeric": len(self.profile_scaling),
            "n_offers": len(self.offers),
            "n_methods": len(self.methods),
            "max_len": self.max_len,
        }

    # -- encoding --------------------------------------------------------------------------------
    def encode_events(self, sequences: pa.Table, max_len: int | None = None) -> dict[str, np.ndarray]:
        """Right-aligned arrays for EventBatch from list columns; keeps the latest `max_len` events."""
        length = max_len or self.max_len
        n = sequences.num_rows
        ts_lists = sequences.column("event_timestamps").combine_chunks()
        lengths = pc.list_value_length(ts_lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        row = np.repeat(np.arange(n), lengths)
        index_in_row = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        column_pos = length - lengths[row] + index_in_row  # right-aligned; negative = dropped (too old)
        keep = column_pos >= 0
        row, column_pos = row[keep], column_pos[keep]

        def scatter(values: np.ndarray, fill, dtype) -> np.ndarray:
            out = np.full((n, length), fill, dtype=dtype)
            out[row, column_pos] = values[keep]
            return out

        ts = pc.list_flatten(ts_lists).cast(pa.int64()).to_numpy(zero_copy_only=False)
        out: dict[str, np.ndarray] = {}
        out["categorical"] = np.stack(
            [
                scatter(self._ids(column, pc.list_flatten(sequences.column(column))), PAD, np.int64)
                for column in CATEGORICAL_LISTS
            ],
            axis=-1,
        )
        attributes = []
        for column in self.attribute_lists:  # a missing value is pad (a zero embedding), an unseen one OOV
            values = pc.list_flatten(sequences.column(column))
            missing = pc.fill_null(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)
            ids = np.where(missing, PAD, self._ids(column, values))
            attributes.append(scatter(ids, PAD, np.int64))
        out["attributes"] = np.stack(attributes, axis=-1) if attributes else np.zeros((n, length, 0), np.int64)
        numeric, missing = [], []
        for column in self.numeric_lists:
            raw = pc.list_flatten(sequences.column(column)).to_numpy(zero_copy_only=False).astype(np.float64)
            center, scale = self.numeric_scaling[column]
            is_missing = ~np.isfinite(raw)
            scaled = np.where(is_missing, 0.0, (np.log1p(np.clip(np.nan_to_num(raw), 0, None)) - center) / scale)
            numeric.append(scatter(scaled.astype(np.float32), 0.0, np.float32))
            missing.append(scatter(is_missing, True, bool))
        out["numeric"] = np.stack(numeric, axis=-1) if numeric else np.zeros((n, length, 0), np.float32)
        out["numeric_missing"] = np.stack(missing, axis=-1) if missing else np.zeros((n, length, 0), bool)
        gap = np.diff(ts, prepend=ts[:1]).astype(np.float64)
        gap[np.concatenate([[0], np.cumsum(lengths)[:-1]])[lengths > 0]] = 0.0  # first event of each row
        out["log_gap_hours"] = scatter(
            np.log1p(np.clip(gap, 0, None) / US_PER_HOUR).astype(np.float32), 0.0, np.float32
        )
        out["hour"] = scatter((ts // US_PER_HOUR) % 24, 0, np.int64)
        out["weekday"] = scatter((ts // US_PER_DAY + 3) % 7, 0, np.int64)  # 1970-01-01 was a Thursday
        out["day"] = scatter(ts // US_PER_DAY, 0, np.int64)
        out["mask"] = scatter(np.ones(len(ts), bool), False, bool)
        out["last_event_us"] = np.where(lengths > 0, _last_per_row(ts, lengths), np.iinfo(np.int64).min)
        return out

    def encode_campaigns(
        self, profiles: pd.DataFrame, offers, methods, contact_times: pd.Series, last_event_us: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Arrays for CampaignContext: profile ids, offer/method ids and contact-time features."""
        contact_us = pd.to_datetime(contact_times, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy()
        return {**self.encode_profiles(profiles), **self.encode_contacts(offers, methods, contact_us, last_event_us)}

    def encode_profiles(self, profiles: pd.DataFrame) -> dict[str, np.ndarray]:
        """The profile part of CampaignContext, one row per profile row: categorical ids (0 = missing) and
        numeric fields scaled by their training median and IQR (0 = missing)."""
        n = len(profiles)
        ids = [self._profile_ids(f, profiles[f].tolist()) for f in self.profile_vocabularies]
        numeric = []
        for name, (center, scale) in self.profile_scaling.items():
            values = profiles[name].to_numpy()
            if values.dtype.kind != "f":  # text, or numbers with a None among them: what parses, else missing
                values = pd.to_numeric(values, errors="coerce")
            numeric.append(np.nan_to_num((values.astype(np.float64) - center) / scale))
        return {
            "profile": np.stack(ids, axis=-1) if ids else np.zeros((n, 0), np.int64),
            "profile_numeric": (np.stack(numeric, axis=-1) if numeric else np.zeros((n, 0))).astype(np.float32),
        }

    def encode_contacts(
        self, offers, methods, contact_us: np.ndarray, last_event_us: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The contact part of CampaignContext: offer/method ids, hour, weekday, gap since the last event.

        contact_us: contact times in microseconds since the epoch (UTC); numpy only, so scoring many
        (customer, campaign, time) pairs costs no per-pair pandas work.
        """
        contact_us = np.asarray(contact_us, dtype=np.int64)
        return {
            **self.encode_contact_slots(offers, methods, contact_us),
            "log_hours_since_last_event": _log_hours_since(contact_us, last_event_us),
        }

    def encode_contact_slots(self, offers, methods, contact_us: np.ndarray) -> dict[str, np.ndarray]:
        """The customer-free part of `encode_contacts`: offer/method ids, contact hour and weekday (a scorer
        encodes its candidate (campaign, time) pairs once and repeats them over the customers)."""
        contact_us = np.asarray(contact_us, dtype=np.int64)
        return {
            "offer": self._lookup(self.offers, offers, "offer"),
            "method": self._lookup(self.methods, methods, "method"),
            "contact_hour": ((contact_us // US_PER_HOUR) % 24).astype(np.int64),
            "contact_weekday": ((contact_us // US_PER_DAY + 3) % 7).astype(np.int64),
        }

    def log_hours_since(self, at_us: np.ndarray, last_event_us: np.ndarray) -> np.ndarray:
        """The gap feature of every context: log1p of the hours from each row's latest event to `at_us`."""
        return _log_hours_since(np.asarray(at_us, np.int64), last_event_us)

    def encode_customers(
        self, profiles: pd.DataFrame, at_us: np.ndarray, last_event_us: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Arrays for CustomerContext (target heads): profile ids and numbers, and the gap from each row's
        latest event to its prediction time `at_us` (microseconds since the epoch, UTC)."""
        return {
            **self.encode_profiles(profiles),
            "log_hours_since_last_event": _log_hours_since(np.asarray(at_us, np.int64), last_event_us),
        }

    def encode_tokens(self, column: str, values) -> np.ndarray:
        """Tokens of a categorical list column (a flat sequence of strings) -> ids; unseen -> 1 (OOV)."""
        return self._ids(column, pa.array(list(values), pa.string()))

    def decode(self, column: str, ids: np.ndarray) -> np.ndarray:
        """Ids of a categorical list column back to tokens: 0 -> None (pad), 1 -> "<oov>"."""
        tokens = np.array([None, "<oov>", *self.vocabularies[column]], dtype=object)
        return tokens[np.asarray(ids)]

    def decode_events(self, categorical: np.ndarray, hours_after: np.ndarray) -> pd.DataFrame:
        """Generated events (B, K, 3) ids and (B, K) hours as one row per event: row, step, channel, object, ..."""
        b, k, _ = categorical.shape
        return pd.DataFrame(
            {
                "row": np.repeat(np.arange(b), k),
                "step": np.tile(np.arange(1, k + 1), b),
                **{
                    name.rstrip("s"): self.decode(name, categorical[..., i].ravel())
                    for i, name in enumerate(CATEGORICAL_LISTS)
                },
                "hours_after": np.asarray(hours_after, dtype=np.float64).ravel(),
            }
        )

    def _ids(self, column: str, values: pa.Array) -> np.ndarray:
        ids = pc.index_in(values, value_set=pa.array(self.vocabularies[column], pa.string()))
        return (pc.fill_null(ids, OOV - 2).to_numpy(zero_copy_only=False) + 2).astype(np.int64)

    def _profile_ids(self, field: str, values: list) -> np.ndarray:
        """values: the column's Python values (`Series.tolist`: an Int64 1 is 1, as `fit` wrote its token "1")."""
        lookup = self._profile_lookups.get(field)
        if lookup is None:  # built once per field: the service encodes one customer's profile per request
            lookup = self._profile_lookups[field] = {t: i + 2 for i, t in enumerate(self.profile_vocabularies[field])}
        missing = pd.isna(np.array(values, dtype=object)).tolist()
        # A plain loop over the values: a pandas map costs more than the lookups for the API's few rows.
        return np.fromiter(
            (PAD if gone else lookup.get(str(v), OOV) for v, gone in zip(values, missing)), np.int64, count=len(values)
        )

    @staticmethod
    def _lookup(vocabulary: list[str], values, what: str) -> np.ndarray:
        values = np.asarray(values, dtype=object)
        uniques, inverse = np.unique(values, return_inverse=True)  # look each distinct value up once
        index = {v: i for i, v in enumerate(vocabulary)}
        unknown = sorted(set(uniques) - set(index))
        if unknown:
            raise ValueError(f"unknown {what} {unknown}: this model was trained on {vocabulary}")
        return np.array([index[v] for v in uniques], dtype=np.int64)[inverse.reshape(-1)].reshape(values.shape)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> EventTokenizer:
        values = json.loads(path.read_text())
        values["numeric_scaling"] = {k: tuple(v) for k, v in values["numeric_scaling"].items()}
        values["profile_scaling"] = {k: tuple(v) for k, v in values.get("profile_scaling", {}).items()}
        return cls(**values)


def _log_hours_since(at_us: np.ndarray, last_event_us: np.ndarray) -> np.ndarray:
    """log1p(hours from the latest event to `at_us`); a year for a row without events."""
    hours = np.where(last_event_us > np.iinfo(np.int64).min, (at_us - last_event_us) / US_PER_HOUR, 24 * 365)
    return np.log1p(np.clip(hours, 0, None)).astype(np.float32)


def _last_per_row(ts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    ends = np.cumsum(lengths) - 1
    return ts[np.clip(ends, 0, max(len(ts) - 1, 0))] if len(ts) else np.zeros(len(lengths), np.int64)
