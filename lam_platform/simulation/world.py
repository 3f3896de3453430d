"""A small synthetic 4W1H world with known ground truth (first version; the data-layer issue deepens it).

Story: each customer has a profile and latent *wants* (device upgrade, plan change, smart-life
service, support need, churn risk) that start, last a few weeks and end, often with a purchase.
Wants drive behaviour on channels of very different frequency: the app (many small views), the
web, the shop (rare, with amounts and payment method), the call centre (with durations), a
monthly bill and outbound telemarketing. Every two weeks a campaign wave contacts customers chosen
by the legacy segment rule, plus a random-exploration share, with held-out controls; outcomes are
drawn from `ground_truth.response_probability`, so contacts really change what happens next.

Run: `LAM_PSEUDONYM_KEY=... lam simulate --workdir ./lam-demo --customers 3000 --seed 7`
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, EventAttributes, write_events, write_table
from lam_platform.data.pseudonyms import Pseudonymizer
from lam_platform.simulation.ground_truth import OFFERS, WANTS, GroundTruth, response_probability
from lam_platform.simulation.policies import legacy_segment_policy, legacy_selection_probability, random_policy

AGE_BANDS = ("18-29", "30-44", "45-59", "60+")
PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
DEVICES = tuple(f"device:phone_{k:02d}" for k in range(24))
PLAN_PAGES = ("plan:basic", "plan:standard", "plan:premium", "plan:family")
SERVICES = ("service:home_security", "service:energy", "service:video", "service:music", "service:health")
# The attributes the simulated touchpoints carry (the raw export maps them back by these names).
EVENT_ATTRIBUTES = EventAttributes(numeric=("amount", "duration_s"), categorical=("payment_method",))
PLAN_FEE = {"basic": 30.0, "standard": 50.0, "premium": 80.0}
CATEGORY_OBJECTS = {"device": DEVICES, "plan": PLAN_PAGES, "service": SERVICES}

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
HOUR_WEIGHTS = {  # when in the day each channel is used (index = hour)
    "app": np.array([1, 1, 0, 0, 0, 0, 1, 2, 3, 2, 2, 2, 3, 2, 2, 2, 2, 3, 4, 5, 6, 6, 4, 2], float),
    "web": np.array([1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 3, 2, 1], float),
    "shop": np.array([0] * 10 + [3, 4, 4, 4, 4, 4, 4, 4, 3, 2] + [0] * 4, float),
    "call_centre": np.array([0] * 9 + [4, 4, 3, 3, 3, 3, 3, 3, 2] + [0] * 6, float),
}
WANT_RATE_PER_DAY = {
    "device_upgrade": 1 / 110,
    "plan_change": 1 / 140,
    "smart_life": 1 / 180,
    "support_need": 1 / 90,
    "churn_risk": 1 / 240,
}


@dataclass(frozen=True)
class WorldConfig:
    """Size and calendar of a simulated world; everything has a default that runs in seconds."""

    n_customers: int = 3000
    seed: int = 7
    start: str = "2026-01-05"  # a Monday, UTC
    train_days: int = 150  # campaigns and training data live here
    holdout_days: int = 30  # evaluation only; scoring happens at its start
    first_campaign_day: int = 28
    campaign_every_days: int = 7
    response_horizon_days: int = 14
    legacy_share: float = 0.06  # share of customers the segment rule contacts per wave
    exploration_share: float = 0.04  # share contacted at random per wave
    control_share: float = 0.10  # share of each selection held out as control (treatment 0)
    consent_rate: float = 0.92
    chunk_customers: int = 20_000  # customers generated at once: bounds memory; part of the output's identity

    @property
    def total_days(self) -> int:
        return self.train_days + self.holdout_days

    @property
    def world_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def scoring_time(self) -> pd.Timestamp:
        """Start of the held-out period: the online store holds sequences as of this instant."""
        return self.world_start + pd.Timedelta(days=self.train_days)


def raw_customer_ids(n: int) -> list[str]:
    """The ids the simulated source systems know customers by (CRM numbers); they never enter the workdir."""
    return [f"CUST-{i:06d}" for i in range(n)]


def simulate(config: WorldConfig, workdir: Workdir, pseudonymizer: Pseudonymizer) -> dict[str, int]:
    """Generate the world chunk by chunk and write events, profiles, campaign log and ground truth.

    The simulator plays the source systems: its customers have raw ids (`raw_customer_ids`), and what
    it hands the platform is keyed by their pseudonyms, as ingestion would key it.

    Profiles and the campaign plan are drawn for everyone at once (they are small); wants, outcomes
    and events are drawn per chunk of `chunk_customers` with a generator seeded by (seed, chunk), and
    written as they are made, so memory stays bounded and the same config gives the same bytes.
    """
    rng = np.random.default_rng([config.seed, 0])
    profiles, responsiveness = _sample_profiles(config, rng)
    profiles["customer_id"] = pseudonymizer.pseudonyms(profiles.customer_id)  # what the platform is handed
    contacts = _plan_campaigns(config, profiles, rng)
    shutil.rmtree(workdir.events, ignore_errors=True)
    logs, episode_parts, n_events = [], [], 0
    edges = np.append(np.arange(0, len(profiles), config.chunk_customers), len(profiles))
    bounds = np.searchsorted(contacts.customer_idx.to_numpy(), edges)  # contacts are sorted by customer
    for k, lo in enumerate(range(0, len(profiles), config.chunk_customers)):
        hi = min(len(profiles), lo + config.chunk_customers)
        chunk_rng = np.random.default_rng([config.seed, k + 1])
        episodes = _sample_episodes(config, profiles.iloc[lo:hi], chunk_rng, offset=lo)
        chunk_contacts = contacts.iloc[bounds[k] : bounds[k + 1]].reset_index(drop=True)
        log = _draw_outcomes(chunk_contacts, episodes, responsiveness, chunk_rng)
        events = _generate_events(config, profiles, episodes, log, chunk_rng, lo, hi)
        write_events(events, workdir.events, append=True, basename=f"chunk-{k:05d}")
        n_events += events.num_rows
        logs.append(log)
        episode_parts.append(episodes)
    campaign_log = pd.concat(logs, ignore_index=True)
    episodes = pd.concat(episode_parts, ignore_index=True)

    write_table(pa.Table.from_pandas(_profile_table(config, profiles), preserve_index=False), workdir.profiles)
    write_table(_campaign_table(config, campaign_log), workdir.campaign_log)
    episodes.assign(customer_id=profiles.customer_id.to_numpy()[episodes.customer_idx]).drop(
        columns=["customer_idx", "key"]
    ).to_parquet(workdir.episodes, index=False)
    pd.DataFrame({"customer_id": profiles.customer_id, "responsiveness": responsiveness}).to_parquet(
        workdir.responsiveness, index=False
    )
    workdir.world_json.write_text(json.dumps(asdict(config), indent=2))
    return {
        "customers": len(profiles),
        "events": n_events,
        "contacts": len(campaign_log),
        "orders": int(campaign_log.outcome.sum()),
    }


def load_world_config(workdir: Workdir) -> WorldConfig:
    """The config the world in `workdir` was generated with."""
    if not workdir.world_json.exists():
        raise FileNotFoundError(
            f"no simulated world in {workdir.root}: only a simulator's workdir has ground truth "
            "(oracle, `lam summary`); on your own data run `lam evaluate --as-of T`"
        )
    return WorldConfig(**json.loads(workdir.world_json.read_text()))


def load_ground_truth(workdir: Workdir) -> GroundTruth:
    config = load_world_config(workdir)
    return GroundTruth(pd.read_parquet(workdir.episodes), pd.read_parquet(workdir.responsiveness), config.world_start)


def _sample_profiles(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    n = config.n_customers
    profiles = pd.DataFrame(
        {
            "customer_id": raw_customer_ids(n),
            "age_band": rng.choice(AGE_BANDS, size=n, p=[0.2, 0.3, 0.3, 0.2]),
            "gender": rng.choice(("f", "m"), size=n),
            "plan": rng.choice(PLANS, size=n, p=[0.4, 0.4, 0.2]),
            "tenure_months": rng.integers(1, 120, size=n),
            "region": rng.choice(REGIONS, size=n),
            "consent_marketing": rng.random(n) < config.consent_rate,
            "billing_day": rng.integers(1, 28, size=n),
        }
    )
    # A quarter never respond to a call; the rest respond with varying strength.
    responsiveness = np.where(rng.random(n) < 0.25, 0.0, rng.beta(4, 2, size=n))
    return profiles, responsiveness


def _want_rate_multiplier(want: str, profiles: pd.DataFrame) -> np.ndarray:
    """Profiles shift how often wants arise, which is what makes a segment rule better than random."""
    if want == "device_upgrade":
        return np.where(profiles.tenure_months.to_numpy() >= 24, 1.6, 0.6)
    if want == "plan_change":
        return np.where(profiles.plan.to_numpy() == "basic", 1.6, 0.7)
    if want == "smart_life":
        return np.where(profiles.age_band.isin(("30-44", "45-59")).to_numpy(), 1.5, 0.7)
    if want == "churn_risk":
        return np.where(profiles.tenure_months.to_numpy() < 12, 2.0, 0.8)
    return np.ones(len(profiles))


def _sample_episodes(
    config: WorldConfig, profiles: pd.DataFrame, rng: np.random.Generator, offset: int = 0
) -> pd.DataFrame:
    """Latent want episodes per customer: a renewal process of (gap, duration) from 20 days before day 0.

    Sorted by `key` = customer_idx * len(WANTS) + want index, then start: one customer's episodes of
    one want never overlap, which is what the vectorised lookups below rely on.
    """
    rows: list[pd.DataFrame] = []
    n = len(profiles)
    for w, want in enumerate(WANTS):
        rate = WANT_RATE_PER_DAY[want] * _want_rate_multiplier(want, profiles)
        t = np.full(n, -20.0) + rng.exponential(1.0 / rate)
        alive = t < config.total_days
        while alive.any():
            idx = np.flatnonzero(alive)
            duration = 8.0 + rng.exponential(18.0, size=len(idx))
            preferred = _preferred_object(want, profiles.plan.to_numpy()[idx], rng)
            rows.append(
                pd.DataFrame(
                    {
                        "customer_idx": idx + offset,
                        "want": want,
                        "start_day": t[idx],
                        "end_day": t[idx] + duration,
                        "preferred": preferred,
                        "key": (idx + offset) * len(WANTS) + w,
                    }
                )
            )
            t[idx] = t[idx] + duration + rng.exponential(1.0 / rate[idx])
            alive = t < config.total_days
    episodes = pd.concat(rows, ignore_index=True)
    episodes["purchased"] = False
    episodes["end_by_order"] = False
    return episodes.sort_values(["key", "start_day"], kind="stable").reset_index(drop=True)


def _active_episode(episodes: pd.DataFrame, customer_idx: np.ndarray, want: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Row of the episode of `want` active at `day` for each customer, or -1 (vectorised lookup)."""
    want_index = {w: i for i, w in enumerate(WANTS)}
    key = customer_idx * len(WANTS) + np.array([want_index[w] for w in want], dtype=np.int64)
    ep_key, ep_end = episodes.key.to_numpy(), episodes.end_day.to_numpy()
    # One sorted float: key, then start day (shifted positive). Exact while key * 1000 < 2**53 / 1e6.
    composite = ep_key * 1000.0 + (episodes.start_day.to_numpy() + 100.0)
    row = np.searchsorted(composite, key * 1000.0 + (day + 100.0), side="right") - 1  # last start <= day
    safe = np.maximum(row, 0)
    active = (row >= 0) & (ep_key[safe] == key) & (ep_end[safe] > day)
    return np.where(active, row, -1)


