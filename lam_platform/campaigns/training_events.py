"""The events a training job learns from, one customer shard at a time: no process holds the event table.

`training_events_by_shard(workdir, until, customers)` splits the event table by a hash of the customer
(`EventShards`, into a temporary folder beside the training sets); `TrainingEvents.each()` then yields each
shard's events strictly before `until` of the given customers, sorted by customer and time. A table of at most
SHARD_EVENTS events is one shard, read whole as `training_events` reads it, so small workdirs train exactly
as before; a larger one holds about SHARD_EVENTS events at a time, whatever the number of customers.

The fine-tuning sets are built here too, a shard at a time: the campaign set (`build_finetune_set`: each
contact goes with its customer's shard; the tokenized rows wait on disk and are merged back into the log's
order, weighted over the whole log) and a target's set (`build_target_set`: each shard's customers on the cut-off grid).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.campaigns.training_data import (
    campaign_part,
    campaign_set_counts,
    inverse_propensity_weights,
    ordered_campaign_log,
    target_arrays,
    trained_on,
)
from lam_platform.campaigns.training_shards import ROWS_PER_SHARD, ArraySpill, TrainingShardWriter
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import campaign_outcomes
from lam_platform.data.platform_config import Campaigns
from lam_platform.data.targets import CutoffGrid, Target, no_target_examples, target_examples
from lam_platform.features.sequences_ray import shard_of
from lam_platform.features.snapshots import EventShards, ShardFolder
from lam_platform.lightning_modules.tokenizer import EventTokenizer


@dataclass
class TrainingEvents:
    """The event table split by customer, read back a shard at a time with the training filter applied."""

    table: Path  # the event table
    folder: Path  # where its shards are written
    until: pd.Timestamp
    customers: pa.Array  # who may be trained on
    shard_events: int | None = None  # events per shard (None: SHARD_EVENTS)
    rows: int = 0  # events yielded by the latest complete pass of `each`

    @functools.cached_property
    def shards(self) -> EventShards:
        """The table split by customer on first use: a job that stops on its other inputs (no campaign log, an
        unknown target) does not pay the pass that writes the table by customer."""
        return EventShards.split(self.table, self.folder, shard_events=self.shard_events)

    def each(self) -> Iterator[pa.Table]:
        """Each shard's events strictly before `until` of the customers, sorted by customer and time."""
        rows = 0
        for events, _ in self.shards.each([]):
            part = events.filter(trained_on(events, self.until, self.customers))
            if self.shards.folder is not None:  # a shard file is in write order; the whole table comes sorted
                part = part.sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])
            rows += part.num_rows
            yield part
        self.rows = rows

    def each_with(self, customer_ids: Sequence[str]) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """(each shard's training events, which of `customer_ids` fall in that shard): rows of a frame keyed by
        customer (a campaign log, the customers of a target) go with the events of their customer."""
        ids = np.asarray(customer_ids, dtype=object)
        shard = shard_of(ids, self.shards.num_shards) if self.shards.folder is not None else np.zeros(len(ids), int)
        for k, part in enumerate(self.each()):
            yield part, shard == k


@contextlib.contextmanager
def training_events_by_shard(
    workdir: Workdir, until: pd.Timestamp, customers: list[str], shard_events: int | None = None
) -> Iterator[TrainingEvents]:
    """The training events of `customers` before `until`, split by customer when first read, for as long as the
    block runs (`shard_events` per shard, default SHARD_EVENTS); the shards are deleted after it."""
    with ShardFolder(workdir.training / "events") as folder:
        yield TrainingEvents(workdir.events, Path(folder), until, pa.array(customers, pa.string()), shard_events)


