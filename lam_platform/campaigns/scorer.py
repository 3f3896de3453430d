"""The scorers: a model version's heads applied to customers' sequences read from the online store.

`CampaignScorer` gives P(order | called) and P(order | not called) per campaign of the catalogue and their
difference (uplift), with the events that drove it; `TargetScorer` the probability of an event-derived
target. The batch list (`lam_platform/campaigns/scoring.py`), the API (`lam_platform/service/`) and the
Ray Data scorer (`lam_platform/ray_jobs/score.py`) all score through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lam_platform.campaigns.explanations import DrivingEvent, driving_events, reason
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.lightning_modules.attribution import integrated_gradients
from lam_platform.lightning_modules.batches import CampaignContext, CustomerContext, EventBatch, dataclass_from_arrays

MAX_CACHED_SLOT_SETS = 64  # distinct (campaigns, times) candidate sets a scorer keeps encoded
EXPLAIN_BATCH = 64  # customers per integrated-gradients batch (x steps sequences with gradients)


def online_rows_to_sequences(rows: pd.DataFrame, list_types: dict[str, pa.DataType]) -> pa.Table:
    """Online-store rows (lists, or None for unknown customers) as a table of the list columns a
    tokenizer reads (`EventTokenizer.list_types`)."""
    return pa.table(
        {
            name: pa.array([v if isinstance(v, (list, np.ndarray)) else [] for v in rows[name]], kind)
            for name, kind in list_types.items()
        }
    )


def online_event_batch(tokenizer, rows: pd.DataFrame) -> tuple[EventBatch, np.ndarray]:
    """Online rows as an EventBatch, and each row's last event time (us since the epoch)."""
    arrays = tokenizer.encode_events(online_rows_to_sequences(rows, tokenizer.list_types()))
    last_event_us = arrays.pop("last_event_us")
    return dataclass_from_arrays(EventBatch, arrays), last_event_us


