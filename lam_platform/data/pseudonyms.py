"""Pseudonymous customer ids: raw ids are replaced by a keyed hash where data enters the platform.

Every store the platform writes (event table, profiles, campaign log, Feast, artifacts, call lists,
logs, metrics) holds only the pseudonym HMAC-SHA256(key, raw id), as 32 lowercase hex digits. The
key comes from `LAM_PSEUDONYM_KEY` or from the file named by `LAM_PSEUDONYM_KEY_FILE` (a mounted
secret); it is held in memory and never written by the platform. Without the key a pseudonym cannot
be traced back; with it, a raw id can be matched to its pseudonym (that is how `lam forget`, `lam
consent` and the re-identifying call-list export find a person).

Make a key: `python -c "import secrets; print(secrets.token_hex(32))"`
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lam_platform.core.errors import UserError

KEY_ENV = "LAM_PSEUDONYM_KEY"
KEY_FILE_ENV = "LAM_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymization key: the message says where the platform looked."""


class Pseudonymizer:
    """Maps raw customer ids to pseudonyms with one secret key; the key is not exposed or printed."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"the pseudonymization key has {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                '(e.g. python -c "import secrets; print(secrets.token_hex(32))")'
            )
        self._key = key

    def __repr__(self) -> str:  # never the key, not even in a traceback's locals
        return "Pseudonymizer(<key hidden>)"

    @classmethod
    def from_env(cls) -> Pseudonymizer:
        """The key from LAM_PSEUDONYM_KEY, else from the file LAM_PSEUDONYM_KEY_FILE names."""
        text = os.environ.get(KEY_ENV)
        if text is None and os.environ.get(KEY_FILE_ENV):
            path = Path(os.environ[KEY_FILE_ENV])
            if not path.is_file():
                raise PseudonymKeyError(f"{KEY_FILE_ENV} names {path}, which is not a readable file")
            text = path.read_text()
        if text is None or not text.strip():
            raise PseudonymKeyError(
                f"no pseudonymization key: set {KEY_ENV} or {KEY_FILE_ENV} (a secret file); "
                'make one with python -c "import secrets; print(secrets.token_hex(32))"'
            )
        return cls(text.strip().encode())

    @classmethod
    def ephemeral(cls) -> Pseudonymizer:
        """A one-off key held only by this process: its pseudonyms can never be re-identified."""
        return cls(secrets.token_bytes(32))

    def fingerprint(self) -> str:
        """A short keyed hash of a fixed text: tells two keys apart, says nothing about the key or any id."""
        return hmac.new(self._key, b"lam key fingerprint", hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, raw_id: str) -> str:
        return hmac.digest(self._key, raw_id.encode(), "sha256").hex()[:32]  # hmac.new's value, in one C call

    def pseudonyms(self, raw_ids: Iterable[str]) -> list[str]:
        return [self.pseudonym(r) for r in raw_ids]

    def column(self, raw_ids: pd.Series) -> pd.Series:
        """Pseudonyms of a column, hashing each distinct id once; missing stays missing."""
        distinct = pd.unique(raw_ids.dropna())
        mapping = dict(zip(distinct, self.pseudonyms(str(r) for r in distinct)))
        return raw_ids.map(mapping, na_action="ignore")

    def array(self, raw_ids: pa.Array) -> pa.Array:
        """`column` for an Arrow string array: each distinct id hashed once, then looked up in Arrow."""
        encoded = raw_ids.dictionary_encode()  # the distinct ids, and each cell's among them (null stays null)
        return pa.array(self.pseudonyms(encoded.dictionary.to_pylist()), pa.string()).take(encoded.indices)

    def matcher(self, raw_ids: Iterable[str]) -> dict[str, str]:
        """pseudonym -> raw id for a list of raw ids (a customer master): how re-identification works."""
        return {self.pseudonym(r): r for r in raw_ids}


def check_pseudonyms(ids: Iterable[str], what: str = "customer_ids") -> list[str]:
    """`ids` as a list, or a ValueError naming the first one that is not a pseudonym."""
    ids = list(ids)
    bad = [k for k, i in enumerate(ids) if not isinstance(i, str) or not PSEUDONYM.match(i)]
    if bad:  # positions, not values: a raw id sent here by mistake must not be echoed into logs
        raise ValueError(
            f"{what}: {len(bad)} value(s) are not pseudonyms (32 hex digits), first at position "
            f"{bad[0]}; the platform stores only pseudonyms: pass raw ids through a command that "
            "holds the key"
        )
    return ids


KEY_FINGERPRINT_FILE = "key.fingerprint"


class KeyMismatchError(UserError):
    """The key given is not the one the workdir's pseudonyms were made with."""


def bind_key(root: Path, pseudonymizer: Pseudonymizer, replace: bool = False) -> None:
    """Record the key's fingerprint in a new workdir, or refuse a key that is not the recorded one: with
    another key, ingestion would split customers in two and `lam forget` or an export would match nobody.
    `replace`: the workdir's data is being replaced whole (a new simulated world), so is its key."""
    path = Path(root) / KEY_FINGERPRINT_FILE
    if path.exists() and not replace:
        if path.read_text().strip() != pseudonymizer.fingerprint():
            raise KeyMismatchError(
                f"LAM_PSEUDONYM_KEY is not the key {root} was created with (its fingerprint is in "
                f"{path}): use that key; pseudonyms of another key match no one here"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pseudonymizer.fingerprint() + "\n")
