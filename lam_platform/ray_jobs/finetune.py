"""Fine-tune a head on a pretrained backbone with Ray Train: the campaign-response head on the campaign
log, or (`--target NAME`) the head of an event-derived target declared in lam.yaml.

Run:  python -m lam_platform.ray_jobs.finetune --config demo --workdir ./lam-demo [--target NAME]
      [--as-of T] [--artifact PATH]
Reads lam.yaml, the campaign log (contacts whose outcome is known at the as-of time) or the event table
(target labels mature at the as-of time), profiles point-in-time from Feast and the event table; adds
heads/<head>.pt to the latest pretrained artifact (or to a new version when the backbone is trained too,
with base_version naming the pretrained one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from lam_platform.campaigns.training_data import build_finetune_set, build_target_set, training_events
from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.source_tables import campaign_outcomes, read_campaign_log
from lam_platform.data.targets import CutoffGrid
from lam_platform.features.store import RepoSchema, open_store, schema_fingerprint
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version, next_version, split_state_dict
from lam_platform.ray_jobs.training import JobConfig, fit_with_ray


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
    events = training_events(workdir, as_of, eligible)
    if target is not None:
        spec = platform.target(target)
        data = workdir.training / f"target-{target}"
        progress.stage(f"building the {target} training set")
        counts = build_target_set(
            store, events, eligible, as_of, spec, CutoffGrid.from_dict(job.target), artifact.tokenizer, data
        )
        kind, head, run_name = "target", target, f"target-{target}-{artifact.path.name}"
    else:
        if not workdir.campaign_log.exists():
            raise FileNotFoundError(
                f"no campaign log in {workdir.root}: declare `campaigns` in lam.yaml and run "
                "`lam ingest`, or fine-tune a target head with --target NAME"
            )
        log = campaign_outcomes(read_campaign_log(workdir), platform.campaigns, events, as_of)
        data = workdir.training / "finetune"
        progress.stage("building the campaign training set (point in time)")
        counts = build_finetune_set(store, events, log, artifact.tokenizer, data, eligible, platform.consent_mode)
        kind, head, run_name = "campaign_response", "campaign_response", f"finetune-{artifact.path.name}"
    fit = fit_with_ray(
        kind,
        data,
        artifact.config,
        job.finetune,
        job,
        workdir.ray_results,
        run_name,
        backbone_weights=artifact.path / "backbone.pt",
    )
    parts = split_state_dict(fit.state_dict)
    original = torch.load(artifact.path / "backbone.pt", weights_only=True)
    if any(not torch.equal(original[k], parts["backbone"][k]) for k in original):
        # The backbone was trained too: the new head needs its own backbone, so save a new version
        # (heads trained on the old backbone stay with it).
        artifact = artifact.derive(next_version(workdir.artifacts), parts["backbone"])
    artifact.add_head(
        head,
        parts[kind],
        {**counts, "as_of": as_of.isoformat(), "metrics": fit.metrics, "compute": fit.compute, "history": fit.history},
        kind=kind,
    )
    return {
        "artifact": str(artifact.path),
        "head": head,
        "as_of": as_of.isoformat(),
        **counts,
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
