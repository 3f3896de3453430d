"""The platform config: one validated `lam.yaml` per workdir, the single place a team declares its data.

It names the raw sources (`events` channels, the `customers` table, the `campaigns` contact log),
the profile fields, how consent is handled, the campaign catalogue, event-derived `targets` and the
call-list rules. Every step after ingestion reads its choices from here; the clock is each
command's `--as-of` (see `lam_platform.data.clock`). `lam init --workdir W` writes a commented template
(`lam_platform.data.config_template`); `lam simulate` writes the simulator's own.

Errors name the key and the allowed values (pydantic validation, re-worded in one line per error).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lam_platform.core.errors import UserError, yaml_problem
from lam_platform.data.channels import ChannelConfig, ChannelConfigError, channel_config_from_dict

CONFIG_NAME = "lam.yaml"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_HEADS = ("backbone", "next_action", "campaign_response")


class PlatformConfigError(UserError):
    """lam.yaml is missing or malformed; the message names the key and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str | int | float) -> pd.Timedelta:
    try:
        delta = pd.Timedelta(value if isinstance(value, str) else f"{value}d")
    except ValueError as err:
        raise ValueError(f"{value!r} is not a duration (write e.g. 14d, 36h)") from err
    if delta <= pd.Timedelta(0):
        raise ValueError(f"{value!r} must be a positive duration")
    return delta


