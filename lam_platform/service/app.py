"""The scoring service: FastAPI over the Feast online store and the latest model version.

Run: `lam serve --workdir ./lam-demo` (tokens from LAM_API_TOKENS or LAM_API_TOKENS_FILE; see
`lam_platform/service/auth.py`), then e.g.
    curl -H "Authorization: Bearer $TOKEN" -d '{"customer_ids": ["<pseudonym>"]}' localhost:8000/v1/score
Customer ids are the platform's pseudonyms (see lam_platform/data/pseudonyms.py), never raw ids.
The OpenAPI spec is at /openapi.json (a bearer security scheme, each /v1 route's scope and its error
responses; /docs has an Authorize button), Prometheus metrics at /metrics; GET /v1/fairness gives the
fairness report of the latest stored call list as JSON.

Under an ASGI server of your own, `app_from_env` builds the app from the environment: LAM_WORKDIR
(required), LAM_API_TOKENS or LAM_API_TOKENS_FILE, and optionally LAM_AS_OF, LAM_MAX_CUSTOMERS,
LAM_MAX_BODY_BYTES, LAM_POLL_SECONDS, LAM_ARTIFACT, LAM_STATE_CACHE, LAM_WARM_STATES (1 or 0) and
LAM_TORCH_THREADS (the `lam serve` options of the same names):
    uvicorn --factory lam_platform.service.app:app_from_env --host 0.0.0.0 --port 8000
    gunicorn -k uvicorn.workers.UvicornWorker -w 4 -b 0.0.0.0:8000 'lam_platform.service.app:app_from_env()'
Each worker process loads the model, warms its own state cache (up to LAM_STATE_CACHE customers' states,
computed before the worker serves: allow for it in the server's worker boot timeout, e.g. gunicorn's
--timeout, or set LAM_WARM_STATES=0), watches for new versions and keeps its own /metrics counters (a scrape
sees one worker's); all of them append to the same audit log.

`create_app` assembles the parts: the shared ServiceState (state.py), the routers under routes/, the
limits-and-metrics middleware (middleware.py) and the error answers (errors.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from lam_platform.service.auth import ApiToken, load_tokens
from lam_platform.service.errors import store_unavailable
from lam_platform.service.middleware import LimitsAndMetrics
from lam_platform.service.online_reader import StoreUnavailable
from lam_platform.service.routes import call_list, fairness, health, scoring
from lam_platform.service.settings import ServiceSettings, settings_from_env
from lam_platform.service.state import ServiceState


def create_app(settings: ServiceSettings, tokens: list[ApiToken]) -> FastAPI:
    """The service over `settings.workdir`: its model loaded, its online store opened, its routes mounted."""
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)  # process-wide: the app's entry points own the process
    state = ServiceState.build(settings, tokens)
    app = FastAPI(
        title="LAM scoring service",
        version="1",
        lifespan=lifespan,
        description="Scores customers from the Feast online store with the latest LAM version.",
    )
    app.state.service = state
    app.add_middleware(
        LimitsAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=state.metrics, audit=state.audit
    )
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    # In this order: the OpenAPI document lists the paths as they are included.
    for routes in (health, scoring, call_list, fairness):
        app.include_router(routes.router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Watch for new model versions while the app serves."""
    watcher = app.state.service.watcher
    watcher.start()
    yield
    watcher.stop()


def app_from_env(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app for `uvicorn --factory lam_platform.service.app:app_from_env` and gunicorn's uvicorn workers:
    each worker reads its settings and tokens from the environment when it starts (see the module docstring)."""
    environ = os.environ if environ is None else environ
    tokens = load_tokens(environ)  # first, as `lam serve` does: a token mistake fails before a model loads
    return create_app(settings_from_env(environ), tokens)
