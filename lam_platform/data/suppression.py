"""What may not enter again: erased customers, and events older than the retention window.

`lam forget` removes a customer from every store, but the source systems still hold their rows: the
next routine `lam ingest` of the same files, a retried `lam push` or a `lam close-loop` would bring
them back. So erasure records a one-way digest of each forgotten pseudonym (sha256 of a fixed prefix
and the pseudonym: it names nobody, and matches only a row that pseudonymizes to the same customer)
in WORKDIR/erasure/erased.digests, and ingestion, pushes and the closed loop drop matching rows,
counting them as `suppressed` (never quarantined: the quarantine would keep a copy).

Likewise `lam purge --retention-days D` records its window (WORKDIR/retention.json), and ingestion and
pushes suppress events older than now - D: a re-ingested source file cannot bring purged events back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.atomic_files import replace_text
from lam_platform.core.workdir import Workdir

PREFIX = "lam-erased\x1f"


def digest(pseudonym: str) -> str:
    return hashlib.sha256((PREFIX + pseudonym).encode()).hexdigest()


@dataclass(frozen=True)
class ErasedCustomers:
    digests: frozenset[str]

    @classmethod
    def load(cls, workdir: Workdir) -> ErasedCustomers:
        path = workdir.erased_customers
        return cls(frozenset(path.read_text().split()) if path.exists() else frozenset())

    def mask(self, pseudonyms: pd.Series | pa.Array) -> np.ndarray:
        """True where a row's pseudonym (missing: never) belongs to an erased customer."""
        if not self.digests:
            return np.zeros(len(pseudonyms), bool)
        if isinstance(pseudonyms, pa.Array):  # ingestion's cells: the distinct ones digested, matched in Arrow
            erased = [p for p in pc.unique(pseudonyms.drop_null()).to_pylist() if digest(p) in self.digests]
            return pc.is_in(pseudonyms, pa.array(erased, pa.string())).fill_null(False).to_numpy(zero_copy_only=False)
        distinct = pd.unique(pseudonyms.dropna())
        erased = {p for p in distinct if digest(str(p)) in self.digests}
        return pseudonyms.isin(erased).to_numpy() if erased else np.zeros(len(pseudonyms), bool)


def record_erased(workdir: Workdir, pseudonyms: list[str]) -> None:
    """Add customers to the suppression list (idempotent; written atomically; the caller holds the
    governance lock)."""
    known = ErasedCustomers.load(workdir).digests
    workdir.erased_customers.parent.mkdir(parents=True, exist_ok=True)
    replace_text("".join(f"{d}\n" for d in sorted(known | {digest(p) for p in pseudonyms})), workdir.erased_customers)


def record_retention(workdir: Workdir, retention_days: float) -> None:
    """The window `lam purge` enforced: later entries older than it are suppressed."""
    replace_text(json.dumps({"retention_days": retention_days}), workdir.retention_policy)


def retention_cutoff(workdir: Workdir, now: pd.Timestamp) -> pd.Timestamp | None:
    """Events before this time may not enter (None: no retention window recorded)."""
    if not workdir.retention_policy.exists():
        return None
    return now - pd.Timedelta(days=float(json.loads(workdir.retention_policy.read_text())["retention_days"]))