class SourceFiles(_Section):
    """Where a raw table lives and how its timestamps are written (shared by customers and campaigns)."""

    files: list[str]
    timestamp_format: str | None = None  # default ISO 8601
    time_zone: str | None = None  # for timestamps without a zone; without it such rows are quarantined

    @field_validator("files", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value


class ProfileField(_Section):
    type: Literal["categorical", "numeric"]
    column: str | None = None  # default: the field's own name


class Consent(_Section):
    column: str  # a boolean-ish column: true/false, 1/0, yes/no
    recorded_at: str | None = None  # when each row took effect; default: the time of `lam ingest`


class Customers(SourceFiles):
    who: str
    profile: dict[str, ProfileField] = Field(default_factory=dict)
    consent: Consent

    @field_validator("profile", mode="before")
    @classmethod
    def _short_form(cls, value):
        # `age_band: categorical` is short for `age_band: {type: categorical}`.
        return {k: ({"type": v} if isinstance(v, str) else v) for k, v in (value or {}).items()}

    @field_validator("profile")
    @classmethod
    def _names(cls, value):
        for name in value:
            if not NAME.match(name) or name in ("customer_id", "event_timestamp", "consent_marketing"):
                raise ValueError(f"profile field {name!r} must be lower_snake_case and not a reserved column")
        return value


def _valid_duration(value: str) -> str:
    _duration(value)
    return value


DurationText = Annotated[str, AfterValidator(_valid_duration)]  # "30d", "36h": checked when loaded


class _Horizon(_Section):
    """A label over a horizon after t; `horizon_text` is the declared duration."""

    @property
    def horizon(self) -> pd.Timedelta:
        return _duration(self.horizon_text)


class ActionWithin(_Horizon):
    """Positive when the customer has an event with this action within the horizon after t."""

    action: str
    within: DurationText

    @property
    def horizon_text(self) -> str:
        return self.within


class NoEventWithin(_Horizon):
    """Positive when the customer has no event at all within the horizon after t (churn)."""

    no_event_within: DurationText

    @property
    def horizon_text(self) -> str:
        return self.no_event_within


class OutcomeColumn(_Section):
    column: str


class Campaigns(SourceFiles):
    who: str
    contacted_at: str
    offer: str
    method: str
    treatment: str  # 1/true = contacted, 0/false = held-out control
    campaign_id: str | None = None
    policy: str | None = None
    propensity: str | None = None  # the logged chance of this row's assignment, where the source has it
    outcome: OutcomeColumn | ActionWithin
    outcome_value: str | None = None  # the order's value, where the source has it

    @property
    def outcome_horizon(self) -> pd.Timedelta | None:
        return self.outcome.horizon if isinstance(self.outcome, ActionWithin) else None


class Catalogue(_Section):
    offers: list[str] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    contact_slots: list[int] = Field(default=[10])  # hours of the day a call list may be worked

    @field_validator("contact_slots")
    @classmethod
    def _hours(cls, value):
        bad = [h for h in value if not 0 <= h <= 23]
        if bad or not value:
            raise ValueError(f"contact_slots are hours 0..23; got {value}")
        return value

    @property
    def campaigns(self) -> list[tuple[str, str]]:
        """Every (offer, method) a call list may choose from."""
        return [(o, m) for o in self.offers for m in self.methods]


class CallListRules(_Section):
    """Who may be on a call list: one definition for the API and the batch list alike."""

    capacity: int | str = "5%"  # a number of calls, or a share of the customers ("5%")
    contact_channel: str = "telemarketing"  # events on this channel are contacts (for the cool-down)
    conversion_action: str = "purchase"  # an event with this action is a conversion
    cooldown_days: float = 14.0
    converted_within_days: float = 30.0

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value):
        if isinstance(value, str) and not re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
            raise ValueError(f"capacity must be a number of calls or a percentage like '5%'; got {value!r}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"capacity must be at least 1; got {value}")
        return value

    def calls_for(self, customers: int) -> int:
        """The number of calls for a customer base of this size."""
        if isinstance(self.capacity, int):
            return self.capacity
        return max(1, round(float(self.capacity.strip().rstrip("%")) / 100 * customers))


class PlatformConfig(_Section):
    events: dict = Field(default_factory=dict)  # the channel config (see lam_platform.data.channels), checked below
    customers: Customers | None = None
    consent: Literal["ledger", "analysis_only"] | None = None
    campaigns: Campaigns | None = None
    catalogue: Catalogue | None = None
    targets: dict[str, ActionWithin | NoEventWithin] = Field(default_factory=dict)
    call_list: CallListRules = Field(default_factory=CallListRules)
    base: Path = Path(".")  # folder of lam.yaml: file globs are relative to it

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if self.customers is None and self.consent is None:
            raise ValueError(
                "consent: no `customers` table is declared, so say how consent is handled: "
                "`consent: analysis_only` (train and score for analysis, never build contact lists)"
            )
        if self.customers is not None and self.consent == "analysis_only":
            raise ValueError(
                "consent: a customers table with a consent column is declared; drop "
                "`consent: analysis_only` (or the customers section)"
            )
        if self.campaigns is not None and self.catalogue is None:
            raise ValueError(
                "catalogue: a campaigns log is declared, so declare the catalogue (offers, methods) its rows may name"
            )
        for name in self.targets:
            if not NAME.match(name) or name in RESERVED_HEADS:
                raise ValueError(f"targets: {name!r} must be lower_snake_case and not one of {list(RESERVED_HEADS)}")
        return self

    # -- what the steps ask ----------------------------------------------------------------------
    @property
    def consent_mode(self) -> str:
        return self.consent or "ledger"

    @property
    def contact_allowed(self) -> bool:
        """Whether call lists may be built at all (never in analysis-only workdirs)."""
        return self.consent_mode == "ledger"

    @property
    def profile_fields(self) -> dict[str, str]:
        """Declared profile field -> "categorical" | "numeric" (empty without a customers table)."""
        return {k: v.type for k, v in (self.customers.profile if self.customers else {}).items()}

    @property
    def categorical_profile(self) -> list[str]:
        return [k for k, t in self.profile_fields.items() if t == "categorical"]

    @property
    def numeric_profile(self) -> list[str]:
        return [k for k, t in self.profile_fields.items() if t == "numeric"]

    def channel_config(self) -> ChannelConfig:
        if not self.events.get("channels"):
            raise PlatformConfigError(
                f"{self.base / CONFIG_NAME}: events.channels is empty; declare the raw "
                "event tables to ingest (see `lam init`)"
            )
        try:
            return channel_config_from_dict(self.events, self.base, where=f"{self.base / CONFIG_NAME}: events")
        except ChannelConfigError as err:
            raise PlatformConfigError(str(err)) from err

    def require_catalogue(self) -> Catalogue:
        if self.catalogue is None:
            raise PlatformConfigError(
                f"{self.base / CONFIG_NAME}: no `catalogue` (offers, methods): campaign scoring needs one"
            )
        return self.catalogue

    def target(self, name: str) -> ActionWithin | NoEventWithin:
        if name not in self.targets:
            raise PlatformConfigError(
                f"{self.base / CONFIG_NAME}: unknown target {name!r}; declared targets: "
                f"{sorted(self.targets) or 'none (add a `targets:` section)'}"
            )
        return self.targets[name]

    def check_actions(self, actions_seen: set[str], channels_seen: set[str] | None = None) -> None:
        """Targets and rules must name actions (and channels) the event table has; the error lists those seen.

        The call-list rules are checked where call lists are built (`contact_allowed`): a cool-down on a
        channel no event is on would silently never apply."""
        named = {f"targets.{n}.action": t.action for n, t in self.targets.items() if isinstance(t, ActionWithin)}
        if self.campaigns is not None and isinstance(self.campaigns.outcome, ActionWithin):
            named["campaigns.outcome.action"] = self.campaigns.outcome.action
        if self.contact_allowed and self.catalogue is not None:
            named["call_list.conversion_action"] = self.call_list.conversion_action
        unknown = {key: action for key, action in named.items() if action not in actions_seen}
        if unknown and actions_seen:
            key, action = next(iter(unknown.items()))
            raise PlatformConfigError(
                f"{self.base / CONFIG_NAME}: {key}: no event has action {action!r}; "
                f"actions seen: {sorted(actions_seen)}"
            )
        channel = self.call_list.contact_channel
        if channels_seen and self.contact_allowed and self.catalogue is not None and channel not in channels_seen:
            raise PlatformConfigError(
                f"{self.base / CONFIG_NAME}: call_list.contact_channel: no event is on channel "
                f"{channel!r}, so the cool-down would never apply; channels seen: "
                f"{sorted(channels_seen)}"
            )

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, base: Path, source: str) -> PlatformConfig:
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise PlatformConfigError(f"{source}: {yaml_problem(err)}") from err
        if not isinstance(raw, dict):
            raise PlatformConfigError(f"{source}: must be a mapping of sections")
        if "base" in raw:
            raise PlatformConfigError(f"{source}: base: unknown key (paths are relative to the file's folder)")
        try:
            config = cls(**raw, base=base)
        except ValidationError as err:
            raise PlatformConfigError(f"{source}: " + "; ".join(_explain(e) for e in err.errors())) from None
        if config.events.get("channels"):
            config.channel_config()  # the channel mappings are checked when the config loads, not at ingest
        return config

    @classmethod
    def load(cls, workdir_root: Path) -> PlatformConfig:
        path = Path(workdir_root) / CONFIG_NAME
        if not Path(workdir_root).is_dir():
            raise PlatformConfigError(
                f"workdir {Path(workdir_root)} does not exist: check --workdir (or LAM_WORKDIR), "
                f"or create it with `lam init --workdir {Path(workdir_root)}`"
            )
        if not path.exists():
            raise PlatformConfigError(
                f"no {CONFIG_NAME} in {Path(workdir_root)}: run `lam init --workdir "
                f"{Path(workdir_root)}` and declare your sources, or `lam demo` for the simulator"
            )
        return cls.from_text(path.read_text(), path.resolve().parent, str(path))


def _explain(error: dict) -> str:
    """One pydantic error as `key.path: message`."""
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-after", "tagged-union")))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    return f"{where or '(top level)'}: {message}"
