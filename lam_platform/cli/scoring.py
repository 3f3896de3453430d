"""`lam score`, `lam rollout`, `lam serve`: the commands that use a trained LAM, in batch or online.

All three read customers' sequences from the Feast online store.
"""

from __future__ import annotations

from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import as_of_clock, as_of_option, emit, json_option, workdir_option
from lam_platform.core.workdir import Workdir


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
        emit(score_target(wd, target, as_of_clock(as_of), artifact), as_json)
    else:
        emit(score_customers(wd, as_of_clock(as_of), capacity, artifact), as_json)


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
@click.option(
    "--state-cache",
    type=click.IntRange(min=0),
    default=50_000,
    show_default=True,
    help="Customer states kept per model version (a state is 2.6 KiB with the demo model; its key holds the "
    "customer's sequence): a customer asked for again with the same events skips the Transformer. 0 turns the "
    "cache off.",
)
@click.option(
    "--warm-states/--no-warm-states",
    default=True,
    show_default=True,
    help="Compute the states of the customers the service scores (as many as --state-cache holds) when a "
    "model version loads, so a first request skips the Transformer too; start-up and hot reloads take longer.",
)
@click.option(
    "--torch-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Torch threads per request; requests run in parallel on their own threads.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="uvicorn's line per request on stderr. Off by default: the audit log (WORKDIR/audit/api.jsonl) records every "
    "/v1 request with its token name, customer count and status, /metrics counts them all, and the line costs a "
    "one-customer request about 5% of its time.",
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
    state_cache: int,
    warm_states: bool,
    torch_threads: int,
    access_log: bool,
) -> None:
    """Serve /v1/score and /v1/call-list over the Feast online store (FastAPI + uvicorn).

    The call-list rules (consent, cool-down, already converted) and contact slots come from lam.yaml;
    /v1/score returns campaign scores and the probability of each target head the model has.

    Bearer tokens come from LAM_API_TOKENS (a JSON list of {name, token, scopes}) or the file named by
    LAM_API_TOKENS_FILE; scopes are "score" and "call-list". /healthz, /readyz and /metrics (Prometheus)
    need no token; the OpenAPI spec is at /openapi.json.
    """
    import uvicorn

    from lam_platform.service.app import create_app
    from lam_platform.service.auth import TokenConfigError, load_tokens
    from lam_platform.service.settings import ServiceSettings

    try:
        tokens = load_tokens()
    except TokenConfigError as error:
        raise click.UsageError(str(error)) from None
    wd = Workdir.at(workdir)
    clock = as_of_clock(as_of) if as_of else None
    settings = ServiceSettings.from_workdir(
        wd,
        max_customers=max_customers,
        max_body_bytes=max_body_bytes,
        poll_seconds=poll_seconds,
        clock=clock,
        model_path=artifact,
        state_cache=state_cache,
        warm_states=warm_states,
        torch_threads=torch_threads,
    )
    uvicorn.run(create_app(settings, tokens), host=host, port=port, log_level="info", access_log=access_log)
