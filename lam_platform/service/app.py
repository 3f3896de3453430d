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
LAM_MAX_BODY_BYTES, LAM_POLL_SECONDS and LAM_ARTIFACT (the `lam serve` options of the same names):
    uvicorn --factory lam_platform.service.app:app_from_env --host 0.0.0.0 --port 8000
    gunicorn -k uvicorn.workers.UvicornWorker -w 4 -b 0.0.0.0:8000 'lam_platform.service.app:app_from_env()'
Each worker process loads the model, watches for new versions and keeps its own /metrics counters (a
scrape sees one worker's); all of them append to the same audit log.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time, rank_call_list
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.platform_config import CallListRules, PlatformConfig
from lam_platform.features.store import online_features, open_store
from lam_platform.governance.audit import REFUSALS, AuditLog
from lam_platform.governance.consent import consented, read_profiles
from lam_platform.governance.fairness import FairnessSettings, call_list_fairness
from lam_platform.service import schemas
from lam_platform.service.auth import ApiToken, Authenticator, load_tokens
from lam_platform.service.model import ModelWatcher, PopulationPrior, ServingModel

logger = logging.getLogger("lam.service")
DEFAULT_TIME_SLOTS = (10, 14, 17)
EARLIEST_AS_OF, LATEST_AS_OF = 1971, 2200  # pandas timestamps end in 2262; event times start in 1970


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
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """ServiceSettings from LAM_* variables, for servers that start the app themselves (`app_from_env`): the
    `lam serve` options by their environment names, the rest from lam.yaml through `from_workdir` as there."""
    environ = os.environ if environ is None else environ
    root = environ.get("LAM_WORKDIR")
    if not root:
        raise ServiceConfigError("LAM_WORKDIR is not set: it names the platform working directory to serve")
    if not Path(root).is_dir():
        raise ServiceConfigError(f"LAM_WORKDIR={root} is not a directory")
    overrides: dict[str, Any] = {}
    for variable, (field, kind) in ENV_LIMITS.items():
        if environ.get(variable):
            overrides[field] = _positive(variable, environ[variable], kind)
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


def app_from_env(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app for `uvicorn --factory lam_platform.service.app:app_from_env` and gunicorn's uvicorn workers:
    each worker reads its settings and tokens from the environment when it starts (see the module docstring)."""
    environ = os.environ if environ is None else environ
    tokens = load_tokens(environ)  # first, as `lam serve` does: a token mistake fails before a model loads
    return create_app(settings_from_env(environ), tokens)


class StoreUnavailable(RuntimeError):
    """The online store could not be read; the service answers 503 until it can."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lam_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "lam_request_duration_seconds",
            "request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter("lam_errors", "failed requests by kind", ["endpoint", "kind"], registry=self.registry)
        self.customers = Counter("lam_customers", "customers answered, by status", ["status"], registry=self.registry)
        self.model = Gauge(
            "lam_model_info",
            "1 for the model version being served, 0 for former ones",
            ["version"],
            registry=self.registry,
        )

        self.shown: str | None = None

    def show_model(self, version: str | None) -> None:
        if version == self.shown:
            return
        if self.shown:
            self.model.labels(version=self.shown).set(0)  # a former version stays listed, at 0
        if version:
            self.model.labels(version=version).set(1)
        self.shown = version


class OnlineReader:
    """Reads online rows; any store failure becomes StoreUnavailable (the next call tries again)."""

    def __init__(self, workdir: Workdir) -> None:
        self.workdir = workdir
        self.store = open_store(workdir)
        # Feast's SQLite store shares one connection between threads: take turns on it.
        sqlite = getattr(self.store.config.online_store, "type", "sqlite") == "sqlite"
        self.lock = threading.Lock() if sqlite else nullcontext()

    def read(self, customer_ids: list[str]) -> pd.DataFrame:
        try:
            with self.lock:
                return online_features(self.store, customer_ids)
        except Exception as error:  # noqa: BLE001 -- Redis down, file gone, timeouts: all mean "store unavailable"
            raise StoreUnavailable(f"the online store is unavailable ({type(error).__name__}); retry later") from error


class LimitsAndMetrics:
    """ASGI middleware: 413 for bodies over max_body_bytes (declared or counted), request metrics, and an
    audit entry per scoring request (token name, endpoint, customer count, status; never ids or tokens).

    Plain ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request.
    """

    def __init__(self, app, max_body_bytes: int, metrics: Metrics, audit: AuditLog) -> None:
        self.app, self.max_body_bytes, self.metrics, self.audit = app, max_body_bytes, metrics, audit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        status = [500]

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._too_large(send_and_note)
                return
            if length is None and scope["method"] == "POST":  # chunked: read it here, counting, then replay
                body, more = b"", True
                while more:
                    message = await receive()
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body_bytes:
                        await self._too_large(send_and_note)
                        return
                replayed = [{"type": "http.request", "body": body, "more_body": False}]

                async def receive():  # noqa: F811 -- the app reads the body counted above
                    return replayed.pop() if replayed else {"type": "http.disconnect"}

            await self.app(scope, receive, send_and_note)
        finally:
            if scope["path"].startswith("/v1/"):  # every scoring request, answered or refused
                state = scope.get("state") or {}
                # The write and its fsync run in a worker thread: the event loop keeps serving meanwhile.
                await anyio.to_thread.run_sync(
                    self.audit.record, state.get("token_name"), endpoint, state.get("customers"), status[0]
                )
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            if status[0] >= 400:
                self.metrics.errors.labels(endpoint, ERROR_KINDS.get(status[0], "other")).inc()

    async def _too_large(self, send) -> None:
        await JSONResponse({"detail": f"request body exceeds max_body_bytes={self.max_body_bytes}"}, 413)(
            {"type": "http"}, None, send
        )


def create_app(settings: ServiceSettings, tokens: list[ApiToken]) -> FastAPI:
    workdir = Workdir.at(settings.workdir)
    watcher = ModelWatcher(workdir.artifacts, settings.poll_seconds, settings.model_path)
    reader = OnlineReader(workdir)
    prior = PopulationPrior.from_campaign_log(workdir.campaign_log) if workdir.campaign_log.exists() else None
    auth = Authenticator(tokens)
    metrics = Metrics()
    metrics.show_model(watcher.current.version if watcher.current else None)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        watcher.start()
        yield
        watcher.stop()

    app = FastAPI(
        title="LAM scoring service",
        version="1",
        lifespan=lifespan,
        description="Scores customers from the Feast online store with the latest LAM version.",
    )
    app.state.watcher, app.state.settings, app.state.metrics = watcher, settings, metrics

    def authorize(
        request: Request, required: SecurityScopes, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> ApiToken:
        """The caller's token if it has every scope the route declares (`Security(authorize, scopes=...)`):
        the scopes that OpenAPI shows are the ones enforced here."""
        token = auth.identify(credentials.credentials if credentials is not None else None)
        if token is None:
            raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        request.state.token_name = token.name  # for the audit log, refused or not
        for scope in required.scopes:
            if scope not in token.scopes:
                raise HTTPException(403, f"token {token.name!r} lacks the {scope!r} scope")
        return token

    app.add_middleware(
        LimitsAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=metrics, audit=AuditLog(workdir.audit_log)
    )

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_: Request, error: StoreUnavailable):
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "5"})

    def current_model() -> ServingModel:
        model = watcher.current
        if model is None:
            raise HTTPException(503, f"no model loaded: {watcher.last_error}")
        metrics.show_model(model.version)
        return model

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.Readiness,
        responses={
            503: {"model": schemas.Readiness, "description": "not ready: no model loaded or the store unreadable"}
        },
    )
    def readyz() -> JSONResponse:
        """Ready or not, and the model version; the reasons go to the service log, never to the caller
        (they hold paths and connection details)."""
        problems = []
        if watcher.current is None:
            problems.append(f"model: {watcher.last_error}")
        try:
            reader.read(["__readyz_probe__"])
        except StoreUnavailable as error:
            problems.append(f"store: {error}")
        for problem in problems:
            logger.warning("not ready: %s", problem)
        body = {"ready": not problems, "model_version": watcher.current.version if watcher.current else None}
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/score", response_model=schemas.ScoreResponse, responses=_errors(400, 401, 403, 413, 422, 503))
    def score(
        body: schemas.ScoreRequest, request: Request, _: ApiToken = Security(authorize, scopes=["score"])
    ) -> schemas.ScoreResponse:
        request.state.customers = len(body.customer_ids)
        _check_count("customer_ids", len(body.customer_ids), settings.max_customers)
        model = current_model()
        campaigns, times, as_of = _options(body, model, settings)
        targets = _targets(body, model)
        ids = list(dict.fromkeys(body.customer_ids))  # each customer once, in the order asked
        rows = reader.read(ids)
        answers = {}
        # Unknown consent is no consent; an analysis-only workdir scores targets for everyone, contacts no one.
        excluded = (
            np.zeros(len(rows), bool) if settings.analysis_only else ~consented(rows.consent_marketing).to_numpy()
        )
        history = rows.event_timestamps.map(lambda v: v is not None and len(v) > 0).to_numpy(bool)
        for customer_id in rows.customer_id[excluded]:
            answers[customer_id] = schemas.CustomerScore(
                customer_id=customer_id, status="excluded", cold_start=False, excluded_reason="no_consent"
            )
        cold = rows.customer_id[~excluded & ~history].tolist()
        if cold:
            prior_answer = prior.campaigns(campaigns, times[0]) if prior is not None and campaigns else []
            for customer_id in cold:
                answers[customer_id] = _customer(customer_id, "cold_start", prior_answer, None, None)
        known = rows[~excluded & history].reset_index(drop=True)
        if len(known):
            state, next_state, last_event_us = model.states(known)
            ranked = [[] for _ in range(len(known))]
            if campaigns:
                grid = model.campaigns.score_grid(known, state, last_event_us, campaigns, times)
                ranked = _best_slots(grid, campaigns, times)
            actions = model.next_actions(len(known), next_state, body.top_actions)
            probabilities = model.targets.score_state(known, state, last_event_us, as_of) if targets else {}
            explanations = None
            if body.explain and campaigns:
                best = pd.DataFrame([r[0] for r in ranked])  # each customer's best campaign, aligned with known
                explanations = model.explain(
                    known, best.rename(columns={"time_slot": "contact_time"}), as_of, settings.explain_steps
                )
            for i, customer_id in enumerate(known.customer_id):
                answers[customer_id] = _customer(
                    customer_id, "scored", ranked[i], actions[i], explanations[i] if explanations else None
                )
                answers[customer_id].targets = {t: round(float(probabilities[t][i]), 6) for t in targets}
        for answer in answers.values():
            metrics.customers.labels(answer.status).inc()
        return schemas.ScoreResponse(model_version=model.version, as_of=as_of, customers=[answers[c] for c in ids])

    @app.post(
        "/v1/call-list", response_model=schemas.CallListResponse, responses=_errors(400, 401, 403, 409, 413, 422, 503)
    )
    def call_list(
        body: schemas.CallListRequest, request: Request, _: ApiToken = Security(authorize, scopes=["call-list"])
    ) -> schemas.CallListResponse:
        _check_count("capacity", body.capacity, settings.max_call_list)
        if body.customer_ids is not None:
            _check_count("customer_ids", len(body.customer_ids), settings.max_customers)
            ids = list(dict.fromkeys(body.customer_ids))
        else:
            ids = read_profiles(workdir.profiles, columns=["customer_id"]).customer_id.tolist()
        request.state.customers = len(ids)
        if not settings.contact_allowed:
            raise HTTPException(409, "this workdir's lam.yaml says `consent: analysis_only`: no call list is built")
        model = current_model()
        if model.campaigns is None:
            raise HTTPException(503, f"model {model.version} has no campaign_response head: run `lam finetune`")
        campaigns, times, as_of = _options(body, model, settings)
        rows = reader.read(ids)
        rules = settings.rules.model_copy(
            update={
                k: v
                for k, v in (
                    ("cooldown_days", body.cooldown_days),
                    ("converted_within_days", body.converted_within_days),
                )
                if v is not None
            }
        )
        reasons = call_exclusions(rows, as_of, rules)
        eligible = rows[reasons.isna().to_numpy()].reset_index(drop=True)
        ranked = pd.DataFrame()
        if len(eligible):
            scores = model.campaigns.score(eligible, times, campaigns)
            ranked = rank_call_list(scores, body.capacity)
        entries, explanations = [], []  # no eligible candidate: an empty list, none explained (not a 500)
        if len(ranked):
            if body.explain:  # the first max_explained entries: the ones a caller reads first
                top = ranked.head(settings.max_explained)
                picked = eligible.set_index("customer_id").loc[top.customer_id].reset_index()
                explanations = model.explain(picked, top, as_of, settings.explain_steps)
            for i, r in enumerate(ranked.itertuples()):
                driving, why = explanations[i] if i < len(explanations) else (None, None)
                entries.append(
                    schemas.CallListEntry(
                        rank=int(r.rank),
                        customer_id=r.customer_id,
                        offer=r.offer,
                        method=r.method,
                        time_slot=r.contact_time,
                        p_order_if_contacted=float(r.p_order_if_called),
                        p_order_if_not_contacted=float(r.p_order_if_not_called),
                        uplift=float(r.uplift),
                        reason=why,
                        driving_events=[schemas.DrivingEventOut(**vars(e)) for e in driving]
                        if driving is not None
                        else None,
                    )
                )
        return schemas.CallListResponse(
            model_version=model.version,
            as_of=as_of,
            capacity=body.capacity,
            candidates=len(ids),
            excluded=reasons.value_counts().to_dict(),
            explained=len(explanations),
            call_list=entries,
        )

    # exclude_unset: a group's calibration_gap is absent, not null, where outcomes are unknown (as `lam fairness`)
    @app.get(
        "/v1/fairness",
        response_model=schemas.FairnessReport,
        response_model_exclude_unset=True,
        responses=_errors(401, 403, 404, 422),
    )
    def fairness(
        calibration_margin: float = Query(0.05, ge=0, le=1), _: ApiToken = Security(authorize, scopes=["call-list"])
    ) -> schemas.FairnessReport:
        """Selection, predicted and observed order rates of the latest stored call list by age band and
        gender against the consenting base, with four-fifths and calibration flags (as `lam fairness`)."""
        try:
            report = call_list_fairness(workdir, FairnessSettings(calibration_margin=calibration_margin))
        except FileNotFoundError as err:
            raise HTTPException(404, "no stored call list: run `lam score` first") from err
        report.pop("call_list")  # a server path, not the caller's business
        return schemas.FairnessReport.model_validate(report)

    return app


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description=(
        "A token from LAM_API_TOKENS or LAM_API_TOKENS_FILE. Each operation lists the scope it needs (score or "
        "call-list); without a known token the answer is 401, without the scope 403."
    ),
)
# auto_error=False: a missing or malformed header reaches `authorize`, which answers 401 in the service's words.

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


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of one operation: each code it can answer, with the body it gets."""
    return {code: ERROR_RESPONSES[code] for code in codes}


KNOWN_PATHS = {
    "/v1/score",
    "/v1/call-list",
    "/v1/fairness",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
}
ERROR_KINDS = {**REFUSALS, 500: "internal"}


def _check_count(field_name: str, n: int, limit: int) -> None:
    if n > limit:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", field_name],
                    "type": "too_long",
                    "msg": f"{field_name}: {n}; the limit is {limit} per request",
                }
            ],
        )


def _options(body: schemas.ScoringOptions, model: ServingModel, settings: ServiceSettings):
    """Candidate campaigns and contact times of a request, validated against what the model knows (no
    campaigns for a version without a campaign-response head)."""
    known_offers, known_methods = model.tokenizer.offers, model.tokenizer.methods
    if model.campaigns is None or not settings.contact_allowed:  # analysis only: no campaign is ever ranked
        if body.campaigns is not None:
            why = (
                f"model {model.version} has no campaign_response head"
                if model.campaigns is None
                else "this workdir's lam.yaml says `consent: analysis_only`: no campaign is scored"
            )
            raise HTTPException(422, [{"loc": ["body", "campaigns"], "type": "no_campaigns", "msg": why}])
        campaigns = []
    elif body.campaigns is None:
        campaigns = list(itertools.product(known_offers, known_methods))
    else:
        campaigns = []
        for i, c in enumerate(body.campaigns):
            for name, value, known in (("offer", c.offer, known_offers), ("method", c.method, known_methods)):
                if value not in known:
                    raise HTTPException(
                        422,
                        [
                            {
                                "loc": ["body", "campaigns", i, name],
                                "type": "unknown_value",
                                "msg": f"unknown {name} {value!r}; the model knows {list(known)}",
                            }
                        ],
                    )
            campaigns.append((c.offer, c.method))
        campaigns = list(dict.fromkeys(campaigns))
    slots = body.time_slots or list(settings.time_slots)
    for i, hour in enumerate(slots):
        if not 0 <= hour <= 23:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", "time_slots", i],
                        "type": "out_of_range",
                        "msg": f"time slot {hour} is not an hour of the day (0-23)",
                    }
                ],
            )
    if body.as_of is not None and not EARLIEST_AS_OF <= body.as_of.year <= LATEST_AS_OF:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "as_of"],
                    "type": "out_of_range",
                    "msg": f"as_of must fall in the years {EARLIEST_AS_OF}-{LATEST_AS_OF}",
                }
            ],
        )
    as_of = pd.Timestamp(body.as_of) if body.as_of is not None else settings.now()
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    times = sorted({next_contact_time(as_of, hour) for hour in slots})
    return campaigns, times, as_of


def _targets(body: schemas.ScoreRequest, model: ServingModel) -> list[str]:
    """The target heads a request asks for (default: every one the model has), validated."""
    if body.targets is None:
        return model.target_names
    for i, name in enumerate(body.targets):
        if name not in model.target_names:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", "targets", i],
                        "type": "unknown_value",
                        "msg": f"unknown target {name!r}; model {model.version} has {model.target_names}",
                    }
                ],
            )
    return list(dict.fromkeys(body.targets))


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
