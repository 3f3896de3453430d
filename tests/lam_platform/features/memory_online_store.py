"""An in-memory online store: a Feast online store class and its platform backend, for the backend test.

Feast loads a custom online store from feature_store.yaml by class path (`online_store: {type:
tests.lam_platform.features.memory_online_store.MemoryOnlineStore}`); the platform side is one
`OnlineStore` subclass registered under that same type. Rows live in `ROWS`, shared by every FeatureStore
of this process (materialize, pushes and reads open their own), keyed by (project, view, entity key).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Literal

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.online_store import OnlineStore as FeastOnlineStore
from feast.repo_config import FeastConfigBaseModel

from lam_platform.features.online_store import OnlineStore

TYPE = "tests.lam_platform.features.memory_online_store.MemoryOnlineStore"
ROWS: dict[tuple[str, str, bytes], tuple[datetime, dict]] = {}
_PUSH_LOCK = threading.Lock()


class MemoryOnlineStoreConfig(FeastConfigBaseModel):
    type: Literal["tests.lam_platform.features.memory_online_store.MemoryOnlineStore"] = TYPE


class MemoryOnlineStore(FeastOnlineStore):
    """Feast's side: writes keep the newest row per entity, as Feast's own stores do."""

    def online_write_batch(self, config, table, data, progress) -> None:
        for entity_key, values, timestamp, _created in data:
            key = (config.project, table.name, _key(config, entity_key))
            when = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
            if key not in ROWS or ROWS[key][0] <= when:
                ROWS[key] = (when, dict(values))
            if progress:
                progress(1)

    def online_read(self, config, table, entity_keys, requested_features=None):
        rows = [ROWS.get((config.project, table.name, _key(config, k))) for k in entity_keys]
        return [(row[0], row[1]) if row else (None, None) for row in rows]

    def update(self, config, tables_to_delete, tables_to_keep, entities_to_delete, entities_to_keep, partial):
        for table in tables_to_delete:
            for key in [k for k in ROWS if k[:2] == (config.project, table.name)]:
                del ROWS[key]

    def teardown(self, config, tables, entities) -> None:
        self.update(config, tables, [], entities, [], False)


def _key(config, entity_key) -> bytes:
    return serialize_entity_key(entity_key, entity_key_serialization_version=config.entity_key_serialization_version)


class MemoryBackend(OnlineStore):
    """The platform's side of the same store."""

    def delete_keys(self, keys: list[bytes], views: tuple[str, ...]) -> int:
        project = self.store.config.project
        doomed = [(project, v, k) for k in keys for v in views]
        return sum(ROWS.pop(key, None) is not None for key in doomed)

    def holds_key(self, key: bytes, views: tuple[str, ...]) -> bool:
        return any((self.store.config.project, v, key) in ROWS for v in views)

    @contextlib.contextmanager
    def push_lock(self) -> Iterator[None]:
        with _PUSH_LOCK:  # one process holds the store: a thread lock is the whole story
            yield
