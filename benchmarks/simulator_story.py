"""The plots of docs/SIMULATOR.md: events per channel per customer, and two customer timelines with
their latent wants.

Run:  python benchmarks/simulator_story.py --out docs/simulator
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lam_platform.core.workdir import Workdir  # noqa: E402
from lam_platform.data.events import CHANNELS, read_events  # noqa: E402
from lam_platform.data.pseudonyms import Pseudonymizer  # noqa: E402
from lam_platform.simulation.ground_truth import WANTS  # noqa: E402
from lam_platform.simulation.world import WorldConfig  # noqa: E402
from lam_platform.simulation.world_writer import simulate  # noqa: E402


def events_per_channel(events: pd.DataFrame, out: Path) -> None:
    counts = (
        events.groupby(["customer_id", "channel"]).size().unstack(fill_value=0).reindex(columns=CHANNELS, fill_value=0)
    )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.boxplot([counts[c] + 1 for c in CHANNELS], tick_labels=CHANNELS, showfliers=False)
    ax.set_yscale("log")
    ax.set_ylabel("events per customer + 1 (180 days)")
    ax.set_title("Channels differ in frequency by two orders of magnitude")
    fig.tight_layout()
    fig.savefig(out / "events_per_channel.png", dpi=110)


def timelines(
    events: pd.DataFrame, episodes: pd.DataFrame, customers: list[str], start: pd.Timestamp, out: Path
) -> None:
    fig, axes = plt.subplots(len(customers), 1, figsize=(9, 2.6 * len(customers)), sharex=True)
    channel_row = {c: i for i, c in enumerate(CHANNELS)}
    for ax, customer in zip(axes, customers):
        mine = events[events.customer_id == customer]
        days = (mine.event_timestamp - start) / pd.Timedelta(days=1)
        purchase = mine.action == "purchase"
        ax.scatter(days[~purchase], mine.channel[~purchase].map(channel_row), s=6, alpha=0.6, label="event")
        ax.scatter(
            days[purchase], mine.channel[purchase].map(channel_row), s=40, marker="*", color="red", label="purchase"
        )
        for ep in episodes[episodes.customer_id == customer].itertuples():
            ax.axvspan(max(ep.start_day, 0), ep.end_day, alpha=0.12, color=f"C{WANTS.index(ep.want) + 2}")
            ax.text(max(ep.start_day, 0), len(CHANNELS) - 0.4, ep.want, fontsize=7)
        ax.set_yticks(range(len(CHANNELS)), CHANNELS)
        ax.set_ylim(-0.5, len(CHANNELS) + 0.3)
        ax.set_title(f"customer {customer}: events by channel, latent wants shaded", fontsize=9)
    axes[-1].set_xlabel("day of the simulated world")
    axes[0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "customer_timelines.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/simulator"))
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir.at(tmp).make()
        config = WorldConfig(n_customers=args.customers, seed=7)
        simulate(config, workdir, Pseudonymizer.ephemeral())
        events = read_events(workdir.events).to_pandas()
        episodes = pd.read_parquet(workdir.episodes)
    events_per_channel(events, args.out)
    # Two customers with a purchase-ending want and a campaign call, so the story is visible.
    called = set(events.customer_id[events.channel == "telemarketing"])
    buyers = episodes[episodes.purchased & episodes.customer_id.isin(called) & (episodes.start_day > 10)]
    chosen = list(np.random.default_rng(0).choice(sorted(set(buyers.customer_id)), size=2, replace=False))
    timelines(events, episodes, chosen, config.world_start, args.out)
    print(f"wrote {args.out}/events_per_channel.png and {args.out}/customer_timelines.png for {chosen}")


if __name__ == "__main__":
    main()
