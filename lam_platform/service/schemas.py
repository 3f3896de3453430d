"""Request and response bodies of the scoring API (they make its OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offer: str = Field(description="an offer the model was fine-tuned on, e.g. plan_change")
    method: str = Field(description="a contact method the model knows, e.g. outbound_call or sms")


class ScoringOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaigns: list[Campaign] | None = Field(
        None, min_length=1, description="candidate campaigns; default: every offer x method the model knows"
    )
    as_of: datetime | None = Field(None, description="scoring time (UTC if no zone); default: the service clock")
    time_slots: list[int] | None = Field(
        None, min_length=1, max_length=24, description="candidate contact hours (0-23, UTC) on or after as_of"
    )


class ScoreRequest(ScoringOptions):
    customer_ids: list[str] = Field(min_length=1, description="pseudonymous customer ids")
    top_actions: int = Field(
        3,
        ge=0,
        le=20,
        description="how many next-action candidates per field; 0: no next actions (the service then skips the "
        "next-action backbone, faster when only campaigns or targets are wanted)",
    )
    explain: bool = Field(False, description="add the past events that drove the best campaign's uplift")
    targets: list[str] | None = Field(
        None,
        description="event-derived targets to score (lam.yaml `targets`); default: every target head the model has",
    )


class CallListRequest(ScoringOptions):
    capacity: int = Field(
        ge=1, description="how many customers can be called (at most the service's max_call_list, default 10,000)"
    )
    customer_ids: list[str] | None = Field(None, min_length=1, description="candidates; default: the customer base")
    cooldown_days: float | None = Field(None, ge=0, le=3650, description="skip customers contacted this recently")
    converted_within_days: float | None = Field(
        None, ge=0, le=3650, description="skip customers who ordered this recently"
    )
    explain: bool = Field(
        True,
        description="add driving events and a reason for the caller (the first max_explained entries, default 100)",
    )


class Probability(BaseModel):
    value: str
    probability: float


class NextActions(BaseModel):
    what: list[Probability] = []
    how: list[Probability] = []
    where: list[Probability] = []
    hours_until_next: float | None = None


class CampaignScore(BaseModel):
    offer: str
    method: str
    time_slot: datetime
    p_order_if_contacted: float
    p_order_if_not_contacted: float
    uplift: float


class DrivingEventOut(BaseModel):
    timestamp: str
    channel: str
    action: str
    object: str
    attribution: float


class Explanation(BaseModel):
    method: str = "integrated gradients over event embeddings (uplift of the best campaign, 32 steps)"
    reason: str
    events: list[DrivingEventOut]


class CustomerScore(BaseModel):
    customer_id: str
    status: str = Field(description="scored | cold_start (no history: population prior) | excluded")
    cold_start: bool
    excluded_reason: str | None = None
    next_actions: NextActions | None = None
    campaigns: list[CampaignScore] = []
    best_campaign: CampaignScore | None = None
    targets: dict[str, float] = Field(
        default_factory=dict, description="probability of each event-derived target within its horizon"
    )
    explanation: Explanation | None = None


class ScoreResponse(BaseModel):
    model_version: str
    as_of: datetime
    customers: list[CustomerScore]


class CallListEntry(CampaignScore):
    rank: int
    customer_id: str
    reason: str | None = None
    driving_events: list[DrivingEventOut] | None = None


class CallListResponse(BaseModel):
    model_version: str
    as_of: datetime
    capacity: int
    candidates: int
    excluded: dict[str, int]
    explained: int = 0  # entries with driving events and a reason (the first max_explained)
    call_list: list[CallListEntry]


class Readiness(BaseModel):
    ready: bool
    model_version: str | None = Field(description="the version being served; null before one is loaded")


class FairnessGroup(BaseModel):
    """One group of an attribute (lam_platform/governance/fairness.py `fairness_report`)."""

    group: str
    eligible: int = Field(description="consenting customers of this group in the base")
    selected: int = Field(description="of them on the call list")
    selection_rate: float
    predicted_order_rate: float | None = Field(description="mean P(order | called) of the selected; null if none")
    observed_order_rate: float | None = Field(description="null where the caller does not know outcomes")
    calibration_gap: float | None = Field(None, description="predicted - observed; only where observed is known")
    ratio_to_best: float | None = Field(description="selection rate over the best supported group's")
    four_fifths_flag: bool
    calibration_flag: bool


class FairnessFlag(BaseModel):
    attribute: str
    group: str
    kind: Literal["four_fifths", "calibration"]
    value: float = Field(description="the ratio to the best group, or the calibration gap minus the list's")


class FairnessReport(BaseModel):
    """GET /v1/fairness: the report of `lam fairness --json` without the server path of the call list."""

    left_since_listed: int = Field(description="listed customers no longer in the consenting base")
    eligible: int
    selected: int
    overall_selection_rate: float | None = Field(description="null when the consenting base is empty")
    overall_calibration_gap: float | None
    calibration_margin: float
    attributes: dict[str, list[FairnessGroup]] = Field(
        description="per attribute (age_band, gender, or lam.yaml's categorical profile fields), its groups"
    )
    flags: list[FairnessFlag]


class ErrorBody(BaseModel):
    """A refusal (401, 403, 404, 409, 413, 503): FastAPI's HTTPException body; `detail` names the cause,
    never a token."""

    detail: str


class FieldError(BaseModel):
    """One invalid field: pydantic's errors (with `input` and `ctx`) and the service's own limit checks."""

    loc: list[str | int] = Field(description='where, e.g. ["body", "customer_ids"]')
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """422: the request is well-formed JSON but a field is invalid, unknown to the model or over a limit."""

    detail: list[FieldError]
