"""Ray Train checkpoints every N steps, the best epoch's weights, progress for the driver, the resume path,
and a worker-kill switch for failure drills.

Ray's own RayTrainReportCallback reports a checkpoint at the end of each epoch; StepCheckpoint adds one
every `every_n_steps` optimizer steps, so a killed worker loses at most N steps. On restart (a worker
failure under FailureConfig(max_failures > 0), or the same RunConfig(name, storage_path) started again)
`ray.train.get_checkpoint()` returns the latest one and Lightning resumes from it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl

CHECKPOINT_FILE = "checkpoint.ckpt"  # the name RayTrainReportCallback uses too


class StepCheckpoint(pl.Callback):
    """Save a Lightning checkpoint and report it to Ray Train every `every_n_steps` global steps."""

    def __init__(self, every_n_steps: int) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        import ray.train

        if trainer.global_step == 0 or trainer.global_step % self.every_n_steps:
            return
        folder = Path(tempfile.mkdtemp(prefix="lam-step-checkpoint-"))
        trainer.save_checkpoint(folder / CHECKPOINT_FILE, weights_only=False)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.update(epoch=trainer.current_epoch, step=trainer.global_step)
        # Every worker calls report (it is collective); only rank 0 uploads the checkpoint.
        rank0 = ray.train.get_context().get_world_rank() == 0
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if rank0 else None)
        trainer.strategy.barrier()
        shutil.rmtree(folder, ignore_errors=True)


class TrainingHistory(pl.Callback):
    """Each epoch's logged metrics (loss, accuracy, ...), kept in the checkpoints so a resumed run keeps them.

    List it before RayTrainReportCallback: the epoch-end checkpoint then already holds that epoch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.epochs.append({"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics})

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = list(state_dict["epochs"])


class BestWeights(pl.Callback):
    """The weights of the epoch with the lowest validation loss, kept in every checkpoint after it.

    Validation runs before `on_train_epoch_end`, so the epoch-end checkpoint RayTrainReportCallback reports
    already holds that epoch's verdict; the driver takes these weights instead of the last epoch's.
    """

    def __init__(self, monitor: str = "val_loss") -> None:
        super().__init__()
        self.monitor = monitor
        self.best: float | None = None
        self.epoch: int | None = None
        self.weights: dict | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        if self.best is None or float(value) < self.best:
            self.best, self.epoch = float(value), trainer.current_epoch
            self.weights = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def state_dict(self) -> dict:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.epoch, self.weights = state_dict["best"], state_dict["epoch"], state_dict["weights"]


class ProgressFile(pl.Callback):
    """Rank 0 writes {step, epoch, loss, val_loss} to `path` at most every `every_s` seconds and at each
    validation, for the driver's progress bar (`lam_platform.core.progress.follow_training`)."""

    def __init__(self, path: Path, every_s: float = 1.0) -> None:
        super().__init__()
        self.path, self.every_s = Path(path), every_s
        self.record: dict = {}
        self.written = 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.record.update(
            step=trainer.global_step, epoch=trainer.current_epoch, loss=float(loss) if loss is not None else None
        )
        if time.monotonic() - self.written >= self.every_s:
            self._write(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if not trainer.sanity_checking and value is not None:
            self.record["val_loss"] = float(value)
            self._write(trainer)

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.global_rank != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(self.path.name + ".staging")
        staging.write_text(json.dumps(self.record))
        os.replace(staging, self.path)  # the driver never reads half a record
        self.written = time.monotonic()


def resume_path() -> str | None:
    """A local copy of the latest reported checkpoint of this run, or None for a fresh start."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    local = Path(tempfile.mkdtemp(prefix="lam-resume-"))
    with checkpoint.as_directory() as folder:
        shutil.copy(Path(folder) / CHECKPOINT_FILE, local / CHECKPOINT_FILE)
    return str(local / CHECKPOINT_FILE)


def record_resume(checkpoint_file: str, log: Path) -> int:
    """Append "resumed from step N" to the run's resumes.log (rank 0 calls this); returns N."""
    import torch

    from lam_platform.lightning_modules.config import LAMConfig

    with torch.serialization.safe_globals([LAMConfig]):
        step = int(torch.load(checkpoint_file, map_location="cpu", weights_only=True)["global_step"])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"resumed from step {step}\n")
    return step


class KillWorkerOnce(pl.Callback):
    """Failure drill: SIGKILL the rank-0 worker process at `step`, once per run (a marker file remembers).

    Set `kill_worker_at_step` in a job's stage config to rehearse recovery; never set it in production.
    """

    def __init__(self, step: int, marker: Path) -> None:
        super().__init__()
        self.step = step
        self.marker = marker

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.global_rank == 0 and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text(f"killed at step {self.step}\n")
            os.kill(os.getpid(), signal.SIGKILL)
