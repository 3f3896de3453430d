"""Customer states cached per model version and sequence: a customer asked for again with the same events is
not run through the Transformer again.

A backbone's state is a function of the event lists the tokenizer reads and nothing else, so the key is
the customer id with those lists' content: a pushed event, a purge or a new materialization changes the
lists and so the key (the old entry ages out). Each `ServingModel` holds its own cache: a new model version
starts empty, or warmed with the customers' states when it loads (`warm_states.py`). Least recently used
entries leave first once `max_entries` are held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch


@dataclass(frozen=True)
class CachedState:
    """One customer's states after the latest event: for the version's heads, for the next-action head
    (None without one), and the latest event's time (us since the epoch)."""

    state: torch.Tensor  # (d + activity width,): `BackboneOutput.customer`, what the heads read
    next_state: torch.Tensor | None  # (d,)
    last_event_us: int


class StateCache:
    """A thread-safe LRU of CachedState by (customer id, sequence content); `max_entries=0` turns it off."""

    def __init__(self, list_types: dict[str, pa.DataType], max_entries: int) -> None:
        # Float lists are keyed by their bytes: a missing value is NaN, and NaN != NaN would make every
        # lookup of a customer with a missing amount a miss.
        self.float_columns = {name for name, kind in list_types.items() if pa.types.is_floating(kind.value_type)}
        self.columns = list(list_types)
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._entries: OrderedDict[Hashable, CachedState] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def keys(self, rows: pd.DataFrame) -> list[Hashable]:
        """Each online row's key: its customer id and the content of every list the tokenizer reads."""
        parts = [rows.customer_id.tolist()]
        for name in self.columns:
            values = rows[name].tolist()
            if name in self.float_columns:
                parts.append([np.asarray(v, np.float64).tobytes() if v is not None else None for v in values])
            else:
                parts.append([tuple(v) if v is not None else None for v in values])
        return list(zip(*parts))

    def get(self, keys: list[Hashable]) -> list[CachedState | None]:
        with self._lock:
            found = [self._entries.get(k) for k in keys]
            for key, entry in zip(keys, found):
                if entry is not None:
                    self._entries.move_to_end(key)
            hits = sum(entry is not None for entry in found)
            self.hits, self.misses = self.hits + hits, self.misses + len(keys) - hits
        return found

    def put(self, keys: list[Hashable], entries: list[CachedState]) -> None:
        with self._lock:
            for key, entry in zip(keys, entries):
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
