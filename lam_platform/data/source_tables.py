"""Ingestion of the customer table and the campaign contact log, with the guarantees events have.

Every row read ends in exactly one place: accepted, counted as a duplicate (already in the store:
a re-ingested file), quarantined with its reason and source file and line, or suppressed (a customer
`lam forget` erased, see suppression.py). rows in = accepted + duplicates + quarantined + suppressed.
Customer ids are pseudonymized before anything is written.

- customers -> the profile ledger (`customer_profile.parquet`): one row per change of a customer's
  declared profile fields or consent, stamped with when it took effect (`consent.recorded_at`, else
  the ingestion time). A row equal to the customer's current one is a duplicate, so re-runs add nothing.
- campaigns -> the campaign log (`campaign_log.parquet`): one row per contact decision. An offer or
  method outside the catalogue is quarantined with that reason. With `outcome: {column: ...}` the
  outcome is the source's; with `outcome: {action: ..., within: ...}` it is derived from events when
  a training set is built, and only once mature (`campaign_outcomes`).
- an event log without a customer table (`consent: analysis_only`): every customer seen in events
  gets a profile row with consent unknown, which no contact list ever includes.

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir W` (reads W/lam.yaml).
"""

from __future__ import annotations

import glob
import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import replace_parquet
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import is_mature
from lam_platform.data.events import events_dataset
from lam_platform.data.ingest import IngestReport, parse_timestamps, read_raw, report_dict, text_cells, to_float
from lam_platform.data.platform_config import ActionWithin, Campaigns, Catalogue, Customers, SourceFiles
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.suppression import ErasedCustomers

TRUE_TEXT = {"1", "true", "t", "yes", "y"}
FALSE_TEXT = {"0", "false", "f", "no", "n"}
CAMPAIGN_COLUMNS = [
    "contact_id",
    "customer_id",
    "event_timestamp",
    "campaign_id",
    "offer",
    "method",
    "treatment",
    "policy",
    "outcome",
    "outcome_value",
    "propensity",
]
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("table", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
        ("ingest_run", pa.string()),
    ]
)


class SourceSchemaError(UserError):
    """A source file lacks a column lam.yaml declares; nothing of the file was taken."""


class TableReport(IngestReport):
    """Counts of one table's ingestion (the event ingestion's report: rows in = accepted + duplicates +
    quarantined + suppressed)."""

    def as_dict(self) -> dict:
        return report_dict(self)


