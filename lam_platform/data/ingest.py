"""Ingestion: raw channel tables -> validated 4W1H events, losing nothing.

Every row read ends in exactly one place: accepted into the event table, counted as a duplicate of
an event already there (same id, same content: a re-ingested file), quarantined with a reason and its
source file and line, or suppressed (a customer `lam forget` erased, or an event older than the window
`lam purge` enforces: dropped, see suppression.py).
rows in = accepted + duplicates + quarantined + suppressed, always.

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir ./lam-demo` (the `events:` section of its lam.yaml)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.atomic_files import governance_lock, replace_parquet
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig, ChannelMapping
from lam_platform.data.events import EventAttributes, EventContractError, existing_events, write_events
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.suppression import ErasedCustomers, retention_cutoff

REASONS = (
    "missing_required_field",
    "unparsable_timestamp",
    "naive_timestamp",
    "future_timestamp",
    "unknown_channel",
    "non_numeric",
    "not_finite",
    "oversized_string",
    "duplicate_event_id",
)
CORE_CONTENT = ("channel", "customer_id", "event_timestamp", "object", "action")
ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
NOT_FINITE_TEXT = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("channel", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
        ("ingest_run", pa.string()),
    ]
)


@dataclass
class IngestReport:
    rows_in: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    suppressed: int = 0  # rows of erased customers, dropped (see lam_platform/data/suppression.py)
    by_reason: dict[str, int] = field(default_factory=dict)
    files: int = 0
    unreadable_files: dict[str, str] = field(default_factory=dict)  # path -> error; no row of it was counted
    quarantine_file: str | None = None

    def balanced(self) -> bool:
        return self.rows_in == self.accepted + self.duplicates + self.quarantined + self.suppressed


@dataclass
class _Batch:
    """Rows of one file after validation: candidate events and rejects, both with source positions."""

    events: pd.DataFrame
    rejects: pd.DataFrame
    suppressed: int


def ingest(
    config: ChannelConfig, workdir: Workdir, pseudonymizer: Pseudonymizer, now: pd.Timestamp | None = None
) -> IngestReport:
    """Read every configured file, validate, dedupe, append to the event table, quarantine the rest.

    Customer ids are pseudonymized here, before anything is written: accepted events and the
    quarantined rows' copies of the source row carry the pseudonym, never the raw id. Runs under the
    workdir's shared governance lock: an erasure or purge waits for it, or finishes before it reads.
    """
    with governance_lock(workdir.root, shared=True):
        return _ingest(config, workdir, pseudonymizer, now)


def _ingest(
    config: ChannelConfig, workdir: Workdir, pseudonymizer: Pseudonymizer, now: pd.Timestamp | None
) -> IngestReport:
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    report = IngestReport()
    erased, retained_from = ErasedCustomers.load(workdir), retention_cutoff(workdir, now)
    batches = []
    for mapping in config.channels.values():
        for path in mapping.source_files(config.base):
            try:
                raw = read_raw(path)
            except Exception as err:  # an unreadable file: reported, nothing of it written
                report.unreadable_files[str(path)] = f"{type(err).__name__}: {err}"
                continue
            report.files += 1
            report.rows_in += len(raw)
            batches.append(_validate(raw, path, mapping, config, now, pseudonymizer, erased, retained_from))
    events = pd.concat([b.events for b in batches], ignore_index=True) if batches else _empty_events(config.attributes)
    rejects = [b.rejects for b in batches]
    accepted, duplicates, conflicts = _dedupe(events, workdir.events, config.attributes)
    rejects.append(conflicts)
    rejects = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame()
    if len(accepted):
        schema = config.attributes.schema()
        write_events(
            pa.Table.from_pandas(accepted[schema.names], schema=schema, preserve_index=False),
            workdir.events,
            append=True,
            channels=tuple(config.channels),
            attributes=config.attributes,
        )
    report.accepted, report.duplicates, report.quarantined = len(accepted), duplicates, len(rejects)
    report.suppressed = sum(b.suppressed for b in batches)
    report.by_reason = {r: int(n) for r, n in rejects.reason.value_counts().items()} if len(rejects) else {}
    if len(rejects):
        report.quarantine_file = write_quarantine(rejects, workdir.quarantine, "run")
    return report


def validate_pushed(
    raw: pd.DataFrame,
    source: str,
    channels: tuple[str, ...],
    declared: EventAttributes,
    limits: ChannelConfig | None,
    pseudonymizer: Pseudonymizer,
    erased: ErasedCustomers,
    now: pd.Timestamp | None = None,
    retained_from: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Events pushed in the contract's own column names, through ingestion's validation: (valid events,
    pseudonymized; rejects with their reason and row; rows of erased customers dropped).

    The mapping is the identity (customer_id, event_timestamp with zone, channel, object, action, event_id,
    and each `declared` attribute the rows carry); `limits`: the workdir's events section (future bound,
    string length; default: the defaults). A column that is neither is an error naming it.
    """
    core = {"event_id", "customer_id", "event_timestamp", "channel", "object", "action", "_line"}
    undeclared = sorted(set(raw.columns) - core - set(declared.names))
    if undeclared:
        raise EventContractError(
            f"{source}: columns {undeclared} are not declared event attributes; declared: "
            f"numeric {list(declared.numeric)}, categorical {list(declared.categorical)}"
        )
    mapping = ChannelMapping(
        name="push",
        files=(),
        who="customer_id",
        when="event_timestamp",
        what="object",
        how="action",
        event_id="event_id" if "event_id" in raw else None,
        channel_from="channel",
        numeric={n: n for n in declared.numeric if n in raw},
        categorical={n: n for n in declared.categorical if n in raw},
    )
    config = ChannelConfig(
        {c: mapping for c in channels}, Path("."), *((limits.max_future, limits.max_string_length) if limits else ())
    )
    batch = _validate(
        raw,
        Path(source),
        mapping,
        config,
        pd.Timestamp.now(tz="UTC") if now is None else now,
        pseudonymizer,
        erased,
        retained_from,
    )
    return batch.events, batch.rejects, batch.suppressed


