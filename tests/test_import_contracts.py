"""The layer contracts of pyproject.toml hold, and they do catch a wrong-way import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )


def test_the_contracts_hold_and_wrong_way_imports_break_them(tmp_path):
    assert _lint(PROJECT).returncode == 0, _lint(PROJECT).stdout
    copy = tmp_path / "project"
    shutil.copytree(PROJECT / "lam_platform", copy / "lam_platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "lam_platform" / "sneaky.py").write_text("from lam_platform.simulation.world import WorldConfig\n")
    (copy / "lam_platform" / "lightning_modules" / "leaky.py").write_text(
        "from lam_platform.data.events import TIMESTAMP\n"
    )
    broken = _lint(copy)
    assert broken.returncode != 0 and "lam_platform.sneaky" in broken.stdout
    assert "lam_platform.lightning_modules.leaky -> lam_platform.data.events" in broken.stdout