def build_finetune_set(
    store,
    events: TrainingEvents,
    campaign_log: pd.DataFrame,
    spec: Campaigns | None,
    as_of: pd.Timestamp,
    tokenizer: EventTokenizer,
    path: Path,
    eligible: list[str],
    consent_mode: str = "ledger",
) -> dict:
    """The point-in-time campaign set (contacts whose outcome is known at `as_of`), built one customer shard
    at a time and written as shards in `path` in the log's order; returns its counts.

    Each shard's tokenized rows wait on disk (`ArraySpill`, sorted by their log row), with only their log
    columns kept in memory: the weights need the whole log, and the set is then merged into the log's order a
    shard file at a time (at a million customers the tokenized contacts are several GiB)."""
    log = campaign_log.reset_index(drop=True).assign(_row=lambda f: np.arange(len(f)))
    logs, dropped = [], 0
    with ShardFolder(path) as folder:
        spill = ArraySpill(Path(folder))
        for part, mine in events.each_with(log.customer_id):
            rows = campaign_outcomes(log[mine], spec, part, as_of)  # outcomes derived from the customer's own events
            if len(rows):
                arrays, part_log, part_dropped = campaign_part(store, part, rows, tokenizer, eligible, consent_mode)
                by_row = np.argsort(part_log._row.to_numpy(), kind="stable")
                spill.add({name: values[by_row] for name, values in arrays.items()})
                logs.append(part_log.iloc[by_row])
                dropped += part_dropped
        if not logs:
            raise UserError(
                f"no contact in the campaign log before {as_of.isoformat()} with a known outcome: check --as-of "
                "(an outcome derived from events is known once its horizon has passed)"
            )
        order, ordered = ordered_campaign_log(logs)
        if ordered.empty:
            raise UserError(
                f"every contact in the campaign log before {as_of.isoformat()} is of a customer who may not be "
                f"trained on ({dropped} excluded without consent): nothing is left to fine-tune on"
            )
        weight = inverse_propensity_weights(ordered)
        _write_in_log_order(spill, [len(part_log) for part_log in logs], order, weight, path)
    return campaign_set_counts(ordered, weight, dropped)


def _write_in_log_order(spill: ArraySpill, sizes: list[int], order: np.ndarray, weight: np.ndarray, path: Path) -> None:
    """The spilled parts as training shards in `order` (positions in the parts' concatenation), with `weight`.
    Each part is sorted as `order` is, so a shard's rows from one part are a contiguous range of it."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    part_of = np.searchsorted(starts, order, side="right") - 1
    with TrainingShardWriter(path, ROWS_PER_SHARD) as writer:
        for lo in range(0, len(order), ROWS_PER_SHARD):
            chunk, parts = order[lo : lo + ROWS_PER_SHARD], part_of[lo : lo + ROWS_PER_SHARD]
            pieces, position, read = [], np.empty(len(chunk), np.int64), 0
            for k in np.unique(parts):
                here = parts == k
                first, last = int(chunk[here].min()), int(chunk[here].max())
                pieces.append(spill.rows(k, first - starts[k], last + 1 - starts[k]))
                position[here] = read + chunk[here] - first
                read += last + 1 - first
            arrays = {name: np.concatenate([piece[name] for piece in pieces])[position] for name in pieces[0]}
            writer.write({**arrays, "weight": weight[lo : lo + ROWS_PER_SHARD]})


def build_target_set(
    store,
    events: TrainingEvents,
    customers: list[str],
    as_of: pd.Timestamp,
    target: Target,
    grid: CutoffGrid,
    tokenizer: EventTokenizer,
    path: Path,
) -> dict:
    """The target's training set (mature labels only, see lam_platform.data.targets), built one customer shard
    at a time and written as shards in `path`; its counts."""
    rows = positives = 0
    cutoffs: set[str] = set()
    with TrainingShardWriter(path) as writer:
        for part, mine in events.each_with(customers):
            shard_customers = [c for c, here in zip(customers, mine) if here]
            examples = target_examples(part, shard_customers, as_of, target, grid, required=False)
            if len(examples):
                writer.write(target_arrays(store, part, examples, tokenizer))
                rows, positives = rows + len(examples), positives + int(examples.label.sum())
                cutoffs.update(t.isoformat() for t in examples.event_timestamp.unique())
        if rows == 0:
            raise no_target_examples(as_of, target, grid)
    base_rate = float(np.float32(positives) / np.float32(rows))  # float32, as the labels' mean was
    return {"rows": rows, "positives": positives, "base_rate": round(base_rate, 4), "cutoffs": sorted(cutoffs)}
