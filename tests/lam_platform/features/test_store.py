import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.core.packaged import feast_profile_path
from lam_platform.data.events import TIMESTAMP, EventAttributes, read_events
from lam_platform.features.sequences import build_sequences, list_columns
from lam_platform.features.store import historical_profiles, online_features, open_store, schema_fingerprint
from lam_platform.simulation.world import load_world_config
from tests.conftest import TINY_MAX_LEN


def test_online_sequences_equal_offline_point_in_time_sequences(tiny_world):
    world = load_world_config(tiny_world)
    store = open_store(tiny_world)
    ids = pd.read_parquet(tiny_world.profiles).customer_id.sample(40, random_state=0).tolist()
    online = online_features(store, ids)
    offline = build_sequences(
        read_events(tiny_world.events), ids, pa.array([world.scoring_time] * len(ids), TIMESTAMP), TINY_MAX_LEN
    ).to_pandas()
    assert "payment_method_seq" in online.columns and "amount_seq" in online.columns  # declared attributes
    for column in list_columns(EventAttributes.of_events(tiny_world.events)):
        for got, expected in zip(online[column], offline[column]):
            got, expected = pd.Series(list(got)), pd.Series(list(expected))
            pd.testing.assert_series_equal(got, expected, check_dtype=False)
    assert (online.seq_len.astype(int) == offline.seq_len).all()
    for stamps in online.event_timestamps:
        assert all(t < world.scoring_time for t in stamps)  # nothing at or after the scoring time


def test_unknown_customer_reads_as_missing_not_error(tiny_world):
    row = online_features(open_store(tiny_world), ["no-such-customer"]).iloc[0]
    assert row.event_timestamps is None and pd.isna(row.seq_len)


def test_training_profiles_are_point_in_time(tiny_world):
    log = pd.read_parquet(tiny_world.campaign_log).head(20)
    frame = historical_profiles(open_store(tiny_world), log[["customer_id", "event_timestamp"]])
    assert len(frame) == 20 and frame.plan.notna().all() and frame.consent_marketing.all()
    before_profiles = log[["customer_id"]].assign(event_timestamp=pd.Timestamp("2020-01-01", tz="UTC"))
    assert historical_profiles(open_store(tiny_world), before_profiles).plan.isna().all()


def test_fingerprint_names_a_missing_view(tiny_world):
    with pytest.raises(LookupError, match="no_such_view"):
        schema_fingerprint(open_store(tiny_world), ("customer_profile", "no_such_view"))


def test_a_profile_with_unset_variables_names_them(tmp_path, monkeypatch):
    from lam_platform.core.workdir import Workdir
    from lam_platform.features.store import RepoSchema, prepare_repo

    monkeypatch.delenv("LAM_REDIS", raising=False)
    monkeypatch.delenv("LAM_REGISTRY_URL", raising=False)
    with pytest.raises(ValueError, match="LAM_REDIS"):
        prepare_repo(Workdir.at(tmp_path), RepoSchema(("shop",), ("purchase",), {}), feast_profile_path("production"))


def test_materialize_keeps_the_workdirs_store_profile_and_refuses_a_silent_switch(tmp_path, monkeypatch):
    from lam_platform.core.errors import UserError
    from lam_platform.core.workdir import Workdir
    from lam_platform.features.store import LOCAL_PROFILE, RepoSchema, online_store_type, prepare_repo

    monkeypatch.setenv("LAM_REDIS", "127.0.0.1:6379")
    monkeypatch.setenv("LAM_REGISTRY_URL", "postgresql://root@127.0.0.1:5432/test")
    workdir, schema = Workdir.at(tmp_path), RepoSchema(("shop",), ("purchase",), {})
    store_yaml = workdir.feature_repo / "feature_store.yaml"
    prepare_repo(workdir, schema, feast_profile_path("production"))
    prepare_repo(workdir, schema)  # no profile named: the workdir keeps its own
    assert online_store_type(store_yaml) == "redis"
    with pytest.raises(UserError, match="serves from the redis online store.*--switch-online-store"):
        prepare_repo(workdir, schema, LOCAL_PROFILE)
    assert online_store_type(store_yaml) == "redis"
    prepare_repo(workdir, schema, LOCAL_PROFILE, switch_online_store=True)
    assert online_store_type(store_yaml) == "sqlite"


def test_the_repo_files_are_written_once_and_a_teams_edits_survive(tmp_path, caplog):
    from lam_platform.core.workdir import Workdir
    from lam_platform.features.store import RepoSchema, load_definitions, prepare_repo

    workdir, schema = Workdir.at(tmp_path), RepoSchema(("shop",), ("purchase",), {"plan": "categorical"})
    prepare_repo(workdir, schema)
    definitions = workdir.feature_repo / "definitions.py"
    edited = definitions.read_text() + "\n# our team's note: keep the 30-day TTL discussion in mind\n"
    definitions.write_text(edited)
    with caplog.at_level("WARNING", logger="lam_platform.features.store"):
        prepare_repo(workdir, schema)
    assert definitions.read_text() == edited  # kept, not overwritten
    assert "differs from the shipped" in caplog.text and "definitions.py" in caplog.text
    names = {obj.name for obj in load_definitions(workdir.feature_repo)}
    assert {"customer_profile", "customer_event_aggregates", "customer_event_sequence", "lam_scores"} <= names


def test_the_shipped_definitions_import_nothing_but_feast_and_the_standard_library():
    import ast
    import sys

    from lam_platform.core.packaged import FEAST_REPO

    tree = ast.parse((FEAST_REPO / "definitions.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) == {"feast"}, imported


def test_scores_go_online_in_batches_and_offline_in_one_write(tiny_world, tmp_path, monkeypatch):
    import shutil

    from lam_platform.core.workdir import Workdir
    from lam_platform.features import store as store_module

    copy = Workdir.at(tmp_path / "workdir")
    shutil.copytree(tiny_world.root, copy.root, ignore=shutil.ignore_patterns("artifacts", "ray_results", "training"))
    monkeypatch.setattr(store_module, "ONLINE_BATCH_ROWS", 3)  # seven customers: three online writes
    customers = [f"c{i}" for i in range(7)]
    scores = pd.DataFrame(
        {
            "customer_id": customers,
            "event_timestamp": pd.Timestamp("2024-06-01", tz="UTC"),
            "best_offer": [f"offer{i}" for i in range(7)],
            "best_method": "call",
            "p_order_if_called": [0.1 * i for i in range(7)],
            "p_order_if_not_called": 0.05,
            "uplift": [0.1 * i - 0.05 for i in range(7)],
            "model_version": "v1",
        }
    )
    store = open_store(copy)
    store_module.push_scores(store, scores)
    online = store.get_online_features(
        features=["lam_scores:best_offer", "lam_scores:uplift"], entity_rows=[{"customer_id": c} for c in customers]
    ).to_dict()
    assert online["best_offer"] == scores.best_offer.tolist()
    assert online["uplift"] == pytest.approx(scores.uplift.tolist())
    offline = pd.read_parquet(copy.feature_repo / "data" / "lam_scores.parquet")
    assert sorted(offline.customer_id) == customers  # each customer once: one offline write
