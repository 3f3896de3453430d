"""Ingestion: raw channel tables -> validated 4W1H events, losing nothing.

Every row read ends in exactly one place: accepted into the event table, counted as a duplicate of
an event already there (same id, same content: a re-ingested file), quarantined with a reason and its
source file and line, or suppressed (a customer `lam forget` erased, or an event older than the window
`lam purge` enforces: dropped, see suppression.py).
rows in = accepted + duplicates + quarantined + suppressed, always.
The row checks are in validation.py, event ids and deduplication in event_identity.py, reading a raw
file and its cells in raw_tables.py.

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir ./lam-demo` (the `events:` section of its lam.yaml)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lam_platform.core.atomic_files import governance_lock, replace_parquet
from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig, ChannelMapping
from lam_platform.data.event_identity import dedupe
from lam_platform.data.events import EventAttributes, EventContractError, write_events
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.data.raw_tables import RAW_BATCH_ROWS, read_raw_batches
from lam_platform.data.suppression import ErasedCustomers, retention_cutoff
from lam_platform.data.validation import validate_rows

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
    # path -> error; no row past the error was counted (the batches read before it were, and the file counts in files)
    unreadable_files: dict[str, str] = field(default_factory=dict)
    quarantine_file: str | None = None

    def balanced(self) -> bool:
        return self.rows_in == self.accepted + self.duplicates + self.quarantined + self.suppressed


def ingest(
    config: ChannelConfig,
    workdir: Workdir,
    pseudonymizer: Pseudonymizer,
    now: pd.Timestamp | None = None,
    batch_rows: int = RAW_BATCH_ROWS,
) -> IngestReport:
    """Read every configured file, validate, dedupe, append to the event table, quarantine the rest.

    Customer ids are pseudonymized here, before anything is written: accepted events and the
    quarantined rows' copies of the source row carry the pseudonym, never the raw id. Runs under the
    workdir's shared governance lock: an erasure or purge waits for it, or finishes before it reads.

    Files are read and checked `batch_rows` rows at a time, and the checked events appended once about
    `batch_rows` have gathered (from one file or several), so memory holds about two batches whatever the
    files' sizes. Each append is deduplicated against the table as the appends before it left it: the outcome
    is the one a single pass would give. A run stopped part way has appended whole batches only; run again,
    their rows count as duplicates.
    """
    with governance_lock(workdir.root, shared=True):
        return _ingest(config, workdir, pseudonymizer, now, batch_rows)


def _ingest(
    config: ChannelConfig, workdir: Workdir, pseudonymizer: Pseudonymizer, now: pd.Timestamp | None, batch_rows: int
) -> IngestReport:
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    report = IngestReport()
    erased, retained_from = ErasedCustomers.load(workdir), retention_cutoff(workdir, now)
    pending = _PendingEvents(config, workdir, report)
    for mapping in config.channels.values():
        for path in mapping.source_files(config.base):
            for raw in _readable_batches(path, batch_rows, report):
                report.rows_in += len(raw)
                batch = validate_rows(raw, path, mapping, config, now, pseudonymizer, erased, retained_from)
                del raw  # the batch's events hold what is kept of it
                report.suppressed += batch.suppressed
                pending.add(batch.events, batch.rejects)
                if pending.rows >= batch_rows:
                    pending.append()
    pending.append()
    rejects = pending.rejects
    rejects = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=QUARANTINE_SCHEMA.names)
    report.quarantined = len(rejects)
    report.by_reason = {r: int(n) for r, n in rejects.reason.value_counts().items()} if len(rejects) else {}
    if len(rejects):
        report.quarantine_file = write_quarantine(rejects, workdir.quarantine, "run")
    return report


class _PendingEvents:
    """Checked events gathered across files until a batch's worth, then deduplicated and appended in one write:
    many small files make one append, not one each (an append writes a file per date partition)."""

    def __init__(self, config: ChannelConfig, workdir: Workdir, report: IngestReport) -> None:
        self.config, self.workdir, self.report = config, workdir, report
        self.events: list[pa.Table] = []
        self.rejects: list[pd.DataFrame] = []
        self.rows = 0

    def add(self, events: pa.Table, rejects: pd.DataFrame) -> None:
        self.events.append(events)
        self.rows += events.num_rows
        if len(rejects):
            self.rejects.append(rejects)

    def append(self) -> None:
        """Deduplicate what is gathered against the table (as earlier appends left it) and append the new events."""
        if not self.events:
            return
        events = pa.concat_tables(self.events)
        self.events, self.rows = [], 0
        accepted, duplicates, conflicts = dedupe(events, self.workdir.events, self.config.attributes)
        if accepted.num_rows:
            write_events(
                accepted.select(self.config.attributes.schema().names),
                self.workdir.events,
                append=True,
                channels=tuple(self.config.channels),
                attributes=self.config.attributes,
            )
        self.report.accepted += accepted.num_rows
        self.report.duplicates += duplicates
        if len(conflicts):
            self.rejects.append(conflicts)


def _readable_batches(path: Path, batch_rows: int, report: IngestReport) -> Iterator[pd.DataFrame]:
    """The file's batches; a file that cannot be read (from the start, or part way) is reported as such, with
    no row of the unreadable part counted; a file whose first batch was read counts as a file."""
    batches, first = read_raw_batches(path, batch_rows, arrow_text=True), True
    while True:
        try:
            raw = next(batches)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 -- any read failure: reported, the rest of the run goes on
            report.unreadable_files[str(path)] = f"{type(err).__name__}: {err}"
            return
        report.files += first
        first = False
        yield raw


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
    batch = validate_rows(
        raw,
        Path(source),
        mapping,
        config,
        pd.Timestamp.now(tz="UTC") if now is None else now,
        pseudonymizer,
        erased,
        retained_from,
    )
    return batch.events.to_pandas(), batch.rejects, batch.suppressed


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


def report_dict(report: IngestReport) -> dict:
    return {**asdict(report), "balanced": report.balanced()}
