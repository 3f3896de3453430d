"""Delete customers' rows from the Feast online store, per entity (Feast has no such call).

Feast can write an entity's features or drop a whole view's table, not remove one entity. Erasure
and consent withdrawal need exactly that, so this module deletes by the key Feast itself stores:
the serialized entity key (Feast's own `serialize_entity_key`), in a SQLite table per view, or a
Redis hash per entity whose fields are the views' features. Other online store types are refused
by name rather than silently skipped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

VIEWS_WITH_CUSTOMERS = ("customer_profile", "customer_event_sequence", "customer_event_aggregates", "lam_scores")


def _entity_keys(store, customer_ids: list[str]) -> list[bytes]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    version = store.config.entity_key_serialization_version
    return [
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=c)]),
            entity_key_serialization_version=version,
        )
        for c in customer_ids
    ]


def delete_online(store, customer_ids: list[str], views: tuple[str, ...] = VIEWS_WITH_CUSTOMERS) -> int:
    """Remove the customers' rows of `views` from the online store; returns rows (or hash fields) removed.

    Idempotent: deleting what is not there removes nothing and is not an error.
    """
    if not customer_ids:
        return 0
    kind = store.config.online_store.type
    keys = _entity_keys(store, customer_ids)
    if kind == "sqlite":
        return _delete_sqlite(store, keys, views)
    if kind == "redis":
        return _delete_redis(store, keys, views)
    raise NotImplementedError(
        f"deleting customers from a {kind!r} online store is not implemented; supported: sqlite, redis"
    )


def online_has_customer(store, customer_id: str, views: tuple[str, ...] = VIEWS_WITH_CUSTOMERS) -> bool:
    """Whether any of `views` still holds a row for the customer (a check for tests and `lam forget`)."""
    key = _entity_keys(store, [customer_id])[0]
    if store.config.online_store.type == "sqlite":
        with _sqlite(store) as conn:
            return any(
                conn.execute(f'SELECT 1 FROM "{table}" WHERE entity_key = ? LIMIT 1', (key,)).fetchone()
                for table in _sqlite_tables(store, conn, views)
            )
    from lam_platform.features.streaming import redis_client

    client = redis_client(store.config.online_store.connection_string)
    return bool(client.exists(key + store.config.project.encode()))


def vacuum(store) -> None:
    """SQLite keeps deleted rows in free pages until VACUUM (Redis frees them on DEL: nothing to do)."""
    if store.config.online_store.type == "sqlite":
        conn = _sqlite(store)
        try:
            conn.execute("VACUUM")
        finally:
            conn.close()


def _sqlite(store) -> sqlite3.Connection:
    path = Path(store.config.online_store.path)
    path = path if path.is_absolute() else Path(store.config.repo_path) / path
    return sqlite3.connect(path, timeout=60)


def _sqlite_tables(store, conn: sqlite3.Connection, views: tuple[str, ...]) -> list[str]:
    existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [f"{store.config.project}_{view}" for view in views if f"{store.config.project}_{view}" in existing]


def _delete_sqlite(store, keys: list[bytes], views: tuple[str, ...]) -> int:
    removed = 0
    conn = _sqlite(store)
    try:
        with conn:  # one transaction: every view loses the customers, or none does
            for table in _sqlite_tables(store, conn, views):
                removed += conn.executemany(
                    f'DELETE FROM "{table}" WHERE entity_key = ?', [(k,) for k in keys]
                ).rowcount
    finally:
        conn.close()
    return removed


def _delete_redis(store, keys: list[bytes], views: tuple[str, ...]) -> int:
    from feast.infra.online_stores.helpers import _mmh3

    from lam_platform.features.streaming import redis_client

    client = redis_client(store.config.online_store.connection_string)
    project = store.config.project.encode()
    fields = [f"_ts:{view}".encode() for view in views]
    for view in views:
        fields += [_mmh3(f"{view}:{feature.name}") for feature in store.get_feature_view(view).features]
    removed = 0
    for key in keys:
        redis_key = key + project  # Feast's layout: serialized entity key, then the project name
        with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: the hash is trimmed atomically
            pipe.hdel(redis_key, *fields)
            pipe.hlen(redis_key)
            deleted, left = pipe.execute()
        if left == 0:
            client.delete(redis_key)
        removed += deleted
    return removed
