"""Row validation of one raw event file: the checks a row must pass to become an event.

Each check names the rows it quarantines and why (a `Rejection`: mask, reason, detail). `validate_rows`
applies them in a fixed order and a row keeps the first reason it fails, so the reasons a file's rows
get do not depend on anything but the row. Rows of erased customers, or older than the retention window
`lam purge` enforces, are suppressed: neither taken nor quarantined (see suppression.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lam_platform.data.channels import ChannelConfig, ChannelMapping
from lam_platform.data.event_identity import content_ids
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import parse_timestamps, text_cells, to_float
from lam_platform.data.suppression import ErasedCustomers

NOT_FINITE_TEXT = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}

# (rows quarantined, reason, detail: one text for them all or one per row)
Rejection = tuple[pd.Series, str, str | pd.Series]


@dataclass
class Batch:
    """Rows of one file after validation: candidate events and rejects, both with source positions."""

    events: pd.DataFrame
    rejects: pd.DataFrame
    suppressed: int


class _Number(NamedTuple):
    """One declared numeric attribute's cells: the source column, its text, and the text parsed."""

    source: str | None
    text: pd.Series
    parsed: pd.Series
    written_not_finite: pd.Series  # NaN or infinity spelled out (an empty cell is the way to say missing)

    @property
    def value(self) -> pd.Series:
        return self.parsed.where(self.text.notna() & ~self.written_not_finite)


@dataclass
class _Cells:
    """The mapped cells of one file, parsed once: what the checks look at and the events are made of."""

    roles: dict[str, pd.Series]  # customer_id, object, action as text
    when: pd.Series  # the timestamp cells as read
    timestamps: pd.Series
    unparsable: pd.Series
    naive: pd.Series
    channel: pd.Series
    numeric: dict[str, _Number]
    categorical: dict[str, pd.Series]


class _Verdicts:
    """Each row's quarantine reason and detail so far (None: not rejected); the first reason is kept."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(None, index=index, dtype=object)
        self.detail = pd.Series(None, index=index, dtype=object)

    def apply(self, rejections: Iterable[Rejection]) -> None:
        for mask, why, what in rejections:
            new = mask & self.reason.isna()
            self.reason[new] = why
            self.detail[new] = what if isinstance(what, str) else what[new]


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
    """One file's rows through every check: (events with content ids, quarantine rows, suppressed count)."""
    cells = _read_cells(raw, mapping, config)
    verdicts = _Verdicts(raw.index)
    verdicts.apply(_rules(raw, mapping, config, cells, now))
    customer_ids = pseudonymizer.column(cells.roles["customer_id"])  # validated raw; stored pseudonymous
    suppressed = _suppressed(customer_ids, cells.timestamps, raw.index, erased, retained_from)
    ok = verdicts.reason.isna() & ~suppressed
    events = _events(raw, path, cells, customer_ids, ok)
    ids = text_cells(_cells(raw, mapping.event_id))[ok] if mapping.event_id else None
    events["content"] = content_ids(events, config.attributes)
    # The source's id where it has one; else (no id column, or an empty cell) the content hash.
    events["event_id"] = ids.where(ids.notna(), events.content) if ids is not None else events.content
    bad = verdicts.reason.notna() & ~suppressed
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
            "event_timestamp": text_cells(cells.when),
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
            yield pd.Series(True, index=raw.index), "missing_required_field", f"column {name!r} ({role}) not in file"


def empty_required_fields(fields: dict[str, pd.Series]) -> Iterator[Rejection]:
    """Rows without a customer, a time, an object or an action."""
    for name, values in fields.items():
        yield values.isna(), "missing_required_field", f"{name} is empty"


def timestamp_problems(cells: _Cells, now: pd.Timestamp, max_future: pd.Timedelta) -> Iterator[Rejection]:
    """Rows whose time cannot be read, has no zone (and the channel gives none), or is in the future."""
    yield cells.unparsable, "unparsable_timestamp", "cannot parse " + text_cells(cells.when).fillna("").astype(str)
    yield cells.naive, "naive_timestamp", "timestamp has no zone and the channel config gives none"
    yield cells.timestamps > now + max_future, "future_timestamp", f"later than ingestion time + {max_future}"


def channel_problems(channel: pd.Series, declared: list[str]) -> Iterator[Rejection]:
    """Rows naming a channel the config does not declare, or none."""
    yield (
        channel.notna() & ~channel.isin(declared),
        "unknown_channel",
        "channel " + channel.fillna("").astype(str) + " is not declared in the channel config",
    )
    yield channel.isna(), "missing_required_field", "channel is empty"


