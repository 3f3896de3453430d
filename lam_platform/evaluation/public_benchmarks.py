"""Public next-item benchmarks as 4W1H events, and the leave-one-out protocol published tables use.

Formats:
- MovieLens `ratings.dat`: `UserID::MovieID::Rating::Timestamp` (ML-1M). Each rating is an event:
  who = the user, when = the timestamp, where = "web", what = the movie, how = "rate", amount = the rating.
- SASRec text (`user item` per line, each user's lines in time order, as in the SASRec/HSTU repos). The
  format has order but no time: event k of a user is placed k hours after a fixed epoch.

Protocol (SASRec, Kang & McAuley 2018; HSTU, Zhai et al. 2024): per user, the last item is the test
target, the second-last the validation target, everything before is training data; the model ranks
the target among all items (full ranking, nothing excluded unless asked) given every earlier event.
Users with fewer than 3 events are dropped, as in those repos.

Run: `lam benchmark-public --format movielens --path ml-1m/ratings.dat` (the data is not shipped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lam_platform.core import progress
from lam_platform.data.events import TIMESTAMP, EventAttributes
from lam_platform.evaluation import metrics
from lam_platform.evaluation.next_item import popularity_ranks, rank_next_objects
from lam_platform.features.sequences import build_sequences
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.systems import NextActionSystem
from lam_platform.lightning_modules.tokenizer import EventTokenizer

FORMATS = ("movielens", "sasrec")
SASREC_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _parse(path: Path, separator: str, n_fields: int, what: str) -> list[list[str]]:
    rows = []
    with open(path, encoding="latin-1") as lines:  # ML-1M's movies.dat is latin-1; ratings are ASCII
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.strip().split(separator) if separator else line.split()
            if len(fields) != n_fields or not all(f.strip().lstrip("-").isdigit() for f in fields):
                raise ValueError(f"{path}:{number}: expected {what}, got {line.strip()!r}")
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def read_movielens(path: Path) -> pa.Table:
    """ratings.dat -> events. Ratings in the same second keep their file order (1 microsecond apart)."""
    rows = np.array(_parse(Path(path), "::", 4, "UserID::MovieID::Rating::Timestamp"), dtype=np.int64)
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"]).reset_index(names="line")
    frame = frame.sort_values(["user", "ts", "line"], kind="stable")
    tie = frame.groupby(["user", "ts"]).cumcount().to_numpy()
    stamps = pd.to_datetime(frame.ts.to_numpy(), unit="s", utc=True) + pd.to_timedelta(tie, unit="us")
    return _events(frame.user.to_numpy(), frame.item.to_numpy(), stamps, frame.rating.to_numpy(float), "rate")


def read_sasrec(path: Path) -> pa.Table:
    """`user item` lines (time-ordered per user) -> events, event k of a user k hours after SASREC_EPOCH."""
    rows = np.array(_parse(Path(path), "", 2, "`user item`"), dtype=np.int64)
    frame = pd.DataFrame(rows, columns=["user", "item"])
    frame = frame.sort_values("user", kind="stable")  # keeps each user's lines in file order
    position = frame.groupby("user").cumcount().to_numpy()
    stamps = SASREC_EPOCH + pd.to_timedelta(position, unit="h")
    return _events(frame.user.to_numpy(), frame.item.to_numpy(), stamps, np.full(len(frame), np.nan), "interact")


def _events(
    users: np.ndarray, items: np.ndarray, stamps: pd.DatetimeIndex, amounts: np.ndarray, action: str
) -> pa.Table:
    n = len(users)
    customer = pa.array([f"u{u}" for u in users], pa.string())
    return pa.table(
        {
            "event_id": pa.array([f"e{i}" for i in range(n)], pa.string()),
            "customer_id": customer,
            "event_timestamp": pa.array(stamps, TIMESTAMP),
            "channel": pa.array(["web"] * n, pa.string()),
            "object": pa.array([f"item:{i}" for i in items], pa.string()),
            "action": pa.array([action] * n, pa.string()),
            "amount": pa.array(amounts, pa.float64(), from_pandas=True),
        },
        schema=EventAttributes(numeric=("amount",)).schema(),
    ).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


@dataclass
class LeaveOneOutSplit:
    train: pa.Table  # every user's events but the last two
    validation: pd.DataFrame  # customer_id, event_timestamp, object: the second-last event
    test: pd.DataFrame  # customer_id, event_timestamp, object: the last event


def leave_one_out(events: pa.Table, min_events: int = 3) -> LeaveOneOutSplit:
    """Split events sorted by (customer, time) into training events, validation and test targets."""
    frame = events.select(["customer_id", "event_timestamp", "object"]).to_pandas()
    from_end = frame.groupby("customer_id").cumcount(ascending=False).to_numpy()  # 0 = the last event
    size = frame.groupby("customer_id").customer_id.transform("size").to_numpy()
    keep = size >= min_events
    return LeaveOneOutSplit(
        train=events.filter(pa.array(keep & (from_end >= 2))),
        validation=frame[keep & (from_end == 1)].reset_index(drop=True),
        test=frame[keep & (from_end == 0)].reset_index(drop=True),
    )


class EpochLines(pl.Callback):
    """One line per epoch (loss, elapsed time) for a run with no bar: a log shows a long run moving."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        loss = trainer.callback_metrics.get("train_loss")
        progress.say(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: "
            f"train_loss {float(loss) if loss is not None else float('nan'):.4f}, "
            f"{time.time() - self.started:.0f} s"
        )


