"""The driver side of training: start or join Ray, split off validation, run a TorchTrainer, read its result.

The function each worker runs is `lam_platform.ray_jobs.worker.train_func`.

Every training set carries `example_time_us` (when each example's input ends); the newest
`validation_fraction` of examples (default 0.1, by time) validate each epoch. Training stops early after
`early_stopping_patience` epochs without a better validation loss (default 2), and the artifact gets the
best epoch's weights (`keep_weights: best`, the default) or the last epoch's (`keep_weights: last`).
Metrics go to `<run folder>/metrics/version_N/metrics.csv` (Lightning's CSVLogger).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lam_platform.campaigns.training_shards import EXAMPLE_TIME
from lam_platform.core import progress
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.schedule import WarmupCosine
from lam_platform.ray_jobs.job_config import JobConfig, Scaling, TrainingStage
from lam_platform.ray_jobs.worker import PROGRESS_FILE, train_func

STARTUP_CONCURRENCY = 8  # worker processes a local raylet starts at once (its default: the core count)
DATA_CPUS = 1  # logical CPUs a local Ray keeps for Ray Data next to the training workers


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
    stage: TrainingStage,
    job: JobConfig,
    storage: Path,
    run_name: str,
    backbone_weights: Path | None = None,
    head_weights: Path | None = None,
) -> FitResult:
    """Train `head` (and the backbone unless frozen) on the shards in `data` with a Ray TorchTrainer.

    The run is named `run_name` plus a fingerprint of the training shards and the loop config under
    `storage`: the same training started again (after a crash) resumes from its latest checkpoint; a
    worker that dies mid-run is replaced and resumes too (`max_failures` of the stage, default 2).
    Different data (new outcomes, an erasure, a consent change) or settings make a new run, never a resumed
    finished one whose weights would come back unchanged. A local Ray this call started is shut down after
    it: the next training starts its actors on a fresh node, whose raylet has not yet counted (and warned
    about, at 4x the cores) the worker processes of the runs before.
    """
    import ray

    started_ray = ensure_ray(job.scaling.num_workers * job.scaling.cpus_per_worker)
    try:
        split = ValidationSplit.of(data, stage.validation_fraction, job.scaling.num_workers)
        loop_config = _loop_config(head, model, stage, job, split, backbone_weights, head_weights)
        run_name = f"{run_name}-{training_fingerprint(data, loop_config)}"
        loop_config.update(
            drill_marker=str(storage / run_name / "failure-drill.done"),
            run_folder=str(storage / run_name),
            data=str(Path(data).resolve()),
        )
        started = time.time()
        steps = planned_steps(stage, split, job.scaling)
        with progress.follow_training(storage / run_name / PROGRESS_FILE, run_name, steps, stage.epochs):
            result = _trainer(data, loop_config, stage, job.scaling, split, storage, run_name).fit()
        return _fit_result(result, run_name, storage, split, job.scaling, time.time() - started, stage.keep_weights)
    finally:
        if started_ray:
            ray.shutdown()


def _loop_config(
    head: str,
    model: LAMConfig,
    stage: TrainingStage,
    job: JobConfig,
    split: ValidationSplit,
    backbone_weights: Path | None,
    head_weights: Path | None,
) -> dict:
    """What every worker's `train_func` gets; all but the operational settings make the run's identity."""
    return (
        {
            "head": head,
            "model": model.to_dict(),
            "seed": job.seed,
            "epochs": stage.epochs,
            "batch_size": stage.batch_size,
            "learning_rate": stage.learning_rate,
            "backbone": stage.backbone_settings(),
            "backbone_weights": str(backbone_weights) if backbone_weights else None,
            "head_weights": str(head_weights) if head_weights else None,
            "use_gpu": job.scaling.use_gpu,
            "threads_per_worker": job.scaling.cpus_per_worker,
            "checkpoint_every_n_steps": stage.checkpoint_every_n_steps,
            "kill_worker_at_step": stage.kill_worker_at_step,
            "validation_cut_us": split.cut_us,
            "early_stopping_patience": stage.early_stopping_patience,
        }
        | _schedule(stage, planned_steps(stage, split, job.scaling))
        | _clipping(stage)
    )


def planned_steps(stage: TrainingStage, split: ValidationSplit, scaling: Scaling) -> int:
    """Optimizer steps of each worker over the whole run (Ray Data splits the rows about evenly)."""
    return stage.epochs * -(-(split.train_rows // scaling.num_workers) // stage.batch_size)


def _schedule(stage: TrainingStage, steps: int) -> dict:
    """The learning-rate schedule of a pretraining that asks for one, sized to its planned steps (the decay
    holds at its floor past the last of them); nothing for a constant rate, so that the identity of such a
    run is what it was before schedules existed."""
    if getattr(stage, "lr_schedule", "constant") == "constant":
        return {}
    return {"lr_schedule": WarmupCosine.for_run(steps, stage.warmup_fraction).to_dict()}


def _clipping(stage: TrainingStage) -> dict:
    """The gradient-norm clip of a stage that asks for one; nothing without, like `_schedule`."""
    return {} if stage.gradient_clip_norm is None else {"gradient_clip_norm": stage.gradient_clip_norm}


def _trainer(
    data: Path,
    loop_config: dict,
    stage: TrainingStage,
    scaling: Scaling,
    split: ValidationSplit,
    storage: Path,
    run_name: str,
):
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # Reads are I/O: they take no CPU slot, so 2 training workers on 2 CPUs leave none idle and none short.
    # One read at a time: reads without a CPU slot could otherwise each start a worker process at once.
    dataset = ray.data.read_parquet(str(data), num_cpus=0, concurrency=1)
    return TorchTrainer(
        train_func,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker={"CPU": scaling.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=stage.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": split.training_rows(dataset)},
    )


def _fit_result(
    result,
    run_name: str,
    storage: Path,
    split: ValidationSplit,
    scaling: Scaling,
    seconds: float,
    keep_weights: str = "best",
):
    """The best epoch's weights (the last epoch's without validation or with `keep_weights="last"`), metrics and
    compute of a finished run."""
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
    keep_best = keep_weights == "best" and best.get("weights") is not None
    if not keep_best:
        metrics["kept_epoch"] = metrics.get("epoch", 0.0)  # the last epoch's weights
    progress.say(_summary(run_name, metrics, seconds))
    hours = seconds / 3600
    return FitResult(
        state_dict=best["weights"] if keep_best else checkpoint["state_dict"],
        metrics=metrics,
        compute={
            "wall_hours": hours,
            "worker_hours": hours * scaling.num_workers,
            "gpu_hours": hours * scaling.num_workers if scaling.use_gpu else 0.0,
            "workers": scaling.num_workers,
        },
        history=checkpoint.get("callbacks", {}).get("TrainingHistory", {}).get("epochs", []),
    )


def _summary(run_name: str, metrics: dict, seconds: float) -> str:
    """The one line a training prints when it ends (the bar's last word, or all a log gets)."""
    parts = [f"{run_name}: {int(metrics.get('epoch', 0)) + 1} epochs in {seconds:.0f} s"]
    parts += [f"{k} {metrics[k]:.4f}" for k in ("train_loss", "val_loss") if k in metrics]
    if "best_epoch" in metrics:
        parts.append(f"best epoch {int(metrics['best_epoch']) + 1} (val_loss {metrics['best_val_loss']:.4f})")
        if "kept_epoch" in metrics:
            parts.append("kept the last epoch's weights")
    else:
        parts.append("no validation split (too few examples or distinct times)")
    return ", ".join(parts)
