"""The clock: every step runs "as of" a time (`--as-of`, default now), and nothing else sets it.

A training cut-off, a snapshot time and a scoring time are all this one value; a label that needs
a horizon after t (a target, a campaign outcome) is used only once t + horizon <= as-of (mature).
The simulator's world has a clock of its own; `lam demo` passes it in as --as-of like any user would.
"""

from __future__ import annotations

import pandas as pd

from lam_platform.core.errors import UserError


class ClockError(UserError):
    """An --as-of value that is not a zone-aware time."""


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def parse_time(text: str | pd.Timestamp, option: str) -> pd.Timestamp:
    """A time option as a zone-aware Timestamp, in the zone it was written in; naive or unparsable text is
    refused, naming the option (every time option of the CLI goes through here)."""
    if isinstance(text, pd.Timestamp):
        value = text
    else:
        try:
            value = pd.Timestamp(text)
        except (ValueError, TypeError) as err:
            raise ClockError(f"{option} {text!r} is not a time; write e.g. 2026-06-04T10:00:00+00:00") from err
    if value.tzinfo is None:
        raise ClockError(f"{option} {text!r} has no time zone; write e.g. {value.isoformat()}+00:00")
    return value


def as_of(text: str | pd.Timestamp | None, option: str = "--as-of") -> pd.Timestamp:
    """`text` as a zone-aware UTC Timestamp; None means now. Naive or unparsable text is refused."""
    return now() if text is None else parse_time(text, option).tz_convert("UTC")


def is_mature(times: pd.Series, horizon: pd.Timedelta, at: pd.Timestamp) -> pd.Series:
    """Whether a label with this horizon, started at each time, is known at `at` (t + horizon <= at)."""
    return times + horizon <= at
