"""The user's mistakes, as one class: the CLI prints their message on one line and exits 2 (no traceback).

Raise `UserError` (or a subclass) where the input names the problem and the fix: a bad lam.yaml, a time
without a zone, a training set that the chosen --as-of leaves empty. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a step that cannot run on this workdir as asked; the message names the fix."""
