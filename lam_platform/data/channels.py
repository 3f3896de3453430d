"""The channel config: how each raw channel table maps onto the 4W1H event contract.

A platform team adds a channel by adding an entry here, not by writing code. Example
(`infra/channels.example.yaml` is a complete one):

    max_future: 1d            # reject timestamps later than ingestion time + this
    max_string_length: 256    # reject longer strings
    channels:
      shop:
        files: [raw/shop/*.csv]         # globs relative to this file; CSV or Parquet
        who: member_no                  # -> customer_id
        when: purchased_at              # -> event_timestamp
        timestamp_format: "%Y/%m/%d %H:%M"   # optional (default: ISO 8601)
        time_zone: Asia/Tokyo           # for naive timestamps; without it they are rejected
        what: sku                       # -> object
        how: action                     # -> action (a column) ...
        how_value: purchase             # ... or one fixed value for every row
        event_id: receipt_line_id       # optional; derived from the row's content when absent
        numeric: {amount: price}        # declared numeric attributes: name in the events <- source column
        categorical: {payment_method: pay_type}   # declared categorical attributes, likewise
        channel_from: null              # optional column naming each row's channel (one of the
                                        # channels declared here); default: this entry's name

Attributes are whatever the mappings declare: `amount` above becomes a float column of the event
table, a per-channel sum in the aggregates and a numeric input of the model; `payment_method` a
string column and an embedded input. One name has one kind across channels.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

from lam_platform.core.errors import yaml_problem
from lam_platform.data.events import CHANNELS, EventAttributes, EventContractError

ROLE_KEYS = {
    "files",
    "who",
    "when",
    "what",
    "how",
    "how_value",
    "timestamp_format",
    "time_zone",
    "event_id",
    "numeric",
    "categorical",
    "channel_from",
}


class ChannelConfigError(ValueError):
    """The channel config is malformed; the message names the channel and the key."""


@dataclass(frozen=True)
class ChannelMapping:
    name: str
    files: tuple[str, ...]
    who: str
    when: str
    what: str
    how: str | None = None
    how_value: str | None = None
    timestamp_format: str | None = None
    time_zone: str | None = None
    event_id: str | None = None
    numeric: dict[str, str] = field(default_factory=dict)
    categorical: dict[str, str] = field(default_factory=dict)
    channel_from: str | None = None

    def mapped_columns(self) -> list[str]:
        """The source columns this mapping reads (the only ones a quarantined row keeps)."""
        named = [
            self.event_id,
            self.who,
            self.when,
            self.what,
            self.how,
            self.channel_from,
            *self.numeric.values(),
            *self.categorical.values(),
        ]
        return list(dict.fromkeys(c for c in named if c))

    def source_files(self, base: Path) -> list[Path]:
        found = sorted({Path(p) for pattern in self.files for p in glob.glob(str(base / pattern))})
        return [p for p in found if p.suffix.lower() in (".csv", ".parquet")]


@dataclass(frozen=True)
class ChannelConfig:
    channels: dict[str, ChannelMapping]
    base: Path  # globs are relative to the config file's folder
    max_future: pd.Timedelta = pd.Timedelta(days=1)
    max_string_length: int = 256

    @property
    def attributes(self) -> EventAttributes:
        """The event attributes the channel mappings declare (checked at load: one kind per name)."""
        return EventAttributes(
            tuple({n for m in self.channels.values() for n in m.numeric}),
            tuple({n for m in self.channels.values() for n in m.categorical}),
        )

    @classmethod
    def load(cls, path: str | Path) -> ChannelConfig:
        """A standalone channel config file (the `events:` section of lam.yaml has the same shape)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"channel config {path} not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ChannelConfigError(f"{path}: {yaml_problem(err)}") from err
        return channel_config_from_dict(raw, path.resolve().parent, str(path))


SECTION_KEYS = {"channels", "max_future", "max_string_length"}


def channel_config_from_dict(raw: dict, base: Path, where: str) -> ChannelConfig:
    """Parse a channel config mapping; `where` prefixes every error (the file and section)."""
    if not isinstance(raw, dict):
        raise ChannelConfigError(f"{where}: must be a mapping with a 'channels:' mapping")
    unknown = set(raw) - SECTION_KEYS
    if unknown:
        raise ChannelConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(SECTION_KEYS)}")
    if not isinstance(raw.get("channels"), dict) or not raw["channels"]:
        raise ChannelConfigError(f"{where}: needs a non-empty 'channels:' mapping")
    channels = {name: _mapping(where, name, spec) for name, spec in raw["channels"].items()}
    try:
        max_future = pd.Timedelta(raw.get("max_future", "1d"))
    except ValueError as err:
        raise ChannelConfigError(f"{where}: max_future {raw.get('max_future')!r} is not a duration (e.g. 1d)") from err
    config = ChannelConfig(channels, Path(base), max_future, int(raw.get("max_string_length", 256)))
    try:
        _ = config.attributes  # validates the attributes the channels declare
    except EventContractError as err:
        raise ChannelConfigError(f"{where}: {err}") from err
    return config


def _mapping(source: str, name: str, spec: dict) -> ChannelMapping:
    where = f"{source}: channel {name!r}"
    if not isinstance(spec, dict):
        raise ChannelConfigError(f"{where} must be a mapping")
    unknown = set(spec) - ROLE_KEYS
    if unknown:
        raise ChannelConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(ROLE_KEYS)}")
    for role in ("files", "who", "when", "what"):
        if not spec.get(role):
            raise ChannelConfigError(f"{where}: '{role}' is required")
    if bool(spec.get("how")) == bool(spec.get("how_value")):
        raise ChannelConfigError(f"{where}: give exactly one of 'how' (a column) or 'how_value' (a fixed action)")
    numeric, categorical = spec.get("numeric") or {}, spec.get("categorical") or {}
    if not isinstance(numeric, dict) or not isinstance(categorical, dict):
        raise ChannelConfigError(
            f"{where}: 'numeric' and 'categorical' map attribute names to source columns, "
            "e.g. numeric: {amount: price}"
        )
    try:
        EventAttributes(tuple(numeric), tuple(categorical))
    except EventContractError as err:
        raise ChannelConfigError(f"{where}: {err}") from err
    if spec.get("time_zone"):
        try:
            ZoneInfo(spec["time_zone"])
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ChannelConfigError(f"{where}: unknown time_zone {spec['time_zone']!r}") from err
    files = spec["files"] if isinstance(spec["files"], list) else [spec["files"]]
    return ChannelMapping(
        name=name,
        files=tuple(files),
        who=spec["who"],
        when=spec["when"],
        what=spec["what"],
        how=spec.get("how"),
        how_value=spec.get("how_value"),
        timestamp_format=spec.get("timestamp_format"),
        time_zone=spec.get("time_zone"),
        event_id=spec.get("event_id"),
        numeric=dict(numeric),
        categorical=dict(categorical),
        channel_from=spec.get("channel_from"),
    )


REPO_CHANNEL_CONFIG = "channels.yaml"  # inside a feature repo: the channels its views are generated for


def repo_channels(feature_repo: Path) -> tuple[str, ...]:
    """The channels a feature repo serves: those of its channels.yaml, else the built-in list."""
    path = Path(feature_repo) / REPO_CHANNEL_CONFIG
    return tuple(ChannelConfig.load(path).channels) if path.exists() else CHANNELS
