"""Marketing consent with an as-of time, applied everywhere customers are used.

The profile table is the consent ledger: each change appends a row (the customer's latest profile
with the new `consent_marketing` flag) stamped with the time it took effect. So:
- Feast's point-in-time joins see the flag as it was at each contact;
- `current_profiles` (each customer's latest row) decides who a training set built now may use:
  a customer who withdrew at t is in no training set built after t, whatever their history;
- `record_consent` writes the new row to the online store at once and removes the customer's
  published scores there, so the online path (API, `lam score`) reads the current flag, not the
  copy from the last materialization.

Run: `LAM_PSEUDONYM_KEY=... lam consent --withdraw CUST-000042 --as-of 2026-06-04T10:00:00+00:00`
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import governance_lock, replace_parquet
from lam_platform.core.workdir import Workdir
from lam_platform.features.online_backends import online_store_for
from lam_platform.governance.audit import append_entry


def current_profiles(profiles: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per customer: the latest (at or before `as_of` if given), in customer order.

    The ledger holds no future change (`record_consent` refuses one), so the latest row is the
    current one; a simulated world dated after today still has its profiles.
    """
    rows = profiles
    if "event_timestamp" in rows:
        rows = rows[rows.event_timestamp <= as_of] if as_of is not None else rows
        rows = rows.sort_values("event_timestamp", kind="stable")
    return rows.drop_duplicates("customer_id", keep="last").sort_values("customer_id").reset_index(drop=True)


def consented(flags: pd.Series) -> np.ndarray:
    """The one consent predicate: True only where consent is recorded as given; unknown (null) is no.

    A value that is not a flag (a string) is a TypeError. On the array, not the Series: a third of the
    time for the service's one-customer requests, the same for a million rows.
    """
    return pd.array(flags.to_numpy(), dtype="boolean").fillna(False).to_numpy(bool)


def consented_rows(flags: pd.Series, mode: str = "ledger") -> np.ndarray:
    """Rows (e.g. contacts, with the consent recorded as of each) that may be trained on: recorded consent
    (ledger); every row in an analysis-only workdir, which records no consent and never contacts."""
    return np.ones(len(flags), bool) if mode == "analysis_only" else consented(flags)


def consenting_customers(profiles: pd.DataFrame, mode: str = "ledger") -> list[str]:
    """Customers who may be trained on now. `profiles` may be the whole ledger: each customer's current
    row counts. ledger: marketing consent is required (docs/ARCHITECTURE.md). analysis_only (an event log without a
    customer table, declared in lam.yaml): every customer, for analysis; such a workdir never contacts."""
    profiles = current_profiles(profiles)
    if mode == "analysis_only":
        return profiles.customer_id.tolist()
    return profiles.customer_id[consented(profiles.consent_marketing)].tolist()


def read_profiles(path: Path, columns: list[str] | None = None, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """The profile table's current rows (see `current_profiles`), optionally only some columns."""
    wanted = None if columns is None else sorted({*columns, "customer_id", "event_timestamp"})
    frame = current_profiles(pd.read_parquet(path, columns=wanted), as_of)
    return frame if columns is None else frame[columns]


def record_consent(workdir: Workdir, store, customer_ids: list[str], granted: bool, as_of: pd.Timestamp) -> dict:
    """Record a consent change for pseudonymous `customer_ids`, offline and online; returns counts.

    `as_of` is when the change took effect: not in the future, and after the customer's last
    recorded profile change (the ledger only moves forward). Unknown customers are counted, not
    recorded; the others are.
    """
    if as_of.tzinfo is None:
        raise ValueError(f"--as-of must carry a time zone, e.g. {as_of.isoformat()}+00:00")
    if as_of > pd.Timestamp.now(tz="UTC"):
        raise ValueError(f"--as-of {as_of.isoformat()} is in the future; record a change when it happens")
    with governance_lock(workdir.root):
        result = _record(workdir, store, customer_ids, granted, as_of)
    append_entry(
        workdir.governance_log,
        {
            "time": pd.Timestamp.now(tz="UTC").isoformat(),
            "action": "consent",
            "consent_marketing": granted,
            "as_of": as_of.isoformat(),
            "customers": result["recorded"],
            "status": "complete",
        },
    )
    return result


def _record(workdir: Workdir, store, customer_ids: list[str], granted: bool, as_of: pd.Timestamp) -> dict:
    table = pd.read_parquet(workdir.profiles)
    latest = current_profiles(table).set_index("customer_id")
    known = [c for c in dict.fromkeys(customer_ids) if c in latest.index]
    stale = latest.loc[known].event_timestamp >= as_of
    if stale.any():
        raise ValueError(
            f"{int(stale.sum())} customer(s) have a profile change at or after {as_of.isoformat()} "
            f"(latest {latest.loc[known].event_timestamp.max().isoformat()}): a change must be newer"
        )
    rows = latest.loc[known].reset_index()
    rows["consent_marketing"] = granted
    rows["event_timestamp"] = as_of
    if "origin" in table:  # ingestion must not undo this change with an undated source row
        rows["origin"] = "lam consent"
    if len(rows):
        rows = rows.astype({"event_timestamp": table.event_timestamp.dtype})
        ledger = pd.concat([table, rows[table.columns]], ignore_index=True)
        replace_parquet(pa.Table.from_pandas(ledger, preserve_index=False), workdir.profiles)
        store.write_to_online_store("customer_profile", rows.drop(columns="origin", errors="ignore"))
        if not granted:  # published scores are answers too: none for this customer from now on
            online_store_for(store).delete(known, views=("lam_scores",))
    return {
        "recorded": len(rows),
        "unknown": len(set(customer_ids)) - len(known),
        "consent_marketing": granted,
        "as_of": as_of.isoformat(),
    }
