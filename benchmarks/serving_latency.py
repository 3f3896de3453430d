"""Latency of POST /v1/score under bounded load: p50/p99 and errors for 1 and 100 customers per request,
with 1 and 8 concurrent clients (closed loop: each sends its next request when the last returns), on
the SQLite and the Redis online store, with the service's customer-state cache on (the default, 50,000
states) warmed when the model loads (`lam serve --warm-states`, its default) and not, and off (`--state-cache
0`: every request runs the Transformer), and the ratio of end-to-end
latency to the Feast read alone: the same `OnlineReader.read` the service makes (Feast SDK
`get_online_features` of the profile and sequence views), timed here for the same number of customers, right
before and right after each row (`--feast-calls` in all, half each side).
Clients pick customers uniformly at random from the consenting ones, so with the cache on a row's hit
rate grows as it runs; the table gives it (from the service's /metrics). Each row runs with the
requests' `top_actions` at 3 (the API default: campaigns, targets and next actions) and at 0 (no next
actions: the service skips the next-action backbone), and with each client library: the standard library's
http.client (stdlib, about the least a Python client adds) and httpx (which adds its own CPU time on the
same 2 cores), so the `client` column says how much of a row is the client's.

Run (after `lam demo --workdir ./lam-demo`):
    LAM_REDIS=127.0.0.1:6379,db=0 \\
    LAM_REGISTRY_URL='postgresql+psycopg://postgres@127.0.0.1:5432/test?sslmode=disable' \\
    python benchmarks/serving_latency.py --workdir ./lam-demo --seconds 60
    [--customers 1 100] [--clients 1 8] [--state-cache 50000 0] [--warm-states 1 0] [--top-actions 3 0]
    [--http-client stdlib httpx]
The service runs as `lam serve --as-of T` (T: the world's scoring time, the demo's clock) in a process of its
own on 127.0.0.1; the clients are threads here.
Without LAM_REDIS only SQLite is measured. Redis keys go under a project of their own, removed at the end.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_read import production_profile  # noqa: E402

from lam_platform.core.workdir import Workdir  # noqa: E402
from lam_platform.features.store import open_store  # noqa: E402
from lam_platform.governance.consent import consenting_customers, read_profiles  # noqa: E402
from lam_platform.orchestration.demo import world_clock  # noqa: E402
from lam_platform.orchestration.pipeline import materialize_step  # noqa: E402
from lam_platform.service.online_reader import OnlineReader  # noqa: E402

TOKEN = "benchmark-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(workdir: Path, port: int, as_of: pd.Timestamp, state_cache: int, warm: bool) -> subprocess.Popen:
    env = {**os.environ, "LAM_API_TOKENS": json.dumps([{"name": "bench", "token": TOKEN, "scopes": ["score"]}])}
    lam = Path(sys.executable).parent / "lam"
    process = subprocess.Popen(
        [
            str(lam),
            "serve",
            "--workdir",
            str(workdir),
            "--port",
            str(port),
            "--as-of",
            as_of.isoformat(),
            "--poll-seconds",
            "3600",
            "--state-cache",
            str(state_cache),
            "--warm-states" if warm else "--no-warm-states",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise RuntimeError(f"`lam serve` did not become ready: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)


class StdlibClient:
    """One keep-alive connection through the standard library's http.client: about the least a Python client
    adds to a request, so the figure is the service's (httpx, the other client, adds its own CPU time)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> int:
        try:
            self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
            response = self.connection.getresponse()
            response.read()
            return response.status
        except (http.client.HTTPException, OSError):
            # A timed-out or broken connection stays unusable (CannotSendRequest): counted as an error, then a
            # fresh connection for the next request instead of a client thread that dies.
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.connection.host, self.connection.port, timeout=30)
            return -1

    def close(self) -> None:
        self.connection.close()


class HttpxClient:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})

    def post(self, path: str, body: dict) -> int:
        return self.http.post(path, json=body).status_code

    def close(self) -> None:
        self.http.close()


HTTP_CLIENTS = {"stdlib": StdlibClient, "httpx": HttpxClient}


def load(
    url: str, ids: list[str], batch: int, clients: int, seconds: float, seed: int, top_actions: int, http_client: str
) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        rng = np.random.default_rng(seed + k)
        http = HTTP_CLIENTS[http_client](url)
        try:
            http.post("/v1/score", {"customer_ids": ids[:batch]})  # warm the connection
            while time.perf_counter() < stop:
                body = {"customer_ids": rng.choice(ids, size=batch, replace=False).tolist(), "top_actions": top_actions}
                started = time.perf_counter()
                try:
                    status = http.post("/v1/score", body)
                except (httpx.TransportError, OSError):
                    status = -1
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(status)
        finally:
            http.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": len(errors),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests_per_s": len(ms) / seconds,
    }