class _Rows:
    """One raw file under validation: the first reason a row fails is the one recorded."""

    def __init__(self, raw: pd.DataFrame, path: Path, table: str) -> None:
        self.raw, self.path, self.table = raw, path, table
        self.reason = pd.Series(None, index=raw.index, dtype=object)
        self.detail = pd.Series(None, index=raw.index, dtype=object)
        self.suppressed = pd.Series(False, index=raw.index)

    def suppress_erased(self, who: pd.Series, pseudonymizer: Pseudonymizer, erased: ErasedCustomers) -> int:
        """Rows of erased customers are neither taken nor quarantined; returns how many."""
        self.suppressed = pd.Series(erased.mask(pseudonymizer.column(who)), index=self.raw.index)
        return int(self.suppressed.sum())

    def column(self, name: str, key: str) -> pd.Series:
        if name not in self.raw.columns:
            found = [c for c in self.raw.columns if c != "_line"]
            raise SourceSchemaError(f"{self.path}: column {name!r} ({key}) not found; columns found: {found}")
        return self.raw[name]

    def reject(self, mask: pd.Series, why: str, what) -> None:
        new = mask & self.reason.isna()
        self.reason[new] = why
        self.detail[new] = what if isinstance(what, str) else what[new]

    def required_text(self, name: str, key: str) -> pd.Series:
        values = text_cells(self.column(name, key))
        self.reject(values.isna(), "missing_required_field", f"{key} ({name}) is empty")
        return values

    def timestamps(self, name: str, key: str, source: SourceFiles) -> pd.Series:
        raw = self.column(name, key)
        parsed, unparsable, naive = parse_timestamps(raw, source)
        self.reject(text_cells(raw).isna(), "missing_required_field", f"{key} ({name}) is empty")
        self.reject(
            unparsable, "unparsable_timestamp", f"{key}: cannot parse " + text_cells(raw).fillna("").astype(str)
        )
        self.reject(naive, "naive_timestamp", f"{key} has no zone and lam.yaml gives no time_zone")
        return parsed

    def boolean(self, name: str, key: str, required: bool) -> pd.Series:
        raw = self.column(name, key)
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            # 0/1 stored as numbers (floats when a column has gaps): 1.0 is true, not the text "1.0".
            raw = raw.map(lambda v: None if pd.isna(v) else ("1" if v == 1 else "0" if v == 0 else str(v)))
        text = text_cells(raw).str.lower()
        value = pd.Series(pd.NA, index=text.index, dtype="boolean")
        value[text.isin(TRUE_TEXT)] = True
        value[text.isin(FALSE_TEXT)] = False
        self.reject(
            text.notna() & value.isna(),
            "not_boolean",
            f"{key} ({name}): not one of 1/0, true/false, yes/no: " + text.fillna("").astype(str),
        )
        if required:
            self.reject(text.isna(), "missing_required_field", f"{key} ({name}) is empty")
        return value

    def number(self, name: str, key: str) -> pd.Series:
        text = text_cells(self.column(name, key))
        value = to_float(text)
        self.reject(
            text.notna() & ~np.isfinite(value.fillna(0)) | (text.notna() & value.isna()),
            "non_numeric",
            f"{key} ({name}): not a finite number: " + text.fillna("").astype(str),
        )
        return value.where(np.isfinite(value.fillna(np.nan)))

    @property
    def ok(self) -> pd.Series:
        return self.reason.isna() & ~self.suppressed

    def rejects(self, columns: list[str], who: str, pseudonymizer: Pseudonymizer) -> pd.DataFrame:
        failed = self.reason.notna() & ~self.suppressed
        bad = self.raw[failed][[c for c in dict.fromkeys(columns) if c in self.raw.columns] + ["_line"]].copy()
        if who in bad.columns:  # the quarantine keeps pseudonyms too, never raw ids
            bad[who] = pseudonymizer.column(text_cells(bad[who]))
        return pd.DataFrame(
            {
                "source_file": str(self.path),
                "source_line": bad["_line"].astype("int64"),
                "table": self.table,
                "reason": self.reason[failed],
                "detail": self.detail[failed].astype(str),
                "raw": [json.dumps(r) for r in bad.drop(columns="_line").astype(str).to_dict("records")],
            }
        )


def _read_files(source: SourceFiles, base: Path, report: TableReport) -> list[tuple[Path, pd.DataFrame]]:
    """The CSV/Parquet files the globs name (relative to lam.yaml's folder, or absolute); an unreadable file
    is reported in `unreadable_files` and nothing of it is taken, as for events."""
    paths = sorted({Path(p) for pattern in source.files for p in glob.glob(str(Path(base) / pattern))})
    files = []
    for path in paths:
        if path.suffix.lower() not in (".csv", ".parquet"):
            continue
        try:
            raw = read_raw(path)
        except Exception as err:  # noqa: BLE001 -- a broken file is reported, the others are still ingested
            report.unreadable_files[str(path)] = f"{type(err).__name__}: {err}"
            continue
        report.files += 1
        report.rows_in += len(raw)
        files.append((path, raw))
    return files


