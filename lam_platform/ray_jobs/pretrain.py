"""Pretrain the LAM (backbone + next-action head) with Ray Train and save a new model artifact.

Run:  python -m lam_platform.ray_jobs.pretrain --config demo --workdir ./lam-demo [--as-of T]
On a cluster:  ray job submit -- python -m lam_platform.ray_jobs.pretrain --config ... --workdir <shared path>
Reads lam.yaml, the event table (one customer shard at a time, lam_platform.campaigns.training_events) and
profiles; trains on events strictly before the as-of time (default now); writes <workdir>/artifacts/lam-v<N>/.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from lam_platform.campaigns.training_data import build_pretrain_set, fit_tokenizer
from lam_platform.campaigns.training_events import training_events_by_shard
from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import MODEL_VIEWS, open_store, schema_fingerprint
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, next_version, split_state_dict
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import fit_with_ray


def run(workdir: Workdir, job: JobConfig, as_of: pd.Timestamp) -> dict:
    """Build the pretraining set, fit with Ray, export the artifact; returns what the CLI prints."""
    with governance_lock(workdir.root, shared=True):  # an erasure waits for the training set, or goes first
        return _run(workdir, job, as_of)


def _run(workdir: Workdir, job: JobConfig, as_of: pd.Timestamp) -> dict:
    platform = PlatformConfig.load(workdir.root)
    until = as_of  # training sees events strictly before the as-of time
    fingerprint = schema_fingerprint(open_store(workdir))
    profiles = read_profiles(workdir.profiles)
    customers = consenting_customers(profiles, platform.consent_mode)
    # The event table is split by customer, then read a shard at a time twice (tokenizer statistics, examples).
    with training_events_by_shard(workdir, until, customers) as events:
        tokenizer = fit_tokenizer(events.each(), profiles, until, job.model.get("max_len", 64), platform)
        if events.rows == 0:
            raise UserError(
                f"no event before {until.isoformat()} of a customer who may be trained on: check --as-of "
                "and the consent settings in lam.yaml"
            )
        config = LAMConfig.from_dict({**job.model, **tokenizer.config_sizes()})
        workdir.training.mkdir(parents=True, exist_ok=True)
        data = workdir.training / "pretrain"
        progress.stage("building the pretraining set")
        examples = build_pretrain_set(
            events.each(),
            tokenizer,
            job.pretrain.samples_per_customer,
            config.recent_events,
            job.seed,
            data,
            job.pretrain.target_sampling,
        )
    version = next_version(workdir.artifacts)
    fit = fit_with_ray("next_action", data, config, job.pretrain, job, workdir.ray_results, f"pretrain-{version.name}")
    parts = split_state_dict(fit.state_dict)
    artifact = ModelArtifact.create(
        version,
        config,
        tokenizer,
        parts["backbone"],
        card={
            "feature_views": list(MODEL_VIEWS),
            "schema_fingerprint": fingerprint,
            "data_range": {"events_before": until.isoformat(), "events": events.rows},
        },
    )
    artifact.add_head(
        "next_action",
        parts["next_action"],
        {"examples": examples, "metrics": fit.metrics, "compute": fit.compute, "history": fit.history},
    )
    return {
        "artifact": str(artifact.path),
        "examples": examples,
        "as_of": until.isoformat(),
        "metrics": fit.metrics,
        "compute": fit.compute,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", required=True, help="job YAML: a file, or a shipped config name (demo, quality, tiny, gpu, ml1m)"
    )
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument("--as-of", default=None, help="training cut-off, with zone (default: now)")
    args = parser.parse_args(argv)
    print(json.dumps(run(Workdir.at(args.workdir), JobConfig.load(args.config), parse_as_of(args.as_of)), default=str))


if __name__ == "__main__":
    main()
