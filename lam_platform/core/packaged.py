"""What the installed package ships and reads at run time: job configs, the Feast repo template, store profiles.

Everything here is package data (pyproject's `[tool.setuptools.package-data]`), so a wheel installed
outside the source tree finds it. Commands accept a shipped name (`--config quality`,
`--profile production`) or a path to a file of your own.
"""

from __future__ import annotations

from pathlib import Path

from lam_platform.core.errors import UserError

PACKAGE = Path(__file__).resolve().parent.parent  # lam_platform/, above core/
JOB_CONFIGS = PACKAGE / "ray_jobs" / "configs"
FEAST_REPO = PACKAGE / "feast_repo"
FEAST_PROFILES = FEAST_REPO / "profiles"


def _shipped(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _resolve(name_or_path: str | Path, folder: Path, what: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = folder / f"{path.name}.yaml" if path.suffix == "" else None
    if shipped is not None and shipped.is_file() and path.parent == Path("."):
        return shipped
    raise UserError(f"{what} {name_or_path} not found: give a file path or one of the shipped names {_shipped(folder)}")


def job_config_path(name_or_path: str | Path) -> Path:
    """A job YAML: a file path, or the name of a shipped config (demo, quality, tiny, gpu, ml1m)."""
    return _resolve(name_or_path, JOB_CONFIGS, "job config")


def feast_profile_path(name_or_path: str | Path) -> Path:
    """A feature_store.yaml: a file path, or the name of a shipped profile (local, production)."""
    return _resolve(name_or_path, FEAST_PROFILES, "feature store profile")
