"""Bearer tokens with scopes for the scoring service.

Tokens come from the environment variable LAM_API_TOKENS (a JSON list) or from the file named by
LAM_API_TOKENS_FILE (the same list as JSON or YAML), each entry
    {"name": "crm-batch", "token": "<at least 16 characters>", "scopes": ["score", "call-list"]}.
Only SHA-256 digests of the tokens are kept in memory, compared in constant time; a token is never
logged or echoed: errors and the audit name the token by its `name`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

SCOPES = frozenset({"score", "call-list"})
MIN_TOKEN_LENGTH = 16


class TokenConfigError(ValueError):
    """The token list is malformed; the message names the entry and the field, never a token."""


@dataclass(frozen=True)
class ApiToken:
    name: str
    digest: bytes
    scopes: frozenset[str]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(entries: object, source: str) -> list[ApiToken]:
    if not isinstance(entries, list) or not entries:
        raise TokenConfigError(f"{source}: expected a non-empty list of {{name, token, scopes}} entries")
    tokens, names = [], set()
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i}"
        if not isinstance(entry, dict):
            raise TokenConfigError(f"{where}: expected a mapping with name, token and scopes")
        name, token, scopes = entry.get("name"), entry.get("token"), entry.get("scopes")
        if not isinstance(name, str) or not name:
            raise TokenConfigError(f"{where}: 'name' must be a non-empty string")
        if name in names:
            raise TokenConfigError(f"{where}: the name {name!r} is used twice")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
            raise TokenConfigError(
                f"{where} ({name}): 'token' must be a string of at least {MIN_TOKEN_LENGTH} characters"
            )
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
            raise TokenConfigError(f"{where} ({name}): 'scopes' must be a non-empty list drawn from {sorted(SCOPES)}")
        names.add(name)
        tokens.append(ApiToken(name, _digest(token), frozenset(scopes)))
    return tokens


def load_tokens(environ: Mapping[str, str] | None = None) -> list[ApiToken]:
    """The service's tokens from LAM_API_TOKENS or LAM_API_TOKENS_FILE (exactly one must be set)."""
    environ = os.environ if environ is None else environ
    inline, file = environ.get("LAM_API_TOKENS"), environ.get("LAM_API_TOKENS_FILE")
    if bool(inline) == bool(file):
        raise TokenConfigError(
            "set exactly one of LAM_API_TOKENS (a JSON list) or LAM_API_TOKENS_FILE (a path); "
            'entries look like {"name": "crm", "token": "...", "scopes": ["score"]}'
        )
    if inline:
        try:
            return parse_tokens(json.loads(inline), "LAM_API_TOKENS")
        except json.JSONDecodeError as error:
            raise TokenConfigError(f"LAM_API_TOKENS is not valid JSON ({error.msg} at position {error.pos})") from None
    path = Path(file)
    if not path.is_file():
        raise TokenConfigError(f"LAM_API_TOKENS_FILE={path} does not exist")
    try:
        entries = yaml.safe_load(path.read_text())  # YAML is a superset of JSON: both formats read here
    except yaml.YAMLError as error:
        raise TokenConfigError(f"{path}: not valid JSON or YAML ({type(error).__name__})") from None
    return parse_tokens(entries, str(path))


class Authenticator:
    """Maps a bearer credential (the text after `Bearer `, as FastAPI's HTTPBearer parses the Authorization
    header) to the token it is, by digest."""

    def __init__(self, tokens: list[ApiToken]) -> None:
        self.tokens = tokens

    def identify(self, credentials: str | None) -> ApiToken | None:
        """The token these credentials are, or None (no credentials, or ones no configured token has)."""
        if not credentials:
            return None
        digest = _digest(credentials.strip())
        found = None
        for token in self.tokens:  # compare against all of them: the time taken does not depend on which matched
            if hmac.compare_digest(token.digest, digest):
                found = token
        return found
