"""A plain SASRec, the reference the LAM's next-item head is held against, and the side-by-side run.

Run:  python benchmarks/sasrec_reference.py --data retail [--epochs 20] [--max-len 50] [--exclude-seen]
      python benchmarks/sasrec_reference.py --data pattern [--users 2000]

Both models see the same events, the same leave-one-out split
(`lam_platform.evaluation.public_benchmarks.leave_one_out`: each user's last event is the test target,
the second-last the validation target), the same size (d=64, 2 layers, 2 heads, --max-len events) and
the same full ranking over every training item; HR@10 and NDCG@10
come from the same `lam_platform.evaluation.metrics.ranking_metrics`. The LAM runs in flat mode through
`run_leave_one_out` (what `lam benchmark-public` runs); SASRec is below, in plain PyTorch (Kang & McAuley
2018, with a full-softmax loss on every position). Data:
- retail: the Online Retail II log in ../shared/data (one event per invoice line of a known customer);
- pattern: generated sequences with a known order (each item's successor is fixed, 10% noise), where a
  sequence model should reach HR@10 near 0.9 and popularity stays near 10/items.
The issue's goal: the flat LAM within 5% of SASRec's HR@10, at 1.2x its training time per target or better.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from lam_platform.data.events import TIMESTAMP, EventAttributes
from lam_platform.evaluation import metrics
from lam_platform.evaluation.public_benchmarks import leave_one_out, run_leave_one_out

RETAIL = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail_ii" / "online_retail_ii_2009_2010.parquet"
)


class SASRec(nn.Module):
    """Item and position embeddings, causal pre-norm Transformer blocks, scores tied to the item table."""

    def __init__(self, n_items: int, max_len: int, d: int = 64, heads: int = 2, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)  # 0 pads; items are 1..n_items
        self.position = nn.Embedding(max_len, d)
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm, self.dropout = nn.LayerNorm(d), nn.Dropout(dropout)
        self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), 1))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) item ids, left-padded -> (B, L, n_items + 1) scores of the next item at every position."""
        length = seq.shape[1]
        x = self.item(seq) * math.sqrt(self.item.embedding_dim) + self.position.weight[-length:]
        x = x * (seq > 0).unsqueeze(-1)  # pads carry nothing forward
        hidden = self.norm(self.blocks(self.dropout(x), mask=self.causal[:length, :length]))
        return hidden @ self.item.weight.T


def _histories(train: pa.Table) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Each user's training items in time order, as ids 1..n (the vocabulary: items seen in training)."""
    frame = train.select(["customer_id", "object"]).to_pandas()
    vocabulary = {item: i + 1 for i, item in enumerate(sorted(frame.object.unique()))}
    ids = frame.object.map(vocabulary)
    return {user: list(items) for user, items in ids.groupby(frame.customer_id.to_numpy(), sort=False)}, vocabulary


def _left_pad(rows: list[list[int]], length: int) -> torch.Tensor:
    out = np.zeros((len(rows), length), np.int64)
    for i, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[i, -len(row) :] = row
    return torch.as_tensor(out)


def train_sasrec(histories: dict[str, list[int]], n_items: int, args) -> tuple[SASRec, float, int]:
    """Every position of every user's last max_len+1 training items, full softmax; (model, seconds, targets)."""
    torch.manual_seed(args.seed)
    model = SASRec(n_items, args.max_len, args.d_model, args.heads, args.layers, args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.98))
    sequences = [h for h in histories.values() if len(h) >= 2]
    inputs, targets = (
        _left_pad([s[:-1] for s in sequences], args.max_len),
        _left_pad([s[1:] for s in sequences], args.max_len),
    )
    generator, started, trained = torch.Generator().manual_seed(args.seed), time.time(), 0
    model.train()
    for _ in range(args.epochs):
        for batch in torch.randperm(len(sequences), generator=generator).split(args.batch_size):
            scores = model(inputs[batch])
            loss = nn.functional.cross_entropy(scores.flatten(0, 1), targets[batch].flatten(), ignore_index=0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trained += int((targets[batch] > 0).sum())
    return model, time.time() - started, trained


@torch.no_grad()
def sasrec_ranks(
    model: SASRec,
    histories: dict,
    vocabulary: dict,
    targets: pd.DataFrame,
    extra: pd.DataFrame | None,
    max_len: int,
    exclude_seen: bool,
) -> np.ndarray:
    """0-based rank of each target among all training items (an unseen target is a miss), given the user's
    training items plus, for the test targets, the validation item."""
    model.eval()
    added = dict(zip(extra.customer_id, extra.object.map(vocabulary))) if extra is not None else {}
    rows = [
        histories.get(u, []) + ([int(added[u])] if u in added and not pd.isna(added[u]) else [])
        for u in targets.customer_id
    ]
    wanted = targets.object.map(vocabulary).fillna(-1).astype(int).to_numpy()
    ranks = []
    for lo in range(0, len(rows), 512):
        seq = _left_pad(rows[lo : lo + 512], max_len)
        scores = model(seq)[:, -1].numpy()
        exclude = np.zeros(scores.shape, bool)
        exclude[:, 0] = True
        if exclude_seen:
            np.put_along_axis(exclude, seq.numpy(), True, axis=1)
        t = wanted[lo : lo + 512]
        ranks.append(np.where(t > 0, metrics.target_ranks(scores, np.maximum(t, 0), exclude), len(vocabulary)))
    return np.concatenate(ranks)


def _events(users, items, stamps) -> pa.Table:
    n = len(users)
    return pa.table(
        {
            "event_id": pa.array([f"e{i}" for i in range(n)], pa.string()),
            "customer_id": pa.array([f"u{u}" for u in users], pa.string()),
            "event_timestamp": pa.array(stamps, TIMESTAMP),
            "channel": pa.array(["shop"] * n, pa.string()),
            "object": pa.array([f"item:{i}" for i in items], pa.string()),
            "action": pa.array(["purchase"] * n, pa.string()),
        },
        schema=EventAttributes().schema(),
    ).sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])