@dataclass
class CampaignScorer:
    """A loaded model (backbone + campaign-response head + tokenizer) that scores candidate campaigns."""

    artifact: ModelArtifact
    backbone: torch.nn.Module | None = None  # share one loaded backbone between scorers of a version
    head: torch.nn.Module | None = None  # a head trained in this process (else the artifact's)

    def __post_init__(self) -> None:
        self.tokenizer = self.artifact.tokenizer
        self.backbone = self.backbone or self.artifact.load_backbone()
        if self.head is None:
            self.head = self.artifact.load_head("campaign_response")
        self._slots: dict[tuple, dict[str, np.ndarray]] = {}  # contact_slots, by (campaigns, times)

    @torch.no_grad()
    def score(
        self,
        rows: pd.DataFrame,
        contact_time: pd.Timestamp | list[pd.Timestamp],
        campaigns: list[tuple[str, str]],
        batch_size: int = 1024,
    ) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift for every (customer row, campaign, contact time).

        contact_time: when the calls would be placed (one time, or candidate time slots); its hour, weekday
        and gap since each customer's last event are campaign features, so it should look like the contact
        times the head was trained on.
        """
        times = contact_time if isinstance(contact_time, list) else [contact_time]
        frames = []
        for chunk in _chunks(rows, batch_size):
            state, last_event_us = self.encode(chunk)
            frames.append(self.score_state(chunk, state, last_event_us, campaigns, times))
        return pd.concat(frames, ignore_index=True)

    @torch.no_grad()
    def score_contacts(
        self, rows: pd.DataFrame, offers, methods, contact_times, batch_size: int = 1024
    ) -> pd.DataFrame:
        """P(order | called), P(order | not called) and uplift of each row's own (offer, method, contact time):
        a logged contact scored as it happened (rows: its sequence and profile before the contact)."""
        offers, methods = np.asarray(offers, dtype=object), np.asarray(methods, dtype=object)
        times = pd.Series(pd.to_datetime(np.asarray(contact_times), utc=True))
        frames = []
        for lo in range(0, len(rows), batch_size):
            chunk = rows.iloc[lo : lo + batch_size]
            state, last_event_us = self.encode(chunk)
            part = slice(lo, lo + len(chunk))
            context = self.tokenizer.encode_campaigns(
                chunk, offers[part], methods[part], times.iloc[part].reset_index(drop=True), last_event_us
            )
            out = self.head(state, dataclass_from_arrays(CampaignContext, context))
            frames.append(
                pd.DataFrame(
                    {
                        "p_order_if_called": torch.sigmoid(out.logit_contacted).numpy(),
                        "p_order_if_not_called": torch.sigmoid(out.logit_not_contacted).numpy(),
                        "uplift": out.uplift.numpy(),
                    }
                )
            )
        return (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["p_order_if_called", "p_order_if_not_called", "uplift"])
        )

    def event_batch(self, rows: pd.DataFrame) -> tuple[EventBatch, np.ndarray]:
        return online_event_batch(self.tokenizer, rows)

    def encode(self, rows: pd.DataFrame, backbone: torch.nn.Module | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """What the heads read of each row (`BackboneOutput.customer`: the state after its latest event and its recent
        activity), by this scorer's backbone unless given one."""
        events, last_event_us = self.event_batch(rows)
        return (backbone or self.backbone)(events).customer, last_event_us

    def contexts(
        self, rows: pd.DataFrame, last_event_us: np.ndarray, campaigns: list[tuple[str, str]], times: list[pd.Timestamp]
    ) -> CampaignContext:
        """The CampaignContext of every (campaign, time, row) triple, in that nesting order (C * T * B rows).

        The offer and method ids, contact hour and weekday are encoded once per distinct candidate set
        (`contact_slots`, by the `encode_contact_slots` that training's `encode_contacts` is built from); per call
        only the rows' profiles and the gaps from each row's latest event to each contact time.
        """
        n = len(rows)
        slots = self.contact_slots(campaigns, times)
        row = np.tile(np.arange(n), len(slots["contact_us"]))
        arrays = {k: np.repeat(v, n) for k, v in slots.items()}
        contact_us = arrays.pop("contact_us")
        arrays["log_hours_since_last_event"] = self.tokenizer.log_hours_since(contact_us, last_event_us[row])
        arrays.update({k: v[row] for k, v in self.tokenizer.encode_profiles(rows).items()})
        return dataclass_from_arrays(CampaignContext, arrays)

    def contact_slots(self, campaigns: list[tuple[str, str]], times: list[pd.Timestamp]) -> dict[str, np.ndarray]:
        """The customer-free context of each (campaign, time) pair, campaign-major, and its time (`contact_us`),
        computed once per candidate set: the API asks for the same campaigns and slots request after request."""
        key = (tuple((offer, method) for offer, method in campaigns), tuple(_micros(times).tolist()))
        cached = self._slots.get(key)
        if cached is None:
            t = len(times)
            contact_us = np.tile(_micros(times), len(campaigns))
            offers = np.repeat(np.array([o for o, _ in campaigns], dtype=object), t)
            methods = np.repeat(np.array([m for _, m in campaigns], dtype=object), t)
            cached = {**self.tokenizer.encode_contact_slots(offers, methods, contact_us), "contact_us": contact_us}
            for array in cached.values():  # shared by every later call: nobody may write into it
                array.flags.writeable = False
            if len(self._slots) >= MAX_CACHED_SLOT_SETS:  # a clock that moves makes new sets: start again
                self._slots.clear()
            self._slots[key] = cached
        return cached

    @torch.inference_mode()
    def score_grid(
        self,
        rows: pd.DataFrame,
        state: torch.Tensor,
        last_event_us: np.ndarray,
        campaigns: list[tuple[str, str]],
        times: list[pd.Timestamp],
    ) -> dict[str, np.ndarray]:
        """P(order | called), P(order | not called) and uplift as (campaigns, times, rows) arrays, one head call."""
        shape = (len(campaigns), len(times), len(rows))
        if 0 in shape:  # nothing to score: the customer side below would have no profile rows to read
            return {k: np.zeros(shape, np.float32) for k in ("p_order_if_called", "p_order_if_not_called", "uplift")}
        context = self.contexts(rows, last_event_us, campaigns, times)
        # The customer side once per row (the context's first len(rows) profiles are the rows in order), then
        # repeated over the (campaign, time) pairs: the same numbers as the head over every repeated row.
        customer = self.head.customer(state, context.profile[: len(rows)])
        out = self.head.respond(customer.repeat(len(campaigns) * len(times), 1), context)
        return {
            "p_order_if_called": torch.sigmoid(out.logit_contacted).numpy().reshape(shape),
            "p_order_if_not_called": torch.sigmoid(out.logit_not_contacted).numpy().reshape(shape),
            "uplift": out.uplift.numpy().reshape(shape),
        }

    def explain(
        self, rows: pd.DataFrame, best: pd.DataFrame, as_of: pd.Timestamp, steps: int = 32, top: int = 3
    ) -> list[tuple[list[DrivingEvent], str]]:
        """Driving events and a reason per row for the uplift of that row's campaign in `best` (aligned rows:
        offer, method, contact_time), by integrated gradients over the event embeddings."""
        explained = []
        # Integrated gradients runs steps x rows sequences with gradients at once: a call list of thousands
        # in one batch would hold tens of GiB of activations, so the rows go EXPLAIN_BATCH at a time.
        for lo in range(0, len(rows), EXPLAIN_BATCH):
            chunk, chunk_best = rows.iloc[lo : lo + EXPLAIN_BATCH], best.iloc[lo : lo + EXPLAIN_BATCH]
            events, last_event_us = self.event_batch(chunk)
            context = self.tokenizer.encode_campaigns(
                chunk,
                chunk_best.offer.to_numpy(),
                chunk_best.method.to_numpy(),
                pd.Series(pd.to_datetime(chunk_best.contact_time.to_numpy(), utc=True)),
                last_event_us,
            )
            attributions, _ = integrated_gradients(
                self.backbone, self.head, events, dataclass_from_arrays(CampaignContext, context), steps
            )
            for i in range(len(chunk)):
                row = chunk.iloc[i]
                driving = driving_events(row, attributions[i].numpy(), top)
                explained.append((driving, reason(row, driving, as_of)))
        return explained

    def score_state(
        self,
        rows: pd.DataFrame,
        state: torch.Tensor,
        last_event_us: np.ndarray,
        campaigns: list[tuple[str, str]],
        times: list[pd.Timestamp],
    ) -> pd.DataFrame:
        """Scores of every (row, campaign, time) as a long table (campaign-major), from precomputed states."""
        grid = self.score_grid(rows, state, last_event_us, campaigns, times)
        n, c, t = len(rows), len(campaigns), len(times)
        return pd.DataFrame(
            {
                "customer_id": np.tile(rows.customer_id.to_numpy(), c * t),
                "offer": np.repeat([o for o, _ in campaigns], t * n),
                "method": np.repeat([m for _, m in campaigns], t * n),
                "contact_time": pd.DatetimeIndex(
                    np.tile(np.repeat(_micros(times), n), c).astype("datetime64[us]"), tz="UTC"
                ),
                **{k: v.reshape(-1) for k, v in grid.items()},
            }
        )


