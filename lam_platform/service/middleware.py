"""The service's ASGI middleware: body-size limit, request metrics and the audit entry of each scoring request."""

from __future__ import annotations

import time

import anyio
from fastapi.responses import JSONResponse

from lam_platform.governance.audit import REFUSALS, AuditLog
from lam_platform.service.metrics import Metrics

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
            await self._note(scope, endpoint, status[0], started)

    async def _note(self, scope, endpoint: str, status: int, started: float) -> None:
        """The audit entry (scoring requests only) and the metrics of one answered or refused request."""
        if scope["path"].startswith("/v1/"):  # every scoring request, answered or refused
            state = scope.get("state") or {}
            # The write and its fsync run in a worker thread: the event loop keeps serving meanwhile.
            await anyio.to_thread.run_sync(
                self.audit.record, state.get("token_name"), endpoint, state.get("customers"), status
            )
        self.metrics.requests.labels(endpoint, str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        if status >= 400:
            self.metrics.errors.labels(endpoint, ERROR_KINDS.get(status, "other")).inc()

    async def _too_large(self, send) -> None:
        await JSONResponse({"detail": f"request body exceeds max_body_bytes={self.max_body_bytes}"}, 413)(
            {"type": "http"}, None, send
        )
