"""Online read latency of customer sequences (N=256) through the Feast SDK on SQLite and on Redis,
p50/p99, for 1 customer and for 1,000 customers per call, with the ratio to a raw Redis HGETALL of
the same records (the floor any Redis-backed read sits on).

Run:  LAM_REDIS=127.0.0.1:6379,db=0 \\
      LAM_REGISTRY_URL='postgresql+psycopg://postgres@127.0.0.1:5432/test?sslmode=disable' \\
      python benchmarks/online_read.py --customers 3000 --single 300 --batch 20
Redis keys are written under a project of their own and removed at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import yaml

from lam_platform.core.packaged import feast_profile_path
from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.features.redis_online_store import redis_client
from lam_platform.features.store import LOCAL_PROFILE, open_store
from lam_platform.orchestration.demo import simulate_step, world_clock
from lam_platform.orchestration.pipeline import ingest_step, materialize_step
from lam_platform.simulation.world import raw_customer_ids

FEATURES = [
    f"customer_event_sequence:{f}"
    for f in (
        "seq_len",
        "event_ids",
        "event_timestamps",
        "channels",
        "objects",
        "actions",
        "amount_seq",
        "duration_s_seq",
    )
]


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms"


def time_calls(fn, arguments: list) -> list[float]:
    fn(arguments[0])  # warm caches and connections
    samples = []
    for argument in arguments:
        started = time.perf_counter()
        fn(argument)
        samples.append(time.perf_counter() - started)
    return samples


def feast_reader(store):
    return lambda ids: store.get_online_features(
        features=FEATURES, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()


def raw_redis_reader(store):
    """HGETALL of the hashes Feast wrote for these customers, pipelined, no decoding."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    client = redis_client(store.config.online_store.connection_string)
    project = store.config.project

    def key(customer: str) -> bytes:
        return _redis_key(
            project,
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer)]),
            store.config.entity_key_serialization_version,
        )

    def read(ids):
        pipe = client.pipeline(transaction=False)
        for customer in ids:
            pipe.hgetall(key(customer))
        results = pipe.execute()
        assert all(results), "a customer is missing from Redis"
        return results

    return read


def production_profile(folder: Path) -> Path:
    profile = yaml.safe_load((feast_profile_path("production")).read_text())
    profile["project"] = f"lam_bench_{uuid.uuid4().hex[:8]}"
    path = folder / "production.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--single", type=int, default=300, help="single-customer calls per store")
    parser.add_argument("--batch", type=int, default=20, help="1,000-customer calls per store")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pseudonymizer = Pseudonymizer.ephemeral()
    ids = pseudonymizer.pseudonyms(raw_customer_ids(args.customers))
    singles = [[c] for c in rng.choice(ids, size=args.single)]
    batches = [list(rng.choice(ids, size=1000, replace=False)) for _ in range(args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for name, profile in (("sqlite", LOCAL_PROFILE), ("redis", production_profile(Path(tmp)))):
            workdir = Workdir.at(Path(tmp) / name)
            simulate_step(workdir, customers=args.customers, seed=1, pseudonymizer=pseudonymizer)
            ingest_step(workdir, pseudonymizer)
            materialize_step(workdir, max_len=args.max_len, profile=profile, as_of=world_clock(workdir))
            stores[name] = open_store(workdir)
        try:
            print(f"\nsequences of N={args.max_len} events, {args.customers:,} customers")
            results = {}
            for name, store in stores.items():
                results[name] = (time_calls(feast_reader(store), singles), time_calls(feast_reader(store), batches))
            results["raw redis"] = (
                time_calls(raw_redis_reader(stores["redis"]), singles),
                time_calls(raw_redis_reader(stores["redis"]), batches),
            )
            for label, index in (("1 customer", 0), ("1,000 customers", 1)):
                print(f"\n{label} per call:")
                for name, samples in results.items():
                    print(
                        f"  {'feast ' + name if name != 'raw redis' else 'raw redis HGETALL':<20}"
                        f" {percentiles(samples[index])}"
                    )
                ratio = np.median(results["redis"][index]) / np.median(results["raw redis"][index])
                print(f"  feast redis / raw redis (p50): {ratio:.1f}x")
        finally:
            stores["redis"].teardown()


if __name__ == "__main__":
    main()