def write_quarantine(rejects: pd.DataFrame, folder: Path, name: str) -> str:
    """Rejected rows (reason, source file and line, mapped raw cells) as one Parquet file; returns its path."""
    run = uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{run}.parquet"
    replace_parquet(
        pa.Table.from_pandas(
            rejects.assign(ingest_run=run)[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA, preserve_index=False
        ),
        path,
    )
    return str(path)


def read_raw(path: Path) -> pd.DataFrame:
    """A source table as text (CSV) or native types (Parquet), with 1-based source line numbers; a file that
    cannot be read as its suffix says is a UserError naming it."""
    is_csv = path.suffix.lower() == ".csv"
    try:
        frame = (
            pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False) if is_csv else pd.read_parquet(path)
        )
    except (OSError, ValueError, pd.errors.ParserError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(
            f"{path}: not a readable {'CSV' if is_csv else 'Parquet'} file ({type(err).__name__}: {err})",
            hint="source tables are Parquet, or CSV with a .csv suffix and a header line",
        ) from err
    frame["_line"] = np.arange(len(frame)) + (2 if is_csv else 1)  # a CSV's line 1 is the header
    return frame


def text_cells(values: pd.Series) -> pd.Series:
    """Values as stripped strings, None where missing or empty."""
    if pd.api.types.is_float_dtype(values):  # Parquet numbers: repr keeps every digit
        text = values.map(repr, na_action="ignore")
    else:
        text = values.astype("string").str.strip()
    text = text.astype(object)
    return text.where(text.notna() & (text != ""), None)


def _validate(
    raw: pd.DataFrame,
    path: Path,
    mapping: ChannelMapping,
    config: ChannelConfig,
    now: pd.Timestamp,
    pseudonymizer: Pseudonymizer,
    erased: ErasedCustomers,
    retained_from: pd.Timestamp | None = None,
) -> _Batch:
    reason = pd.Series(None, index=raw.index, dtype=object)
    detail = pd.Series(None, index=raw.index, dtype=object)

    def reject(mask: pd.Series, why: str, what) -> None:
        new = mask & reason.isna()
        reason[new] = why
        detail[new] = what if isinstance(what, str) else what[new]

    def column(name: str | None, role: str) -> pd.Series:
        if name is None:
            return pd.Series(None, index=raw.index, dtype=object)
        if name not in raw.columns:
            reject(pd.Series(True, index=raw.index), "missing_required_field", f"column {name!r} ({role}) not in file")
            return pd.Series(None, index=raw.index, dtype=object)
        return raw[name]

    roles = {"customer_id": text_cells(column(mapping.who, "who")), "object": text_cells(column(mapping.what, "what"))}
    roles["action"] = (
        text_cells(column(mapping.how, "how"))
        if mapping.how
        else pd.Series(mapping.how_value, index=raw.index, dtype=object)
    )
    when = column(mapping.when, "when")
    for name, values in (
        ("customer_id", roles["customer_id"]),
        ("event_timestamp", text_cells(when)),
        ("object", roles["object"]),
        ("action", roles["action"]),
    ):
        reject(values.isna(), "missing_required_field", f"{name} is empty")

    timestamps, unparsable, naive = parse_timestamps(when, mapping)
    reject(unparsable, "unparsable_timestamp", "cannot parse " + text_cells(when).fillna("").astype(str))
    reject(naive, "naive_timestamp", "timestamp has no zone and the channel config gives none")
    reject(timestamps > now + config.max_future, "future_timestamp", f"later than ingestion time + {config.max_future}")

    if mapping.channel_from:
        channel = text_cells(column(mapping.channel_from, "channel"))
        reject(
            channel.notna() & ~channel.isin(list(config.channels)),
            "unknown_channel",
            "channel " + channel.fillna("").astype(str) + " is not declared in the channel config",
        )
        reject(channel.isna(), "missing_required_field", "channel is empty")
    else:
        channel = pd.Series(mapping.name, index=raw.index, dtype=object)

    numeric = {}
    attributes = config.attributes  # every declared attribute gets a column; this channel fills its own
    for name in attributes.numeric:
        source = mapping.numeric.get(name)
        values = text_cells(column(source, name)) if source else pd.Series(None, index=raw.index, dtype=object)
        parsed = to_float(values)
        written_not_finite = values.fillna("").str.lower().isin(NOT_FINITE_TEXT) | np.isinf(parsed.fillna(0))
        reject(
            values.notna() & parsed.isna() & ~written_not_finite,
            "non_numeric",
            f"{source}: not a number: " + values.fillna("").astype(str),
        )
        reject(written_not_finite, "not_finite", f"{source}: NaN or infinity (leave the cell empty for missing)")
        numeric[name] = parsed.where(values.notna() & ~written_not_finite)
    categorical = {
        name: text_cells(column(mapping.categorical.get(name), name))
        if mapping.categorical.get(name)
        else pd.Series(None, index=raw.index, dtype=object)
        for name in attributes.categorical
    }

    for name, values in {**roles, **categorical, "channel": channel}.items():
        too_long = values.fillna("").str.len() > config.max_string_length
        reject(too_long, "oversized_string", f"{name} longer than {config.max_string_length} characters")

    roles["customer_id"] = pseudonymizer.column(roles["customer_id"])  # validated raw; stored pseudonymous
    suppressed = pd.Series(erased.mask(roles["customer_id"]), index=raw.index)  # neither taken nor quarantined
    if retained_from is not None:  # older than the retention window `lam purge` enforces
        suppressed |= (timestamps < retained_from).fillna(False)
    ok = reason.isna() & ~suppressed
    events = pd.DataFrame({"channel": channel, **roles, "event_timestamp": timestamps, **numeric, **categorical})[ok]
    events["_source_file"], events["_source_line"] = str(path), raw["_line"][ok]
    ids = text_cells(column(mapping.event_id, "event_id"))[ok] if mapping.event_id else None
    events["content"] = _content_ids(events, attributes)
    # The source's id where it has one; else (no id column, or an empty cell) the content hash.
    events["event_id"] = ids.where(ids.notna(), events.content) if ids is not None else events.content
    # The quarantine keeps the mapped cells of the source row (unmapped columns may hold personal data the
    # platform never takes in), with the customer id pseudonymized like accepted events.
    bad = reason.notna() & ~suppressed
    rejects = raw[bad][[c for c in mapping.mapped_columns() if c in raw.columns] + ["_line"]].copy()
    if mapping.who in rejects.columns:
        rejects[mapping.who] = pseudonymizer.column(text_cells(rejects[mapping.who]))
    return _Batch(
        events,
        pd.DataFrame(
            {
                "source_file": str(path),
                "source_line": rejects["_line"].astype("int64"),
                "channel": mapping.name,
                "reason": reason[bad],
                "detail": detail[bad].astype(str),
                "raw": rejects.drop(columns="_line").astype(str).to_dict("records"),
            }
        ).assign(raw=lambda f: f.raw.map(json.dumps)),
        int(suppressed.sum()),
    )


NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def to_float(values: pd.Series) -> pd.Series:
    """Numbers parsed exactly (Arrow's correctly rounded conversion; pandas' fast parser can be off
    by one ulp); NaN where the text is not a plain number."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    text = values.astype(object).where(values.notna(), None)
    ok = text.fillna("").astype(str).str.fullmatch(NUMBER)
    result = pd.Series(np.nan, index=values.index)
    if ok.any():
        result[ok] = pa.array(text[ok].astype(str).tolist(), pa.string()).cast(pa.float64()).to_numpy()
    return result


def parse_timestamps(values: pd.Series, mapping: ChannelMapping) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(UTC timestamps, unparsable mask, naive-without-zone mask); failed rows hold NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):  # Parquet timestamps
        parsed = values
        if parsed.dt.tz is None:
            if not mapping.time_zone:
                return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]"), values.isna(), values.notna()
            parsed = parsed.dt.tz_localize(mapping.time_zone, ambiguous="NaT", nonexistent="NaT")
        return (
            parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]"),
            values.isna(),
            pd.Series(False, index=values.index),
        )
    text = text_cells(values).fillna("")
    has_zone = text.str.contains(ZONE_SUFFIX, regex=True)
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    fmt = mapping.timestamp_format or "ISO8601"
    zoned = pd.to_datetime(text[has_zone], utc=True, format=fmt, errors="coerce")
    result[has_zone] = zoned.astype("datetime64[us, UTC]")
    plain = pd.to_datetime(text[~has_zone], format=fmt, errors="coerce")
    if plain.dt.tz is not None:  # the format itself carried a zone (%z)
        result[~has_zone] = plain.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    elif mapping.time_zone:
        localized = plain.dt.tz_localize(mapping.time_zone, ambiguous="NaT", nonexistent="NaT")
        result[~has_zone] = localized.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    else:
        naive = ~has_zone & plain.reindex(values.index).notna()
    unparsable = (text != "") & result.isna() & ~naive
    return result, unparsable, naive


def _content_ids(events: pd.DataFrame, attributes: EventAttributes) -> pd.Series:
    """A deterministic id from the event's content (the core, then the declared attributes in their
    schema order): the same event always gets the same id."""
    if events.empty:
        return pd.Series([], index=events.index, dtype=object)
    columns = []
    for name in (*CORE_CONTENT, *attributes.names):
        values = events[name]
        if name == "event_timestamp":
            values = values.astype("int64")
        text = pa.array(
            values.astype(object).where(values.notna(), None).astype(str).where(values.notna(), ""), pa.string()
        )  # None and NaN are the same "missing"
        columns.append(text)
    keys = pc.binary_join_element_wise(*columns, "\x1f").to_pylist()
    return pd.Series([hashlib.sha256(k.encode()).hexdigest()[:32] for k in keys], index=events.index, dtype=object)


def _dedupe(events: pd.DataFrame, table: Path, attributes: EventAttributes) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """(accepted events, count of exact duplicates, quarantined id conflicts)."""
    earlier = existing_events(table, events.event_id.unique().tolist()) if len(events) else None
    if earlier is not None and len(earlier):
        for name in attributes.names:  # an attribute declared after those events were written: missing there
            if name not in earlier.columns:
                earlier[name] = None
        earlier = earlier.drop_duplicates("event_id").set_index("event_id", drop=False)
        known = pd.Series(_content_ids(earlier, attributes).to_numpy(), index=earlier.index)
        # A stored event is not back-filled with an attribute declared after it was written: its re-read
        # is the same event (a duplicate) when everything the stored row holds agrees.
        comparable = events[events.event_id.isin(known.index)].copy()
        for name in attributes.names:
            stored = comparable.event_id.map(earlier[name])
            comparable[name] = comparable[name].astype(object).where(stored.notna(), None)
        events = events.assign(_known=events.event_id.map(known), _compare=events.content)
        events.loc[comparable.index, "_compare"] = _content_ids(comparable, attributes)
    else:
        events = events.assign(_known=None, _compare=events.content)
    first_content = events.groupby("event_id", sort=False).content.transform("first")
    first = ~events.duplicated("event_id")
    known_id = events._known.notna()
    same_as_known = known_id & (events._compare == events._known)
    same_as_first = ~first & (events.content == first_content)
    conflict = (known_id & ~same_as_known) | (~known_id & ~first & ~same_as_first)
    duplicate = (same_as_known | (~known_id & same_as_first)) & ~conflict
    accepted = events[~known_id & first]
    conflicts = events[conflict]
    quarantined = pd.DataFrame(
        {
            "source_file": conflicts._source_file,
            "source_line": conflicts._source_line.astype("int64"),
            "channel": conflicts.channel,
            "reason": "duplicate_event_id",
            "detail": "event_id " + conflicts.event_id + " already used by an event with different content",
            "raw": conflicts[[*CORE_CONTENT, *attributes.names, "event_id"]].astype(str).to_dict("records"),
        }
    ).assign(raw=lambda f: f.raw.map(json.dumps))
    return accepted, int(duplicate.sum()), quarantined


def _empty_events(attributes: EventAttributes) -> pd.DataFrame:
    return pd.DataFrame(columns=[*attributes.schema().names, "content", "_source_file", "_source_line"])


def report_dict(report: IngestReport) -> dict:
    return {**asdict(report), "balanced": report.balanced()}
