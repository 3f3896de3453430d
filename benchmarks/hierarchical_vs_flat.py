"""Hierarchical vs flat backbone: training time per epoch when the history grows 8x, and next-action NDCG@10.

Run: python benchmarks/hierarchical_vs_flat.py [--customers 3000] [--short 32] [--epochs 3] [--repeats 1]

One process, 2 threads, plain Lightning (no Ray), on a simulated world. For each backbone (hierarchical,
flat) and history length (N = --short, and 8N), it pretrains the next-action system on the same sampled
target events (same count, same 16 loss positions each) and measures:
- seconds per training epoch (median over epochs and repeats);
- NDCG@10 / HR@10 of each customer's first held-out object, full ranking over all objects.
The goal (issue 5): hierarchical at 8N costs <= 2.5x its time at N, at equal or better NDCG@10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from torch.utils.data import DataLoader

from lam_platform.campaigns.training_data import build_pretrain_set, fit_tokenizer, training_events
from lam_platform.campaigns.training_shards import ShardDataset
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import read_events
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.evaluation import metrics
from lam_platform.evaluation.next_item import first_events_after, rank_next_objects
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.systems import NextActionSystem
from lam_platform.orchestration.demo import simulate_step, world_clock
from lam_platform.orchestration.pipeline import ingest_step


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def run_one(hierarchical: bool, max_len: int, tokenizer, events, all_events, targets, args, folder: Path) -> dict:
    tok = replace(tokenizer, max_len=max_len)
    data = folder / f"pretrain-{max_len}"
    if not data.exists():
        build_pretrain_set(events, tok, args.samples, 16, args.seed, data)
    config = LAMConfig.from_dict(
        {
            **tok.config_sizes(),
            "d_model": 64,
            "n_heads": 4,
            "n_layers": 2,
            "dropout": 0.1,
            "hierarchical": hierarchical,
            "recent_events": 16,
            "max_windows": 16,
        }
    )
    seconds, ndcg, hr = [], [], []
    for repeat in range(args.repeats):
        pl.seed_everything(args.seed + repeat, verbose=False)
        system = NextActionSystem(config, learning_rate=3e-3)
        timer = EpochTimer()
        trainer = pl.Trainer(
            max_epochs=args.epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        trainer.fit(system, DataLoader(ShardDataset(data), batch_size=128, shuffle=True))
        seconds += timer.seconds
        system.eval()
        ranks = rank_next_objects(system.backbone, system.next_action, tok, all_events, targets)
        found = metrics.ranking_metrics(ranks, (10,))
        ndcg.append(found["ndcg@10"])
        hr.append(found["hr@10"])
    return {
        "backbone": "hierarchical" if hierarchical else "flat",
        "history": max_len,
        "sec_per_epoch": statistics.median(seconds),
        "ndcg@10": statistics.median(ndcg),
        "hr@10": statistics.median(hr),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--short", type=int, default=32, help="history length N; the long run uses 8N")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--samples", type=int, default=6, help="target events sampled per customer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir",
        default=None,
        help="reuse a simulated, ingested world here, e.g. `lam demo`'s (default: a temp folder)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir.at(args.workdir or Path(tmp) / "world")
        if not workdir.events.exists():  # simulate (raw sources + lam.yaml) and ingest, as `lam demo` does
            pseudonymizer = Pseudonymizer.ephemeral()
            simulate_step(workdir, args.customers, args.seed, pseudonymizer)
            ingest_step(workdir, pseudonymizer)
        as_of = world_clock(workdir)
        platform = PlatformConfig.load(workdir.root)
        profiles = read_profiles(workdir.profiles)
        customers = consenting_customers(profiles, platform.consent_mode)
        events = training_events(workdir, as_of, customers)
        all_events = read_events(workdir.events)
        long = 8 * args.short
        tokenizer = fit_tokenizer(events, profiles, as_of, long, platform)
        targets = first_events_after(all_events, customers, as_of).assign(as_of=as_of)
        rows = []
        for h in (True, False):
            for n in (args.short, long):
                rows.append(run_one(h, n, tokenizer, events, all_events, targets, args, Path(tmp)))
                print(rows[-1], flush=True)  # partial results survive an interrupted run
    table = pd.DataFrame(rows)
    print(f"{args.customers} customers, {len(targets)} held-out targets, {args.epochs} epochs x {args.repeats} repeats")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for backbone, part in table.groupby("backbone", sort=False):
        short, longer = part.iloc[0], part.iloc[1]
        print(
            f"{backbone}: history x8 -> time per epoch x{longer.sec_per_epoch / short.sec_per_epoch:.2f}, "
            f"NDCG@10 {short['ndcg@10']:.4f} -> {longer['ndcg@10']:.4f}"
        )


if __name__ == "__main__":
    main()
