"""Feast glue: lay out the feature repo in a workdir, apply it, materialize, and read features.

The definitions live in the top-level `feature_repo/` of this project; a workdir gets a copy with
the `feature_store.yaml` of the chosen profile (`infra/feast/local.yaml` by default).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lam_platform.events import read_events
from lam_platform.sequences import LIST_COLUMNS, snapshot_sequences
from lam_platform.workdir import Workdir

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = PROJECT_ROOT / "feature_repo"
LOCAL_PROFILE = PROJECT_ROOT / "infra" / "feast" / "local.yaml"
PROFILE_FEATURES = ("age_band", "gender", "plan", "tenure_months", "region", "consent_marketing")
SEQUENCE_FEATURES = ("seq_len",) + tuple(LIST_COLUMNS)


def prepare_repo(workdir: Workdir, profile: Path = LOCAL_PROFILE) -> Path:
    """Copy the feature definitions and the profile's feature_store.yaml into the workdir."""
    if not (DEFINITIONS / "definitions.py").exists():
        raise FileNotFoundError(
            f"feature definitions not found at {DEFINITIONS}; install the project with `pip install -e .`"
        )
    workdir.feature_repo.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEFINITIONS / "definitions.py", workdir.feature_repo / "definitions.py")
    shutil.copy(DEFINITIONS / ".feastignore", workdir.feature_repo / ".feastignore")
    shutil.copy(profile, workdir.feature_repo / "feature_store.yaml")
    return workdir.feature_repo


def open_store(workdir: Workdir):
    """The FeatureStore of a prepared workdir."""
    from feast import FeatureStore

    if not (workdir.feature_repo / "feature_store.yaml").exists():
        raise FileNotFoundError(f"no feature repo in {workdir.root}: run `lam materialize --workdir {workdir.root}`")
    return FeatureStore(repo_path=str(workdir.feature_repo))


def load_definitions(repo: Path) -> list:
    """The Feast objects defined in `repo/definitions.py`, imported by path (no chdir, no sys.path edits)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    spec = importlib.util.spec_from_file_location(f"lam_feature_repo_{abs(hash(str(repo)))}", repo / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kinds = (Entity, DataSource, FeatureView, FeatureService)
    return [obj for obj in vars(module).values() if isinstance(obj, kinds)]


def apply_repo(workdir: Workdir):
    """`feast apply` from Python: register every object the repo defines; returns the store."""
    store = open_store(workdir)
    store.apply(load_definitions(workdir.feature_repo))
    return store


def write_sequence_snapshot(workdir: Workdir, as_of: datetime, max_len: int) -> int:
    """Build every customer's last-`max_len` sequence as of `as_of` into the Feast sequence source."""
    events = read_events(workdir.events)
    customers = pq.read_table(workdir.profiles, columns=["customer_id"]).column("customer_id").to_pylist()
    table = snapshot_sequences(events, customers, as_of, max_len)
    pq.write_table(table, workdir.sequences)
    return table.num_rows


def materialize(store, start: datetime, end: datetime) -> None:
    """Load the latest row per customer with timestamp in [start, end] into the online store."""
    # Feast's materialize logs each view at INFO through its own handlers; keep the demo output readable.
    logging.getLogger("feast").setLevel(logging.WARNING)
    store.materialize(start_date=start, end_date=end + timedelta(seconds=1))


def online_features(store, customer_ids: list[str], batch_size: int = 500) -> pd.DataFrame:
    """Current profile and sequence per customer from the online store, one row per id.

    Unknown customers come back with nulls (seq_len missing), not as errors.
    """
    refs = [f"customer_profile:{f}" for f in PROFILE_FEATURES] + [
        f"customer_event_sequence:{f}" for f in SEQUENCE_FEATURES
    ]
    frames = []
    for lo in range(0, len(customer_ids), batch_size):
        rows = [{"customer_id": c} for c in customer_ids[lo : lo + batch_size]]
        frames.append(pd.DataFrame(store.get_online_features(features=refs, entity_rows=rows).to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["customer_id", *PROFILE_FEATURES])


def historical_profiles(store, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time profile features for each (customer_id, event_timestamp) row of `entity_df`."""
    features = [f"customer_profile:{f}" for f in PROFILE_FEATURES]
    return store.get_historical_features(entity_df=entity_df, features=features).to_df()


def sequences_frame(table: pa.Table) -> pd.DataFrame:
    """A sequence table as a DataFrame with plain Python lists (the shape online reads return)."""
    return table.to_pandas(types_mapper=None)


MODEL_VIEWS = ("customer_profile", "customer_event_sequence")


def schema_fingerprint(store, views: tuple[str, ...] = MODEL_VIEWS) -> str:
    """A short hash of the named views' feature names and types, recorded in every model card."""
    from feast.errors import FeatureViewNotFoundException

    parts = []
    for name in views:
        try:
            view = store.get_feature_view(name)
        except FeatureViewNotFoundException as err:
            raise LookupError(
                f"the feature registry lacks view {name!r} (the model needs {list(views)}); "
                "run `lam materialize` to apply the feature repo"
            ) from err
        parts.append([name, sorted([f.name, str(f.dtype)] for f in view.features)])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
