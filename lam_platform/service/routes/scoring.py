"""POST /v1/score: per customer, each campaign at its best contact time, the next actions and the target
probabilities; excluded and cold-start customers are answered as such."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Request, Response, Security

from lam_platform.governance.consent import consented
from lam_platform.service import schemas
from lam_platform.service.auth import ApiToken
from lam_platform.service.errors import check_count, documented_errors
from lam_platform.service.model import PopulationPrior, ServingModel
from lam_platform.service.online_reader import with_history
from lam_platform.service.options import requested_targets, scoring_options
from lam_platform.service.security import authorize
from lam_platform.service.state import ServiceState, get_state

router = APIRouter()


@router.post(
    "/v1/score", response_model=schemas.ScoreResponse, responses=documented_errors(400, 401, 403, 413, 422, 503)
)
def score(
    body: schemas.ScoreRequest,
    request: Request,
    _: ApiToken = Security(authorize, scopes=["score"]),
    state: ServiceState = Depends(get_state),
) -> Response:
    settings = state.settings
    request.state.customers = len(body.customer_ids)
    check_count("customer_ids", len(body.customer_ids), settings.max_customers)
    model = state.current_model()
    campaigns, times, as_of = scoring_options(body, model, settings)
    targets = requested_targets(body, model)
    ids = list(dict.fromkeys(body.customer_ids))  # each customer once, in the order asked
    rows = state.reader.read(ids)
    answers = {}
    # Unknown consent is no consent; an analysis-only workdir scores targets for everyone, contacts no one.
    excluded = np.zeros(len(rows), bool) if settings.analysis_only else ~consented(rows.consent_marketing)
    history = with_history(rows)
    customer_ids = rows.customer_id.to_numpy()  # masks on the array: a Series mask costs more than its request
    for customer_id in customer_ids[excluded]:
        answers[customer_id] = schemas.CustomerScore(
            customer_id=customer_id, status="excluded", cold_start=False, excluded_reason="no_consent"
        )
    cold = customer_ids[~excluded & ~history].tolist()
    if cold:
        answers.update(_cold_starts(cold, state.prior, campaigns, times))
    scored = ~excluded & history
    known = rows if scored.all() else rows[scored].reset_index(drop=True)  # a copy only when some are not
    if len(known):
        answers.update(_scored(known, model, body, campaigns, times, targets, as_of, settings.explain_steps))
    for answer in answers.values():
        state.metrics.customers.labels(answer.status).inc()
    answer = schemas.ScoreResponse(model_version=model.version, as_of=as_of, customers=[answers[c] for c in ids])
    # Serialized here, once: returned as a model, FastAPI would validate it against response_model again and
    # encode it through jsonable_encoder, which costs a one-customer request more than its model does.
    return Response(answer.model_dump_json(), media_type="application/json")


def _cold_starts(
    cold: list[str], prior: PopulationPrior | None, campaigns: list[tuple[str, str]], times: list[pd.Timestamp]
) -> dict[str, schemas.CustomerScore]:
    """Consenting customers without history: the population prior's campaigns (none without a prior)."""
    prior_answer = prior.campaigns(campaigns, times[0]) if prior is not None and campaigns else []
    return {customer_id: _customer(customer_id, "cold_start", prior_answer, None, None) for customer_id in cold}


def _scored(
    known: pd.DataFrame,
    model: ServingModel,
    body: schemas.ScoreRequest,
    campaigns: list[tuple[str, str]],
    times: list[pd.Timestamp],
    targets: list[str],
    as_of: pd.Timestamp,
    explain_steps: int,
) -> dict[str, schemas.CustomerScore]:
    """Consenting customers with history, scored by the model: campaigns, next actions, targets, explanations."""
    customer_state, next_state, last_event_us = model.states(known, with_next=body.top_actions > 0)
    ranked = [[] for _ in range(len(known))]
    if campaigns:
        grid = model.campaigns.score_grid(known, customer_state, last_event_us, campaigns, times)
        ranked = _best_slots(grid, campaigns, times)
    actions = model.next_actions(len(known), next_state, body.top_actions)
    probabilities = model.targets.score_state(known, customer_state, last_event_us, as_of) if targets else {}
    explanations = None
    if body.explain and campaigns:
        best = pd.DataFrame([r[0] for r in ranked])  # each customer's best campaign, aligned with known
        explanations = model.explain(known, best.rename(columns={"time_slot": "contact_time"}), as_of, explain_steps)
    answers = {}
    for i, customer_id in enumerate(known.customer_id):
        answers[customer_id] = _customer(
            customer_id, "scored", ranked[i], actions[i], explanations[i] if explanations else None
        )
        answers[customer_id].targets = {t: round(float(probabilities[t][i]), 6) for t in targets}
    return answers


def _best_slots(grid: dict, campaigns: list[tuple[str, str]], times: list[pd.Timestamp]) -> list[list[dict]]:
    """Per customer: each campaign at its best time slot, largest uplift first (from (C, T, n) score arrays)."""
    slot = grid["uplift"].argmax(axis=1)  # (C, n)

    def at_slot(values):
        return np.take_along_axis(values, slot[:, None, :], axis=1)[:, 0, :]

    called, not_called, uplift = (at_slot(grid[k]) for k in ("p_order_if_called", "p_order_if_not_called", "uplift"))
    order = np.argsort(-uplift, axis=0, kind="stable")  # (C, n)
    return [
        [
            {
                "offer": campaigns[k][0],
                "method": campaigns[k][1],
                "time_slot": times[slot[k, i]],
                "p_order_if_contacted": float(called[k, i]),
                "p_order_if_not_contacted": float(not_called[k, i]),
                "uplift": float(uplift[k, i]),
            }
            for k in order[:, i]
        ]
        for i in range(uplift.shape[1])
    ]


def _customer(
    customer_id: str, status: str, campaigns: list[dict], actions: dict | None, explanation
) -> schemas.CustomerScore:
    """One customer's answer: each campaign at its best time slot (best first), and the best campaign."""
    per_campaign = [schemas.CampaignScore(**c) for c in campaigns]
    answer = schemas.CustomerScore(
        customer_id=customer_id,
        status=status,
        cold_start=status == "cold_start",
        campaigns=per_campaign,
        best_campaign=per_campaign[0] if per_campaign else None,
        next_actions=schemas.NextActions(**actions) if actions else None,
    )
    if explanation is not None:
        driving, why = explanation
        answer.explanation = schemas.Explanation(
            reason=why, events=[schemas.DrivingEventOut(**vars(e)) for e in driving]
        )
    return answer