def feast_read(reader: OnlineReader, ids: list[str], batch: int, calls: int, seed: int) -> np.ndarray:
    """`calls` timed reads of `batch` random customers (ms): the service's read, names from the registry once."""
    rng = np.random.default_rng(seed)
    reader.read(ids[:batch])
    samples = []
    for _ in range(calls):
        chosen = rng.choice(ids, size=batch, replace=False).tolist()
        started = time.perf_counter()
        reader.read(chosen)
        samples.append(time.perf_counter() - started)
    return np.array(samples) * 1000


def cache_hits(url: str) -> tuple[float, float]:
    """The served version's state-cache hits and misses so far, from /metrics."""
    figures = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        for name in ("hits", "misses"):
            if line.startswith(f"lam_state_cache_{name} "):
                figures[name] = float(line.split()[1])
    return figures["hits"], figures["misses"]


def measure_service(workdir: Workdir, ids: list[str], as_of: pd.Timestamp, cache: int, warm: bool, args) -> list[dict]:
    """Every (customers per request, clients) row against one `lam serve` with the given state cache."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = start_service(workdir.root, port, as_of, cache, warm)
    rows = []
    try:
        reader = OnlineReader(workdir)
        for batch in args.customers:
            for clients, top, http_client in itertools.product(args.clients, args.top_actions, args.http_client):
                # The read is timed right before and right after each row (half the calls each): on a shared
                # machine its own time drifts by a third between minutes, and the ratio needs the same minutes.
                read = [feast_read(reader, ids, batch, max(args.feast_calls // 2, 1), args.seed)]
                before = cache_hits(url)
                result = load(url, ids, batch, clients, args.seconds, args.seed, top, http_client)
                hits, misses = (now - was for now, was in zip(cache_hits(url), before))
                read.append(feast_read(reader, ids, batch, max(args.feast_calls // 2, 1), args.seed + 1))
                feast = {"p50_ms": float(np.percentile(np.concatenate(read), 50))}
                rows.append(
                    {
                        "cache": cache,
                        "warm": warm,
                        "top_actions": top,
                        "client": http_client,
                        "customers": batch,
                        "clients": clients,
                        **result,
                        "hit_rate": hits / max(hits + misses, 1),
                        "feast_p50_ms": feast["p50_ms"],
                        "e2e_over_feast_p50": result["p50_ms"] / feast["p50_ms"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        service.terminate()
        service.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("./lam-demo"), help="a workdir with a fine-tuned model")
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per configuration")
    parser.add_argument(
        "--feast-calls", type=int, default=200, help="Feast reads timed per row, half before and half after its load"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--state-cache", type=int, nargs="+", default=[50_000, 0], help="`lam serve --state-cache` values to run"
    )
    parser.add_argument(
        "--warm-states",
        type=int,
        nargs="+",
        choices=[1, 0],
        default=[1, 0],
        help="`lam serve --warm-states` (1, its default: states computed when the model loads) or not (0)",
    )
    parser.add_argument("--customers", type=int, nargs="+", default=[1, 100], help="customers per request")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent closed-loop clients")
    parser.add_argument(
        "--top-actions", type=int, nargs="+", default=[3, 0], help="the requests' top_actions (0: no next actions)"
    )
    parser.add_argument(
        "--http-client",
        nargs="+",
        choices=sorted(HTTP_CLIENTS),
        default=["stdlib", "httpx"],
        help="the clients' HTTP library: stdlib (http.client, the lean one) and httpx (adds its own CPU time)",
    )
    args = parser.parse_args()
    source = Workdir.at(args.workdir)
    as_of = world_clock(source)
    ids = consenting_customers(read_profiles(source.profiles))
    stores = ["sqlite"] + (["redis"] if os.environ.get("LAM_REDIS") and os.environ.get("LAM_REGISTRY_URL") else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in stores:
            workdir = Workdir.at(Path(tmp) / name)
            shutil.copytree(source.root, workdir.root, ignore=shutil.ignore_patterns("ray_results", "training"))
            if name == "redis":
                materialize_step(
                    workdir, profile=production_profile(Path(tmp)), as_of=as_of, switch_online_store=True
                )  # a copy of a SQLite world
            try:
                for cache, warm in itertools.product(args.state_cache, args.warm_states):
                    if cache == 0 and warm:
                        continue  # nothing to warm
                    rows += [
                        {"store": name, **row} for row in measure_service(workdir, ids, as_of, cache, warm == 1, args)
                    ]
            finally:
                if name == "redis":
                    open_store(workdir).teardown()
    table = pd.DataFrame(rows)
    print(f"\n/v1/score on 127.0.0.1, {args.seconds:.0f} s per row, closed-loop clients, {os.cpu_count()} CPUs")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
