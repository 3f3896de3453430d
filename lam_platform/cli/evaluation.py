"""`lam evaluate`, `lam report`, `lam summary`, `lam benchmark-public`: how good the LAM and its call list are.

On your own data the evaluation is what happened after --as-of T; on a simulated world, the simulator's
ground truth; on a public dataset, a leave-one-out next-item benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import (
    as_of_clock,
    as_of_option,
    config_option,
    emit,
    ground_truth_observer,
    job_config_file,
    json_option,
    workdir_option,
)
from lam_platform.core.workdir import Workdir


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
    wd = Workdir.at(workdir)
    if as_of is None and wd.world_json.exists():
        _evaluate_simulated_world(wd, artifact, capacity, seed, exclude_seen, as_json)
        return
    from lam_platform.evaluation.holdout import evaluate_holdout

    grid = _cutoff_grid(config)
    result = evaluate_holdout(wd, as_of_clock(as_of), grid, list(targets) or None, seed, exclude_seen)
    _echo_holdout(result)
    if as_json:
        click.echo(json.dumps(result, default=str))


def _cutoff_grid(config: str | None):
    """The cut-off grid of the targets, from the `target` section of the Ray job YAML --config names."""
    from lam_platform.data.targets import CutoffGrid
    from lam_platform.ray_jobs.job_config import JobConfig

    return CutoffGrid.from_dict(JobConfig.load(job_config_file(config)).target)


def _evaluate_simulated_world(
    wd: Workdir, artifact: Path | None, capacity: int | None, seed: int, exclude_seen: bool, as_json: bool
) -> None:
    """The ground-truth evaluation of a simulated world: its policy table, then the result paths."""
    import pandas as pd

    from lam_platform.simulation.evaluation import format_table
    from lam_platform.simulation.evaluation_report import evaluate as run_evaluation

    result = run_evaluation(wd, artifact, capacity, seed, exclude_seen)
    details = json.loads(Path(result["evaluation"]).read_text())
    click.echo(format_table(pd.DataFrame(details["policies"])))
    emit(result, as_json)


def _echo_models(models: dict) -> None:
    """One line per model: its name, then each metric and its value."""
    for model, values in models.items():
        click.echo(f"  {model:<20} " + "  ".join(f"{k} {v}" for k, v in values.items()))


def _echo_holdout(result: dict) -> None:
    """The hold-out evaluation as text: each target, the campaigns, what was skipped, the next item."""
    for entry in result["targets"]:
        click.echo(
            f"{entry['target']} at {entry['as_of']}: {entry['customers']} customers, base rate {entry['base_rate']}"
        )
        _echo_models(entry["models"])
    if result["campaigns"]:
        c = result["campaigns"]
        click.echo(
            f"campaigns after {c['as_of']}: {c['contacts']} contacts ({c['controls']} controls), observed "
            f"uplift {c['observed_uplift']}"
        )
        _echo_models(c["models"])
    for entry in result["skipped"]:
        click.echo(f"{entry['target']}: not evaluated: {entry['reason']}")
    if result["next_item"]:
        n = result["next_item"]
        click.echo(
            f"next item ({n['customers']} customers): LAM HR@10 {n['lam']['hr@10']:.4f} NDCG@10 "
            f"{n['lam']['ndcg@10']:.4f}; popularity HR@10 {n['popularity']['hr@10']:.4f}"
        )


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
        fairness = call_list_fairness(wd, observed=ground_truth_observer(wd))
        emit(build_report(wd, evaluation, fairness, format_table(policies), examples), as_json)
        return
    from lam_platform.evaluation.holdout import evaluate_holdout
    from lam_platform.evaluation.report import build_holdout_report

    grid = _cutoff_grid(config)
    holdout = evaluate_holdout(wd, as_of_clock(as_of), grid, seed=seed)
    fairness = call_list_fairness(wd) if has_call_list else None
    emit(build_holdout_report(wd, holdout, fairness, examples), as_json)


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

    job = JobConfig.load(job_config_file(config or "ml1m"))
    events = (read_movielens if file_format == "movielens" else read_sasrec)(path)
    emit(run_leave_one_out(events, job.model, job.pretrain.model_dump(), job.seed, exclude_seen), as_json)
