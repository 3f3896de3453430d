"""The training function every Ray worker runs, and the driver call that launches it.

Ray touches the Lightning loop in exactly four places, as in Ray Train's Lightning guide:
RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback and prepare_trainer. Everything
else is a plain Lightning Trainer around a LightningModule that also runs without Ray.

Every training set carries `example_time_us` (when each example's input ends); the newest
`validation_fraction` of examples (default 0.1, by time) validate each epoch. Training stops early after
`early_stopping_patience` epochs without a better validation loss (default 2), and the artifact gets the
best epoch's weights. Metrics go to `<run folder>/metrics/version_N/metrics.csv` (Lightning's CSVLogger).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from lam_platform.campaigns.training_shards import EXAMPLE_TIME, batches_of, read_training_shards
from lam_platform.core import progress
from lam_platform.core.packaged import job_config_path
from lam_platform.lightning_modules.config import LAMConfig

SECTIONS = ("model", "pretrain", "finetune", "update", "target", "scaling", "seed")
STARTUP_CONCURRENCY = 8  # worker processes a local raylet starts at once (its default: the core count)
DATA_CPUS = 1  # logical CPUs a local Ray keeps for Ray Data next to the training workers


@dataclass
class JobConfig:
    """A job's YAML: model hyperparameters, per-stage settings and how to scale (see configs/demo.yaml)."""

    model: dict
    pretrain: dict
    finetune: dict
    scaling: dict = field(default_factory=lambda: {"num_workers": 2, "use_gpu": False, "cpus_per_worker": 1})
    seed: int = 7
    update: dict | None = None  # closed-loop head updates (`lam close-loop`); default: the finetune settings
    target: dict | None = None  # cut-off grid of target heads (snapshots, every); see lam_platform.data.targets

    def __post_init__(self) -> None:
        if self.update is None:
            self.update = dict(self.finetune)

    @classmethod
    def load(cls, name_or_path: str | Path) -> JobConfig:
        """A job YAML by path, or by the name of a shipped config (demo, quality, tiny, gpu, ml1m)."""
        path = job_config_path(name_or_path)
        values = yaml.safe_load(path.read_text()) or {}
        unknown = set(values) - set(SECTIONS)
        if unknown:
            raise ValueError(f"{path}: unknown sections {sorted(unknown)}; expected {list(SECTIONS)}")
        return cls(**values)


def train_func(config: dict) -> None:
    """Runs on every Ray Train worker: build the system, stream its data shard, fit with Lightning, report."""
    import lightning.pytorch as pl
    import ray.train
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.loggers import CSVLogger
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback, prepare_trainer

    from lam_platform.lightning_modules.heads import head_kind
    from lam_platform.lightning_modules.systems import BackboneFinetuning
    from lam_platform.ray_jobs.checkpoints import (
        BestWeights,
        KillWorkerOnce,
        ProgressFile,
        StepCheckpoint,
        TrainingHistory,
        record_resume,
        resume_path,
    )

    torch.set_num_threads(config["threads_per_worker"])  # 2 workers on 2 cores: no oversubscription
    pl.seed_everything(config["seed"], workers=True, verbose=False)
    kind = head_kind(config["head"])
    system = kind.system(LAMConfig.from_dict(config["model"]), learning_rate=config["learning_rate"])
    validating = config["validation_cut_us"] is not None
    # Order matters: history and the best weights are updated before the epoch-end checkpoint is reported.
    callbacks: list = [
        TrainingHistory(),
        BestWeights(),
        RayTrainReportCallback(),
        StepCheckpoint(config["checkpoint_every_n_steps"]),
        ProgressFile(Path(config["run_folder"]) / PROGRESS_FILE),
    ]
    if validating and config["early_stopping_patience"]:
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
    if config.get("backbone_weights"):
        system.backbone.load_state_dict(torch.load(config["backbone_weights"], weights_only=True))
        callbacks.append(BackboneFinetuning(**config["backbone"]))
    if config.get("head_weights"):  # continue from a trained head (closed-loop updates)
        getattr(system, kind.attribute).load_state_dict(torch.load(config["head_weights"], weights_only=True))
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
    )
    trainer = prepare_trainer(trainer)
    # This worker's shard of the Parquet training set, streamed by Ray Data (never loaded whole).
    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_torch_batches(
        batch_size=config["batch_size"],
        local_shuffle_buffer_size=config["batch_size"] * 8,
        local_shuffle_seed=config["seed"],
    )
    # The validation rows are few (the newest fraction): every worker reads them all and gets the same loss,
    # which spares a second Ray Data pipeline per epoch.
    validation = (
        batches_of(
            read_training_shards(Path(config["data"]), since_us=config["validation_cut_us"]), config["batch_size"]
        )
        if validating
        else None
    )
    checkpoint = resume_path()
    if checkpoint and ray.train.get_context().get_world_rank() == 0:
        record_resume(checkpoint, Path(config["run_folder"]) / "resumes.log")
    # Resuming loads the checkpoint with weights_only=True: allow the one class it holds besides tensors.
    with torch.serialization.safe_globals([LAMConfig]):
        trainer.fit(system, train_dataloaders=batches, val_dataloaders=validation, ckpt_path=checkpoint)


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]
    compute: dict[str, float]
    history: list[dict[str, float]]  # one entry per epoch: the metrics logged in it


