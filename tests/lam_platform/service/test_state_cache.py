"""The service's customer-state cache: keyed by the sequence's content, least recently used out, and answers
identical to running the backbones."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient

from lam_platform.features.store import online_features, open_store
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.service.app import create_app
from lam_platform.service.auth import parse_tokens
from lam_platform.service.model import ServingModel, servable_versions
from lam_platform.service.settings import ServiceSettings
from lam_platform.service.state_cache import CachedState, StateCache
from lam_platform.simulation.world import load_world_config

LISTS = {"objects": pa.list_(pa.string()), "amount_seq": pa.list_(pa.float64())}
TOKEN = "cache-test-token-0123456789"


def rows(*customers: tuple[str, list[str], list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in customers],
            "objects": [o for _, o, _ in customers],
            "amount_seq": [a for _, _, a in customers],
        }
    )


def entry(value: float) -> CachedState:
    return CachedState(torch.full((2,), value), None, 0)


def test_keys_follow_the_sequence_content_and_a_missing_amount_still_hits():
    cache = StateCache(LISTS, max_entries=10)
    first = cache.keys(rows(("c1", ["a", "b"], [1.0, float("nan")])))
    again = cache.keys(rows(("c1", ["a", "b"], [1.0, float("nan")])))  # NaN != NaN, yet the same key
    new_event = cache.keys(rows(("c1", ["a", "b", "c"], [1.0, float("nan"), 2.0])))
    other_customer = cache.keys(rows(("c2", ["a", "b"], [1.0, float("nan")])))
    assert first == again
    assert first != new_event and first != other_customer
    cache.put(first, [entry(1.0)])
    assert cache.get(again)[0] is not None and cache.get(new_event) == [None]
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_least_recently_used_state_leaves_first():
    cache = StateCache(LISTS, max_entries=2)
    keys = cache.keys(rows(*[(f"c{i}", ["a"], [float(i)]) for i in range(3)]))
    cache.put(keys[:2], [entry(0), entry(1)])
    cache.get(keys[:1])  # c0 used again: c1 is now the oldest
    cache.put(keys[2:], [entry(2)])
    assert [e is not None for e in cache.get(keys)] == [True, False, True]
    assert len(cache) == 2
    assert not StateCache(LISTS, max_entries=0).enabled


@pytest.fixture(scope="module")
def online_rows(trained_world):
    profiles = pd.read_parquet(trained_world.profiles)
    frame = online_features(open_store(trained_world), profiles.customer_id.tolist()[:40])
    return frame[frame.event_timestamps.map(lambda v: v is not None and len(v) > 0)].reset_index(drop=True)


def test_cached_states_equal_the_backbones_for_a_batch_partly_in_the_cache(trained_world, online_rows):
    artifact = ModelArtifact(servable_versions(trained_world.artifacts)[-1])
    cached, plain = ServingModel(artifact, state_cache=100), ServingModel(artifact, state_cache=0)
    cached.states(online_rows.iloc[::3].reset_index(drop=True))  # every third customer is cached first
    state, next_state, last_event_us = cached.states(online_rows)
    expected_state, expected_next, expected_us = plain.states(online_rows)
    assert cached.state_cache.hits == len(online_rows.iloc[::3])
    torch.testing.assert_close(state, expected_state, atol=1e-5, rtol=1e-5)
    if expected_next is not None:
        torch.testing.assert_close(next_state, expected_next, atol=1e-5, rtol=1e-5)
    assert (last_event_us == expected_us).all()


def test_a_repeated_request_is_answered_the_same_from_the_cache(trained_world, online_rows):
    settings = ServiceSettings.from_workdir(trained_world, clock=load_world_config(trained_world).scoring_time)
    tokens = parse_tokens([{"name": "crm", "token": TOKEN, "scopes": ["score"]}], "test")
    body = {"customer_ids": online_rows.customer_id.tolist()[:5]}
    with TestClient(create_app(settings, tokens)) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        first = client.post("/v1/score", json=body, headers=headers)
        second = client.post("/v1/score", json=body, headers=headers)
        metrics = client.get("/metrics").text
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "lam_state_cache_hits 5.0" in metrics and "lam_state_cache_misses 5.0" in metrics


def test_a_request_without_next_actions_skips_them_and_a_later_one_gets_them(trained_world, online_rows):
    """top_actions 0 leaves next actions out (the next-action backbone is not run); the campaigns are the same,
    and a state cached by such a request is completed, not served without its next state, when asked again."""
    settings = ServiceSettings.from_workdir(trained_world, clock=load_world_config(trained_world).scoring_time)
    tokens = parse_tokens([{"name": "crm", "token": TOKEN, "scopes": ["score"]}], "test")
    ids = online_rows.customer_id.tolist()[:5]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings, tokens)) as client:
        lean = client.post("/v1/score", json={"customer_ids": ids, "top_actions": 0}, headers=headers).json()
        full = client.post("/v1/score", json={"customer_ids": ids}, headers=headers).json()
    with TestClient(create_app(settings, tokens)) as client:
        fresh = client.post("/v1/score", json={"customer_ids": ids}, headers=headers).json()
    assert all(c["next_actions"] is None for c in lean["customers"])
    assert [c["campaigns"] for c in lean["customers"]] == [c["campaigns"] for c in full["customers"]]
    assert full == fresh
    assert all(c["next_actions"]["what"] for c in full["customers"] if c["status"] == "scored")


def test_warmed_states_answer_the_first_request_from_the_cache_with_the_same_answer(trained_world, online_rows):
    """`warm_states` fills the cache when the version loads: a first request computes nothing and answers as a
    cold service does; a cache smaller than the customers stops the warm-up when full."""
    clock = load_world_config(trained_world).scoring_time
    tokens = parse_tokens([{"name": "crm", "token": TOKEN, "scopes": ["score"]}], "test")
    consenting = set(consenting_customers(read_profiles(trained_world.profiles)))
    ids = [c for c in online_rows.customer_id.tolist() if c in consenting][:5]
    body, headers = {"customer_ids": ids}, {"Authorization": f"Bearer {TOKEN}"}
    cold = ServiceSettings.from_workdir(trained_world, clock=clock)
    with TestClient(create_app(cold, tokens)) as client:
        expected = client.post("/v1/score", json=body, headers=headers).json()
    with TestClient(create_app(dataclasses.replace(cold, warm_states=True), tokens)) as client:
        cache = client.app.state.service.watcher.current.state_cache
        warmed = len(cache)
        answer = client.post("/v1/score", json=body, headers=headers).json()
        assert (cache.hits, cache.misses) == (len(ids), 0)
    assert warmed >= len(ids)
    # Warmed in batches of hundreds, asked for five: the same states up to float rounding.
    for got, want in zip(answer["customers"], expected["customers"]):
        assert got["status"] == want["status"] == "scored"
        assert [c["uplift"] for c in got["campaigns"]] == pytest.approx(
            [c["uplift"] for c in want["campaigns"]], abs=1e-5
        )
    small = dataclasses.replace(cold, warm_states=True, state_cache=3)
    with TestClient(create_app(small, tokens)) as client:
        assert len(client.app.state.service.watcher.current.state_cache) == 3
