"""Progress of long steps on the terminal: a bar on a TTY, one final line otherwise, nothing with --json.

Lines go to stderr, so a script reading `--json` output from stdout never sees them. The CLI calls
`set_quiet(True)` for --json; library callers (tests, benchmarks) get the TTY rule alone.

A command shows one status line while it runs (`status`): its name, the stage it is in (`stage`, called
by the steps: "writing snapshots", "feast materialize", ...) and the seconds so far. Training runs in
Ray workers; the rank-0 worker writes its step, losses and epoch to a small JSON file in the run folder
(`lam_platform.ray_jobs.checkpoints.ProgressFile`) and `follow_training` draws it here,
with the step total and ETA the driver knows from the training set's size.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_quiet = False
_stage = {"text": "", "paused": False}  # what the status line shows; paused while a bar owns the terminal


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


def stage(text: str) -> None:
    """Name the stage a long step is in (shown on the status line at a terminal; free otherwise)."""
    _stage["text"] = text


class _StatusLine:
    """One line at the bottom of a terminal, redrawn every half second; anything else written to stdout or
    stderr erases it first (and it comes back under that output at the next tick)."""

    def __init__(self, label: str, stream) -> None:
        self.label, self.stream, self.started = label, stream, time.monotonic()
        self.lock, self.drawn = threading.Lock(), False

    def draw(self) -> None:
        text = " · ".join(t for t in (self.label, _stage["text"], f"{time.monotonic() - self.started:.0f} s") if t)
        with self.lock:
            self.stream.write("\r\033[K" + text[:160])
            self.stream.flush()
            self.drawn = True

    def erase(self) -> None:
        with self.lock:
            if self.drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()
                self.drawn = False


class _Erasing:
    """A stdout/stderr stand-in that clears the status line before passing a write through."""

    def __init__(self, stream, line: _StatusLine) -> None:
        self._stream, self._line = stream, line

    def write(self, text: str) -> int:
        self._line.erase()
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def status(label: str) -> Iterator[None]:
    """While the body runs, keep one line on a terminal: `label · stage · N s`; erased when it ends."""
    if not interactive():
        yield
        return
    line = _StatusLine(label, sys.stderr)
    _stage["text"] = ""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Erasing(sys.stdout, line), _Erasing(sys.stderr, line)
    try:
        with _every_half_second(lambda: None if _stage["paused"] else line.draw(), "lam-status"):
            yield
    finally:
        sys.stdout, sys.stderr = saved
        line.erase()


@contextmanager
def _every_half_second(redraw, name: str) -> Iterator[None]:
    """Call `redraw` every half second on a thread of its own while the body runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.5):
            redraw()

    drawer = threading.Thread(target=loop, name=name, daemon=True)
    drawer.start()
    try:
        yield
    finally:
        stop.set()
        drawer.join()


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

    _stage["paused"] = True  # the bar takes the line the status had
    sys.stderr.write("\r\033[K")
    bar = tqdm(total=total_steps, desc=label, unit="step", file=sys.stderr, dynamic_ncols=True)

    def draw() -> None:
        record = read_progress(path)
        if record:
            bar.n = min(int(record.get("step", 0)), total_steps)
            shown = {"epoch": f"{int(record.get('epoch', 0)) + 1}/{epochs}"}
            shown.update({k: f"{record[k]:.4f}" for k in ("loss", "val_loss") if record.get(k) is not None})
            bar.set_postfix(shown, refresh=False)
            bar.refresh()

    try:
        with _every_half_second(draw, "lam-training-progress"):
            yield
    finally:
        bar.close()
        _stage["paused"] = False
