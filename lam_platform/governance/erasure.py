"""`lam forget`: remove customers from every store and output of a workdir, resumably.

A request is journaled first (WORKDIR/erasure/<request>.json, holding the pseudonyms while it runs),
then carried out in idempotent steps:
1. the online store: every view's rows for the customers (sequences, profile, aggregates, scores);
2. every Parquet file in the workdir outside the model artifacts and Ray results (event partitions,
   sequence and aggregate snapshots, profiles, campaign log, published scores, quarantine, world
   ground truth, call lists): rows with a string cell that holds a pseudonym are dropped, each file
   rewritten atomically (see `atomic_files`); CSV and JSON-lines outputs likewise; other text outputs
   that name a customer (the HTML report) are deleted, to be regenerated;
3. the tokenized training sets (they hold the customers' events without ids), deleted: a later
   training run rebuilds them from the scrubbed event table; and Ray's run folders (checkpoints of
   training on them), deleted: a later run starts from its base weights, it never resumes one of them;
4. the online store again (a materialization that ran meanwhile cannot bring anyone back), then
   SQLite's VACUUM so freed pages keep no copy.
Before step 1 the customers join the suppression list (`suppression.py`): a later ingest of the same
source files, a push or a closed-loop outcome file drops their rows instead of taking them in again.
A crash at any point leaves each file old or new; running the request again (`--resume`) finishes
it. Done, the journal keeps only counts, and the governance log gets an entry naming the request,
not the people.

Run: `LAM_PSEUDONYM_KEY=... lam forget --workdir ./lam-demo CUST-000042 CUST-000043`
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.atomic_files import drop_rows, governance_lock, remove_staging, replace_text
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import check_pseudonyms
from lam_platform.data.suppression import record_erased
from lam_platform.features.online_backends import online_store_for
from lam_platform.governance.audit import append_entry

SKIPPED = ("artifacts", "ray_results", "erasure", "audit")  # no customer data, or the erasure's own records
TEXT_LINES = (".csv", ".jsonl")
TEXT_WHOLE = (".json", ".html", ".txt", ".md", ".yaml")


class InjectedCrash(RuntimeError):
    pass


def forget(workdir: Workdir, customer_ids: list[str], crash_after_files: int | None = None) -> dict:
    """Start and run an erasure request for pseudonymous `customer_ids`; returns its summary."""
    customer_ids = sorted(set(check_pseudonyms(customer_ids)))
    if not customer_ids:
        raise ValueError("no customers to forget")
    known = known_customers(workdir, customer_ids)
    if not known and _holds_customers(workdir):
        # Pseudonyms from another (or a rotated) key match nobody: "complete" would be a false report.
        raise UserError(
            f"none of the {len(customer_ids)} customers is in {workdir.root} (profiles, events, campaign "
            "log): is LAM_PSEUDONYM_KEY the key this workdir was ingested with? Nothing was erased"
        )
    request = f"erasure-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    journal = {
        "request": request,
        "requested": pd.Timestamp.now(tz="UTC").isoformat(),
        "status": "in_progress",
        "customer_ids": customer_ids,
        "not_found": len(customer_ids) - len(known),
    }
    workdir.erasure_requests.mkdir(parents=True, exist_ok=True)
    replace_text(json.dumps(journal), _journal_path(workdir, request))
    append_entry(
        workdir.governance_log,
        {
            "time": journal["requested"],
            "action": "forget",
            "request": request,
            "customers": len(customer_ids),
            "status": "started",
        },
    )
    return _run(workdir, request, crash_after_files)


def known_customers(workdir: Workdir, customer_ids: list[str]) -> set[str]:
    """The pseudonyms that occur in the workdir's profile ledger, event table or campaign log."""
    from lam_platform.data.events import events_dataset

    wanted = pa.array(customer_ids, pa.string())
    known: set[str] = set()
    for path in (workdir.profiles, workdir.campaign_log):
        if path.exists():
            known |= set(pd.read_parquet(path, columns=["customer_id"]).customer_id) & set(customer_ids)
    if workdir.events.exists():
        table = events_dataset(workdir.events).to_table(
            columns=["customer_id"], filter=pc.field("customer_id").isin(wanted)
        )
        known |= set(table.column("customer_id").to_pylist())
    return known