def _preferred_object(want: str, plans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(plans)
    if want == "device_upgrade":
        return rng.choice(DEVICES, size=n)
    if want == "plan_change":  # someone on basic looks at standard/family, others at premium/family
        return np.where(
            plans == "basic",
            rng.choice(("plan:standard", "plan:family"), size=n),
            rng.choice(("plan:premium", "plan:family"), size=n),
        )
    if want == "smart_life":
        return rng.choice(SERVICES, size=n)
    return np.full(n, "page:support" if want == "support_need" else "page:cancel", dtype=object)


def _plan_campaigns(config: WorldConfig, profiles: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Who each wave contacts, chosen from profiles alone (legacy rule + exploration), with controls.

    Each row logs its propensity, as a production campaign system should: the probability that the
    logged policy contacts this customer in this wave, times the probability of the arm it got.
    """
    waves = []
    n = len(profiles)
    eligible = profiles[profiles.consent_marketing].reset_index(drop=True)
    last_wave = config.train_days - config.response_horizon_days
    for w, day in enumerate(range(config.first_campaign_day, last_wave + 1, config.campaign_every_days)):
        legacy = legacy_segment_policy(profiles, int(config.legacy_share * n), day, rng).assign(policy="legacy")
        rest = profiles[~profiles.customer_id.isin(legacy.customer_id)]
        explore = random_policy(rest, int(config.exploration_share * n), rng).assign(policy="random")
        wave = pd.concat([legacy, explore], ignore_index=True).drop(columns="priority")
        p_legacy = legacy_selection_probability(eligible, day, legacy.priority.min())
        p_explore = len(explore) / max(len(eligible) - len(legacy), 1)
        p_contact = pd.Series(p_legacy + (1 - p_legacy) * p_explore, index=eligible.customer_id)
        wave["campaign_id"] = f"wave{w:02d}"
        wave["day"] = day + (9 + rng.random(len(wave)) * 9) / 24  # calls between 09:00 and 18:00
        wave["treatment"] = (rng.random(len(wave)) >= config.control_share).astype(np.int8)
        arm = np.where(wave.treatment == 1, 1 - config.control_share, config.control_share)
        wave["propensity"] = p_contact.reindex(wave.customer_id).to_numpy() * arm
        waves.append(wave)
    contacts = pd.concat(waves, ignore_index=True)
    contacts["customer_idx"] = contacts.customer_id.map(pd.Series(np.arange(n), index=profiles.customer_id))
    return contacts.sort_values(["customer_idx", "day"], kind="stable").reset_index(drop=True)


def _draw_outcomes(
    contacts: pd.DataFrame, episodes: pd.DataFrame, responsiveness: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Draw each contact's outcome from the ground truth, wave by wave; an order ends the matching want.

    Waves are processed in time order so that an order in one wave is seen by the next (a customer who
    bought is no longer in the market for that want).
    """
    outcome = np.zeros(len(contacts), dtype=bool)
    order_day = np.full(len(contacts), np.nan)
    matched_want = np.zeros(len(contacts), dtype=bool)
    end_day = episodes.end_day.to_numpy().copy()
    purchased = episodes.purchased.to_numpy().copy()
    by_order = episodes.end_by_order.to_numpy().copy()
    for wave in sorted(contacts.campaign_id.unique()):
        rows = np.flatnonzero(contacts.campaign_id.to_numpy() == wave)
        cust, day = contacts.customer_idx.to_numpy()[rows], contacts.day.to_numpy()[rows]
        offers, methods = contacts.offer.to_numpy()[rows], contacts.method.to_numpy()[rows]
        current = episodes.assign(end_day=end_day)
        matching = _active_episode(current, cust, offers, day)
        support = _active_episode(current, cust, np.full(len(rows), "support_need"), day) >= 0
        churn = _active_episode(current, cust, np.full(len(rows), "churn_risk"), day) >= 0
        age = np.where(matching >= 0, day - episodes.start_day.to_numpy()[np.maximum(matching, 0)], np.nan)
        p_c, p_n = response_probability(age, support, churn, offers, methods, responsiveness[cust])
        treated = contacts.treatment.to_numpy()[rows] == 1
        ordered = rng.random(len(rows)) < np.where(treated, p_c, p_n)
        delay = rng.uniform(0.2, 5.0, size=len(rows))
        outcome[rows] = ordered
        order_day[rows] = np.where(ordered, day + delay, np.nan)
        ends = ordered & (matching >= 0)
        matched_want[rows] = ends
        end_day[matching[ends]] = day[ends] + delay[ends]
        purchased[matching[ends]] = True
        by_order[matching[ends]] = True
    # Wants not ended by a campaign order end in an organic purchase 40% of the time.
    organic = ~by_order & episodes.want.isin(OFFERS).to_numpy() & (rng.random(len(episodes)) < 0.4)
    episodes["end_day"], episodes["end_by_order"] = end_day, by_order
    episodes["purchased"] = purchased | organic
    return contacts.assign(outcome=outcome, order_day=order_day, matched_want=matched_want)


def _generate_events(
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


def _price(objects: np.ndarray) -> np.ndarray:
    prices = {d: 300.0 + 40 * k for k, d in enumerate(DEVICES)}
    prices.update({"plan:basic": 30.0, "plan:standard": 50.0, "plan:premium": 80.0, "plan:family": 100.0})
    prices.update({s: 15.0 + 5 * k for k, s in enumerate(SERVICES)})
    return np.array([prices.get(o, 0.0) for o in objects])


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
            "amount": np.where(rng.random(len(objects)) < 0.05, np.nan, _price(objects)),
            "duration_s": np.nan,
            "payment_method": np.where(in_shop, rng.choice(("card", "cash", "instalment"), size=len(objects)), "card"),
        }
    )


def _contact_events(campaign_log: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Treated contacts appear in the stream as outbound telemarketing events."""
    treated = campaign_log[campaign_log.treatment == 1]
    calls = treated.method.to_numpy() == "outbound_call"
    durations = np.where(calls, rng.lognormal(np.log(120), 0.7, size=len(treated)), np.nan)
    return pd.DataFrame(
        {
            "customer_idx": treated.customer_idx.to_numpy(),
            "day": treated.day.to_numpy(),
            "channel": "telemarketing",
            "object": "campaign:" + treated.offer.to_numpy().astype(object),
            "action": np.where(calls, "call_outbound", "sms_outbound"),
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


def _profile_table(config: WorldConfig, profiles: pd.DataFrame) -> pd.DataFrame:
    """Profiles as a Feast source: one row per customer, valid from the day before the world starts."""
    table = profiles.drop(columns="billing_day").copy()
    table["tenure_months"] = table.tenure_months.astype("int64")
    table["event_timestamp"] = config.world_start - pd.Timedelta(days=1)
    return table


def _campaign_table(config: WorldConfig, log: pd.DataFrame) -> pa.Table:
    frame = pd.DataFrame(
        {
            "customer_id": log.customer_id.to_numpy(),
            "event_timestamp": config.world_start + pd.to_timedelta(np.round(log.day.to_numpy() * 86_400e6), unit="us"),
            "campaign_id": log.campaign_id.to_numpy(),
            "offer": log.offer.to_numpy(),
            "method": log.method.to_numpy(),
            "treatment": log.treatment.to_numpy().astype("int64"),
            "policy": log.policy.to_numpy(),
            "outcome": log.outcome.to_numpy().astype("int64"),
            "outcome_value": np.where(log.outcome, _price_of_offer(log.offer.to_numpy()), np.nan),
            "propensity": log.propensity.to_numpy(dtype=float),
        }
    )
    frame = frame.sort_values(["event_timestamp", "customer_id"], kind="stable")
    return pa.Table.from_pandas(frame, preserve_index=False).cast(
        pa.schema(
            [
                ("customer_id", pa.string()),
                ("event_timestamp", TIMESTAMP),
                ("campaign_id", pa.string()),
                ("offer", pa.string()),
                ("method", pa.string()),
                ("treatment", pa.int64()),
                ("policy", pa.string()),
                ("outcome", pa.int64()),
                ("outcome_value", pa.float64()),
                ("propensity", pa.float64()),
            ]
        )
    )


def _price_of_offer(offers: np.ndarray) -> np.ndarray:
    return np.select([offers == "device_upgrade", offers == "plan_change"], [700.0, 60.0], default=30.0)
