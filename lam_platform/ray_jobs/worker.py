"""The training function every Ray Train worker runs: build the system, stream its shard, fit, report.

Ray touches the Lightning loop in exactly four places, as in Ray Train's Lightning guide:
RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback and prepare_trainer. Everything
else is a plain Lightning Trainer around a LightningModule that also runs without Ray.
`lam_platform.ray_jobs.training.fit_with_ray` launches it with the loop config built there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lam_platform.campaigns.training_shards import batches_of, read_training_shards
from lam_platform.lightning_modules.config import LAMConfig

PROGRESS_FILE = "progress.json"


def train_func(config: dict) -> None:
    """Runs on every Ray Train worker (`config`: the loop config of `training._loop_config`)."""
    import lightning.pytorch as pl
    import ray.train

    from lam_platform.lightning_modules.heads import head_kind
    from lam_platform.ray_jobs.checkpoints import record_resume, resume_path

    torch.set_num_threads(config["threads_per_worker"])  # 2 workers on 2 cores: no oversubscription
    pl.seed_everything(config["seed"], workers=True, verbose=False)
    kind = head_kind(config["head"])
    # Only pretraining has a schedule (fine-tuning keeps a constant rate: _FineTuneSystem.configure_optimizers).
    options = {"schedule": config["lr_schedule"]} if config.get("lr_schedule") else {}
    system = kind.system(LAMConfig.from_dict(config["model"]), learning_rate=config["learning_rate"], **options)
    callbacks = _callbacks(config)
    if config.get("backbone_weights"):
        from lam_platform.lightning_modules.systems import BackboneFinetuning

        system.backbone.load_state_dict(torch.load(config["backbone_weights"], weights_only=True))
        callbacks.append(BackboneFinetuning(**config["backbone"]))
    if config.get("head_weights"):  # continue from a trained head (closed-loop updates)
        getattr(system, kind.attribute).load_state_dict(torch.load(config["head_weights"], weights_only=True))
    trainer = _trainer(config, callbacks)
    # This worker's shard of the Parquet training set, streamed by Ray Data (never loaded whole).
    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_torch_batches(
        batch_size=config["batch_size"],
        local_shuffle_buffer_size=config["batch_size"] * 8,
        local_shuffle_seed=config["seed"],
    )
    checkpoint = resume_path()
    if checkpoint and ray.train.get_context().get_world_rank() == 0:
        record_resume(checkpoint, Path(config["run_folder"]) / "resumes.log")
    # Resuming loads the checkpoint with weights_only=True: allow the one class it holds besides tensors.
    with torch.serialization.safe_globals([LAMConfig]):
        trainer.fit(system, train_dataloaders=batches, val_dataloaders=_validation(config), ckpt_path=checkpoint)


def _callbacks(config: dict) -> list:
    from lightning.pytorch.callbacks import EarlyStopping
    from ray.train.lightning import RayTrainReportCallback

    from lam_platform.ray_jobs.checkpoints import (
        BestWeights,
        KillWorkerOnce,
        ProgressFile,
        StepCheckpoint,
        TrainingHistory,
    )

    # Order matters: history and the best weights are updated before the epoch-end checkpoint is reported.
    callbacks: list = [
        TrainingHistory(),
        BestWeights(),
        RayTrainReportCallback(),
        StepCheckpoint(config["checkpoint_every_n_steps"]),
        ProgressFile(Path(config["run_folder"]) / PROGRESS_FILE),
    ]
    if config["validation_cut_us"] is not None and config["early_stopping_patience"]:
        callbacks.append(
            EarlyStopping(
                monitor="val_loss",
                mode="min",
                patience=config["early_stopping_patience"],
                check_on_train_epoch_end=False,
            )
        )
    if config.get("kill_worker_at_step"):
        callbacks.append(KillWorkerOnce(config["kill_worker_at_step"], Path(config["drill_marker"])))
    return callbacks


def _trainer(config: dict, callbacks: list):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    trainer = pl.Trainer(
        max_epochs=config["epochs"],
        accelerator="gpu" if config["use_gpu"] else "cpu",
        devices="auto",
        precision="bf16-mixed" if config["use_gpu"] else "32-true",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,  # workers' output does not reach a terminal; the driver draws the bar
        enable_model_summary=False,
        logger=CSVLogger(config["run_folder"], name="metrics"),
        num_sanity_val_steps=0,
        gradient_clip_val=config.get("gradient_clip_norm"),  # None: no clipping
        gradient_clip_algorithm="norm",
    )
    return prepare_trainer(trainer)


def _validation(config: dict):
    """The validation rows are few (the newest fraction): every worker reads them all and gets the same
    loss, which spares a second Ray Data pipeline per epoch. None when the run has no validation split."""
    if config["validation_cut_us"] is None:
        return None
    rows = read_training_shards(Path(config["data"]), since_us=config["validation_cut_us"])
    return batches_of(rows, config["batch_size"])
