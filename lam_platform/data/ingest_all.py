"""`lam ingest`: every source lam.yaml declares, through one door (events, customers, campaign log).

Events go through `lam_platform.data.ingest` (the channel mapping), customers through
`lam_platform.data.profile_ledger` and contacts through `lam_platform.data.campaign_log`. An event log
without a customer table (`consent: analysis_only`) registers each customer seen in events with consent
unknown, so the profile view and every step after it work, and no contact list ever includes them.

Run: `LAM_PSEUDONYM_KEY=... lam ingest --workdir W`
"""

from __future__ import annotations

from pathlib import Path

from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import ingest_campaigns
from lam_platform.data.channels import ChannelConfig
from lam_platform.data.ingest import ingest, report_dict
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.profile_ledger import ingest_customers, register_event_customers
from lam_platform.data.pseudonyms import Pseudonymizer


def ingest_sources(workdir: Workdir, pseudonymizer: Pseudonymizer, channel_path: Path | None = None) -> dict:
    """Ingest each declared table; returns one report per table (rows in = accepted + duplicates +
    quarantined + suppressed)."""
    platform = PlatformConfig.load(workdir.root)
    workdir.make()
    with governance_lock(workdir.root, shared=True):  # the three tables against one state of the erasures
        return _ingest_tables(workdir, platform, pseudonymizer, channel_path)


def _ingest_tables(
    workdir: Workdir, platform: PlatformConfig, pseudonymizer: Pseudonymizer, channel_path: Path | None
) -> dict:
    reports: dict = {}
    channels = (
        ChannelConfig.load(channel_path) if channel_path else (platform.channel_config() if platform.events else None)
    )
    if channels is not None:
        reports["events"] = report_dict(ingest(channels, workdir, pseudonymizer))
    if platform.customers is not None:
        reports["customers"] = ingest_customers(platform.customers, platform.base, workdir, pseudonymizer).as_dict()
    else:
        added = register_event_customers(workdir, workdir.events, [])
        reports["customers"] = (
            f"no customer table (consent: {platform.consent_mode}): {added} customers seen in "
            "events registered with consent unknown"
        )
    if platform.campaigns is not None:
        reports["campaigns"] = ingest_campaigns(
            platform.campaigns, platform.catalogue, platform.base, workdir, pseudonymizer
        ).as_dict()
    return reports
