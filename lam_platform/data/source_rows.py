"""What ingesting the customer table and the contact log share: reading files, validating rows, quarantine.

Every row read ends in exactly one place: accepted, counted as a duplicate (already in the store:
a re-ingested file), quarantined with its reason and source file and line, or suppressed (a customer
`lam forget` erased, see suppression.py). rows in = accepted + duplicates + quarantined + suppressed.
Customer ids are pseudonymized before anything is written. The tables themselves: profile_ledger.py
(customers) and campaign_log.py (contacts).
"""

from __future__ import annotations

import glob
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import replace_parquet
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.ingest import IngestReport, report_dict
from lam_platform.data.platform_config import SourceFiles
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import parse_timestamps, read_raw, text_cells, to_float
from lam_platform.data.suppression import ErasedCustomers

TRUE_TEXT = {"1", "true", "t", "yes", "y"}
FALSE_TEXT = {"0", "false", "f", "no", "n"}
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


class SourceRows:
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


def read_files(source: SourceFiles, base: Path, report: TableReport) -> list[tuple[Path, pd.DataFrame]]:
    """The CSV/Parquet files the globs name (relative to lam.yaml's folder, or absolute); an unreadable file
    is reported in `unreadable_files` and nothing of it is taken (customer and contact tables are read whole)."""
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


def read_source_rows(
    source: SourceFiles,
    base: Path,
    workdir: Workdir,
    pseudonymizer: Pseudonymizer,
    table: str,
    build: Callable[[SourceRows, pd.Series], pd.DataFrame],
    mapped_columns: list,
) -> tuple[TableReport, list[pd.DataFrame], list[pd.DataFrame]]:
    """Every file of a customer or contact table: the who column checked, erased customers suppressed, the
    good rows as `build(rows, who)` makes them, the bad ones with their reasons. Returns the report so far,
    the built frames and the rejects (for `quarantine`)."""
    report = TableReport()
    erased = ErasedCustomers.load(workdir)
    frames, rejects = [], []
    for path, raw in read_files(source, base, report):
        rows = SourceRows(raw, path, table)
        who = rows.required_text(source.who, f"{table}.who")
        report.suppressed += rows.suppress_erased(who, pseudonymizer, erased)
        frames.append(build(rows, who))
        rejects.append(rows.rejects(mapped_columns, source.who, pseudonymizer))
    return report, frames, rejects


def quarantine(workdir: Workdir, rejects: list[pd.DataFrame], table: str, report: TableReport) -> None:
    """The table's rejected rows as one Parquet file in the workdir's quarantine, counted in the report."""
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
