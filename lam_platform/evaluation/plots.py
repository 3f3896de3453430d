"""Shared plotting helper: every PNG the platform writes goes through here (headless, closed after saving)."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
