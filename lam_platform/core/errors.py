"""The user's mistakes, as one class: the CLI prints their message on one line and exits 2 (no traceback;
`lam --debug` shows it).

Raise `UserError` (or a subclass) where the input names the problem and the fix: a bad lam.yaml, a time
without a zone, a training set that the chosen --as-of leaves empty. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a step that cannot run on this workdir as asked; the message names the input, `hint` the fix
    where the message does not say it already."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def one_line(text: object) -> str:
    """A message on one line: a terminal, a log collector and a `--json` reader each get one record."""
    return " ".join(str(text).split())


def yaml_problem(err: Exception) -> str:
    """A YAML parse error as one line with its place: "not valid YAML at line 2, column 13: <problem>"."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    return one_line(f"not valid YAML{where}: {problem}" + (f" ({context})" if context else ""))
