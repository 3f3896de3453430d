"""`lam pretrain`, `lam finetune`, `lam close-loop`: the commands that train the LAM with Ray Train.

Each writes a new model version under WORKDIR/artifacts/; --config names the Ray job YAML.
"""

from __future__ import annotations

from pathlib import Path

import click

from lam_platform.cli.group import main
from lam_platform.cli.options import (
    as_of_clock,
    as_of_option,
    config_option,
    emit,
    job_config_file,
    json_option,
    workdir_option,
)
from lam_platform.core.workdir import Workdir


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

    emit(pretrain_step(Workdir.at(workdir), job_config_file(config), as_of_clock(as_of)), as_json)


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

    emit(finetune_step(Workdir.at(workdir), job_config_file(config), artifact, as_of_clock(as_of), target), as_json)


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

    emit(close_loop(Workdir.at(workdir), outcomes, JobConfig.load(job_config_file(config))), as_json)
