"""Where every step reads and writes: one folder per platform instance (`lam demo --workdir`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workdir:
    """The layout of a working directory. The Feast repo owns `feature_repo/data/` (its sources)."""

    root: Path

    @classmethod
    def at(cls, path: str | Path) -> Workdir:
        return cls(Path(path).resolve())

    @property
    def config(self) -> Path:
        return self.root / "lam.yaml"  # the platform config (lam_platform.data.platform_config)

    @property
    def feature_repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def data(self) -> Path:
        return self.feature_repo / "data"

    @property
    def events(self) -> Path:
        return self.data / "events"

    @property
    def profiles(self) -> Path:
        return self.data / "customer_profile.parquet"

    @property
    def campaign_log(self) -> Path:
        return self.data / "campaign_log.parquet"

    @property
    def sequences(self) -> Path:
        return self.data / "customer_event_sequence"  # one snapshot file per materialization

    @property
    def aggregates(self) -> Path:
        return self.data / "customer_event_aggregates"  # one snapshot file per materialization

    @property
    def sequence_view(self) -> Path:
        return self.data / "sequence_view.json"  # N of the sequence view, for pushes

    @property
    def scores(self) -> Path:
        return self.data / "lam_scores.parquet"

    @property
    def repo_schema(self) -> Path:
        return self.feature_repo / "repo_schema.json"  # channels, actions, profile fields the views are built for

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"  # rows ingestion rejected, with reasons

    @property
    def world(self) -> Path:
        return self.root / "world"

    @property
    def world_json(self) -> Path:
        return self.world / "world.json"

    @property
    def episodes(self) -> Path:
        return self.world / "episodes.parquet"

    @property
    def responsiveness(self) -> Path:
        return self.world / "responsiveness.parquet"

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def ray_results(self) -> Path:
        return self.root / "ray_results"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "api.jsonl"  # append-only record of scoring API requests

    @property
    def governance_log(self) -> Path:
        return self.root / "audit" / "governance.jsonl"  # append-only record of consent, erasure and purge runs

    @property
    def erasure_requests(self) -> Path:
        return self.root / "erasure"  # one journal per `lam forget` request, so a crashed one can resume

    @property
    def retention_policy(self) -> Path:
        return self.root / "retention.json"  # the window of the last `lam purge` (lam_platform/data/suppression.py)

    @property
    def erased_customers(self) -> Path:
        return self.erasure_requests / "erased.digests"  # the suppression list (lam_platform/data/suppression.py)

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def call_list(self) -> Path:
        return self.outputs / "call_list.parquet"  # what `lam score` and the Ray Data scorer hand the call centre

    @property
    def call_list_csv(self) -> Path:
        return self.outputs / "call_list.csv"

    def contains(self, path: str | Path) -> bool:
        """Whether `path` lies inside this workdir (where only pseudonymous data may be written)."""
        return Path(path).resolve().is_relative_to(self.root)

    def make(self) -> Workdir:
        for folder in (self.data, self.world, self.training, self.artifacts, self.outputs):
            folder.mkdir(parents=True, exist_ok=True)
        return self
