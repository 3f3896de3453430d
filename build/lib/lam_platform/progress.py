"""Progress of long steps on the terminal: a bar on a TTY, one final line otherwise, nothing with --json.

Lines go to stderr, so a script reading `--json` output from stdout never sees them. The CLI calls
`set_quiet(True)` for --json; library callers (tests, benchmarks) get the TTY rule alone.

Training runs in Ray workers; the rank-0 worker writes its step, losses and epoch to a small JSON file
in the run folder (`lam_platform.ray_jobs.checkpoints.ProgressFile`) and `follow_training` draws it here,
with the step total and ETA the driver knows from the training set's size.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress for this process (the CLI's --json)."""
    global _quiet
    _quiet = quiet


def interactive() -> bool:
    """A bar is drawn only for a person at a terminal."""
    return not _quiet and sys.stderr.isatty()


def say(line: str) -> None:
    """One progress line on stderr (a step's final summary), unless quiet."""
    if not _quiet:
        print(line, file=sys.stderr, flush=True)


def read_progress(path: Path) -> dict:
    """The latest progress record a training worker wrote ({} before the first)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def follow_training(path: Path, label: str, total_steps: int, epochs: int) -> Iterator[None]:
    """While the body runs, draw a bar (steps, epoch, train and validation loss, ETA) from `path`."""
    if not interactive():
        yield
        return
    from tqdm import tqdm

    stop = threading.Event()
    bar = tqdm(total=total_steps, desc=label, unit="step", file=sys.stderr, dynamic_ncols=True)

    def draw() -> None:
        while not stop.wait(0.5):
            record = read_progress(path)
            if not record:
                continue
            bar.n = min(int(record.get("step", 0)), total_steps)
            shown = {"epoch": f"{int(record.get('epoch', 0)) + 1}/{epochs}"}
            shown.update({k: f"{record[k]:.4f}" for k in ("loss", "val_loss") if record.get(k) is not None})
            bar.set_postfix(shown, refresh=False)
            bar.refresh()

    drawer = threading.Thread(target=draw, name="lam-training-progress", daemon=True)
    drawer.start()
    try:
        yield
    finally:
        stop.set()
        drawer.join()
        bar.close()
