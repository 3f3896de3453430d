"""The embedded SQLite online store (Feast's `type: sqlite`, the local profile): one table per view.

Feast names each view's table `<project>_<view>` and keys rows by the serialized entity key; deletes run
in one transaction across views, a file lock next to the database serializes pushes, and VACUUM frees
the pages deleted rows held.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from lam_platform.features.online_store import OnlineStore


class SqliteOnlineStore(OnlineStore):
    shares_one_connection = True  # Feast's SQLite store keeps one connection for every thread

    @property
    def path(self) -> Path:
        path = Path(self.store.config.online_store.path)
        return path if path.is_absolute() else Path(self.store.config.repo_path) / path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def _tables(self, conn: sqlite3.Connection, views: tuple[str, ...]) -> list[str]:
        existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        project = self.store.config.project
        return [f"{project}_{view}" for view in views if f"{project}_{view}" in existing]

    def delete_keys(self, keys: list[bytes], views: tuple[str, ...]) -> int:
        removed = 0
        conn = self._connect()
        try:
            with conn:  # one transaction: every view loses the customers, or none does
                for table in self._tables(conn, views):
                    removed += conn.executemany(
                        f'DELETE FROM "{table}" WHERE entity_key = ?', [(k,) for k in keys]
                    ).rowcount
        finally:
            conn.close()
        return removed

    def holds_key(self, key: bytes, views: tuple[str, ...]) -> bool:
        with contextlib.closing(self._connect()) as conn:
            return any(
                conn.execute(f'SELECT 1 FROM "{table}" WHERE entity_key = ? LIMIT 1', (key,)).fetchone()
                for table in self._tables(conn, views)
            )

    @contextlib.contextmanager
    def push_lock(self) -> Iterator[None]:
        with open(self.path.with_suffix(self.path.suffix + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def reclaim(self) -> None:
        # SQLite keeps deleted rows in free pages until VACUUM.
        with contextlib.closing(self._connect()) as conn:
            conn.execute("VACUUM")
