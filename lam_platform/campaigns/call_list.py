"""The call list's rules and order, one definition for the batch list, the API and the Ray Data scorer.

Which customers may be called (`call_exclusions`: consent, the cool-down on the contact channel, already
converted; the thresholds are lam.yaml's `call_list` section), how a list is ranked (one best campaign per
customer, then by uplift) and when it is worked (`next_contact_time`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lam_platform.data.platform_config import CallListRules
from lam_platform.governance.consent import consented


def call_exclusions(rows: pd.DataFrame, as_of: pd.Timestamp, rules: CallListRules) -> pd.Series:
    """Why each online row may not be called at `as_of` (None = eligible), first reason that applies:
    no_consent (unknown consent too: no profile, no consent), contacted_within_cooldown (an event on the
    rules' contact channel in the last `cooldown_days`), already_converted (an event with the conversion
    action in the last `converted_within_days`). The one rule set for the API and the batch list alike.
    """
    cooldown_days, converted_within_days = rules.cooldown_days, rules.converted_within_days
    consent = consented(rows.consent_marketing)
    events = rows[["event_timestamps", "channels", "actions"]].copy()
    events["row"] = np.arange(len(rows))
    events = events[events.event_timestamps.map(lambda v: isinstance(v, (list, np.ndarray)) and len(v) > 0)]
    contacted = np.zeros(len(rows), bool)
    converted = np.zeros(len(rows), bool)
    if len(events):
        flat = events.explode(["event_timestamps", "channels", "actions"])
        ts = pd.to_datetime(flat.event_timestamps, utc=True)
        before = ts <= as_of
        hit = flat.row[
            before & (flat.channels == rules.contact_channel) & (ts > as_of - pd.Timedelta(days=cooldown_days))
        ]
        contacted[hit.to_numpy(dtype=np.int64)] = True
        hit = flat.row[
            before & (flat.actions == rules.conversion_action) & (ts > as_of - pd.Timedelta(days=converted_within_days))
        ]
        converted[hit.to_numpy(dtype=np.int64)] = True
    reasons = np.full(len(rows), None, dtype=object)
    reasons[converted] = "already_converted"  # later assignments win: consent first, then the cool-down
    reasons[contacted] = "contacted_within_cooldown"
    reasons[~consent] = "no_consent"
    return pd.Series(reasons, index=rows.index, dtype=object)


def rank_call_list(scores: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """One best campaign per customer (largest uplift), then the top `capacity` customers by uplift."""
    best = scores.sort_values(["uplift", "customer_id"], ascending=[False, True], kind="stable")
    best = best.drop_duplicates("customer_id").head(capacity).reset_index(drop=True)
    return best.assign(rank=np.arange(1, len(best) + 1))


def next_contact_time(as_of: pd.Timestamp, hour: int) -> pd.Timestamp:
    """The first `hour`:00 at or after `as_of`: when a call list scored at `as_of` is worked."""
    start = as_of.normalize() + pd.Timedelta(hours=hour)
    return start if start >= as_of else start + pd.Timedelta(days=1)
