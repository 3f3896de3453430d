"""The options every `lam` command shares (--workdir, --json, --as-of, --config) and the helpers that read them.

Imports only click and the workdir at module level: `lam --help` must not pay for pandas, Feast or Ray, so the
helpers import the rest of the platform when a command calls them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lam_platform.core.workdir import Workdir


def _existing_workdir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A command that reads a workdir refuses one that is not there (a typo must not leave a new folder)."""
    if value is not None and not Path(value).is_dir():
        raise click.BadParameter(
            f"{value} does not exist: check the path (or LAM_WORKDIR); `lam init --workdir "
            f"{value}` creates a workdir, `lam demo` one on the simulator",
            param=param,
        )
    return value


# Commands that create a workdir (init, simulate, demo, ingest) take any path; the others need an existing one.
new_workdir_option = click.option(
    "--workdir",
    default="./lam-demo",
    show_default=True,
    envvar="LAM_WORKDIR",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Platform working directory (data, feature repo, artifacts, outputs); created if missing.",
)
workdir_option = click.option(
    "--workdir",
    default="./lam-demo",
    show_default=True,
    envvar="LAM_WORKDIR",
    show_envvar=True,
    type=click.Path(file_okay=False),
    callback=_existing_workdir,
    help="Platform working directory (data, feature repo, artifacts, outputs).",
)
# Commands that delete data name their workdir: no default, so a forgotten option never hits ./lam-demo.
explicit_workdir_option = click.option(
    "--workdir",
    required=True,
    envvar="LAM_WORKDIR",
    show_envvar=True,
    type=click.Path(file_okay=False),
    callback=_existing_workdir,
    help="Platform working directory (required: this command deletes or rewrites data).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results last.")
config_option = click.option(
    "--config",
    default=None,
    metavar="NAME|PATH",
    help="Ray job YAML: a file, or a shipped config (demo, quality, tiny, gpu, ml1m; default: demo).",
)
as_of_option = click.option(
    "--as-of", default=None, help="The clock, with zone, e.g. 2010-10-01T00:00:00+00:00 (default: now)."
)


def as_of_clock(text: str | None):
    """--as-of as a zone-aware UTC time (now if absent); a bad value is a usage error naming the option."""
    from lam_platform.data.clock import ClockError, as_of

    try:
        return as_of(text)
    except ClockError as err:
        raise click.BadParameter(str(err), param_hint="--as-of") from None


def aware_time(text: str | None, option: str):
    """A time option as a zone-aware Timestamp in the zone it was written in (None stays None)."""
    from lam_platform.data.clock import ClockError, parse_time

    if text is None:
        return None
    try:
        return parse_time(text, option)
    except ClockError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def emit(result: dict, as_json: bool) -> None:
    """A command's results: one JSON object with --json, else one `key: value` line each."""
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        for key, value in result.items():
            click.echo(f"  {key}: {value}")


def platform_pseudonymizer(workdir: Workdir | None, ephemeral_ok: bool = False):
    """The platform's Pseudonymizer from LAM_PSEUDONYM_KEY(_FILE), checked against the key `workdir` was created
    with (recorded on first use; None: the caller replaces the workdir's data and records its key itself);
    a one-off key only where allowed."""
    from lam_platform.data.pseudonyms import Pseudonymizer, PseudonymKeyError, bind_key

    try:
        pseudonymizer = Pseudonymizer.from_env()
    except PseudonymKeyError as err:
        if not ephemeral_ok:
            raise click.ClickException(str(err)) from err
        click.secho(
            "  no LAM_PSEUDONYM_KEY: ids are pseudonymized with a one-off key held in memory, so this\n"
            "  world's customers can never be re-identified (set the key to keep that possible)",
            fg="yellow",
        )
        pseudonymizer = Pseudonymizer.ephemeral()
    if workdir is not None:
        bind_key(workdir.root, pseudonymizer)
    return pseudonymizer


def ground_truth_observer(wd: Workdir):
    """On a simulated world: each listed row's true P(order | called) at the scoring time; else None."""
    if not wd.world_json.exists():
        return None
    from lam_platform.simulation.world import load_ground_truth, load_world_config

    truth, world = load_ground_truth(wd), load_world_config(wd)
    return lambda rows: truth.order_probability(
        rows.customer_id.to_numpy(), rows.offer.to_numpy(), rows.method.to_numpy(), world.scoring_time
    )[0]


def job_config_file(config: str | None) -> Path:
    """The Ray job YAML --config names: a file, or a shipped config (default: demo)."""
    from lam_platform.core.packaged import job_config_path

    return job_config_path(config or "demo")