def retail_events() -> pa.Table:
    """One event per invoice line of a known customer; lines of one invoice keep their file order (1 µs apart)."""
    frame = pd.read_parquet(RETAIL, columns=["Customer ID", "StockCode", "InvoiceDate"]).dropna(subset=["Customer ID"])
    frame = frame.assign(stamp=pd.to_datetime(frame.InvoiceDate).dt.tz_localize("UTC")).reset_index(names="line")
    frame = frame.sort_values(["Customer ID", "stamp", "line"], kind="stable")
    tie = frame.groupby(["Customer ID", "stamp"]).cumcount().to_numpy()
    return _events(
        frame["Customer ID"].astype(int).to_numpy(),
        frame.StockCode.to_numpy(),
        pd.DatetimeIndex(frame.stamp) + pd.to_timedelta(tie, unit="us"),
    )


def pattern_events(users: int, items: int = 500, length: int = 40, noise: float = 0.1, seed: int = 7) -> pa.Table:
    """Each user walks a fixed successor map from a random start; with probability `noise` a step jumps anywhere."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(items)
    rows_u, rows_i = [], []
    for user in range(users):
        item = int(rng.integers(items))
        for _ in range(length):
            rows_u.append(user)
            rows_i.append(item)
            item = int(rng.integers(items)) if rng.random() < noise else int(successor[item])
    position = pd.Series(rows_u).groupby(rows_u).cumcount().to_numpy()
    return _events(
        np.array(rows_u), np.array(rows_i), pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(position, unit="h")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["retail", "pattern"], required=True)
    parser.add_argument("--users", type=int, default=2000, help="pattern: generated users")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lam-samples", type=int, default=8, help="LAM: target events sampled per user (random)")
    parser.add_argument(
        "--lam-sampling",
        choices=["random", "latest"],
        default="random",
        help="LAM: random targets per user, or each user's latest window once (as SASRec)",
    )
    parser.add_argument(
        "--lam-aux-weight",
        type=float,
        default=1.0,
        help="LAM: weight of the channel, action and gap losses next to the object loss",
    )
    parser.add_argument("--exclude-seen", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    events = retail_events() if args.data == "retail" else pattern_events(args.users)
    split = leave_one_out(events)
    histories, vocabulary = _histories(split.train)
    print(
        f"{args.data}: {split.train.num_rows:,} training events, {len(split.test):,} users, {len(vocabulary):,} items"
    )
    model, seconds, trained = train_sasrec(histories, len(vocabulary), args)
    ks = (1, 5, 10, 20)
    reference = {
        "train_seconds": seconds,
        "targets_trained": trained,
        "validation": metrics.ranking_metrics(
            sasrec_ranks(model, histories, vocabulary, split.validation, None, args.max_len, args.exclude_seen), ks
        ),
        "test": metrics.ranking_metrics(
            sasrec_ranks(model, histories, vocabulary, split.test, split.validation, args.max_len, args.exclude_seen),
            ks,
        ),
    }
    lam_model = {
        "max_len": args.max_len,
        "d_model": args.d_model,
        "n_heads": args.heads,
        "n_layers": args.layers,
        "dropout": args.dropout,
        "hierarchical": False,
        "recent_events": args.max_len,
        "max_windows": 1,
        "sampled_negatives": 0,
        "auxiliary_loss_weight": args.lam_aux_weight,
    }
    lam_train = {
        "samples_per_customer": args.lam_samples,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "target_sampling": args.lam_sampling,
    }
    lam = run_leave_one_out(events, lam_model, lam_train, args.seed, args.exclude_seen)
    print(f"{'model':12s} {'HR@10':>7s} {'NDCG@10':>8s} {'val HR@10':>9s} {'train s':>8s}")
    for name, result, train_s in (
        ("SASRec", reference, seconds),
        ("LAM flat", lam, lam["train_seconds"]),
        ("popularity", {"test": lam["popularity_test"], "validation": {}}, float("nan")),
    ):
        test, validation = result["test"], result["validation"]
        print(
            f"{name:12s} {test['hr@10']:7.4f} {test['ndcg@10']:8.4f} {validation.get('hr@10', float('nan')):9.4f} "
            f"{train_s:8.1f}"
        )
    ratio = lam["test"]["hr@10"] / max(reference["test"]["hr@10"], 1e-9)
    print(
        f"LAM flat / SASRec HR@10: {ratio:.2f}x (goal >= 0.95x); training time {lam['train_seconds'] / seconds:.2f}x "
        f"({lam['training_examples']:,} LAM examples x {args.max_len} positions against {trained:,} SASRec targets "
        "per run)"
    )


if __name__ == "__main__":
    main()
