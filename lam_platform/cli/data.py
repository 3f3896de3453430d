"""`lam init`, `lam ingest`, `lam materialize`, `lam push`: the commands that bring a team's data into the platform.

Sources are declared in WORKDIR/lam.yaml, ingested with their customer ids pseudonymized, and materialized
into the Feast feature repo and online store; `push` appends new events to both as they arrive.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import (
    as_of_clock,
    as_of_option,
    emit,
    json_option,
    new_workdir_option,
    platform_pseudonymizer,
    workdir_option,
)
from lam_platform.core.workdir import Workdir


@main.command()
@new_workdir_option
@click.option("--force", is_flag=True, help="Replace an existing lam.yaml with the template.")
def init(workdir: str, force: bool) -> None:
    """Write a commented WORKDIR/lam.yaml template: declare your event tables, customers and consent,
    campaign log, catalogue, targets and call-list rules there, then run `lam ingest`."""
    from lam_platform.data.config_template import write_template

    path = write_template(Workdir.at(workdir).root, force)
    click.echo(f"  wrote {path}: edit it, then `lam ingest --workdir {workdir}`")


@main.command()
@new_workdir_option
@click.option(
    "--channels",
    "channel_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A standalone channel config for the events (default: the `events:` section of WORKDIR/lam.yaml).",
)
@json_option
def ingest(workdir: str, channel_path: Path | None, as_json: bool) -> None:
    """Ingest the sources WORKDIR/lam.yaml declares: events, customers, campaign log.

    Each table is validated row by row: accepted rows are appended (events to
    WORKDIR/feature_repo/data/events/, customers to the profile ledger, contacts to the campaign log),
    rejected rows go to WORKDIR/quarantine/ with reason and source file/line. Idempotent: rows already
    ingested count as duplicates. Per table, rows in = accepted + duplicates + quarantined + suppressed
    (rows of customers `lam forget` erased). Customer ids
    are pseudonymized on the way in (needs LAM_PSEUDONYM_KEY).
    """
    from lam_platform.data.ingest_all import ingest_sources

    wd = Workdir.at(workdir)
    reports = ingest_sources(wd, platform_pseudonymizer(wd), channel_path)
    if not as_json:
        for table, report in reports.items():
            if not isinstance(report, dict):
                click.echo(f"  {table}: {report}")
                continue
            click.echo(
                f"  {table}: rows in {report['rows_in']}: accepted {report['accepted']}, duplicates "
                f"{report['duplicates']}, quarantined {report['quarantined']}, suppressed (erased) "
                f"{report['suppressed']}"
            )
            for reason, count in sorted(report["by_reason"].items()):
                click.echo(f"    {reason}: {count}")
            for path, error in report.get("unreadable_files", {}).items():
                click.echo(f"    unreadable, nothing taken from it: {path}: {error}")
    if as_json:
        click.echo(json.dumps(reports, default=str))


@main.command()
@workdir_option
@click.option(
    "--max-len",
    type=int,
    default=None,
    help="Events per customer in the sequence view (N; default 64, incremental runs keep the full run's).",
)
@click.option(
    "--profile",
    default=None,
    metavar="NAME|PATH",
    help="feature_store.yaml to use: a file, or a shipped profile (local: SQLite online store; production: "
    "Redis + PostgreSQL registry). Default: the workdir's own; for a new workdir, local.",
)
@click.option(
    "--switch-online-store",
    is_flag=True,
    help="Allow --profile to change the online store type (refused otherwise: the old store keeps its rows).",
)
@click.option("--incremental", is_flag=True, help="Refresh only customers with events since the last snapshot.")
@as_of_option
@json_option
def materialize(
    workdir: str,
    max_len: int | None,
    profile: str | None,
    switch_online_store: bool,
    incremental: bool,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Build sequence and aggregate snapshots, `feast apply` the feature repo, and materialize online.

    Reads lam.yaml, the event table and profiles; writes WORKDIR/feature_repo/ (definitions.py and
    feature_store.yaml on the first run only, then kept as the platform team edits them; repo_schema.json
    and snapshot sources under data/ every run) and fills the online store with
    each customer's last N events, 7/30/90-day aggregates and profile (the fields lam.yaml declares) as
    of the snapshot time.
    """
    from lam_platform.core.packaged import feast_profile_path
    from lam_platform.orchestration.pipeline import materialize_step

    profile_path = feast_profile_path(profile) if profile is not None else None
    emit(
        materialize_step(
            Workdir.at(workdir), max_len, profile_path, incremental, as_of_clock(as_of), switch_online_store
        ),
        as_json,
    )


@main.command()
@workdir_option
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parquet or CSV file of 4W1H events (event_id, customer_id, event_timestamp with zone, ...); "
    "customer_id holds raw ids, pseudonymized on the way in (needs LAM_PSEUDONYM_KEY).",
)
@json_option
def push(workdir: str, events_path: Path, as_json: bool) -> None:
    """Push new events: append them to the event table and to each customer's online sequence.

    Idempotent (event ids already present are skipped) and safe with concurrent pushers. Rows are
    validated as `lam ingest` validates them (bad ones go to WORKDIR/quarantine/ with their reason; rows of
    erased customers are dropped). Reads the events file; writes new files into
    WORKDIR/feature_repo/data/events/ and updates the online store.
    """
    from lam_platform.data.raw_tables import read_raw
    from lam_platform.features.store import open_store
    from lam_platform.features.streaming import push_events

    wd = Workdir.at(workdir)
    table = read_raw(events_path)  # CSV as text (an id 000042 stays 000042), Parquet as typed
    emit(push_events(wd, open_store(wd), table, platform_pseudonymizer(wd), source=str(events_path)), as_json)
