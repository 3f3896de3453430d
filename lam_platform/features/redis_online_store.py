"""The Redis online store (Feast's `type: redis`, the production profile): one hash per customer.

Feast keys each customer's hash by the serialized entity key followed by the project name; its fields
are `_ts:<view>` and the murmur3 hash of `<view>:<feature>`. A delete trims the views' fields and drops
the hash once empty, atomically per customer; pushes hold a Redis lock, so processes on any host that
share the store take turns. Redis frees deleted data at once: nothing to reclaim.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from lam_platform.features.online_store import PUSH_LOCK_TIMEOUT_S, OnlineStore

LOCK_NAME = "lam:push-lock"


def redis_client(connection_string: str):
    """A redis-py client from Feast's `host:port,db=0,password=...` connection string."""
    import redis

    address, *options = connection_string.split(",")
    host, _, port = address.partition(":")
    kwargs = dict(option.split("=", 1) for option in options if "=" in option)
    return redis.Redis(
        host=host,
        port=int(port or 6379),
        db=int(kwargs.get("db", 0)),
        password=kwargs.get("password"),
        ssl=kwargs.get("ssl", "false").lower() == "true",
    )


class RedisOnlineStore(OnlineStore):
    def __init__(self, store) -> None:
        super().__init__(store)
        self.client = redis_client(store.config.online_store.connection_string)
        self.project = store.config.project.encode()

    def delete_keys(self, keys: list[bytes], views: tuple[str, ...]) -> int:
        from feast.infra.online_stores.helpers import _mmh3

        fields = [f"_ts:{view}".encode() for view in views]
        for view in views:
            fields += [_mmh3(f"{view}:{feature.name}") for feature in self.store.get_feature_view(view).features]
        removed = 0
        for key in keys:
            redis_key = key + self.project
            with self.client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: the hash is trimmed atomically
                pipe.hdel(redis_key, *fields)
                pipe.hlen(redis_key)
                deleted, left = pipe.execute()
            if left == 0:
                self.client.delete(redis_key)
            removed += deleted
        return removed

    def holds_key(self, key: bytes, views: tuple[str, ...]) -> bool:
        return bool(self.client.exists(key + self.project))

    def push_lock(self) -> AbstractContextManager[None]:
        return self.client.lock(
            f"{LOCK_NAME}:{self.store.config.project}",
            timeout=PUSH_LOCK_TIMEOUT_S,
            blocking_timeout=PUSH_LOCK_TIMEOUT_S,
        )
