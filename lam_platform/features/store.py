"""Feast glue: lay out the feature repo in a workdir, apply it, materialize, and read features.

The definitions ship with the package (`lam_platform/feast_repo/definitions.py`); the first
`lam materialize` copies them into the workdir with the `feature_store.yaml` of the chosen profile
(`lam_platform/feast_repo/profiles/local.yaml` by default). Both are then the platform team's to edit:
later runs keep them and only say when the shipped definitions differ. Every run rewrites
`repo_schema.json`, which says which profile fields, aggregates and attribute lists the views carry
(from the event table and lam.yaml), so the same definitions serve simulated and real data and
`feast apply` needs nothing but Feast.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lam_platform.core.atomic_files import parquet_writer
from lam_platform.core.errors import UserError
from lam_platform.core.packaged import FEAST_PROFILES, FEAST_REPO
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, EventAttributes
from lam_platform.features.aggregates import AggregateSpec, aggregate_feature_names, aggregates_of
from lam_platform.features.sequences import PointInTimeQuery, list_columns, sequences_of
from lam_platform.features.snapshots import EventShards

DEFINITIONS = FEAST_REPO
log = logging.getLogger(__name__)
LOCAL_PROFILE = FEAST_PROFILES / "local.yaml"
CONSENT_FEATURE = "consent_marketing"
MATERIALIZED_VIEWS = ("customer_profile", "customer_event_sequence", "customer_event_aggregates")
SCORES_SCHEMA = [
    ("customer_id", pa.string()),
    ("event_timestamp", TIMESTAMP),
    ("best_offer", pa.string()),
    ("best_method", pa.string()),
    ("p_order_if_called", pa.float64()),
    ("p_order_if_not_called", pa.float64()),
    ("uplift", pa.float64()),
    ("model_version", pa.string()),
]


@dataclass(frozen=True)
class RepoSchema:
    """What the workdir's views carry: aggregate channels and actions, the declared profile fields and
    the event attributes (one list per attribute in the sequence view, numeric ones summed in the
    aggregates)."""

    channels: tuple[str, ...]
    actions: tuple[str, ...]
    profile: dict[str, str]  # field -> "categorical" | "numeric"
    attributes: EventAttributes = EventAttributes()

    @property
    def aggregates(self) -> AggregateSpec:
        return AggregateSpec(self.channels, self.actions, self.attributes.numeric)

    @property
    def sequence_features(self) -> tuple[str, ...]:
        """The features of the `customer_event_sequence` view."""
        return ("seq_len", *list_columns(self.attributes))

    def save(self, path: Path) -> None:
        """The schema, with every aggregate feature spelled out so `definitions.py` needs only Feast."""
        path.write_text(
            json.dumps(
                {
                    "channels": list(self.channels),
                    "actions": list(self.actions),
                    "profile": self.profile,
                    "attributes": self.attributes.to_dict(),
                    "aggregate_features": aggregate_feature_names(self.aggregates),
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, workdir: Workdir) -> RepoSchema:
        if not workdir.repo_schema.exists():
            raise FileNotFoundError(
                f"no feature repo in {workdir.root}: run `lam materialize --workdir {workdir.root}`"
            )
        raw = json.loads(workdir.repo_schema.read_text())
        attributes = raw.get("attributes", {})
        return cls(
            tuple(raw["channels"]),
            tuple(raw["actions"]),
            dict(raw["profile"]),
            EventAttributes(tuple(attributes.get("numeric", ())), tuple(attributes.get("categorical", ()))),
        )


def prepare_repo(
    workdir: Workdir, schema: RepoSchema, profile: Path | None = None, switch_online_store: bool = False
) -> Path:
    """Copy the feature definitions and write the repo schema; the store profile (`feature_store.yaml`)
    is the workdir's own unless `profile` names another (default for a new repo: the local SQLite one).

    Switching the online store type is refused unless `switch_online_store`: the customers stored in the
    old one would stay there, out of reach of `lam forget` and `lam consent`, which act on the current one.
    """
    current = workdir.feature_repo / "feature_store.yaml"
    chosen = Path(profile) if profile is not None else (current if current.exists() else LOCAL_PROFILE)
    settings = "\n".join(line for line in chosen.read_text().splitlines() if not line.lstrip().startswith("#"))
    unset = sorted({v for v in re.findall(r"\$\{(\w+)\}", settings) if v not in os.environ})
    if unset:
        raise UserError(f"feature store profile {chosen} needs environment variables {unset}; set them first")
    if current.exists() and chosen != current:
        before, after = online_store_type(current), online_store_type(chosen)
        if before != after and not switch_online_store:
            raise UserError(
                f"{workdir.root} serves from the {before} online store; {chosen} uses {after}. Customers "
                f"stored in {before} would stay there, out of reach of `lam forget` and `lam consent`: "
                "keep the workdir's profile (omit --profile), or pass --switch-online-store after "
                f"clearing {before}"
            )
    workdir.feature_repo.mkdir(parents=True, exist_ok=True)
    _write_definitions_once(workdir.feature_repo)
    if chosen != current:
        shutil.copy(chosen, current)
    schema.save(workdir.repo_schema)
    return workdir.feature_repo


def _write_definitions_once(repo: Path) -> None:
    """Copy the shipped definitions into a new repo; an existing repo keeps its own (a platform team's
    edits are theirs), and a run says so when the shipped file has changed since."""
    for name in ("definitions.py", ".feastignore"):
        shipped, kept = DEFINITIONS / name, repo / name
        if not kept.exists():
            shutil.copy(shipped, kept)
        elif kept.read_bytes() != shipped.read_bytes():
            log.warning(
                "%s differs from the shipped %s and is kept; compare the two and merge by hand if the "
                "views need the shipped changes",
                kept,
                shipped,
            )


def online_store_type(profile: Path) -> str:
    """The `online_store.type` a feature_store.yaml names (Feast's default: sqlite)."""
    import yaml

    store = (yaml.safe_load(Path(profile).read_text()) or {}).get("online_store") or {}
    return str(store.get("type", "sqlite")) if isinstance(store, dict) else str(store)


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


SNAPSHOT_NAME = "asof=%Y%m%dT%H%M%S%fZ"  # UTC, sortable, no characters a filesystem dislikes


def snapshot_path(folder: Path, as_of: datetime) -> Path:
    return folder / f"{pd.Timestamp(as_of).tz_convert('UTC').strftime(SNAPSHOT_NAME)}.parquet"


def snapshot_times(workdir: Workdir, folder: Path | None = None) -> list[pd.Timestamp]:
    """The as-of times of the snapshots already written (default: the sequence snapshots), oldest first."""
    folder = folder if folder is not None else workdir.sequences
    return sorted(pd.to_datetime(p.stem, format=SNAPSHOT_NAME, utc=True) for p in folder.glob("asof=*.parquet"))


def write_snapshots(workdir: Workdir, shards: EventShards, as_of: datetime, max_len: int, customers: list[str]) -> int:
    """Sequences and aggregates of `customers` as of `as_of`, one new file in each snapshot source, built one
    shard of the events at a time and appended; each file appears whole when every shard is in."""
    spec = RepoSchema.load(workdir).aggregates
    with contextlib.ExitStack() as files:
        writers = {}
        for events, mine in shards.each(customers):
            # One sort of the shard's events and one index of its customers serve both snapshots.
            query = PointInTimeQuery.prepare(events, mine, pa.array([as_of] * len(mine), TIMESTAMP))
            for folder, table in (
                (workdir.sequences, sequences_of(query, max_len)),
                (workdir.aggregates, aggregates_of(query, spec)),
            ):
                if folder not in writers:  # Feast's file source reads a snapshot whole or not at all
                    folder.mkdir(parents=True, exist_ok=True)
                    writers[folder] = files.enter_context(parquet_writer(snapshot_path(folder, as_of), table.schema))
                writers[folder].write_table(table)
    return len(customers)


def ensure_scores_source(workdir: Workdir) -> None:
    """The push source's batch file must exist before `feast apply` can register it."""
    if not workdir.scores.exists():
        pq.write_table(pa.table({name: pa.array([], type) for name, type in SCORES_SCHEMA}), workdir.scores)


CURRENT_STATE_VIEWS = ("customer_profile",)  # consent is the current flag online, whatever the snapshot time
SNAPSHOT_VIEWS = tuple(v for v in MATERIALIZED_VIEWS if v not in CURRENT_STATE_VIEWS)


def _current_state_end(end: datetime) -> datetime:
    """Profiles load up to now: a consent change recorded after `end` must stay in force online (the
    SQLite store would otherwise overwrite it with an older row)."""
    return max(pd.Timestamp(end), pd.Timestamp.now(tz="UTC")) + timedelta(seconds=1)


@contextlib.contextmanager
def _quiet_feast() -> Iterator[None]:
    """Feast's materialize prints a colour-coded banner per call to stdout and logs each view at INFO: neither
    says more than the step's own summary, and stdout belongs to `--json`."""
    logging.getLogger("feast").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        yield


ONLINE_BATCH_ROWS = 10_000  # snapshot rows written to the online store at a time


def materialize(store, workdir: Workdir, start: datetime, end: datetime) -> None:
    """Load the snapshots taken in [start, end] and the latest profile row per customer (up to now) into the online
    store (a full run leaves one snapshot, taken at `end`)."""
    for name in SNAPSHOT_VIEWS:
        load_snapshots(store, workdir, name, start, end)
    with _quiet_feast():
        store.materialize(start_date=start, end_date=_current_state_end(end), feature_views=list(CURRENT_STATE_VIEWS))


def materialize_incremental(store, workdir: Workdir, end: datetime) -> None:
    """Load the snapshots taken since each view's last load, up to `end` (the customers refreshed since: a snapshot
    an earlier run wrote but did not load is loaded too, oldest first), and profile rows newer than the last
    materialization (up to now) into the online store."""
    for name in SNAPSHOT_VIEWS:
        last = store.get_feature_view(name).most_recent_end_time
        load_snapshots(store, workdir, name, last if last is not None else end, end)
    with _quiet_feast():
        store.materialize_incremental(end_date=_current_state_end(end), feature_views=list(CURRENT_STATE_VIEWS))


SNAPSHOT_FOLDERS = {"customer_event_sequence": "sequences", "customer_event_aggregates": "aggregates"}  # Workdir's


def load_snapshots(store, workdir: Workdir, view: str, start: datetime, end: datetime) -> None:
    """Write `view`'s snapshots taken in [start, end] to the online store, oldest first, ONLINE_BATCH_ROWS at a
    time (Feast's `materialize` reads a whole source into memory: a million customers' sequences are
    gigabytes), then record [start, end] as materialized in the registry, as `materialize` does
    (`materialize_incremental` starts from there). A snapshot holds one row per customer, and a later one
    overwrites an earlier one's rows: what `materialize` would load, the latest row per customer."""
    folder = getattr(workdir, SNAPSHOT_FOLDERS[view])
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    for taken in snapshot_times(workdir, folder):
        if start <= taken <= end:
            for batch in pq.ParquetFile(snapshot_path(folder, taken)).iter_batches(batch_size=ONLINE_BATCH_ROWS):
                # Arrow-backed columns: Feast converts them back to the same Arrow types (timestamps keep their zone)
                store.write_to_online_store(view, batch.to_pandas(types_mapper=pd.ArrowDtype))
    store.registry.apply_materialization(store.get_feature_view(view), store.project, start, end + timedelta(seconds=1))


def profile_features(store) -> list[str]:
    """The profile view's feature names as registered (the declared profile fields and consent)."""
    return [f.name for f in store.get_feature_view("customer_profile").features]


def sequence_features(store) -> list[str]:
    """The sequence view's feature names as registered (seq_len, the core lists, one per attribute)."""
    return [f.name for f in store.get_feature_view("customer_event_sequence").features]


def online_features(
    store,
    customer_ids: list[str],
    batch_size: int = 500,
    profile_names: list[str] | None = None,
    sequence_names: list[str] | None = None,
) -> pd.DataFrame:
    """Current profile and sequence per customer from the online store, one row per id.

    Unknown customers come back as rows with `found` False and nulls, not as errors.
    `profile_names`, `sequence_names`: the views' features (default: read from the registry).
    """
    profile_names = profile_names if profile_names is not None else profile_features(store)
    sequence_names = sequence_names if sequence_names is not None else sequence_features(store)
    refs = [f"customer_profile:{f}" for f in profile_names] + [f"customer_event_sequence:{f}" for f in sequence_names]
    frames = []
    for lo in range(0, len(customer_ids), batch_size):
        rows = [{"customer_id": c} for c in customer_ids[lo : lo + batch_size]]
        frames.append(pd.DataFrame(store.get_online_features(features=refs, entity_rows=rows).to_dict()))
    if not frames:
        return pd.DataFrame(columns=["customer_id", "found", *profile_names, *sequence_names])
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(1, "found", frame.seq_len.notna() | frame.consent_marketing.notna())
    return frame


def push_scores(store, scores: pd.DataFrame) -> None:
    """Push each customer's best campaign into the `lam_scores` view: offline in one write, online
    ONLINE_BATCH_ROWS at a time (Feast turns every online value into a protobuf object first: a million
    customers' scores at once would hold millions of them)."""
    from feast.data_source import PushMode

    frame = scores[[name for name, _ in SCORES_SCHEMA]].copy()
    for name, type_ in SCORES_SCHEMA:
        if type_ == pa.float64():
            frame[name] = frame[name].astype("float64")  # model outputs are float32; the view says Float64
    store.push("lam_scores_push", frame, to=PushMode.OFFLINE)
    for start in range(0, len(frame), ONLINE_BATCH_ROWS):
        store.push("lam_scores_push", frame.iloc[start : start + ONLINE_BATCH_ROWS], to=PushMode.ONLINE)


def historical_profiles(store, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time profile features for each (customer_id, event_timestamp) row of `entity_df`: one row per
    entity row, in its order; a row with no profile change at or before its time gets nulls (unknown)."""
    features = [f"customer_profile:{f}" for f in profile_features(store)]
    keyed = entity_df[["customer_id", "event_timestamp"]].assign(_row=np.arange(len(entity_df)))
    # Feast leaves out entity rows that no feature row precedes: put them back, as unknown.
    found = store.get_historical_features(entity_df=keyed, features=features).to_df()
    found = found.drop(columns=["customer_id", "event_timestamp"])
    joined = keyed.merge(found, on="_row", how="left", validate="one_to_one").sort_values("_row")
    extra = entity_df.drop(columns=["customer_id", "event_timestamp"]).reset_index(drop=True)
    return pd.concat([joined.drop(columns="_row").reset_index(drop=True), extra], axis=1)


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
