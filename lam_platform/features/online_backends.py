"""The online store backends the platform supports, by Feast's `online_store.type`.

A new backend is one module (a subclass of `lam_platform.features.online_store.OnlineStore`) plus one
line in `ONLINE_STORES`; a backend living outside the package (a team's own Feast online store class)
registers with `register_online_store(type, cls)`.
"""

from __future__ import annotations

from lam_platform.features.online_store import OnlineStore
from lam_platform.features.redis_online_store import RedisOnlineStore
from lam_platform.features.sqlite_online_store import SqliteOnlineStore

ONLINE_STORES: dict[str, type[OnlineStore]] = {"sqlite": SqliteOnlineStore, "redis": RedisOnlineStore}


def register_online_store(online_store_type: str, backend: type[OnlineStore]) -> None:
    """Support the Feast online store named `online_store_type` (as feature_store.yaml spells it)."""
    ONLINE_STORES[online_store_type] = backend


def backend_class(store) -> type[OnlineStore] | None:
    """The registered backend of a feast.FeatureStore's online store type, None when there is none."""
    return ONLINE_STORES.get(getattr(store.config.online_store, "type", "sqlite"))


def online_store_for(store) -> OnlineStore:
    """The backend of a feast.FeatureStore's online store; an unsupported type is refused by name."""
    backend = backend_class(store)
    if backend is None:
        kind = getattr(store.config.online_store, "type", "sqlite")
        raise NotImplementedError(
            f"online store type {kind!r} is not supported (per-customer deletes, push lock); "
            f"supported: {', '.join(sorted(ONLINE_STORES))}"
        )
    return backend(store)
