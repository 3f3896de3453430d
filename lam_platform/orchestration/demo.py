"""`lam demo`'s simulator steps: the simulator as a source system, its clock, and the ground-truth summary.

The generic steps (ingest, materialize, pretrain, fine-tune) are lam_platform.orchestration.pipeline's; this module is
the orchestration that also runs the simulator, so it is one of the few allowed to import it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.simulation.evaluation import compare_policies
from lam_platform.simulation.source import default_sources, simulate_sources
from lam_platform.simulation.world import WorldConfig, load_world_config


def simulate_step(
    workdir: Workdir, customers: int, seed: int, pseudonymizer: Pseudonymizer, sources: Path | None = None
) -> dict:
    """The simulator writes its raw source tables (outside the workdir) and lam.yaml; see simulation.source."""
    return simulate_sources(
        workdir, WorldConfig(n_customers=customers, seed=seed), pseudonymizer, sources or default_sources(workdir)
    )


def world_clock(workdir: Workdir) -> pd.Timestamp:
    """A simulated world's scoring time: the --as-of every step of the demo runs at."""
    return load_world_config(workdir).scoring_time


def summary_step(workdir: Workdir, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Compare the call list with random, legacy, LightGBM and oracle lists; write outputs/summary.json."""
    call_list_path = workdir.call_list
    if not call_list_path.exists():
        raise FileNotFoundError(f"no call list at {call_list_path}: run `lam score --workdir {workdir.root}` first")
    table = compare_policies(workdir, pd.read_parquet(call_list_path), seed)
    order_rates = dict(zip(table.policy, table.order_rate.round(4)))
    summary = {
        "order_rate": order_rates,
        "capacity": int(table.called.iloc[0]),
        "lam_vs_legacy": round(float(table.set_index("policy").vs_legacy["lam"]), 3),
    }
    (workdir.outputs / "summary.json").write_text(json.dumps({**summary, "table": table.to_dict("records")}, indent=2))
    return table, summary
