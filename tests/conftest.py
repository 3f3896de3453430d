"""Shared fixtures: one tiny simulated world, materialized into a SQLite Feast store, per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from lam_platform.core.packaged import job_config_path
from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import KEY_ENV, KEY_FILE_ENV, Pseudonymizer
from lam_platform.orchestration.demo import simulate_step, world_clock
from lam_platform.orchestration.pipeline import ingest_step, materialize_step
from lam_platform.simulation.world import raw_customer_ids

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the source tree: examples under infra/

TEST_PSEUDONYM_KEY = "lam-tests-only-pseudonym-key-4b1d"  # a test key: real keys live in a secret, never in git
PSEUDONYMIZER = Pseudonymizer(TEST_PSEUDONYM_KEY.encode())

TINY_CUSTOMERS = 200
TINY_MAX_LEN = 16
TINY_JOB = job_config_path("tiny")


def pytest_configure(config) -> None:
    # Every CLI subprocess, spawned worker and Ray job started by the tests inherits the test key.
    os.environ[KEY_ENV] = TEST_PSEUDONYM_KEY
    os.environ.pop(KEY_FILE_ENV, None)


def pseudonym(raw_id: str) -> str:
    return PSEUDONYMIZER.pseudonym(raw_id)


def with_raw_ids(events: pa.Table, customers: int) -> pa.Table:
    """A simulated world's events keyed by the source systems' raw ids again (what a pusher would send)."""
    raw = PSEUDONYMIZER.matcher(raw_customer_ids(customers))
    column = [raw[c] for c in events.column("customer_id").to_pylist()]
    return events.set_column(events.schema.get_field_index("customer_id"), "customer_id", pa.array(column, pa.string()))


def make_world(workdir: Workdir, customers: int = TINY_CUSTOMERS, seed: int = 3) -> Workdir:
    """Simulate a world as a source system, ingest it like any team's data, materialize at its clock."""
    simulate_step(workdir, customers=customers, seed=seed, pseudonymizer=PSEUDONYMIZER)
    ingest_step(workdir, PSEUDONYMIZER)
    materialize_step(workdir, max_len=TINY_MAX_LEN, as_of=world_clock(workdir))
    return workdir


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Workdir:
    """A 200-customer world, ingested, with its feature repo applied and the online store materialized."""
    return make_world(Workdir.at(tmp_path_factory.mktemp("world") / "workdir"))


@pytest.fixture(scope="session")
def trained_world(tiny_world) -> Workdir:
    """The tiny world with a model pretrained and fine-tuned by the Ray jobs (tiny.yaml), trained once."""
    from lam_platform.orchestration.pipeline import finetune_step, pretrain_step

    pretrain_step(tiny_world, TINY_JOB, world_clock(tiny_world))
    finetune_step(tiny_world, TINY_JOB, as_of=world_clock(tiny_world))
    return tiny_world


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
