"""The campaign log (`campaign_log.parquet`): one row per contact decision, from the source's contact log.

An offer or method outside the catalogue is quarantined with that reason. With
`outcome: {column: ...}` the outcome is the source's; with `outcome: {action: ..., within: ...}` it
is derived from events when a training set is built, and only once mature (`campaign_outcomes`).
A contact's id is a hash of its content, so a re-ingested contact is a duplicate. Rows are counted,
quarantined and suppressed as every source table's are (see source_rows.py).

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir W` (the `campaigns:` section of W/lam.yaml).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import replace_parquet
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import is_mature
from lam_platform.data.platform_config import ActionWithin, Campaigns, Catalogue
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import text_cells
from lam_platform.data.source_rows import SourceRows, TableReport, quarantine, read_source_rows

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

    def build(rows: SourceRows, who: pd.Series) -> pd.DataFrame:
        return _contact_rows(rows, who, spec, catalogue, pseudonymizer, now)

    report, frames, rejects = read_source_rows(
        spec, base, workdir, pseudonymizer, "campaigns", build, _mapped_columns(spec)
    )
    new = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CAMPAIGN_COLUMNS[1:])
    _append_new_contacts(new, workdir, report)
    quarantine(workdir, rejects, "campaigns", report)
    return report


def _contact_rows(
    rows: SourceRows,
    who: pd.Series,
    spec: Campaigns,
    catalogue: Catalogue,
    pseudonymizer: Pseudonymizer,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """One file's valid rows as campaign log rows (pseudonymized, without their contact ids)."""
    index = rows.raw.index
    contacted = rows.timestamps(spec.contacted_at, "campaigns.contacted_at", spec)
    rows.reject(contacted > now, "future_timestamp", "contacted_at is later than the ingestion time")
    offer, method = _offer_and_method(rows, spec, catalogue)
    treatment = rows.boolean(spec.treatment, "campaigns.treatment", required=True)
    propensity, value = _logged_numbers(rows, spec)
    outcome = (
        rows.boolean(spec.outcome.column, "campaigns.outcome.column", required=True)
        if not isinstance(spec.outcome, ActionWithin)
        else pd.Series(pd.NA, index=index, dtype="boolean")
    )
    optional = {
        k: (text_cells(rows.column(c, f"campaigns.{k}")) if c else pd.Series(None, index=index, dtype=object))
        for k, c in (("campaign_id", spec.campaign_id), ("policy", spec.policy))
    }
    ok = rows.ok
    return pd.DataFrame(
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


def _offer_and_method(rows: SourceRows, spec: Campaigns, catalogue: Catalogue) -> tuple[pd.Series, pd.Series]:
    """The contact's offer and method; each must be one the catalogue lists."""
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
    return offer, method


def _logged_numbers(rows: SourceRows, spec: Campaigns) -> tuple[pd.Series, pd.Series]:
    """(propensity, outcome value) where the source logs them, else NaN; a propensity must be in (0, 1]."""
    propensity = (
        rows.number(spec.propensity, "campaigns.propensity")
        if spec.propensity
        else pd.Series(np.nan, index=rows.raw.index)
    )
    value = (
        rows.number(spec.outcome_value, "campaigns.outcome_value")
        if spec.outcome_value
        else pd.Series(np.nan, index=rows.raw.index)
    )
    rows.reject(
        propensity.notna() & ~((propensity > 0) & (propensity <= 1)),
        "propensity_out_of_range",
        "propensity must be in (0, 1]",
    )
    return propensity, value


def _mapped_columns(spec: Campaigns) -> list[str]:
    """The source columns the campaigns section reads (the only ones a quarantined row keeps)."""
    return [
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


def _append_new_contacts(new: pd.DataFrame, workdir: Workdir, report: TableReport) -> None:
    """Write the contacts the log does not hold yet after it; the others are counted as duplicates."""
    new["contact_id"] = _row_ids(new)
    log = read_campaign_log(workdir) if workdir.campaign_log.exists() else None
    known = set(log.contact_id) if log is not None else set()
    fresh = ~new.contact_id.isin(known) & ~new.contact_id.duplicated()
    report.duplicates = int((~fresh).sum())
    accepted = new[fresh][CAMPAIGN_COLUMNS]
    report.accepted = len(accepted)
    if len(accepted):
        write_campaign_log(accepted if log is None else pd.concat([log, accepted], ignore_index=True), workdir)


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
