"""The LAM's customer state as features of another model (stacking): an informational comparison.

`lam_states` gives, for each (customer, time) pair, the pretrained backbone's state after that customer's
last events strictly before the time (`BackboneOutput.state`, d numbers). The pretrained backbone was trained
to predict next events, never on a campaign outcome as a target: its weights have seen the order events that
are some logged contacts' outcomes (as next events, like every other event before pretraining's as-of), but
each state reads only events before its own time, and no contact's label was fitted through it, as the
fine-tuned backbone's were. A tree given it (`AggregateUpliftModel(..., states=)`) sees what the LAM read from
the order of events. The policy comparison judges it on the held-out period, after every training event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lam_platform.campaigns.scorer import online_event_batch
from lam_platform.data.events import TIMESTAMP
from lam_platform.features.sequences import build_sequences
from lam_platform.lightning_modules.artifact import ModelArtifact

BATCH = 1024  # sequences per backbone call: bounds the activations, not the result


def lam_states(
    artifact: ModelArtifact, events: pa.Table, customers: list[str], times, batch_size: int = BATCH
) -> np.ndarray:
    """(len(customers), d) float32: the pretrained backbone of `artifact` (the version it was derived from when
    fine-tuning retrained the backbone) over each customer's last events strictly before its time (`times`:
    one per customer). A customer without events gets the state of an empty sequence."""
    times = list(times)
    if len(times) != len(customers):
        raise ValueError(f"{len(times)} times for {len(customers)} customers")
    pretrained = artifact.with_head("next_action")
    backbone, tokenizer = pretrained.load_backbone(), pretrained.tokenizer
    parts = [np.zeros((0, pretrained.config.d_model), np.float32)]
    for lo in range(0, len(customers), batch_size):
        hi = lo + batch_size
        at = pa.array(pd.to_datetime(pd.Series(times[lo:hi]), utc=True), TIMESTAMP)
        sequences = build_sequences(events, customers[lo:hi], at, tokenizer.max_len).to_pandas()
        batch, _ = online_event_batch(tokenizer, sequences)
        with torch.inference_mode():
            parts.append(backbone(batch).state.float().numpy())
    return np.concatenate(parts)
