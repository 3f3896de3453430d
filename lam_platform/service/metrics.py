"""The scoring service's Prometheus metrics: requests, latency, errors, customers answered, model served, and
the served version's customer-state cache (hits, misses, entries).

Each app (each worker process) has its own registry, served at /metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lam_platform.service.state_cache import StateCache


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lam_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "lam_request_duration_seconds",
            "request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter("lam_errors", "failed requests by kind", ["endpoint", "kind"], registry=self.registry)
        self.customers = Counter("lam_customers", "customers answered, by status", ["status"], registry=self.registry)
        self.model = Gauge(
            "lam_model_info",
            "1 for the model version being served, 0 for former ones",
            ["version"],
            registry=self.registry,
        )

        self.shown: str | None = None

    def watch_state_cache(self, current: Callable[[], StateCache | None]) -> None:
        """Gauges of the served version's state cache (`current()`: it, or None while no model is loaded);
        hits and misses start again from 0 when a new version is loaded (its warm-up counts as neither), entries
        from the number of states warmed."""
        gauges = {
            "hits": "customer-state lookups answered from the cache, served version",
            "misses": "customer-state lookups that ran the backbone, served version",
            "entries": "customer states held, served version",
        }
        for name, text in gauges.items():
            gauge = Gauge(f"lam_state_cache_{name}", text, registry=self.registry)
            gauge.set_function(lambda name=name: _cache_figure(current(), name))

    def show_model(self, version: str | None) -> None:
        if version == self.shown:
            return
        if self.shown:
            self.model.labels(version=self.shown).set(0)  # a former version stays listed, at 0
        if version:
            self.model.labels(version=version).set(1)
        self.shown = version


def _cache_figure(cache: StateCache | None, name: str) -> float:
    if cache is None:
        return 0.0
    return float(len(cache) if name == "entries" else getattr(cache, name))
