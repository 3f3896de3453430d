"""Explanations for reviewers: the past events that drove a score, and one line that says why in words.

The attributions come from `lam_platform.lightning_modules.attribution.integrated_gradients` (per event, in uplift
units). The reason names the kinds of event with the largest positive attribution and how often the
customer did them in the 7 days before the scoring time, e.g.
"view page:plan_5g on web 3x in 7 days; purchase device:phone_a on shop 12 days ago".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RECENT_DAYS = 7


@dataclass(frozen=True)
class DrivingEvent:
    """One past event and its share of the score (attribution, in uplift units)."""

    timestamp: str
    channel: str
    action: str
    object: str
    attribution: float


def driving_events(row: pd.Series, attributions: np.ndarray, top: int = 3) -> list[DrivingEvent]:
    """The `top` events with the largest positive attribution, newest first among ties.

    row: one online-store row (list columns); attributions: (L,) for that row's right-aligned positions.
    """
    timestamps = row.event_timestamps if isinstance(row.event_timestamps, (list, np.ndarray)) else []
    n, length = len(timestamps), len(attributions)
    shown = min(n, length)  # the model saw the latest `length` events
    scores = attributions[length - shown :]
    order = sorted(range(shown), key=lambda j: (-scores[j], -j))
    picked = [j for j in order[:top] if scores[j] > 0]
    offset = n - shown
    return [
        DrivingEvent(
            timestamp=pd.Timestamp(timestamps[offset + j]).isoformat(),
            channel=str(row.channels[offset + j]),
            action=str(row.actions[offset + j]),
            object=str(row.objects[offset + j]),
            attribution=float(scores[j]),
        )
        for j in picked
    ]


def reason(row: pd.Series, events: list[DrivingEvent], as_of: pd.Timestamp) -> str:
    """One line in words from the driving events: up to two kinds of event, with counts or ages."""
    if not events:
        return "no single past event stands out; the score comes from the profile and the contact time"
    timestamps = pd.to_datetime(pd.Series(list(row.event_timestamps)), utc=True)
    kinds = pd.DataFrame(
        {"channel": list(row.channels), "action": list(row.actions), "object": list(row.objects), "ts": timestamps}
    )
    recent = kinds[kinds.ts > as_of - pd.Timedelta(days=RECENT_DAYS)]
    parts, seen = [], set()
    for event in events:
        key = (event.action, event.object, event.channel)
        if key in seen:
            continue
        seen.add(key)
        count = int(
            (
                (recent.action == event.action) & (recent.object == event.object) & (recent.channel == event.channel)
            ).sum()
        )
        what = f"{event.action} {event.object} on {event.channel}"
        if count > 1:
            parts.append(f"{what} {count}x in {RECENT_DAYS} days")
        else:
            days = max(0, (as_of - pd.Timestamp(event.timestamp)).days)
            parts.append(f"{what} {'today' if days == 0 else f'{days} day ago' if days == 1 else f'{days} days ago'}")
        if len(parts) == 2:
            break
    return "; ".join(parts)
