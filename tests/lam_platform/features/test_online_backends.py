"""A new online store backend is one module plus one registration: shown with an in-memory store."""

from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from lam_platform.data.events import TIMESTAMP
from lam_platform.features.online_backends import ONLINE_STORES, online_store_for, register_online_store
from lam_platform.features.sqlite_online_store import SqliteOnlineStore
from lam_platform.features.store import online_features, open_store
from lam_platform.features.streaming import push_events
from lam_platform.governance.erasure import forget
from lam_platform.simulation.world import load_world_config
from tests.conftest import PSEUDONYMIZER, with_raw_ids
from tests.lam_platform.features import memory_online_store
from tests.lam_platform.features.test_streaming import _assert_parity, _cut_world


def test_an_unsupported_online_store_type_is_refused_by_name():
    store = SimpleNamespace(config=SimpleNamespace(online_store=SimpleNamespace(type="dynamodb")))
    with pytest.raises(NotImplementedError, match="'dynamodb' is not supported.*redis, sqlite"):
        online_store_for(store)


@pytest.fixture(scope="module")
def memory_world(tmp_path_factory):
    register_online_store(memory_online_store.TYPE, memory_online_store.MemoryBackend)  # the one registration
    profile = tmp_path_factory.mktemp("profile") / "feature_store.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "project": "lam_memory",
                "provider": "local",
                "registry": "data/registry.db",
                "online_store": {"type": memory_online_store.TYPE},
                "offline_store": {"type": "file"},
                "entity_key_serialization_version": 3,
            }
        )
    )
    yield _cut_world(tmp_path_factory.mktemp("memory"), profile=profile)
    del ONLINE_STORES[memory_online_store.TYPE]
    memory_online_store.ROWS.clear()


def test_materialize_push_read_and_forget_run_on_a_registered_backend(memory_world):
    workdir, future = memory_world
    store = open_store(workdir)
    backend = online_store_for(store)
    assert isinstance(backend, memory_online_store.MemoryBackend) and memory_online_store.ROWS  # materialized
    day_after = load_world_config(workdir).scoring_time + pd.Timedelta(days=1)
    first_day = future.filter(pc.less(future.column("event_timestamp"), pa.scalar(day_after, TIMESTAMP)))
    push_events(workdir, store, with_raw_ids(first_day, 60), PSEUDONYMIZER)  # through the backend's push lock
    customers = sorted(set(first_day.column("customer_id").to_pylist()))
    _assert_parity(workdir, customers, day_after)
    victim, others = customers[0], customers[1:]
    assert backend.holds(victim)
    forget(workdir, [victim])  # erasure reaches the new backend without a change to lam_platform.governance
    assert not backend.holds(victim)
    assert online_features(open_store(workdir), [victim]).found.sum() == 0
    assert online_features(open_store(workdir), others).found.all()


def test_the_shipped_backends_are_registered_by_feast_type():
    assert ONLINE_STORES["sqlite"] is SqliteOnlineStore and "redis" in ONLINE_STORES
