"""`lam export-call-list`: the one step that puts names back on a call list, for the people who call.

The platform's call list holds pseudonyms. This step needs the pseudonymization key and the CRM's
customer master (raw id and phone number, a source-system file): it hashes each raw id in the
master with the key and joins on the pseudonym. It checks consent as it is now, so a customer who
withdrew after the list was scored is not exported. The output holds raw ids, so it must be written
outside the workdir, where the platform's data lives.

Run: `LAM_PSEUDONYM_KEY=... lam export-call-list --workdir ./lam-demo --customers raw/crm/customers.csv --out calls.csv`
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.governance.audit import append_entry
from lam_platform.governance.consent import consented, read_profiles

# The raw id is named raw_customer_id, never customer_id: a file with it must not pass for platform data
# (`lam close-loop` takes pseudonymous customer_id, or customer_ref, the pseudonym this export keeps).
EXPORT_COLUMNS = ["rank", "raw_customer_id", "phone", "customer_ref", "offer", "method", "contact_time", "reason"]


def export_call_list(
    workdir: Workdir, pseudonymizer: Pseudonymizer, customer_master: Path, out: Path, call_list: Path | None = None
) -> dict:
    """Write the re-identified call list to `out` (CSV); returns counts of what was left out and why."""
    if workdir.contains(out):
        raise ValueError(
            f"{out} is inside the workdir {workdir.root}: a re-identified list must not be stored "
            "with the platform's pseudonymous data"
        )
    call_list = call_list or workdir.call_list
    if not call_list.exists():
        raise FileNotFoundError(f"no call list at {call_list}: run `lam score --workdir {workdir.root}` first")
    calls = pd.read_parquet(call_list)
    master = pd.read_csv(customer_master, dtype=str, keep_default_na=False)
    missing = {"customer_id", "phone"} - set(master.columns)
    if missing:
        raise ValueError(f"customer master {customer_master} lacks columns {sorted(missing)}")
    master["customer_ref"] = pseudonymizer.column(master.customer_id)
    consenting = read_profiles(workdir.profiles, columns=["customer_id", "consent_marketing"])
    consenting = set(consenting.customer_id[consented(consenting.consent_marketing)])
    allowed = calls.customer_id.isin(consenting)
    joined = (
        calls[allowed]
        .rename(columns={"customer_id": "customer_ref"})
        .merge(
            master[["customer_id", "phone", "customer_ref"]].rename(columns={"customer_id": "raw_customer_id"}),
            on="customer_ref",
            how="inner",
        )
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # Raw ids and phone numbers: readable by the exporting user only, created so from the first byte.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_TRUNC
    with os.fdopen(fd, "w", newline="") as handle:
        joined.sort_values("rank")[EXPORT_COLUMNS].to_csv(handle, index=False)
    result = {
        "exported": len(joined),
        "out": str(out),
        "left_out_no_consent_now": int((~allowed).sum()),
        "left_out_not_in_master": int(allowed.sum()) - len(joined),
    }
    append_entry(
        workdir.governance_log, {"time": pd.Timestamp.now(tz="UTC").isoformat(), "action": "export-call-list", **result}
    )  # counts and where, never who
    return result