def _holds_customers(workdir: Workdir) -> bool:
    return workdir.profiles.exists() or workdir.events.exists() or workdir.campaign_log.exists()


def resume(workdir: Workdir, request: str) -> dict:
    """Finish an interrupted request (a finished one is reported as it is)."""
    path = _journal_path(workdir, request)
    if not path.exists():
        known = sorted(p.stem for p in workdir.erasure_requests.glob("*.json"))
        raise FileNotFoundError(f"no erasure request {request!r} in {workdir.erasure_requests}; known: {known}")
    journal = json.loads(path.read_text())
    return journal if journal["status"] == "complete" else _run(workdir, request, None)


def pending_requests(workdir: Workdir) -> list[str]:
    return sorted(
        p.stem for p in workdir.erasure_requests.glob("*.json") if json.loads(p.read_text())["status"] != "complete"
    )


def _journal_path(workdir: Workdir, request: str) -> Path:
    if "/" in request or request.startswith("."):
        raise ValueError(f"not a request id: {request!r}")
    return workdir.erasure_requests / f"{request}.json"


def _run(workdir: Workdir, request: str, crash_after_files: int | None) -> dict:
    journal = json.loads(_journal_path(workdir, request).read_text())
    customers = journal["customer_ids"]
    counts, unreadable = _erase(workdir, customers, _CrashBudget(crash_after_files))
    counts = {"customers": len(customers), "not_found": journal.get("not_found", 0), **counts}
    now = pd.Timestamp.now(tz="UTC").isoformat()
    if unreadable:  # everything else is done; the request stays open (with its pseudonyms) until these are
        journal.update(counts, unreadable_files=unreadable, attempted=now)
        replace_text(json.dumps(journal), _journal_path(workdir, request))
        _log(workdir, now, request, len(customers), "incomplete", unreadable_files=len(unreadable))
        return {
            "request": request,
            "status": "incomplete",
            **counts,
            "unreadable_files": unreadable,
            "next": f"repair or remove these files, then `lam forget --resume {request}`",
        }
    summary = {"request": request, "requested": journal["requested"], "status": "complete", "completed": now, **counts}
    replace_text(json.dumps(summary), _journal_path(workdir, request))  # the pseudonyms leave the journal
    _log(workdir, now, request, len(customers), "complete", rows_removed=sum(counts["rows_removed"].values()))
    return summary


def _erase(workdir: Workdir, customers: list[str], budget: _CrashBudget) -> tuple[dict, list[str]]:
    """Remove the customers from every store, under the exclusive governance lock; returns the counts and
    the files that could not be read (and so still hold them)."""
    with governance_lock(workdir.root):
        remove_staging(workdir.root)
        record_erased(workdir, customers)  # first: from now on no writer takes their rows in again
        store = _store(workdir)
        backend = online_store_for(store) if store else None
        online = backend.delete(customers) if backend else 0
        rows, deleted, unreadable = _scrub_files(workdir, customers, budget)
        training = _delete_training_sets(workdir)
        ray_runs = _delete_ray_runs(workdir)
        if backend:
            online += backend.delete(customers)
            backend.reclaim()
    counts = {
        "rows_removed": rows,
        "online_rows_removed": online,
        "files_deleted": deleted,
        "training_sets_deleted": training,
        "ray_runs_deleted": ray_runs,
    }
    return counts, unreadable


def _log(workdir: Workdir, time: str, request: str, customers: int, status: str, **extra) -> None:
    entry = {"time": time, "action": "forget", "request": request, "customers": customers, "status": status}
    append_entry(workdir.governance_log, {**entry, **extra})