def _chunks(rows: pd.DataFrame, size: int):
    """Consecutive row chunks of at most `size`, each indexed from 0: one model call per chunk bounds memory."""
    for lo in range(0, len(rows), size):
        yield rows.iloc[lo : lo + size].reset_index(drop=True)


def _micros(times: list[pd.Timestamp]) -> np.ndarray:
    """Times (with zone) as microseconds since the epoch, UTC."""
    return np.array([pd.Timestamp(t).tz_convert("UTC").value // 1000 for t in times], dtype=np.int64)


@dataclass
class TargetScorer:
    """A loaded model's target heads (lam.yaml `targets`): P(target within its horizon | customer at t)."""

    artifact: ModelArtifact
    names: list[str]
    backbone: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        self.tokenizer = self.artifact.tokenizer
        self.backbone = self.backbone or self.artifact.load_backbone()
        self.heads = {name: self.artifact.load_head(name) for name in self.names}

    @torch.inference_mode()
    def score_state(
        self, rows: pd.DataFrame, state: torch.Tensor, last_event_us: np.ndarray, as_of: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        """Each target's probability per row at `as_of`, from precomputed customer states."""
        at_us = np.full(len(rows), _micros([as_of])[0], dtype=np.int64)
        context = dataclass_from_arrays(CustomerContext, self.tokenizer.encode_customers(rows, at_us, last_event_us))
        return {name: torch.sigmoid(head(state, context)).numpy() for name, head in self.heads.items()}

    @torch.no_grad()
    def score(self, rows: pd.DataFrame, as_of: pd.Timestamp, batch_size: int = 1024) -> pd.DataFrame:
        frames = []
        for chunk in _chunks(rows, batch_size):
            events, last_event_us = online_event_batch(self.tokenizer, chunk)
            scores = self.score_state(chunk, self.backbone(events).customer, last_event_us, as_of)
            frames.append(pd.DataFrame({"customer_id": chunk.customer_id.to_numpy(), **scores}))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["customer_id", *self.names])
