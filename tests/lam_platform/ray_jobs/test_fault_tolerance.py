"""Ray Train runs survive a killed worker and resume when started again under the same name.

Runs real Ray Train jobs (2 CPU workers, Ray Data shards of a tiny pretraining set): one uninterrupted,
one whose rank-0 worker is SIGKILLed mid-run (recovered by FailureConfig), one that fails for good and
is then started again with the same name (it resumes from its last checkpoint, not from step 0).
"""

from pathlib import Path

import pandas as pd
import pytest

from lam_platform.campaigns.training_data import build_pretrain_set, fit_tokenizer, training_events
from lam_platform.core.packaged import job_config_path
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.governance.consent import consenting_customers
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import fit_with_ray
from lam_platform.simulation.world import load_world_config

TINY = job_config_path("tiny")
# Final training loss of a recovered run vs an uninterrupted one: they differ only in the data order
# of the epoch that was cut (a resumed epoch starts its stream again), so they agree loosely, not exactly.
LOSS_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def pretrain_shards(tiny_world, tmp_path_factory) -> tuple[Path, LAMConfig, JobConfig]:
    job = JobConfig.load(TINY)
    world = load_world_config(tiny_world)
    profiles = pd.read_parquet(tiny_world.profiles)
    events = training_events(tiny_world, world.scoring_time, consenting_customers(profiles))
    tokenizer = fit_tokenizer(
        events, profiles, world.scoring_time, job.model["max_len"], PlatformConfig.load(tiny_world.root)
    )
    config = LAMConfig.from_dict({**job.model, **tokenizer.config_sizes()})
    data = tmp_path_factory.mktemp("shards") / "pretrain"
    build_pretrain_set(events, tokenizer, 4, config.recent_events, job.seed, data)
    return data, config, job


def _run_folder(storage: Path, name: str) -> Path:
    """The run's folder: its name plus the fingerprint of its data and settings."""
    [folder] = storage.glob(f"{name}-*")
    return folder


def _resumed_steps(run: Path) -> list[int]:
    """Steps a run resumed from (one per restart), from its resumes.log; a fresh start resumes from none."""
    log = run / "resumes.log"
    return [int(line.rsplit(" ", 1)[1]) for line in log.read_text().splitlines()] if log.exists() else []


def _fit(shards, storage: Path, name: str, **stage_overrides):
    data, config, job = shards
    stage = job.pretrain.model_copy(update={"epochs": 3, "checkpoint_every_n_steps": 2, **stage_overrides})
    return fit_with_ray("next_action", data, config, stage, job, storage, name)


@pytest.mark.e2e
@pytest.mark.drill
def test_killed_worker_resumes_from_its_last_checkpoint_and_finishes(pretrain_shards, tmp_path):
    clean = _fit(pretrain_shards, tmp_path, "clean")
    drilled = _fit(pretrain_shards, tmp_path, "drilled", kill_worker_at_step=5, max_failures=1)
    assert (_run_folder(tmp_path, "drilled") / "failure-drill.done").exists()  # the worker really was killed
    resumed = _resumed_steps(_run_folder(tmp_path, "drilled"))  # every 2 steps a checkpoint; killed at step 5
    assert resumed and all(0 < s <= 5 and s % 2 == 0 for s in resumed)
    assert drilled.metrics["epoch"] == clean.metrics["epoch"] == 2
    assert (
        abs(drilled.metrics["train_loss"] - clean.metrics["train_loss"]) <= LOSS_TOLERANCE * clean.metrics["train_loss"]
    )


@pytest.mark.e2e
@pytest.mark.drill
def test_a_stopped_run_started_again_with_the_same_name_resumes(pretrain_shards, tmp_path):
    with pytest.raises(Exception, match="(?i)fail|died|error"):
        _fit(pretrain_shards, tmp_path, "stopped", kill_worker_at_step=5, max_failures=0)
    assert not (_run_folder(tmp_path, "stopped") / "resumes.log").exists()
    again = _fit(pretrain_shards, tmp_path, "stopped")  # without the drill: the same run, resumed
    resumed = _resumed_steps(_run_folder(tmp_path, "stopped"))
    assert resumed and all(0 < s <= 5 and s % 2 == 0 for s in resumed)  # from a checkpoint, not step 0
    assert again.metrics["epoch"] == 2


def test_the_run_name_follows_the_training_data_and_settings_not_how_it_is_run(tmp_path):
    from lam_platform.ray_jobs.training import training_fingerprint

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.parquet").write_bytes(b"rows of 4 customers")
    settings = {"head": "campaign_response", "epochs": 3, "learning_rate": 0.001, "kill_worker_at_step": None}
    first = training_fingerprint(shards, settings)
    assert training_fingerprint(shards, {**settings, "kill_worker_at_step": 5, "use_gpu": True}) == first
    assert training_fingerprint(shards, {**settings, "epochs": 4}) != first
    (shards / "part-0.parquet").write_bytes(b"rows of 3 customers")  # one erased: another run, not a resume
    assert training_fingerprint(shards, settings) != first
