"""`lam consent`, `lam forget`, `lam purge`, `lam export-call-list`, `lam audit`, `lam fairness`: the
governance commands of the CLI (privacy, audit logs and the call list's fairness).

Commands that take customers take the raw ids people and CRMs know (hashed here with the key from
LAM_PSEUDONYM_KEY or LAM_PSEUDONYM_KEY_FILE), or pseudonyms with --pseudonymous.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import (
    aware_time,
    emit,
    explicit_workdir_option,
    ground_truth_observer,
    json_option,
    platform_pseudonymizer,
    workdir_option,
)
from lam_platform.core.workdir import Workdir

ids_argument = click.argument("customer_ids", nargs=-1)
ids_file_option = click.option(
    "--ids-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file with one customer id per line (in addition to the arguments).",
)
pseudonymous_option = click.option(
    "--pseudonymous", is_flag=True, help="The ids are the platform's pseudonyms already (no key needed)."
)


def _pseudonyms(
    workdir: Workdir, customer_ids: tuple[str, ...], ids_file: Path | None, pseudonymous: bool
) -> list[str]:
    from lam_platform.data.pseudonyms import check_pseudonyms

    ids = list(customer_ids)
    if ids_file:
        ids += [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise click.UsageError("name at least one customer (arguments or --ids-file)")
    if pseudonymous:
        try:
            return check_pseudonyms(ids)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="CUSTOMER_IDS") from err
    return platform_pseudonymizer(workdir).pseudonyms(ids)


def _time_or_now(text: str | None, option: str):
    import pandas as pd

    value = aware_time(text, option)
    return pd.Timestamp.now(tz="UTC") if value is None else value


@main.command()
@explicit_workdir_option
@ids_argument
@click.option("--withdraw/--grant", "withdraw", required=True, help="Withdraw or grant marketing consent.")
@click.option("--as-of", default=None, help="When the change took effect, with zone (default: now; not in the future).")
@ids_file_option
@pseudonymous_option
@json_option
def consent(
    workdir: str,
    customer_ids: tuple[str, ...],
    withdraw: bool,
    as_of: str | None,
    ids_file: Path | None,
    pseudonymous: bool,
    as_json: bool,
) -> None:
    """Record a marketing-consent change for customers, effective at --as-of.

    Appends the change to the profile table (the consent ledger) and writes it to the online store at
    once; a withdrawal also removes the customers' published scores online. Training sets built
    afterwards leave them out, and so do scores, call lists and API answers from then on.
    """
    from lam_platform.features.store import open_store
    from lam_platform.governance.consent import record_consent

    wd = Workdir.at(workdir)
    ids = _pseudonyms(wd, customer_ids, ids_file, pseudonymous)
    try:
        result = record_consent(wd, open_store(wd), ids, granted=not withdraw, as_of=_time_or_now(as_of, "--as-of"))
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    emit(result, as_json)
    if result["unknown"]:
        raise SystemExit(f"{result['unknown']} of the named customers have no profile; nothing recorded for them")


@main.command()
@explicit_workdir_option
@ids_argument
@ids_file_option
@pseudonymous_option
@click.option("--resume", "resume_request", default=None, help="Finish an interrupted request (its id).")
@json_option
def forget(
    workdir: str,
    customer_ids: tuple[str, ...],
    ids_file: Path | None,
    pseudonymous: bool,
    resume_request: str | None,
    as_json: bool,
) -> None:
    """Erase customers from every store and output: event partitions, snapshots, profiles, campaign log,
    online store (sequences, profile, scores), call lists, quarantine, training sets.

    Files are rewritten atomically; an interrupted request is finished with --resume REQUEST (the
    pending ones are listed by `lam forget --resume list`). The governance log (WORKDIR/audit/
    governance.jsonl) records the request id and counts, never who.
    """
    from lam_platform.governance.erasure import forget as run_forget
    from lam_platform.governance.erasure import pending_requests, resume

    wd = Workdir.at(workdir)
    if resume_request == "list":
        emit({"pending": pending_requests(wd)}, as_json)
        return
    result = (
        resume(wd, resume_request)
        if resume_request
        else run_forget(wd, _pseudonyms(wd, customer_ids, ids_file, pseudonymous))
    )
    emit(result, as_json)
    if result["status"] != "complete":
        raise SystemExit(f"erasure {result['request']} is incomplete: {result.get('next', '')}")


@main.command()
@explicit_workdir_option
@click.option("--retention-days", type=float, required=True, help="Keep events of the last N days; delete older.")
@click.option("--as-of", default=None, help="The time the window is counted back from, with zone (default: now).")
@json_option
def purge(workdir: str, retention_days: float, as_of: str | None, as_json: bool) -> None:
    """Delete events older than the retention window from the event table (and older snapshots).

    Files are rewritten atomically; run it again after an interruption. Run `lam materialize` after it
    so the online sequences drop the purged events too.
    """
    from lam_platform.governance.retention import purge_events

    try:
        emit(purge_events(Workdir.at(workdir), retention_days, _time_or_now(as_of, "--as-of")), as_json)
    except ValueError as err:
        raise click.ClickException(str(err)) from err


@main.command("export-call-list")
@workdir_option
@click.option(
    "--customers",
    "customer_master",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The CRM customer master CSV (customer_id = raw id, phone), e.g. SOURCES/crm/customers.csv.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the re-identified CSV (outside WORKDIR).",
)
@click.option(
    "--call-list",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The call list to export (default: WORKDIR/outputs/call_list.parquet).",
)
@json_option
def export_call_list_command(
    workdir: str, customer_master: Path, out: Path, call_list: Path | None, as_json: bool
) -> None:
    """Re-identify the call list for the people who place the calls (needs the pseudonymization key).

    Joins the call list with the CRM master by hashing its raw ids; leaves out customers who no
    longer consent. The output holds raw ids and phone numbers: it is refused inside WORKDIR.
    """
    from lam_platform.governance.reidentify import export_call_list

    try:
        wd = Workdir.at(workdir)
        emit(export_call_list(wd, platform_pseudonymizer(wd), customer_master, out, call_list), as_json)
    except ValueError as err:
        raise click.ClickException(str(err)) from err


@main.command()
@workdir_option
@click.option("--since", default=None, help="Only entries at or after this time, with zone.")
@click.option(
    "--log",
    "which",
    type=click.Choice(["api", "governance"]),
    default="api",
    show_default=True,
    help="api: scoring requests; governance: consent changes, erasure requests and purges.",
)
@json_option
def audit(workdir: str, since: str | None, which: str, as_json: bool) -> None:
    """Print an audit log. api: time, token name, endpoint, customer count, status, outcome.
    governance: time, action, request, customer count, status.

    Both logs (WORKDIR/audit/*.jsonl) are append-only and hold no customer ids and no tokens.
    """
    from lam_platform.governance.audit import read_audit

    start = aware_time(since, "--since")
    wd = Workdir.at(workdir)
    entries = list(read_audit(wd.audit_log if which == "api" else wd.governance_log, start))
    if as_json:
        click.echo(json.dumps({"entries": entries}))
        return
    if which == "governance":
        for e in entries:
            details = {k: v for k, v in e.items() if k not in ("time", "action", "status")}
            click.echo(f"{e['time']}  {e['action']:<8} {e['status']:<12} {json.dumps(details, sort_keys=True)}")
        return
    for e in entries:
        click.echo(
            f"{e['time']}  {e['token']:<16} {e['endpoint']:<14} customers={e['customers']!s:<6} "
            f"{e['status']} {e['outcome']}"
        )


@main.command()
@workdir_option
@click.option(
    "--calibration-margin",
    default=0.05,
    show_default=True,
    help="Flag a group whose calibration gap differs from the whole list's by more than this.",
)
@json_option
def fairness(workdir: str, calibration_margin: float, as_json: bool) -> None:
    """Selection and order rates of the latest call list by age band and gender, with four-fifths and
    calibration flags (JSON with --json). Run after `lam score`."""
    from lam_platform.governance.fairness import FairnessSettings, call_list_fairness

    wd = Workdir.at(workdir)
    report = call_list_fairness(
        wd, FairnessSettings(calibration_margin=calibration_margin), observed=ground_truth_observer(wd)
    )
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    for attribute, groups in report["attributes"].items():
        click.echo(f"{attribute}:")
        for g in groups:
            flags = [k for k in ("four_fifths", "calibration") if g[f"{k}_flag"]]
            click.echo(
                f"  {g['group']:<8} eligible {g['eligible']:>5}  selected {g['selected']:>4}  "
                f"rate {g['selection_rate']:.3f}  vs best {g['ratio_to_best'] or 0:.2f}  "
                f"{'FLAG ' + ','.join(flags) if flags else ''}"
            )
    click.echo(f"flags: {len(report['flags'])}")