class _CrashBudget:
    """Fault injection for tests: kill the process (no cleanup runs) after N file rewrites."""

    def __init__(self, files: int | None) -> None:
        self.left = files

    def spend(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left < 0:
            os._exit(137)  # like SIGKILL: no finally block, no atexit


def _store(workdir: Workdir):
    if not (workdir.feature_repo / "feature_store.yaml").exists():
        return None
    from lam_platform.features.store import open_store

    return open_store(workdir)


def _files(workdir: Workdir) -> list[Path]:
    files = []
    for path in sorted(workdir.root.rglob("*")):
        parts = path.relative_to(workdir.root).parts
        if path.is_file() and parts[0] not in SKIPPED and not path.name.startswith("."):
            files.append(path)
    return files


def _scrub_files(
    workdir: Workdir, customers: list[str], budget: _CrashBudget
) -> tuple[dict[str, int], list[str], dict[str, str]]:
    """(rows removed per store, files deleted, files that could not be read: path -> error)."""
    pattern = "|".join(customers)  # pseudonyms are hex: no regex metacharacters
    rows: dict[str, int] = {}
    deleted: list[str] = []
    unreadable: dict[str, str] = {}
    for path in _files(workdir):
        name = str(path.relative_to(workdir.root))
        if path.suffix == ".parquet":
            try:
                removed = _scrub_parquet(path, pattern)
            except (OSError, pa.ArrowException) as err:  # reported; the other files are still scrubbed
                unreadable[name] = f"{type(err).__name__}: {err}"
                continue
        elif path.suffix in TEXT_LINES:
            removed = _scrub_lines(path, customers)
        elif path.suffix in TEXT_WHOLE and any(c in path.read_text(errors="ignore") for c in customers):
            path.unlink()
            deleted.append(name)
            budget.spend()
            if path.name == "index.html" and path.parent == workdir.outputs / "report":
                # Its PNGs draw the customers' events and title them with pseudonyms, which no text scan
                # finds: the report goes whole (run `lam report` again).
                for image in sorted(path.parent.glob("*.png")):
                    image.unlink()
                    deleted.append(str(image.relative_to(workdir.root)))
            continue
        else:
            continue
        if removed:
            store_name = "events" if path.is_relative_to(workdir.events) else name  # one line for the partitions
            rows[store_name] = rows.get(store_name, 0) + removed
            budget.spend()
    return rows, deleted, unreadable


def _scrub_parquet(path: Path, pattern: str) -> int:
    def holds_customer(table: pa.Table) -> pa.Array:
        hit = pa.nulls(table.num_rows, pa.bool_())  # read as False by drop_rows
        for column, field in zip(table.columns, table.schema):
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                hit = pc.or_kleene(hit, pc.match_substring_regex(column, pattern))
        return hit

    return drop_rows(path, holds_customer)


def _scrub_lines(path: Path, customers: list[str]) -> int:
    lines = path.read_text().splitlines(keepends=True)
    header = lines[:1] if path.suffix == ".csv" else []
    body = lines[len(header) :]
    kept = [line for line in body if not any(c in line for c in customers)]
    if len(kept) < len(body):
        replace_text("".join(header + kept), path)
    return len(body) - len(kept)


def _delete_ray_runs(workdir: Workdir) -> int:
    """Ray's run folders (checkpoints and logs of training on the customers' data; kept only so a crashed
    run can resume): all deleted, so no later training resumes from weights that saw them."""
    if not workdir.ray_results.exists():
        return 0
    runs = [p for p in workdir.ray_results.iterdir() if p.is_dir()]
    for run in runs:
        shutil.rmtree(run)
    return len(runs)


def _delete_training_sets(workdir: Workdir) -> list[str]:
    if not workdir.training.exists():
        return []
    names = sorted(p.name for p in workdir.training.iterdir() if p.is_dir())
    for name in names:
        shutil.rmtree(workdir.training / name)
    return names
