"""The platform's steps, each reading and writing the standard workdir layout; the CLI and `lam demo` call these."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lam_platform.evaluation import compare_policies
from lam_platform.features import LOCAL_PROFILE, apply_repo, materialize, prepare_repo, write_sequence_snapshot
from lam_platform.simulator import WorldConfig, load_world_config, simulate
from lam_platform.workdir import Workdir

DEFAULT_JOB_CONFIG = Path(__file__).resolve().parent.parent / "ray_jobs" / "configs" / "demo.yaml"


def simulate_step(workdir: Workdir, customers: int, seed: int) -> dict:
    workdir.make()
    counts = simulate(WorldConfig(n_customers=customers, seed=seed), workdir)
    return {**counts, "events_table": str(workdir.events), "profiles": str(workdir.profiles),
            "campaign_log": str(workdir.campaign_log)}


def materialize_step(workdir: Workdir, max_len: int, profile: Path = LOCAL_PROFILE) -> dict:
    """Build sequences as of the scoring time, `feast apply`, and materialize into the online store."""
    world = load_world_config(workdir)
    prepare_repo(workdir, profile)
    rows = write_sequence_snapshot(workdir, world.scoring_time, max_len)
    store = apply_repo(workdir)
    materialize(store, world.world_start - pd.Timedelta(days=2), world.scoring_time)
    return {"feature_repo": str(workdir.feature_repo), "sequences": rows, "max_len": max_len,
            "as_of": world.scoring_time.isoformat(), "online_store": store.config.online_store.type}


def pretrain_step(workdir: Workdir, config: Path) -> dict:
    from ray_jobs import pretrain
    from ray_jobs.training import JobConfig

    return pretrain.run(workdir, JobConfig.load(config))


def finetune_step(workdir: Workdir, config: Path, artifact: Path | None = None) -> dict:
    from ray_jobs import finetune
    from ray_jobs.training import JobConfig

    return finetune.run(workdir, JobConfig.load(config), artifact)


def summary_step(workdir: Workdir, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Compare the call list with random, legacy and oracle lists; write outputs/summary.json."""
    call_list_path = workdir.outputs / "call_list.parquet"
    if not call_list_path.exists():
        raise FileNotFoundError(f"no call list at {call_list_path}: run `lam score --workdir {workdir.root}` first")
    table = compare_policies(workdir, pd.read_parquet(call_list_path), seed)
    order_rates = dict(zip(table.policy, table.order_rate.round(4)))
    summary = {"order_rate": order_rates, "capacity": int(table.called.iloc[0]),
               "lam_vs_legacy": round(float(table.set_index("policy").vs_legacy["lam"]), 3)}
    (workdir.outputs / "summary.json").write_text(json.dumps({**summary, "table": table.to_dict("records")}, indent=2))
    return table, summary
