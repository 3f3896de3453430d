"""`lam`: the platform's command line. Every command takes --workdir and --json.

With --json, a command prints one JSON object with its results as its last line.

This is the entry point (`lam = "lam_platform.cli.main:main"`; also `python -m lam_platform.cli.main`): the group
and its error handler are in group.py, the shared options in options.py, and each command group in a module of
its own, imported here so that its commands register on `main`.
"""

from __future__ import annotations

import sys

# Importing a command module registers its commands on `main`.
from lam_platform.cli import data, evaluation, governance, scoring, simulator, training  # noqa: F401
from lam_platform.cli.group import main

if __name__ == "__main__":
    sys.exit(main())
