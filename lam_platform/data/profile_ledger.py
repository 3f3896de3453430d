"""The profile ledger (`customer_profile.parquet`): customers' declared profile fields and consent over time.

- customers -> the profile ledger: one row per change of a customer's declared profile fields or
  consent, stamped with when it took effect (`consent.recorded_at`, else the ingestion time). A row
  equal to the customer's current one is a duplicate, so re-runs add nothing.
- an event log without a customer table (`consent: analysis_only`): every customer seen in events
  gets a profile row with consent unknown, which no contact list ever includes.

Rows are counted, quarantined and suppressed as every source table's are (see source_rows.py).

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir W` (the `customers:` section of W/lam.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import replace_parquet
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import events_dataset
from lam_platform.data.platform_config import Customers
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import text_cells
from lam_platform.data.source_rows import SourceRows, SourceSchemaError, TableReport, quarantine, read_source_rows

ORIGIN_SOURCE, ORIGIN_CONSENT, ORIGIN_EVENTS = "source", "lam consent", "events"  # who wrote a ledger row


def ingest_customers(
    spec: Customers, base: Path, workdir: Workdir, pseudonymizer: Pseudonymizer, now: pd.Timestamp | None = None
) -> TableReport:
    """The customer table -> new rows of the profile ledger (see the module docstring)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now

    def build(rows: SourceRows, who: pd.Series) -> pd.DataFrame:
        return _profile_rows(rows, who, spec, pseudonymizer, now)

    report, frames, rejects = read_source_rows(
        spec, base, workdir, pseudonymizer, "customers", build, _mapped_columns(spec)
    )
    new = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    ledger = pd.read_parquet(workdir.profiles) if workdir.profiles.exists() else None
    accepted, report.duplicates = _new_profile_rows(new, ledger, list(spec.profile), bool(spec.consent.recorded_at))
    report.accepted = len(accepted)
    if len(accepted):
        _append_to_ledger(accepted, ledger, spec, workdir)
    quarantine(workdir, rejects, "customers", report)
    return report


def _profile_rows(
    rows: SourceRows, who: pd.Series, spec: Customers, pseudonymizer: Pseudonymizer, now: pd.Timestamp
) -> pd.DataFrame:
    """One file's valid rows as ledger rows (pseudonymized, stamped with when they took effect)."""
    recorded = (
        rows.timestamps(spec.consent.recorded_at, "customers.consent.recorded_at", spec)
        if spec.consent.recorded_at
        else pd.Series(now, index=rows.raw.index).astype("datetime64[us, UTC]")
    )
    rows.reject(recorded > now, "future_timestamp", "recorded_at is later than the ingestion time")
    fields = {}
    for name, declared in spec.profile.items():
        column, key = declared.column or name, f"customers.profile.{name}"
        fields[name] = rows.number(column, key) if declared.type == "numeric" else text_cells(rows.column(column, key))
    consent = rows.boolean(spec.consent.column, "customers.consent.column", required=False)
    ok = rows.ok
    return pd.DataFrame(
        {
            "customer_id": pseudonymizer.column(who[ok]),
            "event_timestamp": recorded[ok],
            **{k: v[ok] for k, v in fields.items()},
            "consent_marketing": consent[ok],
        }
    )


def _mapped_columns(spec: Customers) -> list[str]:
    """The source columns the customers section reads (the only ones a quarantined row keeps)."""
    return [
        spec.who,
        spec.consent.column,
        spec.consent.recorded_at or "",
        *[(d.column or n) for n, d in spec.profile.items()],
    ]


def _append_to_ledger(accepted: pd.DataFrame, ledger: pd.DataFrame | None, spec: Customers, workdir: Workdir) -> None:
    """Write the ledger with the accepted rows after its own; a ledger without a field lam.yaml now
    declares is an error (its rows cannot say what that field was)."""
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
