"""The platform's steps on any workdir (simulated or a team's own data), each reading and writing the standard
layout; the CLI, `lam demo` (lam_platform.orchestration.demo) and the tests call these."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from lam_platform.core import progress
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.packaged import job_config_path
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.events import EventAttributes
from lam_platform.data.ingest_all import ingest_sources
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.features.snapshots import EventShards, ShardFolder
from lam_platform.features.store import (
    RepoSchema,
    apply_repo,
    ensure_scores_source,
    materialize,
    materialize_incremental,
    prepare_repo,
    snapshot_times,
    write_snapshots,
)
from lam_platform.features.streaming import sequence_length
from lam_platform.governance.consent import read_profiles

DEFAULT_SEQUENCE_LENGTH = 64
MATERIALIZE_LOOKBACK = pd.Timedelta(days=3650)  # the views' TTL: older rows are never served
DEFAULT_JOB_CONFIG = job_config_path("demo")


def ingest_step(workdir: Workdir, pseudonymizer: Pseudonymizer) -> dict:
    reports = ingest_sources(workdir, pseudonymizer)
    counts = ("rows_in", "accepted", "duplicates", "quarantined", "suppressed", "balanced")
    return {table: ({k: r[k] for k in counts} if isinstance(r, dict) else r) for table, r in reports.items()}


def materialize_step(
    workdir: Workdir,
    max_len: int | None = None,
    profile: Path | None = None,
    incremental: bool = False,
    as_of: pd.Timestamp | None = None,
    switch_online_store: bool = False,
) -> dict:
    """Write sequence and aggregate snapshots, `feast apply`, and materialize into the online store.

    Full (default): every customer as of `as_of` (default: now), snapshots rebuilt, N = `max_len`
    (default 64); the views carry the channels and actions of the event table and the profile fields
    of lam.yaml. Incremental: only customers with events since the last snapshot, appended as a new
    snapshot with the N and views of the full run; then Feast's `materialize_incremental` loads the
    rows it has not loaded yet. Runs under the workdir's shared governance lock, so a materialization
    that read the events before an erasure cannot load them into the online store after it.
    """
    with governance_lock(workdir.root, shared=True):
        return _materialize(workdir, max_len, profile, incremental, as_of, switch_online_store)


def _materialize(
    workdir: Workdir,
    max_len: int | None,
    profile: Path | None,
    incremental: bool,
    as_of: pd.Timestamp | None,
    switch_online_store: bool,
) -> dict:
    platform = PlatformConfig.load(workdir.root)
    as_of = parse_as_of(as_of)
    if not workdir.events.exists() or not workdir.profiles.exists():
        raise FileNotFoundError(f"no ingested data in {workdir.root}: run `lam ingest --workdir {workdir.root}` first")
    previous = snapshot_times(workdir)
    max_len = _incremental_length(workdir, previous, as_of, max_len) if incremental else max_len
    progress.stage("reading events")  # once, a batch at a time; split by customer when the table is large
    with ShardFolder(workdir.events) as folder:
        shards = EventShards.split(workdir.events, Path(folder), (previous[-1], as_of) if incremental else None)
        spec = shards.spec()
        platform.check_actions(set(spec.actions), set(spec.channels))
        schema = (
            RepoSchema.load(workdir)
            if incremental
            else RepoSchema(
                spec.channels, spec.actions, platform.profile_fields, EventAttributes.of_events(workdir.events)
            )
        )
        prepare_repo(workdir, schema, profile, switch_online_store)  # profile None: the workdir's own
        ensure_scores_source(workdir)
        if incremental:
            customers = sorted(shards.active)
        else:
            for snapshots in (workdir.sequences, workdir.aggregates):
                shutil.rmtree(snapshots, ignore_errors=True)
            max_len = max_len or DEFAULT_SEQUENCE_LENGTH
            customers = read_profiles(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
            workdir.sequence_view.write_text(json.dumps({"max_len": max_len}))
        progress.stage(f"sequence and aggregate snapshots of {len(customers):,} customers")
        rows = write_snapshots(workdir, shards, as_of, max_len, customers)
    progress.stage("feast apply")
    store = apply_repo(workdir)
    progress.stage("feast materialize")
    if incremental:
        materialize_incremental(store, workdir, as_of)
    else:
        materialize(store, workdir, as_of - MATERIALIZE_LOOKBACK, as_of)
    return {
        "feature_repo": str(workdir.feature_repo),
        "mode": "incremental" if incremental else "full",
        "customers_refreshed": rows,
        "max_len": max_len,
        "as_of": as_of.isoformat(),
        "online_store": store.config.online_store.type,
    }


def _incremental_length(
    workdir: Workdir, previous: list[pd.Timestamp], as_of: pd.Timestamp, max_len: int | None
) -> int:
    """The N of an incremental run (the last full run's), after checking there is a snapshot to follow."""
    if not previous:
        raise FileNotFoundError(f"no earlier snapshot in {workdir.sequences}: run a full `lam materialize` first")
    if as_of <= previous[-1]:
        raise ValueError(f"--as-of {as_of.isoformat()} is not after the last snapshot {previous[-1].isoformat()}")
    recorded = sequence_length(workdir)
    if max_len not in (None, recorded):
        raise ValueError(
            f"the sequence view holds N={recorded} events (set by the last full run); "
            f"an incremental run cannot use --max-len {max_len}"
        )
    return recorded


def pretrain_step(workdir: Workdir, config: Path, as_of: pd.Timestamp | None = None) -> dict:
    from lam_platform.ray_jobs import pretrain
    from lam_platform.ray_jobs.job_config import JobConfig

    return pretrain.run(workdir, JobConfig.load(config), parse_as_of(as_of))


def finetune_step(
    workdir: Workdir,
    config: Path,
    artifact: Path | None = None,
    as_of: pd.Timestamp | None = None,
    target: str | None = None,
) -> dict:
    from lam_platform.ray_jobs import finetune
    from lam_platform.ray_jobs.job_config import JobConfig

    return finetune.run(workdir, JobConfig.load(config), parse_as_of(as_of), artifact, target)
