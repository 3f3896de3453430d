"""A training job's YAML, typed: model hyperparameters, per-stage settings, scaling, the target grid.

Every section is checked when the file is loaded, before any data is read: an unknown key (a typo such
as `epoch:`), a missing required one or a value of the wrong type fails with the file and the key named.
Shipped configs: lam_platform/ray_jobs/configs/{demo,quality,tiny,gpu,ml1m}.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lam_platform.core.errors import UserError, yaml_problem
from lam_platform.core.packaged import job_config_path
from lam_platform.data.targets import CutoffGrid
from lam_platform.lightning_modules.config import LAMConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingStage(_Section):
    """One training run: the loop, its validation split and early stopping, its fault tolerance."""

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    checkpoint_every_n_steps: int = Field(50, ge=1)  # a killed worker loses at most this many steps
    max_failures: int = Field(2, ge=0)  # worker failures a run survives (it resumes from its last checkpoint)
    validation_fraction: float = Field(0.1, ge=0, lt=1)  # the newest examples by time validate (0: none)
    early_stopping_patience: int = Field(2, ge=0)  # epochs without a better val_loss before stopping (0: never)
    # The weights the artifact gets: "best" the lowest val_loss epoch's, "last" the last epoch's (validation then
    # only reports). A few hundred validation rows with a few dozen positives make the best epoch a coin toss.
    keep_weights: Literal["best", "last"] = "best"
    # The global gradient norm each optimizer step is clipped to (Lightning's gradient_clip_val, by norm);
    # None: no clipping.
    gradient_clip_norm: float | None = Field(None, gt=0)
    kill_worker_at_step: int | None = Field(None, ge=1)  # the fault-tolerance drill kills a worker here, once
    # Fine-tuning only. 0: the backbone stays frozen (shared by every head); k: its last k blocks; "all".
    trainable_blocks: int | Literal["all"] = 0
    unfreeze_at_epoch: int = Field(0, ge=0)
    backbone_lr_factor: float = Field(0.1, gt=0)

    def backbone_settings(self) -> dict:
        return {
            "trainable_blocks": self.trainable_blocks,
            "unfreeze_at_epoch": self.unfreeze_at_epoch,
            "backbone_lr_factor": self.backbone_lr_factor,
        }


class PretrainStage(TrainingStage):
    """Pretraining adds how next-action examples are drawn from each customer's history."""

    samples_per_customer: int = Field(8, ge=1)
    # random: targets anywhere in the history; latest: each customer's newest events first.
    target_sampling: Literal["random", "latest"] = "random"
    # constant: the learning rate throughout; warmup_cosine: a linear warm-up over warmup_fraction of the
    # run's steps, then a cosine decay to a tenth of it (lam_platform/lightning_modules/schedule.py).
    lr_schedule: Literal["constant", "warmup_cosine"] = "constant"
    warmup_fraction: float = Field(0.05, ge=0, le=1)
    # Clipped by default: without it, one demo world's pretraining (seed 3, 2026-12-04) ended in weights
    # that ranked next events below popularity (val_loss 5.74, object accuracy 0.15); clipped at 1.0 the same
    # run reached 5.35 and 0.27. `gradient_clip_norm: null` turns it off.
    gradient_clip_norm: float | None = Field(1.0, gt=0)


class Scaling(_Section):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: int = Field(1, ge=1)


class JobConfig(_Section):
    """A job's YAML (see configs/demo.yaml). `model` holds LAMConfig fields; vocabulary sizes come from
    the tokenizer. `update` (closed-loop head updates) defaults to the fine-tune settings."""

    model: dict = Field(default_factory=dict)
    pretrain: PretrainStage
    finetune: TrainingStage | None = None
    update: TrainingStage | None = None
    target: dict | None = None  # the cut-off grid of target heads: snapshots, every (lam_platform.data.targets)
    scaling: Scaling = Field(default_factory=Scaling)
    seed: int = 7

    @field_validator("model")
    @classmethod
    def _model_fields(cls, model: dict) -> dict:
        LAMConfig.from_dict(model)  # unknown fields and inconsistent sizes fail here, not after the data
        return model

    @field_validator("target")
    @classmethod
    def _target_grid(cls, target: dict | None) -> dict | None:
        CutoffGrid.from_dict(target)
        return target

    @property
    def finetune_stage(self) -> TrainingStage:
        if self.finetune is None:
            raise UserError("this job config has no `finetune:` section", "add one (see configs/demo.yaml)")
        return self.finetune

    @property
    def update_stage(self) -> TrainingStage:
        return self.update or self.finetune_stage

    @property
    def cutoff_grid(self) -> CutoffGrid:
        return CutoffGrid.from_dict(self.target)

    @classmethod
    def load(cls, name_or_path: str | Path) -> JobConfig:
        """A job YAML by path, or by the name of a shipped config (demo, quality, tiny, gpu, ml1m)."""
        path = job_config_path(name_or_path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise UserError(f"{path}: {yaml_problem(error)}", "fix the YAML syntax") from error
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise UserError(f"{path}: {problems}", "see lam_platform/ray_jobs/configs/demo.yaml") from error
