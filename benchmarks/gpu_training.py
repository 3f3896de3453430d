"""Pretraining step throughput on one CUDA GPU: float32, bf16-mixed, and bf16-mixed with the backbone
compiled (torch.compile).

Run (on a machine with a CUDA GPU, after `lam demo --workdir ./lam-demo`; without one it runs on the CPU):
    python benchmarks/gpu_training.py --workdir ./lam-demo [--config gpu] [--steps 60] [--warmup 15]

Each mode trains a fresh `NextActionSystem` (the pretraining LightningModule) with a plain Lightning
Trainer on the demo's pretraining set (the Parquet shards `lam demo` wrote, read once into GPU memory so
the input pipeline is not what is timed; `benchmarks/training_throughput.py --gpu` times the whole Ray
Train path). The model takes its width, depth, heads and sampled negatives from the job config (default
the shipped gpu.yaml), its vocabularies and sequence geometry from the demo's artifact (they must match
the shards). Timed: --steps optimizer steps after --warmup steps (compilation happens in the warm-up),
between CUDA synchronisations. Reported per mode: events/s (the real, unpadded input events of the
timed batches), ms per step, and achieved TFLOP/s and MFU from the FLOPs `torch.utils.flop_counter`
counts for one forward and backward (matrix products and attention; MFU against --peak-tflops, the
H200's dense bf16 peak by default, also for the float32 row).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from lam_platform.campaigns.training_shards import read_training_shards
from lam_platform.core.workdir import Workdir
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.systems import NextActionSystem
from lam_platform.ray_jobs.job_config import JobConfig

# The job config's model fields that set the network's size; the rest must match the shards.
SIZE_FIELDS = ("d_model", "n_heads", "n_layers", "dropout", "sampled_negatives")
MODES = {"fp32": ("32-true", False), "bf16": ("bf16-mixed", False), "bf16-compile": ("bf16-mixed", True)}


def sized(config: LAMConfig, job: JobConfig) -> LAMConfig:
    """The artifact's config with the job config's width, depth, heads and negatives."""
    return dataclasses.replace(config, **{k: v for k, v in job.model.items() if k in SIZE_FIELDS})


def device_batches(folder, batch_size: int, device: str) -> list[dict[str, torch.Tensor]]:
    """The whole training set as full batches already on `device` (a partial last batch is dropped)."""
    arrays = read_training_shards(folder)
    n = len(next(iter(arrays.values())))
    return [
        {k: torch.as_tensor(v[lo : lo + batch_size]).to(device) for k, v in arrays.items()}
        for lo in range(0, n - batch_size + 1, batch_size)
    ]


def step_flops(config: LAMConfig, batch: dict[str, torch.Tensor], device: str) -> int:
    """FLOPs of one training forward and backward, as torch's flop counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    system = NextActionSystem(config).to(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device, dtype=torch.bfloat16):
        system.training_step(batch, 0).backward()
    return counter.get_total_flops()


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Wall time of the steps after `warmup`, between CUDA synchronisations."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.started = self.seconds = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            synchronize()
            self.started = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        synchronize()
        self.seconds = time.perf_counter() - self.started


def run_mode(mode: str, config: LAMConfig, batches: list, steps: int, warmup: int, learning_rate: float) -> float:
    """Seconds for `steps` steps after `warmup` in one mode (a fresh, seeded system)."""
    precision, compiled = MODES[mode]
    pl.seed_everything(7, verbose=False)
    system = NextActionSystem(config, learning_rate=learning_rate)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if torch.cuda.is_available() else "cpu",
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    feed = list(itertools.islice(itertools.cycle(batches), warmup + steps))
    if compiled:  # the backbone's forward; the loss and Lightning's logging stay eager (dynamo cannot trace self.log)
        system.backbone.compile()
    trainer.fit(system, DataLoader(feed, batch_size=None))
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo")
    parser.add_argument("--config", default="gpu", help="job YAML whose model size to train (default gpu)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H200 SXM: 989)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workdir = Workdir.at(args.workdir)
    job = JobConfig.load(args.config)
    config = sized(ModelArtifact(latest_version(workdir.artifacts)).with_head("next_action").config, job)
    batches = device_batches(workdir.training / "pretrain", job.pretrain.batch_size, device)
    timed = itertools.islice(itertools.cycle(batches), args.warmup, args.warmup + args.steps)
    events = sum(int(b["mask"].sum()) for b in timed)
    flops = step_flops(config, batches[0], device)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"{name}; model {', '.join(f'{k}={getattr(config, k)}' for k in SIZE_FIELDS)}, "
        f"max_len={config.max_len}, hierarchical={config.hierarchical}; batch {job.pretrain.batch_size}; "
        f"{flops / 1e9:.1f} GFLOP per step; {args.steps} timed steps after {args.warmup}",
        flush=True,
    )
    for mode in args.modes:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = run_mode(mode, config, batches, args.steps, args.warmup, job.pretrain.learning_rate)
        tflops = flops * args.steps / seconds / 1e12
        row = {
            "mode": mode,
            "events_per_s": round(events / seconds),
            "ms_per_step": round(1000 * seconds / args.steps, 2),
            "tflops": round(tflops, 1),
            "mfu": round(tflops / args.peak_tflops, 4),
        }
        if device == "cuda":
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
