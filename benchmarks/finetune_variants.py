"""Campaign-head fine-tuning variants on kept simulator worlds, judged by each world's ground truth.

Run:  python benchmarks/policy_comparison.py --seeds 1 2 3 --keep /tmp/worlds      # worlds with a pretrained LAM
      python benchmarks/finetune_variants.py --worlds /tmp/worlds/seed1 /tmp/worlds/seed2 /tmp/worlds/seed3 \
          --blocks 1 all --seeds 0 1 2 [--config demo] [--keep every-row best last] [--patience 2]

A `lam demo` world takes about 5 minutes, most of it pretraining; a head takes about 15 s. This script reuses
each world's pretrained backbone (the artifact holding the next-action head) and fine-tunes the campaign head
in-process, with the same Lightning system and `BackboneFinetuning` callback the Ray job runs and the job
config's fine-tune settings (epochs, batch size, learning rates; `--blocks` replaces its trainable_blocks),
on the same point-in-time training set (`finetune_arrays`), once per (trainable blocks, kept weights, seed).
`--keep every-row` (the default) trains on every row without validation; `best` and `last` split as the Ray job
does (the newest `validation_fraction` by contact time validates, the batch is the job's per-worker batch times
its workers, early stopping with the stage's patience) and keep the lowest-val_loss epoch's weights (`BestWeights`,
the job's callback) or the last epoch's. Each head scores the
world's callable customers at its scoring time (read from the online store, as `lam score` does), the call
list is ranked by `rank_call_list`, and the list is judged by the simulator's ground truth:
- order_rate: the true P(order | called) of the top-K list (the policy table's figure);
- rho_uplift / rho_p_called: Spearman correlation of the predicted uplift / P(order | called) with the true
  ones over every (customer, campaign), a less noisy view than a top-150 list.
LightGBM's order rate is the `gbt_aggregates` row of the world's `lam evaluate` result, when present.
Seeds of the head show how much of a difference between variants is noise: read the spread before the mean.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader

from lam_platform.campaigns.call_list import next_contact_time, rank_call_list
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.campaigns.training_data import finetune_arrays, training_events
from lam_platform.campaigns.training_shards import EXAMPLE_TIME, ArrayDataset
from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import campaign_outcomes, read_campaign_log
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import online_features, open_store
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, versions_with_head
from lam_platform.lightning_modules.systems import BackboneFinetuning, CampaignResponseSystem
from lam_platform.ray_jobs.checkpoints import BestWeights
from lam_platform.ray_jobs.job_config import JobConfig, TrainingStage
from lam_platform.simulation.evaluation import callable_customers
from lam_platform.simulation.world import load_ground_truth, load_world_config


class KeptWorld:
    """One kept world: its pretrained artifact, campaign training set, callable customers and the truth."""

    def __init__(self, root: Path) -> None:
        self.workdir = Workdir.at(root)
        platform = PlatformConfig.load(self.workdir.root)
        world = load_world_config(self.workdir)
        self.as_of = world.scoring_time
        self.pretrained = ModelArtifact(versions_with_head(self.workdir.artifacts, "next_action")[0])
        store = open_store(self.workdir)
        profiles = read_profiles(self.workdir.profiles)
        eligible = consenting_customers(profiles, platform.consent_mode)
        events = training_events(self.workdir, self.as_of, eligible)
        log = campaign_outcomes(read_campaign_log(self.workdir), platform.campaigns, events, self.as_of)
        self.arrays, self.counts = finetune_arrays(
            store, events, log, self.pretrained.tokenizer, eligible, platform.consent_mode
        )
        self.rows = online_features(store, callable_customers(self.workdir, self.as_of))
        catalogue = platform.require_catalogue()
        self.campaigns = catalogue.campaigns
        self.contact_time = next_contact_time(self.as_of, catalogue.contact_slots[0])
        self.capacity = platform.call_list.calls_for(len(profiles.customer_id.unique()))
        # True P(order | called) and uplift of every (callable customer, campaign) at the scoring time.
        self.truth = (
            load_ground_truth(self.workdir)
            .campaign_grid(self.rows.customer_id.to_numpy(), self.as_of)
            .rename(columns={"p_contacted": "true_called", "uplift": "true_uplift"})
        )
        self.gbt_order_rate = self._gbt_order_rate()

    def _gbt_order_rate(self) -> float | None:
        path = self.workdir.outputs / "evaluation" / "evaluation.json"
        if not path.exists():
            return None
        policies = pd.DataFrame(json.loads(path.read_text())["policies"]).set_index("policy")
        return float(policies.order_rate["gbt_aggregates"])

    def judge(self, scores: pd.DataFrame) -> dict:
        chosen = rank_call_list(scores, self.capacity).merge(self.truth, on=["customer_id", "offer", "method"])
        every = scores.merge(self.truth, on=["customer_id", "offer", "method"])
        return {
            "order_rate": float(chosen.true_called.mean()),
            "rho_uplift": float(every.uplift.corr(every.true_uplift, "spearman")),
            "rho_p_called": float(every.p_order_if_called.corr(every.true_called, "spearman")),
        }


def fine_tune(
    world: KeptWorld, stage: TrainingStage, seed: int, keep: str = "every-row", workers: int = 1
) -> CampaignScorer:
    """The campaign head fine-tuned as the Ray job's workers do it (same system and callbacks), in-process.

    keep: "every-row" trains on every row; "best" / "last" hold out the newest `validation_fraction` as the job
    does, with `workers` times the per-worker batch (the job's data-parallel batch), and keep that epoch's weights.
    """
    pl.seed_everything(seed, workers=False, verbose=False)
    system = CampaignResponseSystem(world.pretrained.config, learning_rate=stage.learning_rate)
    system.backbone.load_state_dict(torch.load(world.pretrained.path / "backbone.pt", weights_only=True))
    train, validation, batch_size = world.arrays, None, stage.batch_size
    best = BestWeights()
    callbacks: list = [BackboneFinetuning(**stage.backbone_settings())]
    if keep != "every-row":
        order = np.argsort(world.arrays[EXAMPLE_TIME], kind="stable")
        cut = len(order) - int(len(order) * stage.validation_fraction)
        train, validation = ({k: v[rows] for k, v in world.arrays.items()} for rows in (order[:cut], order[cut:]))
        batch_size *= workers
        callbacks.append(best)
        if stage.early_stopping_patience:
            callbacks.append(
                EarlyStopping(
                    monitor="val_loss", patience=stage.early_stopping_patience, check_on_train_epoch_end=False
                )
            )
    trainer = pl.Trainer(
        max_epochs=stage.epochs,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(
        system,
        DataLoader(ArrayDataset(train), batch_size=batch_size, shuffle=True),
        DataLoader(ArrayDataset(validation), batch_size=batch_size) if validation else None,
    )
    if keep == "best" and best.weights is not None:
        system.load_state_dict(best.weights)
    system.eval()
    # The pretrained version's tokenizer (the fine-tune's too), with this run's backbone and head.
    return CampaignScorer(world.pretrained, backbone=system.backbone, head=system.campaign_response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=Path, nargs="+", required=True, help="workdirs kept by policy_comparison")
    parser.add_argument("--blocks", nargs="+", default=["1", "all"], help="trainable_blocks values: 0, k or all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="demo", help="job YAML whose fine-tune settings to use (default demo)")
    parser.add_argument("--keep", nargs="+", default=["every-row"], choices=["every-row", "best", "last"])
    parser.add_argument("--patience", type=int, default=None, help="early_stopping_patience (default: the config's)")
    args = parser.parse_args()
    job = JobConfig.load(args.config)
    finetune = job.finetune_stage
    if args.patience is not None:
        finetune = finetune.model_copy(update={"early_stopping_patience": args.patience})
    torch.set_num_threads(2)
    results = []
    for root in args.worlds:
        world = KeptWorld(root)
        for blocks, keep, seed in itertools.product(args.blocks, args.keep, args.seeds):
            started = time.perf_counter()
            trainable = blocks if blocks == "all" else int(blocks)
            stage = finetune.model_copy(update={"trainable_blocks": trainable})
            scorer = fine_tune(world, stage, seed, keep, job.scaling.num_workers)
            judged = world.judge(scorer.score(world.rows, world.contact_time, world.campaigns))
            row = {"world": root.name, "blocks": blocks, "keep": keep, "seed": seed, **judged}
            row["gbt"] = world.gbt_order_rate
            row["seconds"] = round(time.perf_counter() - started, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(results)
    summary = table.groupby(["world", "blocks", "keep"]).agg(
        order_rate=("order_rate", "mean"),
        lowest=("order_rate", "min"),
        highest=("order_rate", "max"),
        rho_uplift=("rho_uplift", "mean"),
        rho_p_called=("rho_p_called", "mean"),
        gbt=("gbt", "first"),
    )
    print(f"\nmeans over head seeds {args.seeds} (lowest and highest order rate of a single head):")
    print(summary.round(3).to_string())
    for (blocks, keep), part in summary.groupby(level=["blocks", "keep"]):
        ratios = (part.order_rate / part.gbt).dropna()
        if len(ratios):
            print(
                f"blocks={blocks} keep={keep}: mean order rate {part.order_rate.mean():.3f}, median over worlds of "
                f"mean order rate / LightGBM: {statistics.median(ratios):.2f}x"
            )


if __name__ == "__main__":
    main()
