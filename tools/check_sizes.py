"""Fail when a module of lam_platform is over 400 lines or a function over 60 (the house limits).

Run: python tools/check_sizes.py   (from the repository root; .ci/run runs it)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{path}:{node.lineno} {node.name}: {length} lines (limit {MAX_FUNCTION_LINES})")
    return problems


if __name__ == "__main__":
    found = oversized(Path(__file__).resolve().parents[1] / "lam_platform")
    print("\n".join(found) or "sizes ok")
    sys.exit(1 if found else 0)
