"""Adding a channel is editing the channel config: ingestion, the aggregate view and online reads follow."""

import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig
from lam_platform.data.ingest import ingest
from lam_platform.features.store import open_store
from lam_platform.orchestration.pipeline import materialize_step
from lam_platform.simulation.world import load_world_config
from tests.conftest import PROJECT_ROOT, PSEUDONYMIZER, make_world, pseudonym

KIOSK = """
  kiosk:          # a new channel: in-store kiosks, added by configuration only
    files: [raw/kiosk/*.csv]
    who: card
    when: at
    what: screen
    how_value: view
"""


def test_a_channel_added_in_the_config_reaches_the_online_aggregates(tmp_path):
    workdir = Workdir.at(tmp_path / "w")
    make_world(workdir, customers=30, seed=4)
    scoring = load_world_config(workdir).scoring_time
    (tmp_path / "raw" / "kiosk").mkdir(parents=True)
    visits = pd.DataFrame(
        {
            "card": ["CUST-000001"] * 3 + ["CUST-000002"],
            "at": [(scoring - pd.Timedelta(days=d)).isoformat() for d in (1, 2, 40, 3)],
            "screen": ["kiosk:plans"] * 4,
        }
    )
    visits.to_csv(tmp_path / "raw" / "kiosk" / "day1.csv", index=False)
    config_path = tmp_path / "channels.yaml"
    config_path.write_text((PROJECT_ROOT / "infra" / "channels.example.yaml").read_text() + KIOSK)
    report = ingest(ChannelConfig.load(config_path), workdir, PSEUDONYMIZER, now=scoring)
    assert report.accepted == 4 and report.balanced()

    materialize_step(workdir, max_len=8, as_of=scoring)  # the views follow the channels the events hold
    features = [
        "customer_event_aggregates:kiosk_events_30d",
        "customer_event_aggregates:kiosk_events_90d",
        "customer_event_aggregates:app_events_30d",
    ]
    got = (
        open_store(workdir)
        .get_online_features(
            features=features, entity_rows=[{"customer_id": pseudonym(f"CUST-00000{k}")} for k in (1, 2, 3)]
        )
        .to_dict()
    )
    assert got["kiosk_events_30d"] == [2, 1, 0] and got["kiosk_events_90d"] == [3, 1, 0]
    assert all(n > 0 for n in got["app_events_30d"])
