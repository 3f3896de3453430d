"""What the platform asks of a Feast online store beyond Feast's own reads and writes.

Feast writes and reads feature rows, but cannot delete one entity's rows (erasure and consent withdrawal
need exactly that), has no lock for read-modify-write pushes of a customer's sequence, and does not say
whether its client may be shared between threads. An `OnlineStore` answers those for one backend, by the
key layout Feast itself uses. Backends register by Feast's `online_store.type` in
`lam_platform/features/online_backends.py`; an unregistered type is refused by name, never skipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

VIEWS_WITH_CUSTOMERS = ("customer_profile", "customer_event_sequence", "customer_event_aggregates", "lam_scores")
PUSH_LOCK_TIMEOUT_S = 120


def entity_keys(store, customer_ids: list[str]) -> list[bytes]:
    """The customers' serialized entity keys, as Feast stores them (its own `serialize_entity_key`)."""
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


class OnlineStore(ABC):
    """One Feast online store backend, seen from the platform: per-customer deletes, a push lock, threading."""

    # Whether Feast's client for this backend is one connection that threads must take turns on (SQLite);
    # the service then serializes its reads.
    shares_one_connection: bool = False

    def __init__(self, store) -> None:
        self.store = store  # a feast.FeatureStore whose online_store.type is this backend's

    def delete(self, customer_ids: list[str], views: tuple[str, ...] = VIEWS_WITH_CUSTOMERS) -> int:
        """Remove the customers' rows of `views`; returns rows (or hash fields) removed. Idempotent: deleting
        what is not there removes nothing and is not an error."""
        if not customer_ids:
            return 0
        return self.delete_keys(entity_keys(self.store, customer_ids), views)

    def holds(self, customer_id: str, views: tuple[str, ...] = VIEWS_WITH_CUSTOMERS) -> bool:
        """Whether any of `views` still holds a row for the customer (for tests and `lam forget`'s checks)."""
        return self.holds_key(entity_keys(self.store, [customer_id])[0], views)

    @abstractmethod
    def delete_keys(self, keys: list[bytes], views: tuple[str, ...]) -> int:
        """`delete` by serialized entity keys (at least one)."""

    @abstractmethod
    def holds_key(self, key: bytes, views: tuple[str, ...]) -> bool:
        """`holds` by serialized entity key."""

    @abstractmethod
    def push_lock(self) -> AbstractContextManager[None]:
        """An exclusive lock over the customers' online sequences, held across processes (and hosts where the
        store is shared): pushes read a sequence, append and write it back."""

    def reclaim(self) -> None:
        """Free the space deleted rows held, where the backend keeps it (no copy of an erased row may stay).

        Most stores free it on delete; those that do not (SQLite) override this."""
        return None
