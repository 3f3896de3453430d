"""Fine-tune a head on a pretrained backbone with Ray Train: the campaign-response head on the campaign
log, or (`--target NAME`) the head of an event-derived target declared in lam.yaml.

Run:  python -m lam_platform.ray_jobs.finetune --config demo --workdir ./lam-demo [--target NAME]
      [--as-of T] [--artifact PATH]
Reads lam.yaml, the campaign log (contacts whose outcome is known at the as-of time) or the event table
(target labels mature at the as-of time), profiles point-in-time from Feast and the event table (one
customer shard at a time, lam_platform.campaigns.training_events); adds heads/<head>.pt to the latest
pretrained artifact (or to a new version when the backbone is trained too, with base_version naming the
pretrained one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from lam_platform.campaigns.heads import TrainingSet, TrainingSetRequest, finetune_head
from lam_platform.campaigns.training_events import training_events_by_shard
from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import RepoSchema, open_store, schema_fingerprint
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version, next_version, split_state_dict
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import FitResult, fit_with_ray


def run(
    workdir: Workdir, job: JobConfig, as_of: pd.Timestamp, artifact_path: Path | None = None, target: str | None = None
) -> dict:
    """Build the point-in-time training set, fit the head with Ray, save it into the artifact."""
    with governance_lock(workdir.root, shared=True):  # an erasure waits for the training set, or goes first
        return _run(workdir, job, as_of, artifact_path, target)


def _run(workdir: Workdir, job: JobConfig, as_of: pd.Timestamp, artifact_path: Path | None, target: str | None) -> dict:
    platform = PlatformConfig.load(workdir.root)
    platform.check_actions(set(RepoSchema.load(workdir).actions))  # a target naming no event's action stops here
    # Default: the latest pretrained version (a version with a fine-tuned backbone points back to it).
    artifact = (
        ModelArtifact(artifact_path)
        if artifact_path
        else ModelArtifact(latest_version(workdir.artifacts)).with_head("next_action")
    )
    trained_until = pd.Timestamp(artifact.card["data_range"]["events_before"])
    if trained_until > as_of:  # the backbone saw events after the cut-off: every label window would leak
        raise UserError(
            f"{artifact.path.name} was pretrained on events before {trained_until.isoformat()}, after "
            f"--as-of {as_of.isoformat()}: pretrain as of that time first (`lam pretrain --as-of "
            f"{as_of.isoformat()}`) or pass --artifact"
        )
    store = open_store(workdir)
    artifact.check_schema(schema_fingerprint(store))
    profiles = read_profiles(workdir.profiles)
    eligible = consenting_customers(profiles, platform.consent_mode)  # as of now: a withdrawal removes history too
    head = finetune_head(target)
    progress.stage(f"building the {target or 'campaign'} training set (point in time)")
    with training_events_by_shard(workdir, as_of, eligible) as events:  # one customer shard at a time
        request = TrainingSetRequest(
            workdir,
            platform,
            store,
            events,
            eligible,
            as_of,
            artifact.tokenizer,
            artifact.path.name,
            job.cutoff_grid,
            target,
        )
        built = head.build(request)
    stage = job.finetune_stage
    fit = fit_with_ray(
        head.kind,
        built.data,
        artifact.config,
        stage,
        job,
        workdir.ray_results,
        built.run_name,
        backbone_weights=artifact.path / "backbone.pt",
    )
    return _save(workdir, artifact, head.kind, built, fit, as_of)


def _save(
    workdir: Workdir, artifact: ModelArtifact, kind: str, built: TrainingSet, fit: FitResult, as_of: pd.Timestamp
) -> dict:
    """Add the head to the artifact, or to a new version when its backbone was trained too."""
    parts = split_state_dict(fit.state_dict)
    original = torch.load(artifact.path / "backbone.pt", weights_only=True)
    if any(not torch.equal(original[k], parts["backbone"][k]) for k in original):
        # The backbone was trained too: the new head needs its own backbone, so save a new version
        # (heads trained on the old backbone stay with it).
        artifact = artifact.derive(next_version(workdir.artifacts), parts["backbone"])
    artifact.add_head(
        built.head,
        parts[kind],
        {
            **built.counts,
            "as_of": as_of.isoformat(),
            "metrics": fit.metrics,
            "compute": fit.compute,
            "history": fit.history,
        },
        kind=kind,
    )
    return {
        "artifact": str(artifact.path),
        "head": built.head,
        "as_of": as_of.isoformat(),
        **built.counts,
        "metrics": fit.metrics,
        "compute": fit.compute,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", required=True, help="job YAML: a file, or a shipped config name (demo, quality, tiny, gpu, ml1m)"
    )
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument(
        "--artifact", type=Path, help="artifact folder to fine-tune (default: the latest pretrained one)"
    )
    parser.add_argument(
        "--target", default=None, help="an event-derived target of lam.yaml (default: campaign response)"
    )
    parser.add_argument("--as-of", default=None, help="training cut-off, with zone (default: now)")
    args = parser.parse_args(argv)
    result = run(
        Workdir.at(args.workdir), JobConfig.load(args.config), parse_as_of(args.as_of), args.artifact, args.target
    )
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
