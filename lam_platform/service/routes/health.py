"""Liveness, readiness and Prometheus metrics: /healthz, /readyz and /metrics, which need no token."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lam_platform.service import schemas
from lam_platform.service.online_reader import StoreUnavailable
from lam_platform.service.state import ServiceState, get_state

logger = logging.getLogger("lam.service")
router = APIRouter()


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=schemas.Readiness,
    responses={503: {"model": schemas.Readiness, "description": "not ready: no model loaded or the store unreadable"}},
)
def readyz(state: ServiceState = Depends(get_state)) -> JSONResponse:
    """Ready or not, and the model version; the reasons go to the service log, never to the caller
    (they hold paths and connection details)."""
    watcher = state.watcher
    problems = []
    if watcher.current is None:
        problems.append(f"model: {watcher.last_error}")
    try:
        state.reader.read(["__readyz_probe__"])
    except StoreUnavailable as error:
        problems.append(f"store: {error}")
    for problem in problems:
        logger.warning("not ready: %s", problem)
    body = {"ready": not problems, "model_version": watcher.current.version if watcher.current else None}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", response_class=PlainTextResponse)
def prometheus(state: ServiceState = Depends(get_state)) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
