"""Append-only audit log of API requests that score customers: who (token name), what, how many, when.

One JSON object per line in WORKDIR/audit/api.jsonl: time, token (its name, never the token), endpoint,
customers (a count, never ids), status and outcome. Lines are appended with O_APPEND and fsync'd; the
service never rewrites or truncates the file. Read it with `lam audit --workdir ./lam-demo`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, token: str | None, endpoint: str, customers: int | None, status: int) -> None:
        entry = {
            "time": pd.Timestamp.now(tz="UTC").isoformat(),
            "token": token or "(none)",
            "endpoint": endpoint,
            "customers": customers,
            "status": status,
            "outcome": _outcome(status),
        }
        with self._lock:  # one write per line, so lines from concurrent requests never interleave
            append_entry(self.path, entry)


def append_entry(path: Path, entry: dict) -> None:
    """Append one JSON line with O_APPEND (a single write) and fsync; the file is never rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_audit(path: Path, since: pd.Timestamp | None = None) -> Iterator[dict]:
    """Entries oldest first, optionally only those at or after `since`."""
    if not path.exists():
        return
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON line (the log was edited or cut)") from None
            if since is None or pd.Timestamp(entry["time"]) >= since:
                yield entry


REFUSALS = {401: "unauthenticated", 403: "forbidden", 413: "too_large", 422: "invalid", 503: "unavailable"}


def _outcome(status: int) -> str:
    return "ok" if status < 400 else REFUSALS.get(status, "error")
