"""`lam`: the platform's command line. Every command takes --workdir and --json.

With --json, a command prints one JSON object with its results as its last line.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
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


def _clock(text: str | None):
    """--as-of as a zone-aware UTC time (now if absent); a bad value is a usage error naming the option."""
    from lam_platform.data.clock import ClockError, as_of

    try:
        return as_of(text)
    except ClockError as err:
        raise click.BadParameter(str(err), param_hint="--as-of") from None


# No status line: a server logs requests, and the demo and the simulated loop print their own steps.
LONG_RUNNING = {"serve", "demo", "simulate-loop"}


class LamCommand(click.Command):
    """A `lam` subcommand: library noise is quieted when it runs, never for --help (which imports nothing)."""

    def invoke(self, ctx):
        import feast  # noqa: F401  (its import installs warning filters of its own; ours must come after)

        from lam_platform.core import progress

        # Ray Data and Feast warn about their own deprecated internals; nothing a user of `lam` can change.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(ray|feast)(\.|$)")
        progress.set_quiet(bool(ctx.params.get("as_json")))  # --json: stdout is one object, stderr stays quiet
        if self.name in LONG_RUNNING:
            return super().invoke(ctx)
        with progress.status(f"lam {self.name}"):
            return super().invoke(ctx)


class LamGroup(click.Group):
    """One error handler for every command. A user's mistake (a bad option, a bad lam.yaml, missing input, a
    refused step) prints one line naming the input and the fix and exits 2; anything else is a bug and prints
    one line too, exit 1. With --json the line is `{"error": ..., "hint": ...}`; with --debug (or LAM_DEBUG=1)
    the traceback instead."""

    command_class = LamCommand

    def invoke(self, ctx):
        from lam_platform.core.errors import UserError

        # The subcommand and its own arguments, read before click consumes them.
        args = (*getattr(ctx, "_protected_args", ()), *ctx.args)
        wants_json, name = "--json" in args, (args[0] if args else "")
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as err:  # a usage mistake: an unknown option, a missing or bad value
            _fail(err.format_message(), f"see `lam {name} --help`", wants_json, 2)
        except (UserError, FileNotFoundError) as err:
            if ctx.params.get("debug"):
                raise
            _fail(str(err), getattr(err, "hint", None) or f"see `lam {name} --help`", wants_json, 2)
        except Exception as err:
            if ctx.params.get("debug"):
                raise
            _fail(
                f"{type(err).__name__}: {err}",
                "not a mistake of yours as far as lam can tell: rerun with "
                "`lam --debug` (or LAM_DEBUG=1) for the traceback and report it",
                wants_json,
                1,
            )


def _fail(message: str, hint: str, as_json: bool, code: int) -> None:
    """Print one error line (JSON on stdout for --json, text on stderr otherwise) and exit with `code`."""
    from lam_platform.core.errors import one_line

    if as_json:
        click.echo(json.dumps({"error": one_line(message), "hint": hint}))
    else:
        click.echo(f"Error: {one_line(message)} ({hint})", err=True)
    sys.exit(code)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        for key, value in result.items():
            click.echo(f"  {key}: {value}")


def _pseudonymizer(workdir: Workdir | None, ephemeral_ok: bool = False):
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


def _aware_time(text: str | None, option: str):
    """A time option as a zone-aware Timestamp in the zone it was written in (None stays None)."""
    from lam_platform.data.clock import ClockError, parse_time

    if text is None:
        return None
    try:
        return parse_time(text, option)
    except ClockError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _ground_truth_observer(wd: Workdir):
    """On a simulated world: each listed row's true P(order | called) at the scoring time; else None."""
    if not wd.world_json.exists():
        return None
    from lam_platform.simulation.world import load_ground_truth, load_world_config

    truth, world = load_ground_truth(wd), load_world_config(wd)
    return lambda rows: truth.order_probability(
        rows.customer_id.to_numpy(), rows.offer.to_numpy(), rows.method.to_numpy(), world.scoring_time
    )[0]


