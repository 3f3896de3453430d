"""The service over real HTTP (uvicorn): a model swap under load, and Redis stopped and started again."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from lam_platform.core.packaged import feast_profile_path
from lam_platform.core.workdir import Workdir
from lam_platform.orchestration.demo import world_clock
from lam_platform.orchestration.pipeline import materialize_step
from lam_platform.service.app import create_app
from lam_platform.service.auth import parse_tokens
from lam_platform.service.model import servable_versions
from lam_platform.service.server import serve_in_thread
from lam_platform.service.settings import ServiceSettings
from lam_platform.simulation.world import load_world_config
from tests.conftest import TINY_MAX_LEN
from tests.services import restartable_redis

TOKEN = "live-test-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
LOCAL_PROFILE = feast_profile_path("local")


def _copy(world: Workdir, to: Path) -> Workdir:
    shutil.copytree(world.root, to, ignore=shutil.ignore_patterns("ray_results", "training", "outputs"))
    return Workdir.at(to)


def _app(world: Workdir, **overrides):
    settings = ServiceSettings.from_workdir(world, clock=load_world_config(world).scoring_time, **overrides)
    return create_app(
        settings, parse_tokens([{"name": "live", "token": TOKEN, "scopes": ["score", "call-list"]}], "test")
    )


def _some_customers(world: Workdir, n: int) -> list[str]:
    profiles = pd.read_parquet(world.profiles)
    return profiles.customer_id[profiles.consent_marketing].head(n).tolist()


@pytest.mark.e2e
def test_a_new_model_version_is_picked_up_under_load_without_a_failed_request(trained_world, tmp_path):
    world = _copy(trained_world, tmp_path / "world")
    old = servable_versions(world.artifacts)[-1]
    ids = _some_customers(world, 2)
    statuses, answers, stop = [], [], threading.Event()  # answers: (sent, received, version)

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                sent = time.perf_counter()
                response = http.post("/v1/score", json={"customer_ids": ids}, headers=HEADERS)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    answers.append((sent, time.perf_counter(), response.json()["model_version"]))

    with serve_in_thread(_app(world, poll_seconds=0.2)) as url:
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        new = world.artifacts / f"lam-v{int(old.name[5:]) + 1}"
        staging = world.artifacts / ".staging"
        shutil.copytree(old, staging)
        staging.rename(new)  # the version appears complete, as a finished fine-tune leaves it
        deadline = time.time() + 30
        while not any(v == new.name for _, _, v in answers[-4:]) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}, pd.Series(statuses).value_counts().to_dict()
    answers.sort()
    assert answers[0][2] == old.name and answers[-1][2] == new.name
    # Once any answer came from the new version, every request sent after it gets the new version too.
    swapped = min(received for _, received, v in answers if v == new.name)
    assert {v for sent, _, v in answers if sent > swapped} == {new.name}


@pytest.mark.services
@pytest.mark.e2e
def test_redis_down_gives_503_and_the_service_recovers_when_it_is_back(trained_world, tmp_path):
    world = _copy(trained_world, tmp_path / "world")
    with restartable_redis(tmp_path) as redis:
        profile = yaml.safe_load(LOCAL_PROFILE.read_text())
        profile["online_store"] = {"type": "redis", "connection_string": redis.connection_string}
        path = tmp_path / "redis_profile.yaml"
        path.write_text(yaml.safe_dump(profile))
        assert (
            materialize_step(
                world, max_len=TINY_MAX_LEN, profile=path, as_of=world_clock(world), switch_online_store=True
            )["online_store"]
            == "redis"
        )
        ids = _some_customers(world, 3)
        with serve_in_thread(_app(world)) as url, httpx.Client(base_url=url, timeout=30) as http:
            before = http.post("/v1/score", json={"customer_ids": ids}, headers=HEADERS)
            assert before.status_code == 200 and {c["status"] for c in before.json()["customers"]} == {"scored"}
            redis.stop()
            down = http.post("/v1/score", json={"customer_ids": ids}, headers=HEADERS)
            assert down.status_code == 503 and "online store is unavailable" in down.json()["detail"]
            assert http.get("/readyz").status_code == 503
            assert http.get("/healthz").status_code == 200  # alive, just not ready
            redis.start()
            deadline = time.time() + 30
            while (after := http.post("/v1/score", json={"customer_ids": ids}, headers=HEADERS)).status_code != 200:
                assert time.time() < deadline, after.text
                time.sleep(0.5)
            assert after.json()["customers"] == before.json()["customers"]
            assert http.get("/readyz").status_code == 200
