"""Row validation of one raw event file: the checks a row must pass to become an event.

Each check names the rows it quarantines and why (a `Rejection`: mask, reason, detail). `validate_rows`
applies them in a fixed order and a row keeps the first reason it fails, so the reasons a file's rows
get do not depend on anything but the row. Rows of erased customers, or older than the retention window
`lam purge` enforces, are suppressed: neither taken nor quarantined (see suppression.py).

Cells are Arrow arrays and masks numpy arrays: the events are built without a Python object per cell,
and only the quarantined rows go through pandas (their raw cells are kept as read).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.channels import ChannelConfig, ChannelMapping
from lam_platform.data.event_identity import content_ids, content_keys, rows_where
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import number_array, parse_timestamps, text_array, text_cells
from lam_platform.data.suppression import ErasedCustomers

NOT_FINITE_TEXT = ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"]

# (rows quarantined, reason, detail: one text for them all or one per row)
Rejection = tuple[np.ndarray, str, str | pa.Array]


@dataclass
class Batch:
    """Rows of one file after validation: candidate events (the contract's columns, `content`, the content
    key deduplication compares, and the source file and line) and rejects, both with source positions."""

    events: pa.Table
    rejects: pd.DataFrame
    suppressed: int


class _Number(NamedTuple):
    """One declared numeric attribute's cells: the source column, its text, and the text parsed."""

    source: str | None
    text: pa.Array
    parsed: np.ndarray
    written_not_finite: np.ndarray  # NaN or infinity spelled out (an empty cell is the way to say missing)

    @property
    def value(self) -> pa.Array:
        missing = ~_valid(self.text) | self.written_not_finite
        return pa.array(np.where(missing, np.nan, self.parsed), pa.float64(), from_pandas=True)  # NaN: null


@dataclass
class _Cells:
    """The mapped cells of one file, parsed once: what the checks look at and the events are made of."""

    roles: dict[str, pa.Array]  # customer_id, object, action as text
    when: pa.Array  # the timestamp cells as text
    timestamps: pd.Series  # UTC; NaT where not parsed
    unparsable: np.ndarray
    naive: np.ndarray
    channel: pa.Array
    numeric: dict[str, _Number]
    categorical: dict[str, pa.Array]


