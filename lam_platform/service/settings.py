"""The scoring service's settings: limits, call-list rules and clock, from lam.yaml, `lam serve` or the environment.

`ServiceSettings.from_workdir` reads the rules, contact slots and consent mode from the workdir's lam.yaml;
`settings_from_env` adds the `lam serve` options by their LAM_* environment names, for ASGI servers that
start the app themselves (see `lam_platform.service.app.app_from_env`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import CallListRules, PlatformConfig

DEFAULT_TIME_SLOTS = (10, 14, 17)


@dataclass
class ServiceSettings:
    workdir: Path
    max_customers: int = 1000  # per request
    max_body_bytes: int = 1_000_000
    rules: CallListRules = CallListRules()  # lam.yaml `call_list`: the same rules as the batch list
    time_slots: tuple[int, ...] = DEFAULT_TIME_SLOTS  # lam.yaml `catalogue.contact_slots`
    contact_allowed: bool = True  # False in analysis-only workdirs: no call lists, target scores only
    poll_seconds: float = 5.0  # how often to look for a new model version
    clock: pd.Timestamp | None = None  # a fixed "now" (`lam serve --as-of`); None = wall clock
    model_path: Path | None = None  # pin one version; None = the newest servable version, reloaded as it changes
    explain_steps: int = 32
    max_call_list: int = 10_000  # capacity per /v1/call-list request
    max_explained: int = 100  # call-list entries explained per request (integrated gradients are costly)
    state_cache: int = (
        50_000  # states kept per model version (2.6 KiB a state with the demo model, plus its key); 0: off
    )
    # Fill the state cache when a version loads (`warm_states.py`). Off in-process (tests count cache misses);
    # `lam serve` and `app_from_env` turn it on unless told otherwise.
    warm_states: bool = False
    # Torch threads per request. One: a request's batch is small, and several request threads each driving
    # a team of OpenMP threads oversubscribe the cores (measured: 2.4x slower one-customer states on 2
    # cores). None leaves torch's setting alone (in-process tests).
    torch_threads: int | None = None

    @property
    def analysis_only(self) -> bool:
        """lam.yaml `consent: analysis_only`: targets are scored for every customer, campaigns for none."""
        return not self.contact_allowed

    def now(self) -> pd.Timestamp:
        return self.clock if self.clock is not None else pd.Timestamp.now(tz="UTC")

    @classmethod
    def from_workdir(cls, workdir: Workdir, **overrides) -> ServiceSettings:
        """Settings whose rules, contact slots and consent mode come from the workdir's lam.yaml."""
        platform = PlatformConfig.load(workdir.root)
        slots = tuple(platform.catalogue.contact_slots) if platform.catalogue else DEFAULT_TIME_SLOTS
        return cls(
            workdir=workdir.root,
            rules=platform.call_list,
            time_slots=slots,
            contact_allowed=platform.contact_allowed,
            **overrides,
        )


class ServiceConfigError(UserError):
    """A service setting in the environment is missing or malformed; the message names the variable."""


# The `lam serve` limits an ASGI server's workers read from the environment; unset ones keep the defaults.
ENV_LIMITS: dict[str, tuple[str, type[int | float]]] = {
    "LAM_MAX_CUSTOMERS": ("max_customers", int),
    "LAM_MAX_BODY_BYTES": ("max_body_bytes", int),
    "LAM_POLL_SECONDS": ("poll_seconds", float),
    "LAM_TORCH_THREADS": ("torch_threads", int),
}
ENV_COUNTS: dict[str, str] = {"LAM_STATE_CACHE": "state_cache"}  # may be 0
ENV_SWITCHES: dict[str, str] = {"LAM_WARM_STATES": "warm_states"}  # 1 or 0; on unless 0
SERVING_TORCH_THREADS = 1  # `lam serve` and `app_from_env` unless told otherwise


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """ServiceSettings from LAM_* variables, for servers that start the app themselves (`app_from_env`): the
    `lam serve` options by their environment names, the rest from lam.yaml through `from_workdir` as there."""
    environ = os.environ if environ is None else environ
    root = environ.get("LAM_WORKDIR")
    if not root:
        raise ServiceConfigError("LAM_WORKDIR is not set: it names the platform working directory to serve")
    if not Path(root).is_dir():
        raise ServiceConfigError(f"LAM_WORKDIR={root} is not a directory")
    overrides: dict[str, Any] = {"torch_threads": SERVING_TORCH_THREADS, "warm_states": True}
    for variable, (field, kind) in ENV_LIMITS.items():
        if environ.get(variable):
            overrides[field] = _positive(variable, environ[variable], kind)
    for variable, field in ENV_COUNTS.items():
        if environ.get(variable):
            overrides[field] = _count(variable, environ[variable])
    for variable, field in ENV_SWITCHES.items():
        if environ.get(variable):
            overrides[field] = _switch(variable, environ[variable])
    if environ.get("LAM_AS_OF"):
        overrides["clock"] = parse_as_of(environ["LAM_AS_OF"], "LAM_AS_OF")  # ClockError names the variable
    if environ.get("LAM_ARTIFACT"):
        artifact = Path(environ["LAM_ARTIFACT"])
        if not artifact.is_dir():
            raise ServiceConfigError(f"LAM_ARTIFACT={artifact} is not a model version folder")
        overrides["model_path"] = artifact
    return ServiceSettings.from_workdir(Workdir.at(root), **overrides)


def _positive(variable: str, text: str, kind: type[int | float]) -> int | float:
    """A limit from the environment, refused (naming the variable) unless it is a positive number."""
    try:
        value = kind(text)
    except ValueError:
        raise ServiceConfigError(f"{variable}={text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if value <= 0:
        raise ServiceConfigError(f"{variable}={text!r} must be positive")
    return value


def _count(variable: str, text: str) -> int:
    """A count from the environment (0 allowed), refused (naming the variable) unless it is one."""
    if not text.strip().isdigit():
        raise ServiceConfigError(f"{variable}={text!r} must be a whole number (0 or more)")
    return int(text)


def _switch(variable: str, text: str) -> bool:
    """An on/off setting from the environment: 1 or 0, refused (naming the variable) otherwise."""
    if text.strip() not in ("0", "1"):
        raise ServiceConfigError(f"{variable}={text!r} must be 1 (on) or 0 (off)")
    return text.strip() == "1"
