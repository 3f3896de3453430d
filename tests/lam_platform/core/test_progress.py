"""Progress on a terminal: the status line names the stage and the time, the training bar reads the
rank-0 record, and neither writes a thing with --json or without a terminal."""

from __future__ import annotations

import json
import time

from lam_platform.core import progress


def test_the_status_line_shows_the_stage_and_is_erased_at_the_end(monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: True)
    with progress.status("lam materialize"):
        progress.stage("feast apply")
        time.sleep(0.8)
    err = capsys.readouterr().err
    assert "lam materialize · feast apply · 0 s" in err or "lam materialize · feast apply · 1 s" in err, err
    assert err.endswith("\r\033[K")  # the line is cleared for the command's own output


def test_the_training_bar_follows_the_workers_record(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(progress, "interactive", lambda: True)
    record = tmp_path / "progress.json"
    record.write_text(json.dumps({"step": 6, "epoch": 1, "loss": 2.5, "val_loss": 1.75}))
    with progress.follow_training(record, "pretrain-lam-v1", total_steps=12, epochs=2):
        time.sleep(0.8)
    err = capsys.readouterr().err
    assert "pretrain-lam-v1" in err and "6/12" in err and "epoch=2/2" in err and "val_loss=1.7500" in err, err


def test_quiet_means_nothing_on_stderr(capsys, tmp_path):
    progress.set_quiet(True)
    try:
        with progress.status("lam score"):
            progress.stage("scoring")
            progress.say("a final line")
        with progress.follow_training(tmp_path / "none.json", "run", 10, 1):
            pass
    finally:
        progress.set_quiet(False)
    assert capsys.readouterr().err == ""