def run_leave_one_out(
    events: pa.Table, model: dict, train: dict, seed: int = 7, exclude_seen: bool = False, work: Path | None = None
) -> dict:
    """Fit the LAM's next-action system on the training split; HR@k / NDCG@k on validation and test."""
    split = leave_one_out(events)
    tokenizer = _fit_tokenizer(split.train, int(model.get("max_len", 50)))
    config = LAMConfig.from_dict({**model, **tokenizer.config_sizes()})
    system, examples, seconds = _pretrain(split.train, tokenizer, config, train, seed, work)
    ks = (1, 5, 10, 20)
    system.eval()

    def ranks(targets: pd.DataFrame) -> np.ndarray:
        targets = targets.rename(columns={"event_timestamp": "as_of"})
        return rank_next_objects(system.backbone, system.next_action, tokenizer, events, targets, exclude_seen)

    return {
        "users": len(split.test),
        "items": len(tokenizer.vocabularies["objects"]),
        "train_events": split.train.num_rows,
        "training_examples": examples,
        "train_seconds": round(seconds, 1),
        "exclude_seen": exclude_seen,
        "validation": metrics.ranking_metrics(ranks(split.validation), ks),
        "test": metrics.ranking_metrics(ranks(split.test), ks),
        "popularity_test": metrics.ranking_metrics(
            popularity_ranks(split.train.column("object").to_pandas(), split.test.object, tokenizer), ks
        ),
    }


def _fit_tokenizer(train_events: pa.Table, max_len: int) -> EventTokenizer:
    """A tokenizer fitted on every training event of every user (objects seen once count), without profiles."""
    users = pc.unique(train_events.column("customer_id"))
    after_all = pc.max(train_events.column("event_timestamp")).as_py() + pd.Timedelta(days=1)
    snapshot = build_sequences(train_events, users, pa.array([after_all] * len(users), TIMESTAMP), max_len=10**6)
    return EventTokenizer.fit(snapshot, pd.DataFrame(), ["-"], ["-"], max_len, min_count=1)  # no profiles


def _pretrain(
    train_events: pa.Table, tokenizer: EventTokenizer, config: LAMConfig, train: dict, seed: int, work: Path | None
) -> tuple[NextActionSystem, int, float]:
    """Fit the next-action system on the training events; returns it, its training examples and seconds."""
    import tempfile

    from torch.utils.data import DataLoader

    from lam_platform.campaigns.training_data import build_pretrain_set
    from lam_platform.campaigns.training_shards import ShardDataset

    pl.seed_everything(seed, verbose=False)
    with tempfile.TemporaryDirectory(dir=work) as folder:
        data = Path(folder) / "train"
        examples = build_pretrain_set(
            train_events,
            tokenizer,
            int(train.get("samples_per_customer", 8)),
            config.recent_events,
            seed,
            data,
            train.get("target_sampling", "random"),
        )
        system = NextActionSystem(config, learning_rate=float(train.get("learning_rate", 1e-3)))
        trainer = _trainer(int(train.get("epochs", 10)), train.get("gradient_clip_norm"))
        started = time.time()
        trainer.fit(system, DataLoader(ShardDataset(data), batch_size=int(train.get("batch_size", 128)), shuffle=True))
        seconds = time.time() - started
    return system, examples, seconds


def _trainer(epochs: int, gradient_clip_norm: float | None = None) -> pl.Trainer:
    # Lightning's bar (loss, ETA) for a person at a terminal; a line per epoch in a log.
    bar = progress.interactive()
    return pl.Trainer(
        max_epochs=epochs,
        gradient_clip_val=gradient_clip_norm,  # the job's pretrain section, as the Ray worker clips (None: not)
        gradient_clip_algorithm="norm",
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=bar,
        enable_model_summary=False,
        callbacks=[] if bar else [EpochLines()],
        precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
    )
