"""Where fine-tune heads register: name -> the model-side kind and the training-set builder.

The model side (head module, Lightning system) registers in lam_platform/lightning_modules/heads.py;
the platform side is here: how a head's point-in-time training set is built from the workdir. A new
head is one module with its `FinetuneHead` plus one line in `FINETUNE_HEADS`. `lam finetune` picks
the campaign-response head, or with `--target NAME` the target head (one per event-derived target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from lam_platform.campaigns.training_events import TrainingEvents, build_finetune_set, build_target_set
from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import read_campaign_log
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.targets import CutoffGrid


@dataclass(frozen=True)
class TrainingSetRequest:
    """What a head's training set is built from: events of eligible customers before `as_of` (by customer
    shard), and more."""

    workdir: Workdir
    platform: PlatformConfig
    store: object  # feast.FeatureStore: profiles point in time
    events: TrainingEvents
    eligible: list[str]
    as_of: pd.Timestamp
    tokenizer: object  # lam_platform.lightning_modules.tokenizer.EventTokenizer of the backbone
    model_version: str
    grid: CutoffGrid
    target: str | None = None


@dataclass(frozen=True)
class TrainingSet:
    data: Path  # the Parquet shards
    counts: dict
    head: str  # the head's name in the artifact (heads/<head>.pt)
    run_name: str  # the Ray run's name (before its fingerprint)


class FinetuneHead(Protocol):
    kind: str  # the model-side kind: a key of lam_platform.lightning_modules.heads.HEAD_KINDS

    def build(self, request: TrainingSetRequest) -> TrainingSet: ...


class CampaignResponseHead:
    """P(order | called) and P(order | not called) per campaign, from the contacts known at as-of."""

    kind = "campaign_response"

    def build(self, request: TrainingSetRequest) -> TrainingSet:
        workdir, platform = request.workdir, request.platform
        if not workdir.campaign_log.exists():
            raise FileNotFoundError(
                f"no campaign log in {workdir.root}: declare `campaigns` in lam.yaml and run "
                "`lam ingest`, or fine-tune a target head with --target NAME"
            )
        data = workdir.training / "finetune"
        counts = build_finetune_set(
            request.store,
            request.events,
            read_campaign_log(workdir),
            platform.campaigns,
            request.as_of,
            request.tokenizer,
            data,
            request.eligible,
            platform.consent_mode,
        )
        return TrainingSet(data, counts, "campaign_response", f"finetune-{request.model_version}")


class TargetHead:
    """An event-derived target of lam.yaml (e.g. purchase_30d): labels on the cut-off grid, each mature."""

    kind = "target"

    def build(self, request: TrainingSetRequest) -> TrainingSet:
        name = request.target
        spec = request.platform.target(name)
        data = request.workdir.training / f"target-{name}"
        counts = build_target_set(
            request.store, request.events, request.eligible, request.as_of, spec, request.grid, request.tokenizer, data
        )
        return TrainingSet(data, counts, name, f"target-{name}-{request.model_version}")


FINETUNE_HEADS: dict[str, FinetuneHead] = {"campaign_response": CampaignResponseHead(), "target": TargetHead()}


def finetune_head(target: str | None) -> FinetuneHead:
    """The head `lam finetune` trains: a target's with --target, else the campaign-response head."""
    return FINETUNE_HEADS["target" if target is not None else "campaign_response"]