def number_problems(number: _Number) -> Iterator[Rejection]:
    """Rows whose numeric attribute is not a number, or is NaN or infinity written out."""
    yield (
        number.text.notna() & number.parsed.isna() & ~number.written_not_finite,
        "non_numeric",
        f"{number.source}: not a number: " + number.text.fillna("").astype(str),
    )
    yield (
        number.written_not_finite,
        "not_finite",
        f"{number.source}: NaN or infinity (leave the cell empty for missing)",
    )


def oversized_strings(texts: dict[str, pd.Series], limit: int) -> Iterator[Rejection]:
    """Rows with a text longer than the config allows."""
    for name, values in texts.items():
        too_long = values.fillna("").str.len() > limit
        yield too_long, "oversized_string", f"{name} longer than {limit} characters"


# -- reading cells and building the outputs --------------------------------------------------------
def _cells(raw: pd.DataFrame, name: str | None) -> pd.Series:
    """A mapped column's cells; all missing when unmapped or absent (missing_columns rejects the latter)."""
    if name is None or name not in raw.columns:
        return pd.Series(None, index=raw.index, dtype=object)
    return raw[name]


def _nothing(raw: pd.DataFrame) -> pd.Series:
    return pd.Series(None, index=raw.index, dtype=object)


def _read_cells(raw: pd.DataFrame, mapping: ChannelMapping, config: ChannelConfig) -> _Cells:
    """Every cell the mapping names, as text, numbers and UTC timestamps."""
    roles = {"customer_id": text_cells(_cells(raw, mapping.who)), "object": text_cells(_cells(raw, mapping.what))}
    roles["action"] = (
        text_cells(_cells(raw, mapping.how))
        if mapping.how
        else pd.Series(mapping.how_value, index=raw.index, dtype=object)
    )
    when = _cells(raw, mapping.when)
    timestamps, unparsable, naive = parse_timestamps(when, mapping)
    channel = (
        text_cells(_cells(raw, mapping.channel_from))
        if mapping.channel_from
        else pd.Series(mapping.name, index=raw.index, dtype=object)
    )
    attributes = config.attributes  # every declared attribute gets a column; this channel fills its own
    categorical = {
        name: text_cells(_cells(raw, mapping.categorical.get(name))) if mapping.categorical.get(name) else _nothing(raw)
        for name in attributes.categorical
    }
    numeric = {name: _number(raw, mapping.numeric.get(name)) for name in attributes.numeric}
    return _Cells(roles, when, timestamps, unparsable, naive, channel, numeric, categorical)


def _number(raw: pd.DataFrame, source: str | None) -> _Number:
    text = text_cells(_cells(raw, source)) if source else _nothing(raw)
    parsed = to_float(text)
    written_not_finite = text.fillna("").str.lower().isin(NOT_FINITE_TEXT) | np.isinf(parsed.fillna(0))
    return _Number(source, text, parsed, written_not_finite)


def _suppressed(
    customer_ids: pd.Series,
    timestamps: pd.Series,
    index: pd.Index,
    erased: ErasedCustomers,
    retained_from: pd.Timestamp | None,
) -> pd.Series:
    suppressed = pd.Series(erased.mask(customer_ids), index=index)  # neither taken nor quarantined
    if retained_from is not None:  # older than the retention window `lam purge` enforces
        suppressed |= (timestamps < retained_from).fillna(False)
    return suppressed


def _events(raw: pd.DataFrame, path: Path, cells: _Cells, customer_ids: pd.Series, ok: pd.Series) -> pd.DataFrame:
    """The rows that passed, as events (before ids) with their source file and line."""
    roles = {**cells.roles, "customer_id": customer_ids}
    numeric = {name: number.value for name, number in cells.numeric.items()}
    events = pd.DataFrame(
        {"channel": cells.channel, **roles, "event_timestamp": cells.timestamps, **numeric, **cells.categorical}
    )[ok]
    events["_source_file"], events["_source_line"] = str(path), raw["_line"][ok]
    return events


def _quarantine_rows(
    raw: pd.DataFrame,
    path: Path,
    mapping: ChannelMapping,
    verdicts: _Verdicts,
    bad: pd.Series,
    pseudonymizer: Pseudonymizer,
) -> pd.DataFrame:
    # The quarantine keeps the mapped cells of the source row (unmapped columns may hold personal data the
    # platform never takes in), with the customer id pseudonymized like accepted events.
    rejects = raw[bad][[c for c in mapping.mapped_columns() if c in raw.columns] + ["_line"]].copy()
    if mapping.who in rejects.columns:
        rejects[mapping.who] = pseudonymizer.column(text_cells(rejects[mapping.who]))
    return pd.DataFrame(
        {
            "source_file": str(path),
            "source_line": rejects["_line"].astype("int64"),
            "channel": mapping.name,
            "reason": verdicts.reason[bad],
            "detail": verdicts.detail[bad].astype(str),
            "raw": rejects.drop(columns="_line").astype(str).to_dict("records"),
        }
    ).assign(raw=lambda f: f.raw.map(json.dumps))
