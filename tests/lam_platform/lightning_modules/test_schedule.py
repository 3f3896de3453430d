"""The pretraining learning-rate schedule: its shape, a Trainer stepping it, and the Ray loop config sizing it."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from lam_platform.lightning_modules.schedule import FLOOR, WarmupCosine
from lam_platform.lightning_modules.systems import NextActionSystem
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import ValidationSplit, _loop_config, planned_steps
from tests.lam_platform.lightning_modules.test_model import _config, _pretrain_batch, _sequences, _tokenizer


def test_warmup_rises_linearly_then_the_cosine_decays_to_the_floor_and_holds():
    schedule = WarmupCosine(warmup_steps=4, total_steps=20)
    factors = [schedule.factor(step) for step in range(30)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))  # never rises after the warm-up
    assert math.isclose(factors[12], FLOOR + (1 - FLOOR) / 2)  # halfway through the decay
    assert factors[20] == factors[29] == pytest.approx(FLOOR)
    assert WarmupCosine.for_run(200, 0.05) == WarmupCosine(10, 200)
    assert WarmupCosine.for_run(10, 0.0).factor(0) == 1.0  # no warm-up: the peak at once
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(warmup_steps=5, total_steps=4)


def test_a_trainer_steps_the_schedule_once_per_optimizer_step():
    sequences = _sequences(n_customers=16)
    tokenizer = _tokenizer(sequences)
    batch = _pretrain_batch(tokenizer, sequences, recent=8)
    schedule = WarmupCosine(warmup_steps=2, total_steps=8)
    system = NextActionSystem(_config(tokenizer), learning_rate=1e-2, schedule=schedule.to_dict())
    trainer = pl.Trainer(
        max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(system, DataLoader([batch] * 5, batch_size=None))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-2 * schedule.factor(5))
    assert isinstance(NextActionSystem(_config(tokenizer)).configure_optimizers(), torch.optim.AdamW)


def test_the_loop_config_sizes_the_schedule_to_each_workers_steps_and_a_constant_rate_adds_nothing():
    stage = {"epochs": 3, "batch_size": 10, "learning_rate": 0.003}
    job = JobConfig.model_validate({"pretrain": {**stage, "lr_schedule": "warmup_cosine", "warmup_fraction": 0.1}})
    split = ValidationSplit(cut_us=None, train_rows=95, validation_rows=0)
    assert planned_steps(job.pretrain, split, job.scaling) == 3 * 5  # 47 rows a worker: 5 batches an epoch
    config = _loop_config("next_action", _config(_tokenizer(_sequences())), job.pretrain, job, split, None, None)
    assert config["lr_schedule"] == {"warmup_steps": 2, "total_steps": 15, "floor": FLOOR}
    constant = JobConfig.model_validate({"pretrain": stage})
    assert "lr_schedule" not in _loop_config(
        "next_action", _config(_tokenizer(_sequences())), constant.pretrain, constant, split, None, None
    )


def test_pretraining_clips_the_gradient_norm_by_default_and_a_stage_can_turn_it_off():
    stage = {"epochs": 1, "batch_size": 10, "learning_rate": 0.003}
    split = ValidationSplit(cut_us=None, train_rows=40, validation_rows=0)
    model = _config(_tokenizer(_sequences()))

    def loop(pretrain: dict, finetune: dict | None = None) -> tuple[dict, dict | None]:
        job = JobConfig.model_validate({"pretrain": pretrain, **({"finetune": finetune} if finetune else {})})
        configs = _loop_config("next_action", model, job.pretrain, job, split, None, None)
        tuned = _loop_config("campaign_response", model, job.finetune, job, split, None, None) if finetune else None
        return configs, tuned

    pretrain, finetune = loop(stage, stage)
    assert pretrain["gradient_clip_norm"] == 1.0
    assert "gradient_clip_norm" not in finetune  # fine-tuning clips only when its section asks
    pretrain, finetune = loop({**stage, "gradient_clip_norm": None}, {**stage, "gradient_clip_norm": 0.5})
    assert "gradient_clip_norm" not in pretrain and finetune["gradient_clip_norm"] == 0.5
    with pytest.raises(ValueError, match="gradient_clip_norm"):
        JobConfig.model_validate({"pretrain": {**stage, "gradient_clip_norm": 0}})
