"""The platform's steps, each reading and writing the standard workdir layout; the CLI and `lam demo` call these."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from lam_platform.evaluation import compare_policies
from lam_platform.events import read_events
from lam_platform.features import (
    LOCAL_PROFILE,
    apply_repo,
    customers_with_events,
    ensure_scores_source,
    materialize,
    materialize_incremental,
    prepare_repo,
    snapshot_times,
    write_snapshots,
)
from lam_platform.privacy import Pseudonymizer
from lam_platform.streaming import sequence_length
from lam_platform.simulator import WorldConfig, load_world_config, simulate
from lam_platform.workdir import Workdir
from lam_platform.consent import read_profiles

DEFAULT_SEQUENCE_LENGTH = 64
DEFAULT_JOB_CONFIG = Path(__file__).resolve().parent.parent / "ray_jobs" / "configs" / "demo.yaml"


def simulate_step(workdir: Workdir, customers: int, seed: int, pseudonymizer: Pseudonymizer) -> dict:
    workdir.make()
    counts = simulate(WorldConfig(n_customers=customers, seed=seed), workdir, pseudonymizer)
    return {**counts, "events_table": str(workdir.events), "profiles": str(workdir.profiles),
            "campaign_log": str(workdir.campaign_log)}


def materialize_step(workdir: Workdir, max_len: int | None = None, profile: Path = LOCAL_PROFILE,
                     incremental: bool = False, as_of: pd.Timestamp | None = None,
                     channel_config: Path | None = None) -> dict:
    """Write sequence and aggregate snapshots, `feast apply`, and materialize into the online store.

    Full (default): every customer as of `as_of` (default: the scoring time), snapshots rebuilt,
    N = `max_len` (default 64). Incremental: only customers with events since the last snapshot,
    appended as a new snapshot with the N of the full run; then Feast's `materialize_incremental`
    loads the rows it has not loaded yet.
    """
    world = load_world_config(workdir)
    as_of = pd.Timestamp(as_of if as_of is not None else world.scoring_time)
    if as_of.tzinfo is None:
        raise ValueError(f"--as-of must carry a time zone (e.g. {as_of.isoformat()}+00:00); got {as_of.isoformat()}")
    prepare_repo(workdir, profile, channel_config)
    ensure_scores_source(workdir)
    previous = snapshot_times(workdir)
    events = read_events(workdir.events)
    if incremental:
        if not previous:
            raise FileNotFoundError(f"no earlier snapshot in {workdir.sequences}: run a full `lam materialize` first")
        if as_of <= previous[-1]:
            raise ValueError(f"--as-of {as_of.isoformat()} is not after the last snapshot {previous[-1].isoformat()}")
        recorded = sequence_length(workdir)
        if max_len not in (None, recorded):
            raise ValueError(f"the sequence view holds N={recorded} events (set by the last full run); "
                             f"an incremental run cannot use --max-len {max_len}")
        max_len = recorded
        customers = customers_with_events(events, previous[-1], as_of)
    else:
        for folder in (workdir.sequences, workdir.aggregates):
            shutil.rmtree(folder, ignore_errors=True)
        max_len = max_len or DEFAULT_SEQUENCE_LENGTH
        customers = read_profiles(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
        workdir.sequence_view.write_text(json.dumps({"max_len": max_len}))
    rows = write_snapshots(workdir, events, as_of, max_len, customers)
    store = apply_repo(workdir)
    if incremental:
        materialize_incremental(store, as_of)
    else:
        materialize(store, world.world_start - pd.Timedelta(days=2), as_of)
    return {"feature_repo": str(workdir.feature_repo), "mode": "incremental" if incremental else "full",
            "customers_refreshed": rows, "max_len": max_len, "as_of": as_of.isoformat(),
            "online_store": store.config.online_store.type}


def pretrain_step(workdir: Workdir, config: Path) -> dict:
    from ray_jobs import pretrain
    from ray_jobs.training import JobConfig

    return pretrain.run(workdir, JobConfig.load(config))


def finetune_step(workdir: Workdir, config: Path, artifact: Path | None = None) -> dict:
    from ray_jobs import finetune
    from ray_jobs.training import JobConfig

    return finetune.run(workdir, JobConfig.load(config), artifact)


def summary_step(workdir: Workdir, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Compare the call list with random, legacy, LightGBM and oracle lists; write outputs/summary.json."""
    call_list_path = workdir.outputs / "call_list.parquet"
    if not call_list_path.exists():
        raise FileNotFoundError(f"no call list at {call_list_path}: run `lam score --workdir {workdir.root}` first")
    table = compare_policies(workdir, pd.read_parquet(call_list_path), seed)
    order_rates = dict(zip(table.policy, table.order_rate.round(4)))
    summary = {"order_rate": order_rates, "capacity": int(table.called.iloc[0]),
               "lam_vs_legacy": round(float(table.set_index("policy").vs_legacy["lam"]), 3)}
    (workdir.outputs / "summary.json").write_text(json.dumps({**summary, "table": table.to_dict("records")}, indent=2))
    return table, summary
