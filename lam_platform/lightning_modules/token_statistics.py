"""What fitting the tokenizer needs of the training events, gathered a part at a time.

Vocabularies need each categorical list's token counts, numeric scaling each numeric list's log1p values
(for exact quartiles), kept per part as distinct values and their counts and merged once: amounts repeat
(prices times quantities), so they cost what their distinct values do; a column of distinct values (the
simulator's call durations) costs 16 bytes a value instead of 8. Both merge across parts
(`EventValueStatistics.add`), so a job that reads the event table one customer shard at a time fits the same
tokenizer as one that holds the whole table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CATEGORICAL_LISTS = ("channels", "objects", "actions")
CORE_LISTS = ("event_ids", "event_timestamps", *CATEGORICAL_LISTS)


def attribute_lists(sequences: pa.Table | pa.Schema) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) attribute list columns of a sequence table: every list column beyond the
    core ones, numbers numeric and strings categorical, each sorted by name."""
    schema = sequences.schema if isinstance(sequences, pa.Table) else sequences
    extra = [f for f in schema if pa.types.is_list(f.type) and f.name not in CORE_LISTS]
    numeric = sorted(f.name for f in extra if pa.types.is_floating(f.type.value_type))
    categorical = sorted(f.name for f in extra if pa.types.is_string(f.type.value_type))
    return tuple(numeric), tuple(categorical)


@dataclass(frozen=True)
class LoggedValues:
    """A multiset of numbers as its sorted distinct values and how often each occurs."""

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> LoggedValues:
        distinct, counts = np.unique(values, return_counts=True)
        return cls(distinct, counts.astype(np.int64))

    @classmethod
    def merged(cls, parts: list[LoggedValues]) -> LoggedValues:
        """The parts as one multiset (one sort over every part's distinct values)."""
        if not parts:
            return cls(np.empty(0), np.empty(0, np.int64))
        distinct, where = np.unique(np.concatenate([p.values for p in parts]), return_inverse=True)
        counts = np.zeros(len(distinct), np.int64)
        np.add.at(counts, where, np.concatenate([p.counts for p in parts]))
        return cls(distinct, counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float:
        """np.percentile(every value, q) (its default linear method), without expanding the counts."""
        ends = np.cumsum(self.counts)  # value i fills the sorted positions [ends[i-1], ends[i])
        position = (self.total - 1) * (q / 100)  # as numpy computes the linear method's index
        low = int(np.floor(position))
        below, above = self.values[np.searchsorted(ends, [low, min(low + 1, self.total - 1)], side="right")]
        t = position - low
        # numpy's lerp, evaluated from the nearer end as numpy does, so the result is the same float
        return float(below + (above - below) * t if t < 0.5 else above - (above - below) * (1 - t))


@dataclass
class EventValueStatistics:
    """Token counts per categorical list column and log1p values per numeric one, over every part added."""

    counts: dict[str, Counter] = field(default_factory=dict)
    logged: dict[str, list[LoggedValues]] = field(default_factory=dict)  # one entry per part added

    @classmethod
    def of(cls, sequences: pa.Table) -> EventValueStatistics:
        statistics = cls()
        statistics.add(sequences)
        return statistics

    def add(self, sequences: pa.Table) -> None:
        """Count the values of one part (list columns as in the `customer_event_sequence` view)."""
        numeric, categorical = attribute_lists(sequences)
        for column in (*CATEGORICAL_LISTS, *categorical):
            counts = pc.value_counts(pc.list_flatten(sequences.column(column)).drop_null())
            self.counts.setdefault(column, Counter()).update(
                dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
            )
        for column in numeric:
            values = pc.list_flatten(sequences.column(column)).to_numpy(zero_copy_only=False)
            self.logged.setdefault(column, []).append(
                LoggedValues.of(np.log1p(np.clip(values[np.isfinite(values)], 0, None)))
            )

    def vocabulary(self, column: str, min_count: int) -> list[str]:
        """Tokens seen at least `min_count` times, sorted ("" is a missing attribute, never a token)."""
        return sorted(t for t, c in self.counts.get(column, Counter()).items() if c >= min_count and t != "")

    def scaling(self, column: str) -> tuple[float, float]:
        """(median, interquartile range) of log1p(value): robust to heavy-tailed amounts; (0, 1) without values."""
        logged = LoggedValues.merged(self.logged.get(column, []))
        if logged.total == 0:
            return 0.0, 1.0
        q25, q50, q75 = (logged.percentile(q) for q in (25, 50, 75))
        return float(q50), float(max(q75 - q25, 1e-3))

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        return tuple(self.counts)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        return tuple(self.logged)
