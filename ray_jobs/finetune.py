"""Fine-tune the campaign-response head on the campaign log with Ray Train, on a pretrained backbone.

Run:  python -m ray_jobs.finetune --config ray_jobs/configs/demo.yaml --workdir ./lam-demo [--artifact PATH]
Reads the campaign log (training period), profiles point-in-time from Feast and the event table;
adds heads/campaign_response.pt to the latest pretrained artifact (or to a new version when the backbone
is trained too, with base_version naming the pretrained one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from lam_platform.features import open_store, schema_fingerprint
from lam_platform.simulator import load_world_config
from lam_platform.training_data import build_finetune_set, consenting_customers, training_events
from lam_platform.workdir import Workdir
from lam_platform.consent import read_profiles
from lightning_modules.artifact import ModelArtifact, latest_version, next_version, split_state_dict
from ray_jobs.training import JobConfig, fit_with_ray


def run(workdir: Workdir, job: JobConfig, artifact_path: Path | None = None) -> dict:
    """Build the point-in-time campaign set, fit the head with Ray, save it into the artifact."""
    world = load_world_config(workdir)
    until = world.scoring_time
    # Default: the latest pretrained version (a version with a fine-tuned backbone points back to it).
    artifact = ModelArtifact(artifact_path) if artifact_path else \
        ModelArtifact(latest_version(workdir.artifacts)).with_head("next_action")
    store = open_store(workdir)
    artifact.check_schema(schema_fingerprint(store))
    campaign_log = pd.read_parquet(workdir.campaign_log)
    campaign_log = campaign_log[campaign_log.event_timestamp < until]
    profiles = read_profiles(workdir.profiles)
    eligible = consenting_customers(profiles)  # as of now: a withdrawal removes the customer's history too
    events = training_events(workdir, until, eligible)
    data = workdir.training / "finetune"
    counts = build_finetune_set(store, events, campaign_log, artifact.tokenizer, data, eligible)
    fit = fit_with_ray("campaign_response", data, artifact.config, job.finetune, job, workdir.ray_results,
                       f"finetune-{artifact.path.name}", backbone_weights=artifact.path / "backbone.pt")
    parts = split_state_dict(fit.state_dict)
    original = torch.load(artifact.path / "backbone.pt", weights_only=True)
    if any(not torch.equal(original[k], parts["backbone"][k]) for k in original):
        # The backbone was trained too: the new head needs its own backbone, so save a new version
        # (heads trained on the old backbone stay with it).
        artifact = artifact.derive(next_version(workdir.artifacts), parts["backbone"])
    artifact.add_head("campaign_response", parts["campaign_response"],
                      {**counts, "metrics": fit.metrics, "compute": fit.compute, "history": fit.history})
    return {"artifact": str(artifact.path), **counts, "metrics": fit.metrics, "compute": fit.compute}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="job YAML, e.g. ray_jobs/configs/demo.yaml")
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument("--artifact", type=Path, help="artifact folder to fine-tune (default: the latest pretrained one)")
    args = parser.parse_args(argv)
    print(json.dumps(run(Workdir.at(args.workdir), JobConfig.load(args.config), args.artifact), default=str))


if __name__ == "__main__":
    main()
