"""apply -> materialize -> push -> read against a real Redis online store and PostgreSQL registry."""

import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from lam_platform.core.packaged import feast_profile_path
from lam_platform.data.events import TIMESTAMP
from lam_platform.features.store import online_features, open_store, schema_fingerprint
from lam_platform.features.streaming import push_events
from lam_platform.simulation.world import load_world_config
from tests.conftest import PSEUDONYMIZER, with_raw_ids
from tests.lam_platform.features.test_streaming import _assert_parity, _cut_world
from tests.services import postgres_url, redis_connection_string

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def production_world(tmp_path_factory, request):
    """A world materialized with infra/feast/production.yaml, under a project name of its own."""
    with redis_connection_string() as redis, postgres_url() as registry:
        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setenv("LAM_REDIS", redis)
        monkeypatch.setenv("LAM_REGISTRY_URL", registry)
        profile = yaml.safe_load((feast_profile_path("production")).read_text())
        profile["project"] = f"lam_test_{uuid.uuid4().hex[:8]}"  # isolates keys and registry rows
        path = tmp_path_factory.mktemp("profile") / "feature_store.yaml"
        path.write_text(yaml.safe_dump(profile).replace(redis, "${LAM_REDIS}").replace(registry, "${LAM_REGISTRY_URL}"))
        workdir, future = _cut_world(tmp_path_factory.mktemp("prod"), profile=path)
        yield workdir, future
        open_store(workdir).teardown()  # removes this project's keys from Redis
        monkeypatch.undo()


def test_profile_is_redis_and_postgres(production_world):
    workdir, _ = production_world
    store = open_store(workdir)
    assert store.config.online_store.type == "redis"
    assert store.config.registry.registry_type == "sql"
    written = (workdir.feature_repo / "feature_store.yaml").read_text()
    assert "${LAM_REDIS}" in written and "${LAM_REGISTRY_URL}" in written  # endpoints stay out of files


def test_registry_in_postgres_is_shared_by_a_fresh_store(production_world):
    workdir, _ = production_world
    names = {v.name for v in open_store(workdir).list_feature_views()}
    assert {"customer_profile", "customer_event_sequence", "customer_event_aggregates", "lam_scores"} <= names
    services = {s.name for s in open_store(workdir).list_feature_services()}
    assert services == {"lam_pretrain_v1", "lam_finetune_v1", "lam_scoring_v1"}
    assert len(schema_fingerprint(open_store(workdir))) == 16


def test_materialize_and_pushes_keep_redis_equal_to_offline(production_world):
    workdir, future = production_world
    start = load_world_config(workdir).scoring_time
    customers = sorted(set(future.column("customer_id").to_pylist()))[:20]
    _assert_parity(workdir, customers, start)  # after materialize
    t = start + pd.Timedelta(days=2)
    chunk = future.filter(pc.less(future.column("event_timestamp"), pa.scalar(t, TIMESTAMP)))
    assert push_events(workdir, open_store(workdir), with_raw_ids(chunk, 60), PSEUDONYMIZER)["new"] == chunk.num_rows
    _assert_parity(workdir, customers, t)  # after pushes, through the Redis lock
    unknown = online_features(open_store(workdir), ["nobody"]).iloc[0]
    assert not unknown.found


def test_erasure_deletes_customers_from_redis_and_leaves_the_others(production_world):
    from lam_platform.features.online_backends import online_store_for

    workdir, future = production_world
    store = open_store(workdir)
    backend = online_store_for(store)
    customers = sorted(set(future.column("customer_id").to_pylist()))
    victims, others = customers[-2:], customers[-5:-2]  # not among the customers the parity test reads
    assert all(backend.holds(c) for c in victims + others)
    assert backend.delete(victims) > 0
    assert not any(backend.holds(c) for c in victims)
    assert online_features(store, victims).found.sum() == 0
    assert online_features(store, others).found.all()
    assert backend.delete(victims) == 0  # idempotent
