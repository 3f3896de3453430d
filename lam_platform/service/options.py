"""What a scoring request asks for (campaigns, contact times, as-of, target heads), validated against the
served model and the settings: each refusal is a 422 whose detail names the field."""

from __future__ import annotations

import itertools

import pandas as pd

from lam_platform.campaigns.call_list import next_contact_time
from lam_platform.service import schemas
from lam_platform.service.errors import invalid_field
from lam_platform.service.model import ServingModel
from lam_platform.service.settings import ServiceSettings

EARLIEST_AS_OF, LATEST_AS_OF = 1971, 2200  # pandas timestamps end in 2262; event times start in 1970


def scoring_options(body: schemas.ScoringOptions, model: ServingModel, settings: ServiceSettings):
    """Candidate campaigns and contact times of a request, validated against what the model knows (no
    campaigns for a version without a campaign-response head)."""
    campaigns = _campaigns(body, model, settings)
    slots = _time_slots(body, settings)
    as_of = _as_of(body, settings)
    times = sorted({next_contact_time(as_of, hour) for hour in slots})
    return campaigns, times, as_of


def _campaigns(body: schemas.ScoringOptions, model: ServingModel, settings: ServiceSettings) -> list[tuple[str, str]]:
    known_offers, known_methods = model.tokenizer.offers, model.tokenizer.methods
    if model.campaigns is None or not settings.contact_allowed:  # analysis only: no campaign is ever ranked
        if body.campaigns is not None:
            why = (
                f"model {model.version} has no campaign_response head"
                if model.campaigns is None
                else "this workdir's lam.yaml says `consent: analysis_only`: no campaign is scored"
            )
            raise invalid_field(["body", "campaigns"], "no_campaigns", why)
        return []
    if body.campaigns is None:
        return list(itertools.product(known_offers, known_methods))
    campaigns = []
    for i, c in enumerate(body.campaigns):
        for name, value, known in (("offer", c.offer, known_offers), ("method", c.method, known_methods)):
            if value not in known:
                raise invalid_field(
                    ["body", "campaigns", i, name],
                    "unknown_value",
                    f"unknown {name} {value!r}; the model knows {list(known)}",
                )
        campaigns.append((c.offer, c.method))
    return list(dict.fromkeys(campaigns))


def _time_slots(body: schemas.ScoringOptions, settings: ServiceSettings) -> list[int]:
    slots = body.time_slots or list(settings.time_slots)
    for i, hour in enumerate(slots):
        if not 0 <= hour <= 23:
            raise invalid_field(
                ["body", "time_slots", i], "out_of_range", f"time slot {hour} is not an hour of the day (0-23)"
            )
    return slots


def _as_of(body: schemas.ScoringOptions, settings: ServiceSettings) -> pd.Timestamp:
    """The request's as-of time in UTC (the settings' clock when the request has none)."""
    if body.as_of is not None and not EARLIEST_AS_OF <= body.as_of.year <= LATEST_AS_OF:
        raise invalid_field(
            ["body", "as_of"], "out_of_range", f"as_of must fall in the years {EARLIEST_AS_OF}-{LATEST_AS_OF}"
        )
    as_of = pd.Timestamp(body.as_of) if body.as_of is not None else settings.now()
    return as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")


def requested_targets(body: schemas.ScoreRequest, model: ServingModel) -> list[str]:
    """The target heads a request asks for (default: every one the model has), validated."""
    if body.targets is None:
        return model.target_names
    for i, name in enumerate(body.targets):
        if name not in model.target_names:
            raise invalid_field(
                ["body", "targets", i],
                "unknown_value",
                f"unknown target {name!r}; model {model.version} has {model.target_names}",
            )
    return list(dict.fromkeys(body.targets))