def _job_config(config: str | None) -> Path:
    from lam_platform.core.packaged import job_config_path

    return job_config_path(config or "demo")


@click.group(cls=LamGroup)
@click.version_option(package_name="lam-platform", prog_name="lam")
@click.option("--debug", is_flag=True, envvar="LAM_DEBUG", help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """LAM platform: 4W1H events -> Feast -> Ray-trained Large Action Model -> online scores -> call list."""


@main.command()
@new_workdir_option
@click.option("--customers", default=3000, show_default=True, help="Number of simulated customers.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same world).")
@click.option(
    "--sources",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the raw source tables go (raw ids: outside WORKDIR; default: WORKDIR-sources beside it).",
)
@click.option("--force", is_flag=True, help="Replace a workdir that holds ingested data of its own.")
@json_option
def simulate(workdir: str, customers: int, seed: int, sources: Path | None, force: bool, as_json: bool) -> None:
    """Generate a synthetic 4W1H world as a source system.

    Writes raw source tables keyed by raw customer ids (per-channel events, the customer master with
    consent, the campaign contact log, the CRM table with phone numbers) under SOURCES, WORKDIR/lam.yaml
    declaring them, and the ground truth (latent wants) under WORKDIR/world/, keyed by pseudonyms (needs
    LAM_PSEUDONYM_KEY or LAM_PSEUDONYM_KEY_FILE). Then run `lam ingest` as with any team's data.
    Refuses a workdir holding ingested data that did not come from the simulator, unless --force.
    """
    from lam_platform.simulation.source import WorkdirInUse, default_sources, simulate_sources
    from lam_platform.simulation.world import WorldConfig

    wd = Workdir.at(workdir)
    sources = Path(sources).resolve() if sources else default_sources(wd)
    if wd.contains(sources):
        raise click.BadParameter(
            "raw tables hold raw customer ids: write them outside the workdir", param_hint="--sources"
        )
    try:
        result = simulate_sources(
            wd, WorldConfig(n_customers=customers, seed=seed), _pseudonymizer(None), sources, force
        )
    except WorkdirInUse as err:
        raise click.UsageError(str(err)) from None
    _emit(result, as_json)


@main.command()
@new_workdir_option
@click.option("--force", is_flag=True, help="Replace an existing lam.yaml with the template.")
def init(workdir: str, force: bool) -> None:
    """Write a commented WORKDIR/lam.yaml template: declare your event tables, customers and consent,
    campaign log, catalogue, targets and call-list rules there, then run `lam ingest`."""
    from lam_platform.data.platform_config import write_template

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
    reports = ingest_sources(wd, _pseudonymizer(wd), channel_path)
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
    _emit(
        materialize_step(Workdir.at(workdir), max_len, profile_path, incremental, _clock(as_of), switch_online_store),
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
    from lam_platform.data.ingest import read_raw
    from lam_platform.features.store import open_store
    from lam_platform.features.streaming import push_events

    wd = Workdir.at(workdir)
    table = read_raw(events_path)  # CSV as text (an id 000042 stays 000042), Parquet as typed
    _emit(push_events(wd, open_store(wd), table, _pseudonymizer(wd), source=str(events_path)), as_json)


@main.command()
@workdir_option
@config_option
@as_of_option
@json_option
def pretrain(workdir: str, config: str | None, as_of: str | None, as_json: bool) -> None:
    """Pretrain the LAM's next-action head with Ray Train.

    Reads the events before --as-of of customers who may be trained on (consent per lam.yaml); writes a
    new model artifact WORKDIR/artifacts/lam-v<N>/ (backbone, heads/next_action.pt, tokenizer, model
    card) and Ray results under WORKDIR/ray_results/.
    """
    from lam_platform.orchestration.pipeline import pretrain_step

    _emit(pretrain_step(Workdir.at(workdir), _job_config(config), _clock(as_of)), as_json)


@main.command()
@workdir_option
@config_option
@click.option(
    "--artifact",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Artifact to fine-tune (default: the latest pretrained one under WORKDIR/artifacts).",
)
@click.option(
    "--target", default=None, help="An event-derived target of lam.yaml (default: the campaign-response head)."
)
@as_of_option
@json_option
def finetune(
    workdir: str, config: str | None, artifact: Path | None, target: str | None, as_of: str | None, as_json: bool
) -> None:
    """Fine-tune a head with Ray Train: campaign response, or an event-derived target (--target NAME).

    Campaign response: the contacts before --as-of whose outcome is known then, with profiles point-in-time
    from Feast and sequences before each contact. Target: labels from the cut-off grid, each mature at
    --as-of. Writes heads/<head>.pt into the artifact.
    """
    from lam_platform.orchestration.pipeline import finetune_step

    _emit(finetune_step(Workdir.at(workdir), _job_config(config), artifact, _clock(as_of), target), as_json)


@main.command()
@workdir_option
@click.option("--capacity", type=int, default=None, help="Calls to place (default: 5% of customers).")
@click.option(
    "--artifact",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Artifact to score with (default: the newest with the head scored).",
)
@click.option("--target", default=None, help="Score this event-derived target of lam.yaml instead of campaigns.")
@as_of_option
@json_option
def score(
    workdir: str, capacity: int | None, artifact: Path | None, target: str | None, as_of: str | None, as_json: bool
) -> None:
    """Score customers from the Feast online store: the call list, or a target's probabilities.

    Campaigns: every customer the call-list rules of lam.yaml allow (consent, cool-down, already
    converted); writes WORKDIR/outputs/call_list.parquet and .csv (ranked by uplift, one campaign per
    customer) and WORKDIR/outputs/scores.parquet. --target NAME: writes WORKDIR/outputs/targets/NAME.parquet.
    """
    from lam_platform.campaigns.scoring import score as score_customers
    from lam_platform.campaigns.scoring import score_target

    wd = Workdir.at(workdir)
    if target is not None:
        _emit(score_target(wd, target, _clock(as_of), artifact), as_json)
    else:
        _emit(score_customers(wd, _clock(as_of), capacity, artifact), as_json)


@main.command()
@workdir_option
@click.option("--seed", default=0, show_default=True, help="Seed of the random policy.")
@json_option
def summary(workdir: str, seed: int, as_json: bool) -> None:
    """Compare the order rate of the LAM's call list with random, legacy-segment, LightGBM and oracle lists.

    Reads the call list and the simulator's ground truth; writes WORKDIR/outputs/summary.json.
    """
    from lam_platform.orchestration.demo import summary_step
    from lam_platform.simulation.evaluation import format_table

    table, result = summary_step(Workdir.at(workdir), seed)
    click.echo(format_table(table))
    if as_json:
        click.echo(json.dumps(result))


@main.command()
@workdir_option
@click.option(
    "--customer",
    "customers",
    multiple=True,
    required=True,
    help="Customer pseudonym, as stored in the platform (repeatable).",
)
@click.option("--steps", default=5, show_default=True, help="Events to generate per customer.")
@click.option("--temperature", default=1.0, show_default=True, help="Softmax temperature; 0 = most likely event.")
@click.option("--seed", default=0, show_default=True, help="Sampling seed.")
@click.option(
    "--artifact",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Artifact (default: the latest; its next-action head, or its base version's).",
)
@json_option
def rollout(
    workdir: str,
    customers: tuple[str, ...],
    steps: int,
    temperature: float,
    seed: int,
    artifact: Path | None,
    as_json: bool,
) -> None:
    """Sample what each customer will do next: STEPS events from the pretrained LAM.

    Starts from the customer's sequence in the Feast online store; each generated event (channel, object,
    action) is fed back in after the predicted time gap. Amounts and durations are not generated.
    """
    from lam_platform.campaigns.scoring import rollout_customers

    frame = rollout_customers(Workdir.at(workdir), list(customers), steps, temperature, seed, artifact)
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso"))
    else:
        click.echo(frame.to_string(index=False))


@main.command()
@workdir_option
@as_of_option
@config_option
@click.option("--target", "targets", multiple=True, help="Evaluate only this target of lam.yaml (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of the LightGBM baseline (and the simulator's trial).")
@click.option("--exclude-seen", is_flag=True, help="Rank next objects without those already in the history.")
@click.option("--capacity", type=int, default=None, help="Simulated worlds: calls in each policy's list.")
@click.option(
    "--artifact",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Simulated worlds: the campaign-response artifact (default: the newest).",
)
@json_option
def evaluate(
    workdir: str,
    as_of: str | None,
    config: str | None,
    targets: tuple[str, ...],
    seed: int,
    exclude_seen: bool,
    capacity: int | None,
    artifact: Path | None,
    as_json: bool,
) -> None:
    """Evaluate on what happened after --as-of T (no ground truth needed).

    Per target of lam.yaml: AUC, precision in the top 10% and calibration of the LAM (the newest head
    trained as of T or earlier) against LightGBM on aggregates and a recency rule, over every customer
    with events before T; with a campaign log, the campaign head against LightGBM on the contacts after T
    (AUC, calibration, Qini, AUUC); next-item HR@10 / NDCG@10 of each customer's first event after T. On a
    simulated world without --as-of: the ground-truth evaluation (campaign response, uplift, policy
    table; needs `lam score`). Writes WORKDIR/outputs/evaluation/. With --json the last line holds
    {"as_of", "targets": [{"target", "as_of", "customers", "base_rate", "models": {"lam", ...}}], "campaigns",
    "skipped", "next_item"}.
    """
    from lam_platform.data.targets import CutoffGrid
    from lam_platform.evaluation.holdout import evaluate_holdout
    from lam_platform.ray_jobs.job_config import JobConfig

    wd = Workdir.at(workdir)
    if as_of is None and wd.world_json.exists():
        import pandas as pd

        from lam_platform.simulation.evaluation import format_table
        from lam_platform.simulation.evaluation_report import evaluate as run_evaluation

        result = run_evaluation(wd, artifact, capacity, seed, exclude_seen)
        details = json.loads(Path(result["evaluation"]).read_text())
        click.echo(format_table(pd.DataFrame(details["policies"])))
        _emit(result, as_json)
        return
    grid = CutoffGrid.from_dict(JobConfig.load(_job_config(config)).target)
    result = evaluate_holdout(wd, _clock(as_of), grid, list(targets) or None, seed, exclude_seen)
    for entry in result["targets"]:
        click.echo(
            f"{entry['target']} at {entry['as_of']}: {entry['customers']} customers, base rate {entry['base_rate']}"
        )
        for model, values in entry["models"].items():
            click.echo(f"  {model:<20} " + "  ".join(f"{k} {v}" for k, v in values.items()))
    if result["campaigns"]:
        c = result["campaigns"]
        click.echo(
            f"campaigns after {c['as_of']}: {c['contacts']} contacts ({c['controls']} controls), observed "
            f"uplift {c['observed_uplift']}"
        )
        for model, values in c["models"].items():
            click.echo(f"  {model:<20} " + "  ".join(f"{k} {v}" for k, v in values.items()))
    for entry in result["skipped"]:
        click.echo(f"{entry['target']}: not evaluated: {entry['reason']}")
    if result["next_item"]:
        n = result["next_item"]
        click.echo(
            f"next item ({n['customers']} customers): LAM HR@10 {n['lam']['hr@10']:.4f} NDCG@10 "
            f"{n['lam']['ndcg@10']:.4f}; popularity HR@10 {n['popularity']['hr@10']:.4f}"
        )
    if as_json:
        click.echo(json.dumps(result, default=str))


@main.command()
@workdir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, help="Port to bind.")
@click.option("--as-of", default=None, help="A fixed service clock, with zone (default: the wall clock).")
@click.option("--max-customers", default=1000, show_default=True, help="Most customer ids in one request.")
@click.option("--max-body-bytes", default=1_000_000, show_default=True, help="Largest request body.")
@click.option("--poll-seconds", default=5.0, show_default=True, help="How often to look for a new model version.")
@click.option(
    "--artifact",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Serve this version only (default: the newest, reloaded when a newer one appears).",
)
def serve(
    workdir: str,
    host: str,
    port: int,
    as_of: str | None,
    max_customers: int,
    max_body_bytes: int,
    poll_seconds: float,
    artifact: Path | None,
) -> None:
    """Serve /v1/score and /v1/call-list over the Feast online store (FastAPI + uvicorn).

    The call-list rules (consent, cool-down, already converted) and contact slots come from lam.yaml;
    /v1/score returns campaign scores and the probability of each target head the model has.

    Bearer tokens come from LAM_API_TOKENS (a JSON list of {name, token, scopes}) or the file named by
    LAM_API_TOKENS_FILE; scopes are "score" and "call-list". /healthz, /readyz and /metrics (Prometheus)
    need no token; the OpenAPI spec is at /openapi.json.
    """
    import uvicorn

    from lam_platform.service.app import ServiceSettings, create_app
    from lam_platform.service.auth import TokenConfigError, load_tokens

    try:
        tokens = load_tokens()
    except TokenConfigError as error:
        raise click.UsageError(str(error)) from None
    wd = Workdir.at(workdir)
    clock = _clock(as_of) if as_of else None
    settings = ServiceSettings.from_workdir(
        wd,
        max_customers=max_customers,
        max_body_bytes=max_body_bytes,
        poll_seconds=poll_seconds,
        clock=clock,
        model_path=artifact,
    )
    uvicorn.run(create_app(settings, tokens), host=host, port=port, log_level="info")


@main.command()
@workdir_option
@click.option("--examples", default=3, show_default=True, help="Customers from the top of the call list to show.")
@click.option("--seed", default=0, show_default=True, help="Seed of the held-out trial and the random policy.")
@as_of_option
@config_option
@json_option
def report(workdir: str, examples: int, seed: int, as_of: str | None, config: str | None, as_json: bool) -> None:
    """Write WORKDIR/outputs/report/index.html: data, training curves, evaluation, call-list examples.

    On a simulated world (without --as-of): the ground-truth evaluation and policy table (after `lam score`).
    On your own data, with --as-of T: what happened after T per target and for the campaign log (as
    `lam evaluate --as-of T`), and the call list with its fairness where `lam score` built one. The page and
    its PNG plots need no server.
    """
    from lam_platform.governance.fairness import call_list_fairness

    wd = Workdir.at(workdir)
    has_call_list = wd.call_list.exists()
    if as_of is None:
        import pandas as pd

        from lam_platform.evaluation.report import build_report
        from lam_platform.simulation.evaluation import format_table
        from lam_platform.simulation.evaluation_report import evaluate as run_evaluation

        if not wd.world_json.exists():
            raise click.UsageError(
                f"{wd.root} is not a simulated world: pass --as-of T to report on what "
                "happened after T (the evaluation of `lam evaluate --as-of T`)"
            )
        if not has_call_list:
            raise click.UsageError(f"no call list in {wd.outputs}: run `lam score --workdir {wd.root}` first")
        evaluation = run_evaluation(wd, seed=seed)
        policies = pd.DataFrame(json.loads(Path(evaluation["evaluation"]).read_text())["policies"])
        fairness = call_list_fairness(wd, observed=_ground_truth_observer(wd))
        _emit(build_report(wd, evaluation, fairness, format_table(policies), examples), as_json)
        return
    from lam_platform.data.targets import CutoffGrid
    from lam_platform.evaluation.holdout import evaluate_holdout
    from lam_platform.evaluation.report import build_holdout_report
    from lam_platform.ray_jobs.job_config import JobConfig

    grid = CutoffGrid.from_dict(JobConfig.load(_job_config(config)).target)
    holdout = evaluate_holdout(wd, _clock(as_of), grid, seed=seed)
    fairness = call_list_fairness(wd) if has_call_list else None
    _emit(build_holdout_report(wd, holdout, fairness, examples), as_json)


@main.command("close-loop")
@workdir_option
@click.option(
    "--outcomes",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Campaign log of the calls made (Parquet or CSV).",
)
@config_option
@json_option
def close_loop_command(workdir: str, outcomes: Path, config: str | None, as_json: bool) -> None:
    """Ingest the outcomes of a called list and update the campaign head from its last version (Ray job).

    Needs customer_id, event_timestamp, campaign_id, offer, method, treatment (1 called, 0 held out) and
    outcome (0/1); policy, outcome_value and propensity are kept when present. Bad rows go to
    WORKDIR/quarantine with their reason. Writes a new model version whose card holds the head's metrics on
    these outcomes before and after; `lam score` and `lam serve` use it from then on.
    """
    from lam_platform.orchestration.closed_loop import close_loop
    from lam_platform.ray_jobs.job_config import JobConfig

    _emit(close_loop(Workdir.at(workdir), outcomes, JobConfig.load(_job_config(config))), as_json)


@main.command("simulate-loop")
@workdir_option
@click.option("--rounds", default=3, show_default=True, help="Rounds of call -> outcome -> update.")
@click.option("--capacity", default=100, show_default=True, help="Calls per round.")
@click.option("--holdout", default=0.2, show_default=True, help="Share of each list held out as controls.")
@click.option("--seed", default=0, show_default=True, help="Seed of the hold-out draw and the outcomes.")
@config_option
@json_option
def simulate_loop(
    workdir: str, rounds: int, capacity: int, holdout: float, seed: int, config: str | None, as_json: bool
) -> None:
    """On a simulated world: call the list, draw outcomes from the ground truth, `close-loop`, repeat.

    Writes WORKDIR/outputs/closed_loop/rounds.json (order rate per round), shown by `lam report`.
    """
    from lam_platform.orchestration.simulated_loop import simulate_rounds
    from lam_platform.ray_jobs.job_config import JobConfig

    table = simulate_rounds(
        Workdir.at(workdir), JobConfig.load(_job_config(config)), rounds, capacity, holdout, seed=seed
    )
    if not as_json:
        click.echo(table.to_string(index=False))
    _emit({"rounds": table.to_dict("records")}, as_json)


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

    start = _aware_time(since, "--since")
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
        wd, FairnessSettings(calibration_margin=calibration_margin), observed=_ground_truth_observer(wd)
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


@main.command("benchmark-public")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["movielens", "sasrec"]),
    required=True,
    help="movielens: ratings.dat (UserID::MovieID::Rating::Timestamp); sasrec: `user item` lines.",
)
@click.option(
    "--path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The data file (not shipped: download it yourself).",
)
@click.option(
    "--config",
    default=None,
    metavar="NAME|PATH",
    help="Job YAML with model and pretrain sections: a file or a shipped config (default: ml1m).",
)
@click.option("--exclude-seen", is_flag=True, help="Rank targets without items already in the user's history.")
@json_option
def benchmark_public(file_format: str, path: Path, config: str | None, exclude_seen: bool, as_json: bool) -> None:
    """Leave-one-out next-item benchmark on a public dataset: HR@k and NDCG@k with full ranking.

    The last item of each user is the test target, the second-last the validation target; the LAM's
    next-action system trains on the rest (one process; GPU and bf16 if present).
    """
    from lam_platform.evaluation.public_benchmarks import read_movielens, read_sasrec, run_leave_one_out
    from lam_platform.ray_jobs.job_config import JobConfig

    job = JobConfig.load(_job_config(config or "ml1m"))
    events = (read_movielens if file_format == "movielens" else read_sasrec)(path)
    _emit(run_leave_one_out(events, job.model, job.pretrain.model_dump(), job.seed, exclude_seen), as_json)


