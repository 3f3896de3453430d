"""The service's reads from the Feast online store: one store handle per app, guarded where the store needs it.

A store failure of any kind becomes StoreUnavailable, which the app answers with 503 and Retry-After.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.features.online_backends import backend_class
from lam_platform.features.store import online_features, open_store, profile_features, sequence_features


def with_history(rows: pd.DataFrame) -> np.ndarray:
    """Which online rows have events: a customer without any (or unknown to the store) is a cold start."""
    return np.array([v is not None and len(v) > 0 for v in rows.event_timestamps.tolist()], dtype=bool)


class StoreUnavailable(RuntimeError):
    """The online store could not be read; the service answers 503 until it can."""


def store_lock(store) -> AbstractContextManager:
    """What each online read of `store` holds: a lock when the backend's Feast client is one connection that
    threads share (SQLite: take turns on it), else nothing (`OnlineStore.shares_one_connection`)."""
    # The class, not an instance: reading needs no delete or lock support, so any Feast store may serve.
    backend = backend_class(store)
    return threading.Lock() if backend is not None and backend.shares_one_connection else nullcontext()


class OnlineReader:
    """Reads online rows; any store failure becomes StoreUnavailable (the next call tries again).

    The views' feature names come from the registry, which Feast parses from its protobuf on every lookup
    (about as long as the read itself); they are looked up again at most every `names_seconds`, so a view
    re-registered with new columns is seen within that time.
    """

    def __init__(self, workdir: Workdir, names_seconds: float = 30.0) -> None:
        self.workdir = workdir
        self.store = open_store(workdir)
        self.lock = store_lock(self.store)
        self.names_seconds = names_seconds
        self._names: tuple[list[str], list[str]] | None = None
        self._names_at = 0.0

    def read(self, customer_ids: list[str]) -> pd.DataFrame:
        try:
            with self.lock:
                profile, sequence = self._feature_names()
                return online_features(self.store, customer_ids, profile_names=profile, sequence_names=sequence)
        except Exception as error:  # noqa: BLE001 -- Redis down, file gone, timeouts: all mean "store unavailable"
            raise StoreUnavailable(f"the online store is unavailable ({type(error).__name__}); retry later") from error

    def _feature_names(self) -> tuple[list[str], list[str]]:
        if self._names is None or time.monotonic() - self._names_at > self.names_seconds:
            self._names = (profile_features(self.store), sequence_features(self.store))
            self._names_at = time.monotonic()
        return self._names
