"""The simulated touchpoints: a chunk of customers' wants and contacts turned into 4W1H events.

Browsing on the app, web, shop and call centre comes at a base rate plus a boost while a want is active,
each event drawn from a menu by its driver (the background or the want) and channel; purchases end wants
and follow campaign orders; treated contacts show as telemarketing; a bill arrives every month.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.data.events import TIMESTAMP, EventAttributes
from lam_platform.simulation.catalogue import CATEGORY_OBJECTS, PLAN_FEE, price
from lam_platform.simulation.ground_truth import WANTS
from lam_platform.simulation.world import WorldConfig

# The attributes the simulated touchpoints carry (the raw export maps them back by these names).
EVENT_ATTRIBUTES = EventAttributes(numeric=("amount", "duration_s"), categorical=("payment_method",))

# Events per day on each browsing channel when no want is active (app: many small events; shop: rare).
BASE_RATE = {"app": 0.45, "web": 0.10, "shop": 0.008, "call_centre": 0.006}
# Extra events per day while a want is active.
WANT_BOOST = {
    "device_upgrade": {"app": 0.7, "web": 0.25, "shop": 0.04},
    "plan_change": {"app": 0.4, "web": 0.2, "call_centre": 0.03},
    "smart_life": {"app": 0.5, "web": 0.1},
    "support_need": {"app": 0.3, "call_centre": 0.12},
    "churn_risk": {"web": 0.2, "call_centre": 0.04},
}
# What an event looks like, by (driver, channel): (object or category or "preferred", action, weight).
EVENT_MENU = {
    ("none", "app"): [
        ("page:home", "view", 5),
        ("page:bill", "view", 2),
        ("device", "view", 1),
        ("service", "view", 1),
    ],
    ("none", "web"): [("page:home", "view", 3), ("device", "view", 1), ("plan", "view", 1), ("page:bill", "view", 1)],
    ("none", "shop"): [("device", "view", 1)],
    ("none", "call_centre"): [("page:bill", "inquire", 2), ("page:support", "inquire", 1)],
    ("device_upgrade", "app"): [("preferred", "view", 4), ("device", "view", 2), ("device", "search", 1)],
    ("device_upgrade", "web"): [("preferred", "view", 2), ("device", "view", 1)],
    ("device_upgrade", "shop"): [("preferred", "view", 1)],
    ("plan_change", "app"): [("preferred", "view", 3), ("plan", "view", 2)],
    ("plan_change", "web"): [("preferred", "view", 2), ("plan", "view", 1)],
    ("plan_change", "call_centre"): [("preferred", "inquire", 1)],
    ("smart_life", "app"): [("preferred", "view", 3), ("service", "view", 2)],
    ("smart_life", "web"): [("preferred", "view", 1)],
    ("support_need", "app"): [("page:support", "view", 3)],
    ("support_need", "call_centre"): [("page:support", "inquire", 2), ("page:support", "complain", 1)],
    ("churn_risk", "web"): [("page:cancel", "view", 2), ("plan", "view", 1)],
    ("churn_risk", "call_centre"): [("page:cancel", "inquire", 1), ("page:bill", "complain", 1)],
}
BROWSE_CHANNELS = tuple(BASE_RATE)
REFUSED_SHARE = 0.4  # of the calls not answered, those picked up and refused (the rest ring out)
# The dialer's result of an outbound call, as the event's action.
CALL_ANSWERED, CALL_REFUSED, CALL_UNREACHABLE = "call_answered", "call_refused", "call_unreachable"
CALL_RESULTS = (CALL_ANSWERED, CALL_REFUSED, CALL_UNREACHABLE)
HOUR_WEIGHTS = {  # when in the day each channel is used (index = hour)
    "app": np.array([1, 1, 0, 0, 0, 0, 1, 2, 3, 2, 2, 2, 3, 2, 2, 2, 2, 3, 4, 5, 6, 6, 4, 2], float),
    "web": np.array([1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 3, 2, 1], float),
    "shop": np.array([0] * 10 + [3, 4, 4, 4, 4, 4, 4, 4, 3, 2] + [0] * 4, float),
    "call_centre": np.array([0] * 9 + [4, 4, 3, 3, 3, 3, 3, 3, 2] + [0] * 6, float),
}


def generate_events(
    config: WorldConfig,
    profiles: pd.DataFrame,
    episodes: pd.DataFrame,
    campaign_log: pd.DataFrame,
    rng: np.random.Generator,
    lo: int,
    hi: int,
) -> pa.Table:
    """Turn the chunk [lo, hi) of customers' wants and contacts into a time-ordered 4W1H event table."""
    chunk = profiles.iloc[lo:hi]
    parts = [
        _browse_events(config, hi - lo, episodes, rng, lo),
        _purchase_events(episodes, campaign_log, rng),
        _contact_events(campaign_log, rng),
        _billing_events(config, chunk, rng, lo),
    ]
    events = pd.concat(parts, ignore_index=True)
    events = events[(events.day >= 0) & (events.day < config.total_days)]
    events = events.sort_values(["customer_idx", "day"], kind="stable").reset_index(drop=True)
    rank = events.groupby("customer_idx").cumcount().to_numpy()
    customer_ids = profiles.customer_id.to_numpy()[events.customer_idx.to_numpy()]
    timestamps = config.world_start + pd.to_timedelta(np.round(events.day.to_numpy() * 86_400e6), unit="us")
    ids = pa.array(customer_ids, pa.string())
    ranks = pc.utf8_lpad(pa.array(rank).cast(pa.string()), width=6, padding="0")
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(ids, ranks, "-"),
            "customer_id": ids,
            "event_timestamp": pa.array(timestamps, type=TIMESTAMP),
            "channel": events.channel.to_numpy(),
            "object": events.object.to_numpy(),
            "action": events.action.to_numpy(),
            "amount": events.amount.to_numpy(dtype=float),
            "duration_s": events.duration_s.to_numpy(dtype=float),
            # Only purchases carry a payment method: the other parts leave the column out (an all-None
            # object column makes pandas' concat test every element); concat fills NaN, Arrow reads null.
            "payment_method": pa.array(events.payment_method.to_numpy(), pa.string(), from_pandas=True),
        },
        schema=EVENT_ATTRIBUTES.schema(),
    )