class _Verdicts:
    """Each row's first rejection so far (-1: none), as an index into the rejections applied."""

    def __init__(self, rows: int) -> None:
        self.first = np.full(rows, -1, np.int32)
        self.applied: list[tuple[str, str | pa.Array]] = []

    def apply(self, rejections: Iterable[Rejection]) -> None:
        for mask, why, what in rejections:
            self.first[mask & (self.first < 0)] = len(self.applied)
            self.applied.append((why, what))

    @property
    def rejected(self) -> np.ndarray:
        return self.first >= 0

    def reasons(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        """(reason, detail) of each of `rows`."""
        reason, detail = np.empty(len(rows), object), np.empty(len(rows), object)
        for k in np.unique(self.first[rows]):
            why, what = self.applied[k]
            at = self.first[rows] == k
            reason[at] = why
            detail[at] = what if isinstance(what, str) else what.take(pa.array(rows[at])).to_pylist()
        return reason.tolist(), detail.tolist()


def validate_rows(
    raw: pd.DataFrame,
    path: Path,
    mapping: ChannelMapping,
    config: ChannelConfig,
    now: pd.Timestamp,
    pseudonymizer: Pseudonymizer,
    erased: ErasedCustomers,
    retained_from: pd.Timestamp | None = None,
) -> Batch:
    """One file's rows through every check: (events with their ids and content keys, quarantine rows,
    suppressed count)."""
    cells = _read_cells(raw, mapping, config)
    verdicts = _Verdicts(len(raw))
    verdicts.apply(_rules(raw, mapping, config, cells, now))
    customer_ids = pseudonymizer.array(cells.roles["customer_id"])  # validated raw; stored pseudonymous
    suppressed = _suppressed(customer_ids, cells.timestamps, erased, retained_from)
    ok = ~verdicts.rejected & ~suppressed
    events = _events(raw, path, cells, customer_ids, ok)
    keys = content_keys(events, config.attributes).combine_chunks()
    ids = text_array(_cells(raw, mapping.event_id)).filter(pa.array(ok)) if mapping.event_id else None
    # The source's id where it has one; else (no id column, or an empty cell) the content hash.
    ids = ids if ids is not None else pa.nulls(len(keys), pa.string())
    derive = pa.array(~_valid(ids))
    ids = pc.replace_with_mask(ids, derive, content_ids(keys.filter(derive)))
    events = events.append_column("content", keys).append_column("event_id", ids)
    bad = np.flatnonzero(verdicts.rejected & ~suppressed)
    return Batch(events, _quarantine_rows(raw, path, mapping, verdicts, bad, pseudonymizer), int(suppressed.sum()))


def _rules(
    raw: pd.DataFrame, mapping: ChannelMapping, config: ChannelConfig, cells: _Cells, now: pd.Timestamp
) -> Iterator[Rejection]:
    """Every check, in the order reasons are assigned."""
    yield from missing_columns(raw, [(mapping.who, "who"), (mapping.what, "what")])
    yield from missing_columns(raw, [(mapping.how, "how")] if mapping.how else [])
    yield from missing_columns(raw, [(mapping.when, "when")])
    yield from missing_columns(raw, [(mapping.event_id, "event_id")] if mapping.event_id else [])
    yield from empty_required_fields(
        {
            "customer_id": cells.roles["customer_id"],
            "event_timestamp": cells.when,
            "object": cells.roles["object"],
            "action": cells.roles["action"],
        }
    )
    yield from timestamp_problems(cells, now, config.max_future)
    if mapping.channel_from:
        yield from missing_columns(raw, [(mapping.channel_from, "channel")])
        yield from channel_problems(cells.channel, list(config.channels))
    for name, number in cells.numeric.items():
        yield from missing_columns(raw, [(number.source, name)] if number.source else [])
        yield from number_problems(number)
    categorical = [(mapping.categorical.get(name), name) for name in cells.categorical]
    yield from missing_columns(raw, [(source, name) for source, name in categorical if source])
    texts = {**cells.roles, **cells.categorical, "channel": cells.channel}
    yield from oversized_strings(texts, config.max_string_length)


# -- the checks ------------------------------------------------------------------------------------
def missing_columns(raw: pd.DataFrame, columns: list[tuple[str | None, str]]) -> Iterator[Rejection]:
    """Every row, for each mapped (column, role) the file lacks."""
    for name, role in columns:
        if name is not None and name not in raw.columns:
            yield np.ones(len(raw), bool), "missing_required_field", f"column {name!r} ({role}) not in file"


def empty_required_fields(fields: dict[str, pa.Array]) -> Iterator[Rejection]:
    """Rows without a customer, a time, an object or an action."""
    for name, values in fields.items():
        yield ~_valid(values), "missing_required_field", f"{name} is empty"


def timestamp_problems(cells: _Cells, now: pd.Timestamp, max_future: pd.Timedelta) -> Iterator[Rejection]:
    """Rows whose time cannot be read, has no zone (and the channel gives none), or is in the future."""
    yield cells.unparsable, "unparsable_timestamp", _prefixed("cannot parse ", cells.when)
    yield cells.naive, "naive_timestamp", "timestamp has no zone and the channel config gives none"
    future = (cells.timestamps > now + max_future).to_numpy()
    yield future, "future_timestamp", f"later than ingestion time + {max_future}"


def channel_problems(channel: pa.Array, declared: list[str]) -> Iterator[Rejection]:
    """Rows naming a channel the config does not declare, or none."""
    unknown = _valid(channel) & ~pc.is_in(channel, pa.array(declared, pa.string())).to_numpy(zero_copy_only=False)
    yield unknown, "unknown_channel", _prefixed("channel ", channel, " is not declared in the channel config")
    yield ~_valid(channel), "missing_required_field", "channel is empty"


def number_problems(number: _Number) -> Iterator[Rejection]:
    """Rows whose numeric attribute is not a number, or is NaN or infinity written out."""
    yield (
        _valid(number.text) & np.isnan(number.parsed) & ~number.written_not_finite,
        "non_numeric",
        _prefixed(f"{number.source}: not a number: ", number.text),
    )
    yield (
        number.written_not_finite,
        "not_finite",
        f"{number.source}: NaN or infinity (leave the cell empty for missing)",
    )


def oversized_strings(texts: dict[str, pa.Array], limit: int) -> Iterator[Rejection]:
    """Rows with a text longer than the config allows (in characters, as Python counts them)."""
    for name, values in texts.items():
        too_long = pc.fill_null(pc.greater(pc.utf8_length(values), limit), False).to_numpy(zero_copy_only=False)
        yield too_long, "oversized_string", f"{name} longer than {limit} characters"


# -- reading cells and building the outputs --------------------------------------------------------
def _valid(values: pa.Array) -> np.ndarray:
    return values.is_valid().to_numpy(zero_copy_only=False)


def _prefixed(prefix: str, values: pa.Array, suffix: str = "") -> pa.Array:
    """A detail per row: the text around each cell (an empty one for a missing cell)."""
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.fill_null(values, ""), pa.scalar(suffix), "")


