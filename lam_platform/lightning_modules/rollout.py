"""Rollout: sample a customer's next k events from the pretrained LAM ("what will they do next").

Autoregressive: predict the next event from the history, sample its channel, object and action from
the head's softmax (at a temperature), place it after the predicted time gap, append it to the
history, repeat. Amounts and durations are not predicted, so generated events carry them as missing.

    from lam_platform.lightning_modules.rollout import rollout
    future = rollout(artifact.load_backbone(), artifact.load_head("next_action"), events, steps=5)
    tokenizer.decode_events(future)   # a DataFrame: row, step, channel, object, action, hours_after
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lam_platform.lightning_modules.batches import EventBatch
from lam_platform.lightning_modules.model import LAMBackbone, NextActionHead


@dataclass
class RolledOutEvents:
    categorical: Tensor  # (B, K, 3) int64: sampled channel, object, action ids, oldest first
    hours_after: Tensor  # (B, K) float32: hours after the customer's latest real event (cumulative)


def _sample(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """(B, V) -> (B,) ids; pad (0) is never sampled; temperature 0 = the most likely id."""
    logits = logits.clone()
    logits[:, 0] = float("-inf")
    if temperature <= 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator).squeeze(-1)


def _append(events: EventBatch, categorical: Tensor, gap_hours: Tensor) -> EventBatch:
    """Shift every sequence left by one and put the new event (B, 3) at the last position, gap_hours later."""
    last_hours = events.day[:, -1].to(torch.float64) * 24 + events.hour[:, -1] + 0.5  # hour resolution
    at = last_hours + gap_hours.to(torch.float64)
    day = torch.floor(at / 24).to(torch.int64)

    def push(old: Tensor, new: Tensor) -> Tensor:
        return torch.cat([old[:, 1:], new.unsqueeze(1).to(old.dtype)], dim=1)

    return replace(
        events,
        categorical=push(events.categorical, categorical),
        attributes=push(events.attributes, torch.zeros_like(events.attributes[:, -1])),  # generated: unknown
        numeric=push(events.numeric, torch.zeros_like(events.numeric[:, -1])),
        numeric_missing=push(events.numeric_missing, torch.ones_like(events.numeric_missing[:, -1])),
        log_gap_hours=push(events.log_gap_hours, torch.log1p(gap_hours)),
        hour=push(events.hour, torch.floor(at).to(torch.int64) % 24),
        weekday=push(events.weekday, (day + 3) % 7),  # 1970-01-01 was a Thursday
        day=push(events.day, day),
        mask=push(events.mask, torch.ones_like(events.mask[:, -1])),
    )


@torch.no_grad()
def rollout(
    backbone: LAMBackbone,
    head: NextActionHead,
    events: EventBatch,
    steps: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> RolledOutEvents:
    """Sample `steps` future events for every customer in `events` (right-aligned, as the tokenizer makes them)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sampled, hours = [], []
    elapsed = torch.zeros(events.mask.shape[0])
    for _ in range(steps):
        hidden = backbone(events).state  # (B, d): after the latest event
        out = head(hidden)
        ids = torch.stack(
            [
                _sample(out.channel_logits, temperature, generator),
                _sample(head.object_logits(hidden), temperature, generator),
                _sample(out.action_logits, temperature, generator),
            ],
            dim=-1,
        )  # (B, 3)
        gap = torch.expm1(out.log_gap_hours).clamp(min=0.0)  # (B,) hours: the predicted (median-like) gap
        elapsed = elapsed + gap
        sampled.append(ids)
        hours.append(elapsed.clone())
        events = _append(events, ids, gap)
    return RolledOutEvents(torch.stack(sampled, dim=1), torch.stack(hours, dim=1).float())
