"""Shared fixtures: one tiny simulated world, materialized into a SQLite Feast store, per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lam_platform.pipeline import materialize_step, simulate_step
from lam_platform.workdir import Workdir

TINY_CUSTOMERS = 200
TINY_MAX_LEN = 16
TINY_JOB = Path(__file__).resolve().parents[1] / "ray_jobs" / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Workdir:
    """A 200-customer world with its feature repo applied and the online store materialized."""
    workdir = Workdir.at(tmp_path_factory.mktemp("world"))
    simulate_step(workdir, customers=TINY_CUSTOMERS, seed=3)
    materialize_step(workdir, max_len=TINY_MAX_LEN)
    return workdir


@pytest.fixture(scope="session")
def trained_world(tiny_world) -> Workdir:
    """The tiny world with a model pretrained and fine-tuned by the Ray jobs (tiny.yaml), trained once."""
    from lam_platform.pipeline import finetune_step, pretrain_step

    pretrain_step(tiny_world, TINY_JOB)
    finetune_step(tiny_world, TINY_JOB)
    return tiny_world


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
