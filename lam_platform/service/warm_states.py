"""Customer states computed when a model version loads, so that the first request for a customer is a cache hit.

A customer's state is a function of the model version and the sequence in the online store, so it can be
computed before anyone asks: `StateWarmer` reads the servable customers' online rows in batches when a version
loads (at start and on each hot reload, before the version is swapped in) and fills its state cache, as many as
the cache holds. A later pushed event changes the sequence and so the key: that customer's next request
computes again. On by default in `lam serve` (`--no-warm-states` turns it off); a failed warm-up is logged
and the version is served cold, never withheld. Warming runs before a version answers: at start it delays
readiness; on a hot reload it runs in the watcher thread beside live requests (the old version answers them
meanwhile), and the old and new caches are held together until the swap.
"""

from __future__ import annotations

import logging
import time

from lam_platform.core.workdir import Workdir
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.service.model import ServingModel
from lam_platform.service.online_reader import OnlineReader, with_history

log = logging.getLogger(__name__)

WARM_BATCH = 500  # customers per online read and backbone batch while warming


class StateWarmer:
    """Fills a loaded version's state cache with the states of the customers the service may score."""

    def __init__(self, workdir: Workdir, reader: OnlineReader, analysis_only: bool) -> None:
        self.workdir, self.reader, self.analysis_only = workdir, reader, analysis_only

    def customers(self) -> list[str]:
        """Who the service scores: consenting customers (every customer in an analysis-only workdir), read
        again at each load so a new version warms today's customers."""
        if not self.workdir.profiles.exists():
            return []
        mode = "analysis_only" if self.analysis_only else "ledger"
        columns = ["customer_id"] if self.analysis_only else ["customer_id", "consent_marketing"]
        return consenting_customers(read_profiles(self.workdir.profiles, columns=columns), mode)

    def __call__(self, model: ServingModel) -> None:
        if not model.state_cache.enabled:
            return
        started, computed = time.monotonic(), 0
        try:
            ids = self.customers()
            for lo in range(0, len(ids), WARM_BATCH):
                if len(model.state_cache) >= model.state_cache.max_entries:
                    break
                rows = self.reader.read(ids[lo : lo + WARM_BATCH])
                computed += model.warm(rows[with_history(rows)])
        except Exception as error:  # noqa: BLE001 -- the store down, profiles unreadable: serve it cold
            log.warning(
                "warming model %s stopped after %d states: %s: %s", model.version, computed, type(error).__name__, error
            )
            return
        log.info("model %s: %d customer states warmed in %.1f s", model.version, computed, time.monotonic() - started)
