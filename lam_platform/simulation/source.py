"""The simulator as a source system: raw tables keyed by raw ids, and the lam.yaml that maps them.

`lam simulate` generates a world (`world.simulate`), keeps its ground truth in WORKDIR/world/, and hands
the platform only what a real team would have: raw per-channel event tables, the customer master
(profile fields and marketing consent) and the campaign contact log, all keyed by the source systems'
raw ids and written OUTSIDE the workdir (default: a `<workdir>-sources` folder beside it), plus
WORKDIR/lam.yaml declaring them. `lam ingest` then takes them through the same door as real data.

Run: `LAM_PSEUDONYM_KEY=... lam simulate --workdir ./lam-demo` then `lam ingest --workdir ./lam-demo`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import event_batches
from lam_platform.data.pseudonyms import Pseudonymizer, bind_key
from lam_platform.simulation.ground_truth import METHODS, OFFERS
from lam_platform.simulation.raw_export import CRM_FILE, channel_section, export_raw_channels
from lam_platform.simulation.world import WorldConfig, raw_customer_ids
from lam_platform.simulation.world_writer import simulate

PROFILE_FIELDS = {
    "age_band": "categorical",
    "gender": "categorical",
    "plan": "categorical",
    "region": "categorical",
    "tenure_months": "numeric",
}
CONTACT_HOUR = 10  # the simulator's call lists are worked from 10:00 (its campaigns call between 09:00 and 18:00)


class WorkdirInUse(RuntimeError):
    """The workdir holds data that did not come from the simulator; `--force` replaces it."""


def default_sources(workdir: Workdir) -> Path:
    return workdir.root.with_name(f"{workdir.root.name}-sources")


def check_replaceable(workdir: Workdir, force: bool) -> None:
    """A workdir with ingested data of its own (no simulated world) is never replaced silently."""
    holds_data = workdir.events.exists() or workdir.profiles.exists() or workdir.campaign_log.exists()
    if holds_data and not workdir.world_json.exists() and not force:
        raise WorkdirInUse(
            f"{workdir.root} holds ingested data that did not come from the simulator; "
            "`lam simulate` would replace it: use another --workdir, or pass --force"
        )


def simulate_sources(
    workdir: Workdir, config: WorldConfig, pseudonymizer: Pseudonymizer, sources: Path, force: bool = False
) -> dict:
    """Generate the world, write its raw source tables under `sources` and WORKDIR/lam.yaml; the workdir's
    own tables stay empty until `lam ingest`."""
    check_replaceable(workdir, force)
    if workdir.contains(sources):
        raise ValueError(f"{sources}: raw tables hold raw customer ids: write them outside the workdir")
    for folder in (
        workdir.data,
        workdir.world,
        workdir.artifacts,
        workdir.training,
        workdir.outputs,
        workdir.quarantine,
        workdir.ray_results,
    ):
        shutil.rmtree(folder, ignore_errors=True)
    workdir.make()
    bind_key(workdir.root, pseudonymizer, replace=True)  # a new world: new people, and this key is theirs
    workdir.erased_customers.unlink(missing_ok=True)  # the old world's erasures name none of them
    counts = simulate(config, workdir, pseudonymizer)  # pseudonymized tables + ground truth
    raw_ids = pseudonymizer.matcher(raw_customer_ids(config.n_customers))
    shutil.rmtree(sources, ignore_errors=True)
    export_raw_channels(event_batches(workdir.events), sources / "events", raw_ids, crm=sources / CRM_FILE)
    _write_customers(pd.read_parquet(workdir.profiles), raw_ids, sources / "customers.parquet")
    _write_contacts(pd.read_parquet(workdir.campaign_log), raw_ids, sources / "campaigns.parquet")
    # The platform's own tables come from `lam ingest`, like any team's; the world keeps only ground truth.
    shutil.rmtree(workdir.events)
    workdir.profiles.unlink()
    workdir.campaign_log.unlink()
    relative = os.path.relpath(sources, workdir.root)
    workdir.config.write_text(platform_yaml(relative, config))
    return {**counts, "sources": str(sources), "config": str(workdir.config)}


def _write_customers(profiles: pd.DataFrame, raw_ids: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "customer_no": profiles.customer_id.map(raw_ids),
            **{f: profiles[f] for f in PROFILE_FIELDS},
            "marketing_opt_in": profiles.consent_marketing.map({True: "yes", False: "no"}),
            "updated_at": profiles.event_timestamp,
        }
    ).to_parquet(path, index=False)


def _write_contacts(log: pd.DataFrame, raw_ids: dict[str, str], path: Path) -> None:
    pd.DataFrame(
        {
            "customer_no": log.customer_id.map(raw_ids),
            "called_at": log.event_timestamp,
            "campaign": log.campaign_id,
            "offer": log.offer,
            "channel": log.method,
            "treated": log.treatment,
            "selected_by": log.policy,
            "ordered": log.outcome,
            "order_value": log.outcome_value,
            "p_assigned": log.propensity,
        }
    ).to_parquet(path, index=False)


def platform_yaml(sources: str, config: WorldConfig) -> str:
    """The simulator's lam.yaml: its channels, customer master, contact log, catalogue and rules."""
    document = {
        "events": channel_section(f"{sources}/events"),
        "customers": {
            "files": [f"{sources}/customers.parquet"],
            "who": "customer_no",
            "profile": PROFILE_FIELDS,
            "consent": {"column": "marketing_opt_in", "recorded_at": "updated_at"},
        },
        "campaigns": {
            "files": [f"{sources}/campaigns.parquet"],
            "who": "customer_no",
            "contacted_at": "called_at",
            "campaign_id": "campaign",
            "offer": "offer",
            "method": "channel",
            "treatment": "treated",
            "policy": "selected_by",
            "propensity": "p_assigned",
            "outcome": {"column": "ordered"},
            "outcome_value": "order_value",
        },
        "catalogue": {"offers": list(OFFERS), "methods": list(METHODS), "contact_slots": [CONTACT_HOUR, 14, 17]},
        "targets": {
            f"purchase_{config.response_horizon_days}d": {
                "action": "purchase",
                "within": f"{config.response_horizon_days}d",
            }
        },
        "call_list": {
            "capacity": "5%",
            "contact_channel": "telemarketing",
            "conversion_action": "purchase",
            "cooldown_days": 14,
            "converted_within_days": 30,
        },
    }
    header = (
        f"# Written by `lam simulate` (seed {config.seed}, {config.n_customers} customers): the simulator's\n"
        "# source tables, declared like any team's. Its clock: --as-of "
        f"{config.scoring_time.isoformat()} (the start of the held-out period).\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)
