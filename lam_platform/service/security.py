"""The service's bearer security scheme and the scope check each /v1 route declares.

A route asks for a scope with `Security(authorize, scopes=["score"])`: OpenAPI shows that scope, and
`authorize` enforces it (401 without a known token, 403 without the scope).
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from lam_platform.service.auth import ApiToken
from lam_platform.service.state import ServiceState, get_state

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description=(
        "A token from LAM_API_TOKENS or LAM_API_TOKENS_FILE. Each operation lists the scope it needs (score or "
        "call-list); without a known token the answer is 401, without the scope 403."
    ),
)
# auto_error=False: a missing or malformed header reaches `authorize`, which answers 401 in the service's words.


async def authorize(
    request: Request,
    required: SecurityScopes,
    credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
    state: ServiceState = Depends(get_state),
) -> ApiToken:
    """The caller's token if it has every scope the route declares (`Security(authorize, scopes=...)`):
    the scopes that OpenAPI shows are the ones enforced here. Async: a dictionary lookup needs no worker
    thread, and a hop to one costs a request more than the lookup."""
    token = state.auth.identify(credentials.credentials if credentials is not None else None)
    if token is None:
        raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
    request.state.token_name = token.name  # for the audit log, refused or not
    for scope in required.scopes:
        if scope not in token.scopes:
            raise HTTPException(403, f"token {token.name!r} lacks the {scope!r} scope")
    return token