def ensure_ray(num_cpus: int) -> bool:
    """Connect to the cluster in RAY_ADDRESS (e.g. under `ray job submit`), else start a local Ray; True when
    this call started a local one (its caller may shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return False
    else:
        # address="local": without it ray.init() joins whatever cluster the last `ray start` on this
        # machine recorded, and that cluster is not ours to size. One logical CPU more than the workers
        # take: Ray Data's file listing needs a CPU slot, and with every slot held by a training worker
        # the input pipeline would wait forever. It is light work.
        # Token auth stays on (Ray's default for a new local cluster); its notice about that default, and INFO
        # lines such as "Started a local Ray instance", say nothing a user of `lam` acts on.
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
            lambda record: "Token authentication is enabled" not in record.getMessage()
        )
        ray.init(
            address="local",
            num_cpus=max(os.cpu_count() or 1, num_cpus) + DATA_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            # One training starts about ten processes (controller, workers, their sync actor, Ray Data's
            # coordinator, stats and autoscaling actors, list and read tasks). The raylet lets as many
            # start at once as there are cores and calls 4x that a worker explosion, so on 2 cores
            # every run drew its warning. Starting is import-bound: allow 8 at once.
            _system_config={"worker_maximum_startup_concurrency": STARTUP_CONCURRENCY},
        )
        return True


PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class ValidationSplit:
    """The newest examples by time validate: those at or after `cut_us` (None: no validation)."""

    cut_us: int | None
    train_rows: int
    validation_rows: int

    @classmethod
    def of(cls, data: Path, fraction: float, workers: int) -> ValidationSplit:
        """The cut at the (1 - fraction) quantile of example times. No split when the set has no times, or
        either side would leave a worker without a row (DDP needs every worker to step and validate)."""
        import pyarrow.dataset as pads

        dataset = pads.dataset(str(data), format="parquet")
        if EXAMPLE_TIME not in dataset.schema.names:
            return cls(None, dataset.count_rows(), 0)
        times = dataset.to_table(columns=[EXAMPLE_TIME]).column(EXAMPLE_TIME).to_numpy()
        if fraction <= 0 or len(times) == 0:
            return cls(None, len(times), 0)
        cut = int(np.quantile(times, 1.0 - fraction, method="higher"))
        validation = int((times >= cut).sum())
        if validation < workers or len(times) - validation < workers:
            return cls(None, len(times), 0)
        return cls(cut, len(times) - validation, validation)

    def training_rows(self, dataset):
        """The Ray Dataset the workers train on: the examples before the cut (all when there is none)."""
        if self.cut_us is None:
            return dataset
        from ray.data.expressions import col

        return dataset.filter(expr=col(EXAMPLE_TIME) < self.cut_us)


OPERATIONAL_SETTINGS = ("kill_worker_at_step", "checkpoint_every_n_steps", "use_gpu", "threads_per_worker")


def training_fingerprint(data: Path, loop_config: dict) -> str:
    """A short hash of the shard files' bytes and the training settings (not how it is run: a restart
    without the failure drill, or on other hardware, is the same run): the identity of one training."""
    settings = {k: v for k, v in loop_config.items() if k not in OPERATIONAL_SETTINGS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(Path(data).rglob("*.parquet")):
        digest.update(str(path.relative_to(data)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def fit_with_ray(
    head: str,
    data: Path,
    model: LAMConfig,
    stage: dict,
    job: JobConfig,
    storage: Path,
    run_name: str,
    backbone_weights: Path | None = None,
    head_weights: Path | None = None,
) -> FitResult:
    """Train `head` (and the backbone unless frozen) on the shards in `data` with a Ray TorchTrainer.

    The run is named `run_name` plus a fingerprint of the training shards and the loop config under
    `storage`: the same training started again (after a crash) resumes from its latest checkpoint; a
    worker that dies mid-run is replaced and resumes too (`max_failures` in the stage config, default 2).
    Different data (new outcomes, an erasure, a consent change) or settings make a new run, never a resumed
    finished one whose weights would come back unchanged. A local Ray this call started is shut down after
    it: the next training starts its actors on a fresh node, whose raylet has not yet counted (and warned
    about, at 4x the cores) the worker processes of the runs before.
    """
    import ray

    started_ray = ensure_ray(job.scaling["num_workers"] * job.scaling.get("cpus_per_worker", 1))
    try:
        return _fit(head, data, model, stage, job, storage, run_name, backbone_weights, head_weights)
    finally:
        if started_ray:
            ray.shutdown()


def _fit(
    head: str,
    data: Path,
    model: LAMConfig,
    stage: dict,
    job: JobConfig,
    storage: Path,
    run_name: str,
    backbone_weights: Path | None,
    head_weights: Path | None,
) -> FitResult:
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    scaling = job.scaling
    workers = scaling["num_workers"]
    split = ValidationSplit.of(data, float(stage.get("validation_fraction", 0.1)), workers)
    loop_config = {
        "head": head,
        "model": model.to_dict(),
        "seed": job.seed,
        "epochs": stage["epochs"],
        "batch_size": stage["batch_size"],
        "learning_rate": stage["learning_rate"],
        "backbone": {
            k: stage[k] for k in ("trainable_blocks", "unfreeze_at_epoch", "backbone_lr_factor") if k in stage
        },
        "backbone_weights": str(backbone_weights) if backbone_weights else None,
        "head_weights": str(head_weights) if head_weights else None,
        "use_gpu": bool(scaling.get("use_gpu")),
        "threads_per_worker": int(scaling.get("cpus_per_worker", 1)),
        "checkpoint_every_n_steps": int(stage.get("checkpoint_every_n_steps", 50)),
        "kill_worker_at_step": stage.get("kill_worker_at_step"),
        "validation_cut_us": split.cut_us,
        "early_stopping_patience": int(stage.get("early_stopping_patience", 2)),
    }
    run_name = f"{run_name}-{training_fingerprint(data, loop_config)}"
    loop_config.update(
        drill_marker=str(storage / run_name / "failure-drill.done"),
        run_folder=str(storage / run_name),
        data=str(Path(data).resolve()),
    )
    # Reads are I/O: they take no CPU slot, so 2 training workers on 2 CPUs leave none idle and none short.
    # One read at a time: reads without a CPU slot could otherwise each start a worker process at once.
    dataset = ray.data.read_parquet(str(data), num_cpus=0, concurrency=1)
    trainer = TorchTrainer(
        train_func,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=scaling["num_workers"],
            use_gpu=bool(scaling.get("use_gpu")),
            resources_per_worker={"CPU": scaling.get("cpus_per_worker", 1)},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=int(stage.get("max_failures", 2))),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": split.training_rows(dataset)},
    )
    started = time.time()
    steps = stage["epochs"] * -(-(split.train_rows // workers) // stage["batch_size"])
    with progress.follow_training(storage / run_name / PROGRESS_FILE, run_name, steps, stage["epochs"]):
        result = trainer.fit()
    hours = (time.time() - started) / 3600
    if result.checkpoint is None:
        raise RuntimeError(f"Ray run {run_name} finished without a checkpoint; see {storage / run_name}")
    with result.checkpoint.as_directory() as folder:
        # Lightning checkpoints hold the LAMConfig hyperparameters: allow exactly that class, nothing else.
        with torch.serialization.safe_globals([LAMConfig]):
            checkpoint = torch.load(Path(folder) / "checkpoint.ckpt", map_location="cpu", weights_only=True)
    best = checkpoint.get("callbacks", {}).get("BestWeights") or {}
    metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    metrics.update(train_rows=split.train_rows, validation_rows=split.validation_rows)
    if best.get("weights") is not None:
        metrics.update(best_epoch=best["epoch"], best_val_loss=best["best"])
    progress.say(_summary(run_name, metrics, time.time() - started))
    return FitResult(
        state_dict=best["weights"] if best.get("weights") is not None else checkpoint["state_dict"],
        metrics=metrics,
        compute={
            "wall_hours": hours,
            "worker_hours": hours * workers,
            "gpu_hours": hours * workers if scaling.get("use_gpu") else 0.0,
            "workers": workers,
        },
        history=checkpoint.get("callbacks", {}).get("TrainingHistory", {}).get("epochs", []),
    )


def _summary(run_name: str, metrics: dict, seconds: float) -> str:
    """The one line a training prints when it ends (the bar's last word, or all a log gets)."""
    parts = [f"{run_name}: {int(metrics.get('epoch', 0)) + 1} epochs in {seconds:.0f} s"]
    parts += [f"{k} {metrics[k]:.4f}" for k in ("train_loss", "val_loss") if k in metrics]
    if "best_epoch" in metrics:
        parts.append(f"best epoch {int(metrics['best_epoch']) + 1} (val_loss {metrics['best_val_loss']:.4f})")
    else:
        parts.append("no validation split (too few examples or distinct times)")
    return ", ".join(parts)