@main.command()
@new_workdir_option
@click.option("--customers", default=3000, show_default=True, help="Number of simulated customers.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the world.")
@click.option("--max-len", default=64, show_default=True, help="Events per customer in the sequence view.")
@config_option
@json_option
def demo(workdir: str, customers: int, seed: int, max_len: int, config: str | None, as_json: bool) -> None:
    """Run the whole platform on the simulator: simulate, ingest, materialize, pretrain, fine-tune, score, summary.

    The simulator writes raw source tables (beside WORKDIR, in WORKDIR-sources) and WORKDIR/lam.yaml; from
    `lam ingest` on, every step is the one a team's own data takes, run --as-of the world's scoring time.
    Creates WORKDIR (default ./lam-demo) and everything the single steps write there.
    """
    from lam_platform.campaigns.scoring import score as score_customers
    from lam_platform.orchestration import demo as demo_steps
    from lam_platform.orchestration import pipeline
    from lam_platform.simulation.evaluation import format_table

    wd = Workdir.at(workdir)
    job = _job_config(config)
    started = time.time()
    pseudonymizer = _pseudonymizer(None, ephemeral_ok=True)  # one key for the simulator's sources and their ingestion
    clock = {}
    steps = [
        (
            "simulate (raw source tables + lam.yaml)",
            lambda: demo_steps.simulate_step(wd, customers, seed, pseudonymizer),
        ),
        ("ingest (events, customers, campaign log)", lambda: pipeline.ingest_step(wd, pseudonymizer)),
        (
            "feast apply + materialize",
            lambda: pipeline.materialize_step(wd, max_len, as_of=clock.setdefault("as_of", demo_steps.world_clock(wd))),
        ),
        ("pretrain (Ray Train)", lambda: pipeline.pretrain_step(wd, job, clock["as_of"])),
        ("fine-tune (Ray Train)", lambda: pipeline.finetune_step(wd, job, as_of=clock["as_of"])),
        ("score (Feast online store)", lambda: score_customers(wd, clock["as_of"])),
    ]
    results = {}
    for i, (title, step) in enumerate(steps, start=1):
        click.secho(f"\n== [{i}/{len(steps) + 1}] {title} ==", bold=True)
        t0 = time.time()
        results[title] = step()
        _emit(results[title], as_json=False)
        click.echo(f"  ({time.time() - t0:.1f}s)")
    click.secho(
        f"\n== [{len(steps) + 1}/{len(steps) + 1}] summary: order rate of the top-K call list, held-out "
        "period (simulator ground truth) ==",
        bold=True,
    )
    table, result = demo_steps.summary_step(wd)
    click.echo(format_table(table))
    wall = time.time() - started
    click.echo(f"\ndone in {wall:.0f}s; call list: {results['score (Feast online store)']['call_list_csv']}")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "workdir": str(wd.root),
                    "wall_seconds": round(wall, 1),
                    "paths": {
                        "events": str(wd.events),
                        "feature_repo": str(wd.feature_repo),
                        "artifact": results["fine-tune (Ray Train)"]["artifact"],
                        "call_list": results["score (Feast online store)"]["call_list"],
                        "call_list_csv": results["score (Feast online store)"]["call_list_csv"],
                        "summary": str(wd.outputs / "summary.json"),
                    },
                    **result,
                }
            )
        )


from lam_platform.cli import governance as governance_cli  # noqa: E402,F401  (registers consent, forget, purge, export-call-list)

if __name__ == "__main__":
    from lam_platform.cli.main import (
        main as lam,  # run as a script, this file is __main__: commands live on lam_platform.cli.main
    )

    sys.exit(lam())
