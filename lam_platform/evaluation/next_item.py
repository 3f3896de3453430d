"""Next-item ranking: where each customer's next object ranks among all objects, and the popularity floor.

Full ranking over every object in the tokenizer's vocabulary (nothing excluded unless asked), reported as
HR@k / NDCG@k; `lam evaluate` runs it on each customer's first event at or after T, and the public
benchmarks on the leave-one-out targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lam_platform.data.events import TIMESTAMP
from lam_platform.evaluation import metrics
from lam_platform.features.sequences import build_sequences
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.lightning_modules.batches import EventBatch, dataclass_from_arrays


def first_events_after(events: pa.Table, customers: list[str], start: pd.Timestamp) -> pd.DataFrame:
    """Each customer's first event at or after `start` (customer_id, event_timestamp, channel, object, action)."""
    later = events.filter(
        pc.and_(
            pc.greater_equal(events.column("event_timestamp"), pa.scalar(start, TIMESTAMP)),
            pc.is_in(events.column("customer_id"), value_set=pa.array(customers, pa.string())),
        )
    )
    frame = later.select(["customer_id", "event_timestamp", "channel", "object", "action"]).to_pandas()
    return (
        frame.sort_values(["customer_id", "event_timestamp"], kind="stable")
        .drop_duplicates("customer_id")
        .reset_index(drop=True)
    )


@torch.no_grad()
def rank_next_objects(
    backbone,
    head,
    tokenizer,
    events: pa.Table,
    targets: pd.DataFrame,
    exclude_seen: bool = False,
    batch_size: int = 512,
) -> np.ndarray:
    """0-based rank of each target object among all objects, given the customer's events strictly before `as_of`.

    targets: customer_id, as_of, object. Full ranking over every object in the vocabulary; pad and the
    out-of-vocabulary bucket are not items, so a target the tokenizer never saw counts as ranked last
    (a miss at every k). exclude_seen drops objects already in the input history from the ranking.
    """
    device = next(backbone.parameters()).device
    n_items = len(tokenizer.vocabularies["objects"])
    sequences = build_sequences(
        events, pa.array(targets.customer_id, pa.string()), pa.array(targets.as_of, TIMESTAMP), tokenizer.max_len
    )
    target_ids = tokenizer.encode_tokens("objects", targets.object)
    ranks = []
    for lo in range(0, len(targets), batch_size):
        arrays = tokenizer.encode_events(sequences.slice(lo, batch_size))
        arrays.pop("last_event_us")
        batch = dataclass_from_arrays(EventBatch, {k: torch.as_tensor(v).to(device) for k, v in arrays.items()})
        scores = head.object_logits(backbone(batch).state).float().cpu().numpy()
        exclude = np.zeros(scores.shape, bool)
        if exclude_seen:
            np.put_along_axis(exclude, arrays["categorical"][..., 1], True, axis=1)
        exclude[:, :2] = True  # pad and out-of-vocabulary are not items
        t = target_ids[lo : lo + batch_size]
        ranks.append(np.where(t >= 2, metrics.target_ranks(scores, t, exclude), n_items))
    return np.concatenate(ranks) if ranks else np.array([], np.int64)


def popularity_ranks(training_objects: pd.Series, targets: pd.Series, tokenizer) -> np.ndarray:
    """Ranks of the targets under 'most frequent objects in training first': the floor any model must beat."""
    ids = tokenizer.encode_tokens("objects", training_objects)
    counts = np.bincount(ids, minlength=len(tokenizer.vocabularies["objects"]) + 2).astype(float)
    counts[:2] = -np.inf
    target = tokenizer.encode_tokens("objects", targets)
    return np.where(target >= 2, (counts[None, :] > counts[target][:, None]).sum(1), len(counts) - 2)


def next_item_evaluation(
    artifact: ModelArtifact,
    events: pa.Table,
    customers: list[str],
    as_of: pd.Timestamp,
    exclude_seen: bool = False,
    ks: tuple[int, ...] = (1, 5, 10, 20),
) -> dict:
    """HR@k / NDCG@k of each customer's first object at or after `as_of`, full ranking, vs popularity."""
    targets = first_events_after(events, customers, as_of).assign(as_of=as_of)
    pretrained = artifact.with_head("next_action")  # a fine-tuned backbone keeps no next-action head
    tokenizer = artifact.tokenizer  # read from disk once (the property parses tokenizer.json on each access)
    ranks = rank_next_objects(
        pretrained.load_backbone(), pretrained.load_head("next_action"), tokenizer, events, targets, exclude_seen
    )
    training = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(as_of, TIMESTAMP)))
    popular = popularity_ranks(training.column("object").to_pandas(), targets.object, tokenizer)
    return {
        "model_version": pretrained.path.name,
        "customers": len(targets),
        "items": len(tokenizer.vocabularies["objects"]),
        "exclude_seen": exclude_seen,
        "unseen_targets": int((tokenizer.encode_tokens("objects", targets.object) < 2).sum()),
        "lam": metrics.ranking_metrics(ranks, ks),
        "popularity": metrics.ranking_metrics(popular, ks),
    }