def _cells(raw: pd.DataFrame, name: str | None) -> pd.Series:
    """A mapped column's cells; all missing when unmapped or absent (missing_columns rejects the latter)."""
    if name is None or name not in raw.columns:
        return pd.Series(None, index=raw.index, dtype=object)
    return raw[name]


def _constant(value: str | None, rows: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), rows)


def _read_cells(raw: pd.DataFrame, mapping: ChannelMapping, config: ChannelConfig) -> _Cells:
    """Every cell the mapping names, as text, numbers and UTC timestamps."""
    roles = {"customer_id": text_array(_cells(raw, mapping.who)), "object": text_array(_cells(raw, mapping.what))}
    roles["action"] = text_array(_cells(raw, mapping.how)) if mapping.how else _constant(mapping.how_value, len(raw))
    when = _cells(raw, mapping.when)
    timestamps, unparsable, naive = parse_timestamps(when, mapping)
    channel = (
        text_array(_cells(raw, mapping.channel_from)) if mapping.channel_from else _constant(mapping.name, len(raw))
    )
    attributes = config.attributes  # every declared attribute gets a column; this channel fills its own
    categorical = {
        name: text_array(_cells(raw, mapping.categorical[name]))
        if name in mapping.categorical
        else _constant(None, len(raw))
        for name in attributes.categorical
    }
    numeric = {name: _number(raw, mapping.numeric.get(name)) for name in attributes.numeric}
    return _Cells(
        roles, text_array(when), timestamps, unparsable.to_numpy(), naive.to_numpy(), channel, numeric, categorical
    )


def _number(raw: pd.DataFrame, source: str | None) -> _Number:
    text = text_array(_cells(raw, source)) if source else _constant(None, len(raw))
    parsed = number_array(text)
    spelled = pc.fill_null(pc.is_in(pc.utf8_lower(text), pa.array(NOT_FINITE_TEXT)), False)
    return _Number(source, text, parsed, spelled.to_numpy(zero_copy_only=False) | np.isinf(parsed))


def _suppressed(
    customer_ids: pa.Array, timestamps: pd.Series, erased: ErasedCustomers, retained_from: pd.Timestamp | None
) -> np.ndarray:
    suppressed = erased.mask(customer_ids)  # neither taken nor quarantined
    if retained_from is not None:  # older than the retention window `lam purge` enforces
        suppressed = suppressed | (timestamps < retained_from).to_numpy()
    return suppressed


def _events(raw: pd.DataFrame, path: Path, cells: _Cells, customer_ids: pa.Array, ok: np.ndarray) -> pa.Table:
    """The rows that passed, as events (before ids) with their source file and line."""
    roles = {**cells.roles, "customer_id": customer_ids}
    numeric = {name: number.value for name, number in cells.numeric.items()}
    stamps = pa.array(cells.timestamps, pa.timestamp("us", tz="UTC"), from_pandas=True)
    events = pa.table(
        {
            "channel": cells.channel,
            **roles,
            "event_timestamp": stamps,
            **numeric,
            **cells.categorical,
            "_source_file": _constant(str(path), len(raw)),
            "_source_line": pa.array(raw["_line"].to_numpy(), pa.int64()),
        }
    )
    return rows_where(events, ok)


def _quarantine_rows(
    raw: pd.DataFrame,
    path: Path,
    mapping: ChannelMapping,
    verdicts: _Verdicts,
    bad: np.ndarray,
    pseudonymizer: Pseudonymizer,
) -> pd.DataFrame:
    # The quarantine keeps the mapped cells of the source row (unmapped columns may hold personal data the
    # platform never takes in), with the customer id pseudonymized like accepted events.
    rejects = raw.iloc[bad][[c for c in mapping.mapped_columns() if c in raw.columns] + ["_line"]].copy()
    if mapping.who in rejects.columns:
        rejects[mapping.who] = pseudonymizer.column(text_cells(rejects[mapping.who]))
    reason, detail = verdicts.reasons(bad)
    return pd.DataFrame(
        {
            "source_file": str(path),
            "source_line": rejects["_line"].astype("int64"),
            "channel": mapping.name,
            "reason": pd.Series(reason, index=rejects.index, dtype=object),
            "detail": pd.Series(detail, index=rejects.index, dtype=object).astype(str),
            "raw": rejects.drop(columns="_line").astype(str).to_dict("records"),
        }
    ).assign(raw=lambda f: f.raw.map(json.dumps))
