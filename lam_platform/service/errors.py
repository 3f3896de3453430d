"""The service's error answers: the bodies each status code gets, as OpenAPI documents them and as raised.

Routes list the codes they can answer with `documented_errors(...)`; a refused field is a 422 whose
detail entry names it (`invalid_field`), as FastAPI's own validation errors do.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from lam_platform.service import schemas
from lam_platform.service.online_reader import StoreUnavailable

ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": schemas.ErrorBody, "description": "a body FastAPI cannot read as JSON text (e.g. not UTF-8)"},
    401: {
        "model": schemas.ErrorBody,
        "description": "no bearer token, or one the service does not know",
        "headers": {
            "WWW-Authenticate": {
                "description": "`Bearer`: the scheme to authenticate with",
                "schema": {"type": "string"},
            }
        },
    },
    403: {"model": schemas.ErrorBody, "description": "the token lacks the scope this operation needs"},
    404: {"model": schemas.ErrorBody, "description": "no stored call list: run `lam score` first"},
    409: {"model": schemas.ErrorBody, "description": "an analysis-only workdir (lam.yaml `consent: analysis_only`)"},
    413: {"model": schemas.ErrorBody, "description": "the body exceeds max_body_bytes (declared or chunked)"},
    422: {
        "model": schemas.ValidationErrorBody,
        "description": "a field is invalid (each entry's loc names it): "
        "malformed, out of range, a value the model does not know, or over a per-request limit",
    },
    503: {
        "model": schemas.ErrorBody,
        "description": "no model loaded (or none with a campaign-response head), "
        "or the online store unavailable (then with Retry-After)",
        "headers": {
            "Retry-After": {"description": "seconds; sent when the store is unavailable", "schema": {"type": "integer"}}
        },
    },
}


def documented_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of one operation: each code it can answer, with the body it gets."""
    return {code: ERROR_RESPONSES[code] for code in codes}


def invalid_field(loc: list[str | int], kind: str, msg: str) -> HTTPException:
    """A 422 whose one detail entry names the refused field by its `loc` (e.g. ["body", "time_slots", 2])."""
    return HTTPException(422, [{"loc": loc, "type": kind, "msg": msg}])


def check_count(field_name: str, n: int, limit: int) -> None:
    if n > limit:
        raise invalid_field(["body", field_name], "too_long", f"{field_name}: {n}; the limit is {limit} per request")


async def store_unavailable(_: Request, error: StoreUnavailable) -> JSONResponse:
    """The exception handler of StoreUnavailable: 503, and when to try again."""
    return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "5"})