def _browse_events(
    config: WorldConfig, n: int, episodes: pd.DataFrame, rng: np.random.Generator, lo: int
) -> pd.DataFrame:
    """Daily Poisson counts per channel; each event is attributed to the background or an active want."""
    days = config.total_days
    drivers = ("none",) + WANTS
    # active_ep[w][c, d]: row of the active episode of want w for (chunk-local) customer c on day d, or -1.
    active_ep = {}
    for want in WANTS:
        grid = np.full((n, days), -1, dtype=np.int64)
        eps = episodes[episodes.want == want]
        first = np.clip(np.ceil(eps.start_day.to_numpy() - 0.5), 0, days).astype(np.int64)
        last = np.clip(np.ceil(eps.end_day.to_numpy() - 0.5), 0, days).astype(np.int64)
        lengths = np.maximum(last - first, 0)
        cells = np.repeat((eps.customer_idx.to_numpy() - lo) * days + first, lengths)
        cells += np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        grid.ravel()[cells] = np.repeat(eps.index.to_numpy(), lengths)
        active_ep[want] = grid
    frames = []
    for channel in BROWSE_CHANNELS:
        contrib = np.stack(
            [np.full((n, days), BASE_RATE[channel])]
            + [(active_ep[w] >= 0) * WANT_BOOST[w].get(channel, 0.0) for w in WANTS],
            axis=-1,
        )  # (n, days, 6)
        counts = rng.poisson(contrib.sum(-1))
        cust, day = np.nonzero(counts)
        reps = counts[cust, day]
        cust, day = np.repeat(cust, reps), np.repeat(day, reps)
        probs = contrib[cust, day] / contrib[cust, day].sum(-1, keepdims=True)
        driver = (probs.cumsum(-1) < rng.random((len(cust), 1))).sum(-1)
        for d, name in enumerate(drivers):
            pick = driver == d
            if not pick.any() or (name, channel) not in EVENT_MENU:
                continue
            ep_rows = active_ep[name][cust[pick], day[pick]] if name != "none" else None
            preferred = episodes.preferred.to_numpy()[ep_rows] if ep_rows is not None else None
            objects, actions = _menu_draw(EVENT_MENU[(name, channel)], int(pick.sum()), preferred, rng)
            hours = rng.choice(24, size=int(pick.sum()), p=HOUR_WEIGHTS[channel] / HOUR_WEIGHTS[channel].sum())
            frames.append(
                pd.DataFrame(
                    {
                        "customer_idx": cust[pick] + lo,
                        "day": day[pick] + (hours + rng.random(len(hours))) / 24,
                        "channel": channel,
                        "object": objects,
                        "action": actions,
                        "amount": np.nan,
                        "duration_s": _call_durations(channel, int(pick.sum()), rng),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _menu_draw(menu: list, n: int, preferred: np.ndarray | None, rng: np.random.Generator):
    weights = np.array([w for _, _, w in menu], float)
    choice = rng.choice(len(menu), size=n, p=weights / weights.sum())
    objects = np.empty(n, dtype=object)
    actions = np.empty(n, dtype=object)
    for k, (obj, action, _) in enumerate(menu):
        pick = choice == k
        if obj == "preferred":
            objects[pick] = preferred[pick]
        elif obj in CATEGORY_OBJECTS:
            objects[pick] = rng.choice(CATEGORY_OBJECTS[obj], size=int(pick.sum()))
        else:
            objects[pick] = obj
        actions[pick] = action
    return objects, actions


def _call_durations(channel: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if channel != "call_centre":
        return np.full(n, np.nan)
    durations = rng.lognormal(np.log(300), 0.6, size=n)
    return np.where(rng.random(n) < 0.2, np.nan, durations)  # 20% of call records lack a duration


def _purchase_events(episodes: pd.DataFrame, campaign_log: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Purchases: at the end of a want that ended in one, and after campaign orders with no active want."""
    bought = episodes[episodes.purchased]
    # Orders from contacts that matched no active want buy a random item of the offered kind.
    stray = campaign_log[campaign_log.outcome & ~campaign_log.matched_want]
    stray_objects = np.array(
        [
            rng.choice(
                CATEGORY_OBJECTS[{"device_upgrade": "device", "plan_change": "plan", "smart_life": "service"}[o]]
            )
            for o in stray.offer
        ]
    )
    customer_idx = np.concatenate([bought.customer_idx.to_numpy(), stray.customer_idx.to_numpy()])
    objects = np.concatenate([bought.preferred.to_numpy(), stray_objects]).astype(object)
    in_shop = rng.random(len(objects)) < 0.6
    return pd.DataFrame(
        {
            "customer_idx": customer_idx,
            "day": np.concatenate([bought.end_day.to_numpy(), stray.order_day.to_numpy()]),
            "channel": np.where(in_shop, "shop", "web"),
            "object": objects,
            "action": "purchase",
            "amount": np.where(rng.random(len(objects)) < 0.05, np.nan, price(objects)),
            "duration_s": np.nan,
            "payment_method": np.where(in_shop, rng.choice(("card", "cash", "instalment"), size=len(objects)), "card"),
        }
    )


def _contact_events(campaign_log: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Treated contacts appear in the stream as outbound telemarketing events, calls with the dialer's result:
    answered (a conversation), refused (picked up and hung up within seconds) or unreachable (no talk time)."""
    treated = campaign_log[campaign_log.treatment == 1]
    calls = treated.method.to_numpy() == "outbound_call"
    answered = treated.answered.to_numpy()
    refused = calls & ~answered & (rng.random(len(treated)) < REFUSED_SHARE)
    durations = np.where(answered, rng.lognormal(np.log(120), 0.7, size=len(treated)), np.nan)
    durations = np.where(refused, rng.lognormal(np.log(6), 0.5, size=len(treated)), durations)
    result = np.where(answered, CALL_ANSWERED, np.where(refused, CALL_REFUSED, CALL_UNREACHABLE))
    return pd.DataFrame(
        {
            "customer_idx": treated.customer_idx.to_numpy(),
            "day": treated.day.to_numpy(),
            "channel": "telemarketing",
            "object": "campaign:" + treated.offer.to_numpy().astype(object),
            "action": np.where(calls, result, "sms_outbound"),
            "amount": np.nan,
            "duration_s": np.where(rng.random(len(treated)) < 0.15, np.nan, durations),
        }
    )


def _billing_events(config: WorldConfig, profiles: pd.DataFrame, rng: np.random.Generator, lo: int) -> pd.DataFrame:
    """One bill per month on the customer's billing day, amount = plan fee + usage; 10% lack the amount."""
    months = pd.date_range(config.world_start.normalize(), periods=config.total_days // 28 + 2, freq="MS")
    month_days = ((months - config.world_start) / pd.Timedelta(days=1)).to_numpy()
    cust = np.repeat(np.arange(len(profiles)), len(month_days))  # chunk-local
    day = np.tile(month_days, len(profiles)) + profiles.billing_day.to_numpy()[cust] - 1 + 2 / 24
    fee = profiles.plan.map(PLAN_FEE).to_numpy()[cust] + rng.gamma(2.0, 5.0, size=len(cust))
    return pd.DataFrame(
        {
            "customer_idx": cust + lo,
            "day": day,
            "channel": "billing",
            "object": "page:bill",
            "action": "bill",
            "amount": np.where(rng.random(len(cust)) < 0.1, np.nan, np.round(fee, 2)),
            "duration_s": np.nan,
        }
    )
