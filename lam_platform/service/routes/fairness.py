"""GET /v1/fairness: the fairness report of the latest stored call list, as `lam fairness` writes it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Security

from lam_platform.governance.fairness import FairnessSettings, call_list_fairness
from lam_platform.service import schemas
from lam_platform.service.auth import ApiToken
from lam_platform.service.errors import documented_errors
from lam_platform.service.security import authorize
from lam_platform.service.state import ServiceState, get_state

router = APIRouter()


# exclude_unset: a group's calibration_gap is absent, not null, where outcomes are unknown (as `lam fairness`)
@router.get(
    "/v1/fairness",
    response_model=schemas.FairnessReport,
    response_model_exclude_unset=True,
    responses=documented_errors(401, 403, 404, 422),
)
def fairness(
    calibration_margin: float = Query(0.05, ge=0, le=1),
    _: ApiToken = Security(authorize, scopes=["call-list"]),
    state: ServiceState = Depends(get_state),
) -> schemas.FairnessReport:
    """Selection, predicted and observed order rates of the latest stored call list by age band and
    gender against the consenting base, with four-fifths and calibration flags (as `lam fairness`)."""
    try:
        report = call_list_fairness(state.workdir, FairnessSettings(calibration_margin=calibration_margin))
    except FileNotFoundError as err:
        raise HTTPException(404, "no stored call list: run `lam score` first") from err
    report.pop("call_list")  # a server path, not the caller's business
    return schemas.FairnessReport.model_validate(report)