def _quarantine(workdir: Workdir, rejects: list[pd.DataFrame], table: str, report: TableReport) -> None:
    frame = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame()
    report.quarantined = len(frame)
    report.by_reason = {r: int(n) for r, n in frame.reason.value_counts().items()} if len(frame) else {}
    if len(frame):
        run = uuid.uuid4().hex[:12]
        workdir.quarantine.mkdir(parents=True, exist_ok=True)
        path = workdir.quarantine / f"{table}-run-{run}.parquet"
        replace_parquet(
            pa.Table.from_pandas(
                frame.assign(ingest_run=run)[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA, preserve_index=False
            ),
            path,
        )
        report.quarantine_file = str(path)


# -- customers -------------------------------------------------------------------------------------
def ingest_customers(
    spec: Customers, base: Path, workdir: Workdir, pseudonymizer: Pseudonymizer, now: pd.Timestamp | None = None
) -> TableReport:
    """The customer table -> new rows of the profile ledger (see the module docstring)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    report = TableReport()
    erased = ErasedCustomers.load(workdir)
    frames, rejects = [], []
    for path, raw in _read_files(spec, base, report):
        rows = _Rows(raw, path, "customers")
        who = rows.required_text(spec.who, "customers.who")
        report.suppressed += rows.suppress_erased(who, pseudonymizer, erased)
        recorded = (
            rows.timestamps(spec.consent.recorded_at, "customers.consent.recorded_at", spec)
            if spec.consent.recorded_at
            else pd.Series(now, index=raw.index).astype("datetime64[us, UTC]")
        )
        rows.reject(recorded > now, "future_timestamp", "recorded_at is later than the ingestion time")
        fields = {}
        for name, declared in spec.profile.items():
            column, key = declared.column or name, f"customers.profile.{name}"
            fields[name] = (
                rows.number(column, key) if declared.type == "numeric" else text_cells(rows.column(column, key))
            )
        consent = rows.boolean(spec.consent.column, "customers.consent.column", required=False)
        ok = rows.ok
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": pseudonymizer.column(who[ok]),
                    "event_timestamp": recorded[ok],
                    **{k: v[ok] for k, v in fields.items()},
                    "consent_marketing": consent[ok],
                }
            )
        )
        mapped = [
            spec.who,
            spec.consent.column,
            spec.consent.recorded_at or "",
            *[(d.column or n) for n, d in spec.profile.items()],
        ]
        rejects.append(rows.rejects(mapped, spec.who, pseudonymizer))
    new = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    ledger = pd.read_parquet(workdir.profiles) if workdir.profiles.exists() else None
    accepted, report.duplicates = _new_profile_rows(new, ledger, list(spec.profile), bool(spec.consent.recorded_at))
    report.accepted = len(accepted)
    if len(accepted):
        for name, declared in spec.profile.items():
            accepted[name] = accepted[name].astype("float64" if declared.type == "numeric" else object)
        if ledger is not None:
            missing = sorted(set(accepted.columns) - set(ledger.columns) - {"origin"})
            if missing:
                raise SourceSchemaError(
                    f"lam.yaml now declares profile fields {missing} that the profile ledger "
                    f"{workdir.profiles} lacks: a changed field set needs a new workdir"
                )
            ledger = _with_origin(ledger)
        table = accepted if ledger is None else pd.concat([ledger, accepted[ledger.columns]], ignore_index=True)
        write_profiles(table, workdir)
    _quarantine(workdir, rejects, "customers", report)
    return report


ORIGIN_SOURCE, ORIGIN_CONSENT, ORIGIN_EVENTS = "source", "lam consent", "events"  # who wrote a ledger row


def _new_profile_rows(
    new: pd.DataFrame, ledger: pd.DataFrame | None, fields: list[str], timed: bool
) -> tuple[pd.DataFrame, int]:
    """(rows that change a customer's profile, count of rows that do not): a re-ingested table adds nothing.

    A row at or before the customer's latest ledger row is not new (the ledger only moves forward); a row
    equal to the customer's previous source row (the last one kept from this batch, else the last one
    ingested) is no change. A consent change recorded with `lam consent` after the last ingested row is not
    undone by a source row that carries no time of its own (`timed` False): only a dated source change can.
    """
    if new.empty:
        return new, 0
    compare = [*fields, "consent_marketing"]
    new = new.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    stale = pd.Series(False, index=new.index)
    last_source_key = pd.Series(dtype=object)
    last_row = None
    if ledger is not None and len(ledger):
        ledger = _with_origin(ledger)
        ordered = ledger.sort_values("event_timestamp", kind="stable")
        last_row = ordered.drop_duplicates("customer_id", keep="last").set_index("customer_id")
        stale = new.event_timestamp <= new.customer_id.map(last_row.event_timestamp)
        source_rows = ordered[ordered.origin == ORIGIN_SOURCE].drop_duplicates("customer_id", keep="last")
        last_source_key = pd.Series(_keys(source_rows, compare).to_numpy(), index=source_rows.customer_id)
    kept = new[~stale.fillna(False).to_numpy()].reset_index(drop=True)
    if kept.empty:
        return kept, len(new)
    key = _keys(kept, compare)
    previous = key.groupby(kept.customer_id).shift(1)
    previous = previous.where(previous.notna(), kept.customer_id.map(last_source_key))
    accepted = kept[(key != previous).to_numpy()].reset_index(drop=True)
    if last_row is not None and not timed and len(accepted):
        recorded = accepted.customer_id.map(last_row.origin) == ORIGIN_CONSENT
        accepted.loc[recorded, "consent_marketing"] = (
            accepted.customer_id[recorded].map(last_row.consent_marketing).to_numpy()
        )
    return accepted.assign(origin=ORIGIN_SOURCE), len(new) - len(accepted)


def _with_origin(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger with its `origin` column (rows written before the column existed came from the source)."""
    return ledger if "origin" in ledger else ledger.assign(origin=ORIGIN_SOURCE)


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return frame[columns].astype(str).agg("\x1f".join, axis=1)


def write_profiles(table: pd.DataFrame, workdir: Workdir) -> None:
    """Replace the profile ledger atomically (consent as a nullable boolean: unknown stays unknown)."""
    table = table.assign(
        consent_marketing=table.consent_marketing.astype("boolean"),
        event_timestamp=pd.to_datetime(table.event_timestamp, utc=True).astype("datetime64[us, UTC]"),
    )
    workdir.profiles.parent.mkdir(parents=True, exist_ok=True)
    replace_parquet(pa.Table.from_pandas(table, preserve_index=False), workdir.profiles)


def register_event_customers(workdir: Workdir, events_path: Path, fields: list[str]) -> int:
    """Analysis-only workdirs: a profile row (consent unknown, at the first event) for each customer seen
    in events and not yet in the ledger. Returns how many were added."""
    if not events_path.exists():
        return 0
    table = (
        events_dataset(events_path)
        .to_table(columns=["customer_id", "event_timestamp"])
        .group_by("customer_id")
        .aggregate([("event_timestamp", "min")])
    )
    seen = table.to_pandas().rename(columns={"event_timestamp_min": "event_timestamp"})
    ledger = pd.read_parquet(workdir.profiles) if workdir.profiles.exists() else None
    if ledger is not None:
        seen = seen[~seen.customer_id.isin(ledger.customer_id)]
    if seen.empty:
        return 0
    seen = seen.assign(**{f: None for f in fields}, consent_marketing=pd.NA, origin=ORIGIN_EVENTS)
    if ledger is not None:
        ledger = _with_origin(ledger)
    table = seen if ledger is None else pd.concat([ledger, seen[ledger.columns]], ignore_index=True)
    write_profiles(table.sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True), workdir)
    return len(seen)


