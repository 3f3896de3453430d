"""`lam simulate`, `lam simulate-loop`, `lam demo`: the commands that run the platform on the simulator.

The simulator is a source system: it writes raw tables and lam.yaml as a team would, and keeps its ground
truth (the customers' latent wants) under WORKDIR/world/ for evaluation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import (
    config_option,
    emit,
    job_config_file,
    json_option,
    new_workdir_option,
    platform_pseudonymizer,
    workdir_option,
)
from lam_platform.core.workdir import Workdir

# The demo's steps whose results it prints at the end.
FINETUNE_STEP = "fine-tune (Ray Train)"
SCORE_STEP = "score (Feast online store)"


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
            wd, WorldConfig(n_customers=customers, seed=seed), platform_pseudonymizer(None), sources, force
        )
    except WorkdirInUse as err:
        raise click.UsageError(str(err)) from None
    emit(result, as_json)


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
        Workdir.at(workdir), JobConfig.load(job_config_file(config)), rounds, capacity, holdout, seed=seed
    )
    if not as_json:
        click.echo(table.to_string(index=False))
    emit({"rounds": table.to_dict("records")}, as_json)


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
    from lam_platform.orchestration import demo as demo_steps
    from lam_platform.simulation.evaluation import format_table

    wd = Workdir.at(workdir)
    job = job_config_file(config)
    started = time.time()
    # one key for the simulator's sources and their ingestion
    pseudonymizer = platform_pseudonymizer(None, ephemeral_ok=True)
    steps = _demo_steps(wd, customers, seed, max_len, job, pseudonymizer)
    results = _run_steps(steps, total=len(steps) + 1)
    click.secho(
        f"\n== [{len(steps) + 1}/{len(steps) + 1}] summary: order rate of the top-K call list, held-out "
        "period (simulator ground truth) ==",
        bold=True,
    )
    table, result = demo_steps.summary_step(wd)
    click.echo(format_table(table))
    wall = time.time() - started
    click.echo(f"\ndone in {wall:.0f}s; call list: {results[SCORE_STEP]['call_list_csv']}")
    if as_json:
        paths = _demo_paths(wd, results)
        click.echo(json.dumps({"workdir": str(wd.root), "wall_seconds": round(wall, 1), "paths": paths, **result}))


def _demo_steps(
    wd: Workdir, customers: int, seed: int, max_len: int, job: Path, pseudonymizer
) -> list[tuple[str, Callable[[], dict]]]:
    """The demo's steps in order, each a title and a call. From materialize on they run as of the world's
    scoring time, which exists once the simulator has written the world."""
    from lam_platform.campaigns.scoring import score as score_customers
    from lam_platform.orchestration import demo as demo_steps
    from lam_platform.orchestration import pipeline

    clock = {}
    return [
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
        (FINETUNE_STEP, lambda: pipeline.finetune_step(wd, job, as_of=clock["as_of"])),
        (SCORE_STEP, lambda: score_customers(wd, clock["as_of"])),
    ]


def _run_steps(steps: list[tuple[str, Callable[[], dict]]], total: int) -> dict[str, dict]:
    """Run the steps in order, each under a numbered heading, then its results and wall time."""
    results = {}
    for i, (title, step) in enumerate(steps, start=1):
        click.secho(f"\n== [{i}/{total}] {title} ==", bold=True)
        t0 = time.time()
        results[title] = step()
        emit(results[title], as_json=False)
        click.echo(f"  ({time.time() - t0:.1f}s)")
    return results


def _demo_paths(wd: Workdir, results: dict[str, dict]) -> dict[str, str]:
    """Where the demo left what a team would look at next."""
    return {
        "events": str(wd.events),
        "feature_repo": str(wd.feature_repo),
        "artifact": results[FINETUNE_STEP]["artifact"],
        "call_list": results[SCORE_STEP]["call_list"],
        "call_list_csv": results[SCORE_STEP]["call_list_csv"],
        "summary": str(wd.outputs / "summary.json"),
    }
