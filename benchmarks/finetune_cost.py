"""Compute of fine-tuning a head vs pretraining, on one world's data: FLOPs counted by PyTorch, and wall time.

Run (after `lam demo --workdir ./lam-demo`, which writes the training sets):
    python benchmarks/finetune_cost.py --workdir ./lam-demo [--config demo]

For pretraining and for each fine-tuning mode (frozen backbone, last block, whole backbone) it trains
in one process (2 threads, plain Lightning) with the config's epochs and batch size and reports:
- training FLOPs: torch.utils.flop_counter.FlopCounterMode over one forward+backward step, times the
  number of steps (matmuls and attention; elementwise ops are not counted, as is usual for MFU);
- wall seconds of trainer.fit.
The goal (issue 5): fine-tuning a head costs <= 15% of pretraining compute.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from lam_platform.campaigns.training_shards import ShardDataset
from lam_platform.core.packaged import job_config_path
from lam_platform.core.workdir import Workdir
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.lightning_modules.systems import BackboneFinetuning, CampaignResponseSystem, NextActionSystem
from lam_platform.ray_jobs.job_config import JobConfig, TrainingStage

DEFAULT_CONFIG = job_config_path("demo")


def step_flops(system: pl.LightningModule, batch: dict) -> int:
    """FLOPs of one training step (forward + backward) on `batch`, with the system's current trainable set."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss = system._common_step(batch, "train")
        loss.backward()
    system.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(system: pl.LightningModule, data: Path, stage: TrainingStage, callbacks: list) -> dict:
    dataset = ShardDataset(data)
    loader = DataLoader(dataset, batch_size=stage.batch_size, shuffle=True)
    system.log_dict = system.log = lambda *a, **k: None  # FLOP counting runs outside a Trainer
    for callback in callbacks:  # apply the freezing the Trainer would apply at epoch 0
        callback.freeze_before_training(system)
        if isinstance(callback, BackboneFinetuning) and callback.trainable_blocks != 0:
            modules = (
                [system.backbone]
                if callback.trainable_blocks == "all"
                else [*system.backbone.blocks[-callback.trainable_blocks :], system.backbone.ln_f]
            )
            for module in modules:
                for p in module.parameters():
                    p.requires_grad = True
    flops = step_flops(system, next(iter(loader)))
    for p in system.parameters():
        p.requires_grad = True
    del system.log_dict, system.log
    steps = math.ceil(len(dataset) / stage.batch_size) * stage.epochs
    trainer = pl.Trainer(
        max_epochs=stage.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    started = time.perf_counter()
    trainer.fit(system, loader)
    return {"examples": len(dataset), "steps": steps, "flops": flops * steps, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    args = parser.parse_args()
    torch.set_num_threads(2)
    workdir = Workdir.at(args.workdir)
    job = JobConfig.load(args.config)
    config = ModelArtifact(latest_version(workdir.artifacts)).config
    pl.seed_everything(job.seed, verbose=False)
    rows = {
        "pretrain": measure(
            NextActionSystem(config, learning_rate=job.pretrain.learning_rate),
            workdir.training / "pretrain",
            job.pretrain,
            [],
        )
    }
    for label, blocks in (("finetune, frozen backbone", 0), ("finetune, last block", 1), ("finetune, all", "all")):
        system = CampaignResponseSystem(config, learning_rate=job.finetune.learning_rate)
        rows[label] = measure(
            system, workdir.training / "finetune", job.finetune, [BackboneFinetuning(blocks, unfreeze_at_epoch=0)]
        )
    base = rows["pretrain"]
    print(f"config {args.config.name}: pretrain {job.pretrain.epochs} epochs, finetune {job.finetune.epochs} epochs")
    print(f"{'stage':<28}{'examples':>9}{'steps':>7}{'GFLOP':>10}{'of pretrain':>13}{'seconds':>9}{'of pretrain':>13}")
    for label, row in rows.items():
        print(
            f"{label:<28}{row['examples']:>9}{row['steps']:>7}{row['flops'] / 1e9:>10.1f}"
            f"{row['flops'] / base['flops']:>12.1%} {row['seconds']:>8.1f}{row['seconds'] / base['seconds']:>12.1%}"
        )


if __name__ == "__main__":
    main()