# -- campaigns -------------------------------------------------------------------------------------
def ingest_campaigns(
    spec: Campaigns,
    catalogue: Catalogue,
    base: Path,
    workdir: Workdir,
    pseudonymizer: Pseudonymizer,
    now: pd.Timestamp | None = None,
) -> TableReport:
    """The contact log -> new rows of the campaign log (see the module docstring)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    report = TableReport()
    erased = ErasedCustomers.load(workdir)
    frames, rejects = [], []
    for path, raw in _read_files(spec, base, report):
        rows = _Rows(raw, path, "campaigns")
        who = rows.required_text(spec.who, "campaigns.who")
        report.suppressed += rows.suppress_erased(who, pseudonymizer, erased)
        contacted = rows.timestamps(spec.contacted_at, "campaigns.contacted_at", spec)
        rows.reject(contacted > now, "future_timestamp", "contacted_at is later than the ingestion time")
        offer = rows.required_text(spec.offer, "campaigns.offer")
        method = rows.required_text(spec.method, "campaigns.method")
        rows.reject(
            offer.notna() & ~offer.isin(catalogue.offers),
            "offer_not_in_catalogue",
            "offer " + offer.fillna("").astype(str) + f" is not in catalogue.offers {catalogue.offers}",
        )
        rows.reject(
            method.notna() & ~method.isin(catalogue.methods),
            "method_not_in_catalogue",
            "method " + method.fillna("").astype(str) + f" is not in catalogue.methods {catalogue.methods}",
        )
        treatment = rows.boolean(spec.treatment, "campaigns.treatment", required=True)
        propensity = (
            rows.number(spec.propensity, "campaigns.propensity")
            if spec.propensity
            else pd.Series(np.nan, index=raw.index)
        )
        value = (
            rows.number(spec.outcome_value, "campaigns.outcome_value")
            if spec.outcome_value
            else pd.Series(np.nan, index=raw.index)
        )
        rows.reject(
            propensity.notna() & ~((propensity > 0) & (propensity <= 1)),
            "propensity_out_of_range",
            "propensity must be in (0, 1]",
        )
        outcome = (
            rows.boolean(spec.outcome.column, "campaigns.outcome.column", required=True)
            if not isinstance(spec.outcome, ActionWithin)
            else pd.Series(pd.NA, index=raw.index, dtype="boolean")
        )
        optional = {
            k: (text_cells(rows.column(c, f"campaigns.{k}")) if c else pd.Series(None, index=raw.index, dtype=object))
            for k, c in (("campaign_id", spec.campaign_id), ("policy", spec.policy))
        }
        ok = rows.ok
        frame = pd.DataFrame(
            {
                "customer_id": pseudonymizer.column(who[ok]),
                "event_timestamp": contacted[ok],
                "campaign_id": optional["campaign_id"][ok].fillna("unnamed"),
                "offer": offer[ok],
                "method": method[ok],
                "treatment": treatment[ok].astype("int64"),
                "policy": optional["policy"][ok].fillna("unknown"),
                "outcome": outcome[ok].astype("Float64"),
                "outcome_value": value[ok],
                "propensity": propensity[ok],
            }
        )
        frames.append(frame)
        mapped = [
            spec.who,
            spec.contacted_at,
            spec.offer,
            spec.method,
            spec.treatment,
            spec.propensity or "",
            spec.campaign_id or "",
            spec.policy or "",
            spec.outcome_value or "",
            getattr(spec.outcome, "column", ""),
        ]
        rejects.append(rows.rejects(mapped, spec.who, pseudonymizer))
    new = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CAMPAIGN_COLUMNS[1:])
    new["contact_id"] = _row_ids(new)
    log = read_campaign_log(workdir) if workdir.campaign_log.exists() else None
    known = set(log.contact_id) if log is not None else set()
    fresh = ~new.contact_id.isin(known) & ~new.contact_id.duplicated()
    report.duplicates = int((~fresh).sum())
    accepted = new[fresh][CAMPAIGN_COLUMNS]
    report.accepted = len(accepted)
    if len(accepted):
        write_campaign_log(accepted if log is None else pd.concat([log, accepted], ignore_index=True), workdir)
    _quarantine(workdir, rejects, "campaigns", report)
    return report


def _row_ids(frame: pd.DataFrame) -> pd.Series:
    """A deterministic id per contact row from its content: a re-ingested row gets the same id."""
    if frame.empty:
        return pd.Series([], dtype=object)
    cells = frame[["customer_id", "event_timestamp", "campaign_id", "offer", "method", "treatment"]].astype(str)
    return cells.agg("\x1f".join, axis=1).map(lambda k: hashlib.sha256(k.encode()).hexdigest()[:32])


def read_campaign_log(workdir: Workdir) -> pd.DataFrame:
    log = pd.read_parquet(workdir.campaign_log)
    if "contact_id" not in log:  # a log written without ids (older simulator worlds): derive them
        log.insert(0, "contact_id", _row_ids(log).to_numpy())
    return log


def write_campaign_log(log: pd.DataFrame, workdir: Workdir) -> None:
    log = log.assign(event_timestamp=pd.to_datetime(log.event_timestamp, utc=True).astype("datetime64[us, UTC]"))
    workdir.campaign_log.parent.mkdir(parents=True, exist_ok=True)
    replace_parquet(pa.Table.from_pandas(log.reset_index(drop=True), preserve_index=False), workdir.campaign_log)


def campaign_outcomes(log: pd.DataFrame, spec: Campaigns | None, events: pa.Table, as_of: pd.Timestamp) -> pd.DataFrame:
    """Contacts before `as_of` whose outcome is known at `as_of`, with `outcome` as 0/1 floats.

    A source outcome column is taken as given; an outcome derived from events (an event with the
    rule's action within its horizon after the contact) counts only once mature: contacted_at +
    horizon <= as_of. Only events before `as_of` are looked at.
    """
    log = log[log.event_timestamp < as_of]
    if spec is None or not isinstance(spec.outcome, ActionWithin):
        return log[log.outcome.notna()].assign(outcome=lambda f: f.outcome.astype("float64")).reset_index(drop=True)
    from lam_platform.data.targets import action_within

    horizon = spec.outcome.horizon
    log = log[is_mature(log.event_timestamp, horizon, as_of)].reset_index(drop=True)
    hit = action_within(events, log.customer_id.tolist(), log.event_timestamp, spec.outcome.action, horizon)
    return log.assign(outcome=hit.astype("float64"))
