"""POST /v1/call-list: the batch call list's rules and ranking over the requested (or all) customers, live."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Request, Security

from lam_platform.campaigns.call_list import call_exclusions, rank_call_list
from lam_platform.data.platform_config import CallListRules
from lam_platform.governance.consent import read_profiles
from lam_platform.service import schemas
from lam_platform.service.auth import ApiToken
from lam_platform.service.errors import check_count, documented_errors
from lam_platform.service.model import ServingModel
from lam_platform.service.options import scoring_options
from lam_platform.service.security import authorize
from lam_platform.service.settings import ServiceSettings
from lam_platform.service.state import ServiceState, get_state

router = APIRouter()


@router.post(
    "/v1/call-list",
    response_model=schemas.CallListResponse,
    responses=documented_errors(400, 401, 403, 409, 413, 422, 503),
)
def call_list(
    body: schemas.CallListRequest,
    request: Request,
    _: ApiToken = Security(authorize, scopes=["call-list"]),
    state: ServiceState = Depends(get_state),
) -> schemas.CallListResponse:
    settings = state.settings
    check_count("capacity", body.capacity, settings.max_call_list)
    ids = _candidates(body, state)
    request.state.customers = len(ids)
    if not settings.contact_allowed:
        raise HTTPException(409, "this workdir's lam.yaml says `consent: analysis_only`: no call list is built")
    model = state.current_model()
    if model.campaigns is None:
        raise HTTPException(503, f"model {model.version} has no campaign_response head: run `lam finetune`")
    campaigns, times, as_of = scoring_options(body, model, settings)
    rows = state.reader.read(ids)
    reasons = call_exclusions(rows, as_of, _rules(body, settings.rules))
    eligible = rows[reasons.isna().to_numpy()].reset_index(drop=True)
    ranked = pd.DataFrame()
    if len(eligible):
        scores = model.campaigns.score(eligible, times, campaigns)
        ranked = rank_call_list(scores, body.capacity)
    entries, explained = _entries(ranked, eligible, body, model, as_of, settings)
    return schemas.CallListResponse(
        model_version=model.version,
        as_of=as_of,
        capacity=body.capacity,
        candidates=len(ids),
        excluded=reasons.value_counts().to_dict(),
        explained=explained,
        call_list=entries,
    )


def _candidates(body: schemas.CallListRequest, state: ServiceState) -> list[str]:
    """The customers asked for, each once in the order asked; every customer in the profiles when none are."""
    if body.customer_ids is not None:
        check_count("customer_ids", len(body.customer_ids), state.settings.max_customers)
        return list(dict.fromkeys(body.customer_ids))
    return read_profiles(state.workdir.profiles, columns=["customer_id"]).customer_id.tolist()


def _rules(body: schemas.CallListRequest, rules: CallListRules) -> CallListRules:
    """lam.yaml's call-list rules with the cool-down and conversion windows the request overrides."""
    overrides = (("cooldown_days", body.cooldown_days), ("converted_within_days", body.converted_within_days))
    return rules.model_copy(update={k: v for k, v in overrides if v is not None})


def _entries(
    ranked: pd.DataFrame,
    eligible: pd.DataFrame,
    body: schemas.CallListRequest,
    model: ServingModel,
    as_of: pd.Timestamp,
    settings: ServiceSettings,
) -> tuple[list[schemas.CallListEntry], int]:
    """The ranked call list as entries, the first max_explained explained if asked; and how many were."""
    entries, explanations = [], []  # no eligible candidate: an empty list, none explained (not a 500)
    if len(ranked):
        if body.explain:  # the first max_explained entries: the ones a caller reads first
            top = ranked.head(settings.max_explained)
            picked = eligible.set_index("customer_id").loc[top.customer_id].reset_index()
            explanations = model.explain(picked, top, as_of, settings.explain_steps)
        for i, r in enumerate(ranked.itertuples()):
            entries.append(_entry(r, explanations[i] if i < len(explanations) else (None, None)))
    return entries, len(explanations)


def _entry(r, explanation: tuple) -> schemas.CallListEntry:
    """One ranked row of the call list, with its driving events and reason when explained."""
    driving, why = explanation
    return schemas.CallListEntry(
        rank=int(r.rank),
        customer_id=r.customer_id,
        offer=r.offer,
        method=r.method,
        time_slot=r.contact_time,
        p_order_if_contacted=float(r.p_order_if_called),
        p_order_if_not_contacted=float(r.p_order_if_not_called),
        uplift=float(r.uplift),
        reason=why,
        driving_events=[schemas.DrivingEventOut(**vars(e)) for e in driving] if driving is not None else None,
    )
