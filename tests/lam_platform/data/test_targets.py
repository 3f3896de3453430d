"""Event-derived targets: labels over [t, t + horizon), and training cut-offs whose labels are mature at as-of."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from lam_platform.data.events import CORE_SCHEMA as EVENT_SCHEMA
from lam_platform.data.platform_config import ActionWithin, NoEventWithin
from lam_platform.data.targets import CutoffGrid, labels, target_examples

T = pd.Timestamp("2026-03-01T00:00:00Z")


def _events(rows: list[tuple[str, float, str]]) -> pa.Table:
    """(customer, days after T, action) -> an event table."""
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"e{i}",
                "customer_id": c,
                "event_timestamp": T + pd.Timedelta(days=d),
                "channel": "shop",
                "object": "x",
                "action": a,
            }
            for i, (c, d, a) in enumerate(rows)
        ],
        schema=EVENT_SCHEMA,
    )


def test_labels_look_only_at_the_horizon_after_t_and_an_event_at_t_is_future():
    events = _events(
        [("a", 0, "purchase"), ("b", 29.9, "purchase"), ("c", 30, "purchase"), ("d", 5, "view"), ("e", -1, "purchase")]
    )
    buy = ActionWithin(action="purchase", within="30d")
    assert labels(events, list("abcde"), [T] * 5, buy).tolist() == [1, 1, 0, 0, 0]
    churn = NoEventWithin(no_event_within="30d")
    assert labels(events, list("abcde"), [T] * 5, churn).tolist() == [0, 0, 1, 0, 1]


def test_every_training_label_is_mature_at_as_of_and_only_active_customers_are_examples():
    events = _events([("a", -100, "view"), ("a", -20, "purchase"), ("b", -10, "view"), ("c", 1, "view")])
    grid = CutoffGrid(snapshots=3, every=pd.Timedelta(days=7))
    examples = target_examples(events, ["a", "b", "c"], T, ActionWithin(action="purchase", within="14d"), grid)
    assert examples.event_timestamp.max() + pd.Timedelta(days=14) <= T  # the newest label is known at T
    assert sorted(examples.event_timestamp.unique()) == [T - pd.Timedelta(days=d) for d in (28, 21, 14)]
    assert set(examples.customer_id) == {"a"}  # b's and c's first events come after every cut-off
    # a bought at T-20: inside [T-28, T-14) and [T-21, T-7), not inside [T-14, T).
    assert examples.sort_values("event_timestamp").label.tolist() == [1.0, 1.0, 0.0]
