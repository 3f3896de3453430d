"""The training loop's validation split, best-epoch weights and progress records, without a Ray cluster."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import numpy as np
import torch

from lam_platform.campaigns.training_shards import EXAMPLE_TIME, read_training_shards, write_training_shards
from lam_platform.core.progress import read_progress
from lam_platform.ray_jobs.checkpoints import BestWeights, ProgressFile
from lam_platform.ray_jobs.training import ValidationSplit, _fit_result


def _shards(tmp_path, times):
    arrays = {"x": np.arange(len(times), dtype=np.float32), EXAMPLE_TIME: np.asarray(times, dtype=np.int64)}
    write_training_shards(arrays, tmp_path / "set", rows_per_shard=7)
    return tmp_path / "set"


def test_the_newest_examples_validate_and_the_split_never_starves_a_worker(tmp_path):
    folder = _shards(tmp_path, np.arange(100) * 1_000_000)
    split = ValidationSplit.of(folder, 0.1, workers=2)
    assert (split.train_rows, split.validation_rows) == (90, 10) and split.cut_us == 90_000_000
    held_out = read_training_shards(folder, since_us=split.cut_us)
    assert held_out[EXAMPLE_TIME].min() >= split.cut_us and len(held_out["x"]) == 10
    assert ValidationSplit.of(folder, 0.0, workers=2).cut_us is None  # switched off
    assert ValidationSplit.of(folder, 0.01, workers=2).cut_us is None  # 1 row: a worker would validate nothing
    # One time for every example (a single target cut-off): no split rather than an empty training side.
    assert ValidationSplit.of(_shards(tmp_path / "same", [5] * 40), 0.1, workers=2).cut_us is None


def _trainer(epoch, val_loss, rank=0, step=0):
    return SimpleNamespace(
        callback_metrics={"val_loss": torch.tensor(val_loss)},
        sanity_checking=False,
        current_epoch=epoch,
        global_rank=rank,
        global_step=step,
    )


def test_best_weights_keep_the_epoch_with_the_lowest_validation_loss():
    module, best = torch.nn.Linear(2, 1), BestWeights()
    for epoch, (weight, loss) in enumerate([(1.0, 0.9), (2.0, 0.5), (3.0, 0.7)]):
        torch.nn.init.constant_(module.weight, weight)
        best.on_validation_end(_trainer(epoch, loss), module)
    state = best.state_dict()
    assert state["epoch"] == 1 and abs(state["best"] - 0.5) < 1e-6
    assert torch.equal(state["weights"]["weight"], torch.full((1, 2), 2.0))  # a copy, not the live tensor
    restored = BestWeights()
    restored.load_state_dict(state)
    assert restored.epoch == 1


def test_progress_records_come_from_rank_zero_only(tmp_path):
    path = tmp_path / "progress.json"
    ProgressFile(path, every_s=0).on_train_batch_end(
        _trainer(0, 1.0, rank=1, step=3), None, {"loss": torch.tensor(2.5)}, None, 0
    )
    assert not path.exists()
    writer = ProgressFile(path, every_s=0)
    writer.on_train_batch_end(_trainer(0, 1.0, step=3), None, {"loss": torch.tensor(2.5)}, None, 0)
    writer.on_validation_end(_trainer(0, 1.25, step=3), None)
    assert read_progress(path) == {"step": 3, "epoch": 0, "loss": 2.5, "val_loss": 1.25}
    assert json.loads(path.read_text())["val_loss"] == 1.25


def test_a_run_gives_the_best_epochs_weights_or_with_keep_weights_last_the_last_epochs(tmp_path):
    best_weights = {"weight": torch.full((1, 2), 2.0)}
    last_weights = {"weight": torch.full((1, 2), 3.0)}
    torch.save(
        {"state_dict": last_weights, "callbacks": {"BestWeights": {"best": 0.5, "epoch": 1, "weights": best_weights}}},
        tmp_path / "checkpoint.ckpt",
    )
    checkpoint = SimpleNamespace(as_directory=lambda: contextlib.nullcontext(str(tmp_path)))
    result = SimpleNamespace(checkpoint=checkpoint, metrics={"epoch": 2, "val_loss": 0.7})
    split = SimpleNamespace(train_rows=90, validation_rows=10)
    scaling = SimpleNamespace(num_workers=2, use_gpu=False)
    kept = _fit_result(result, "run", tmp_path, split, scaling, 10.0)
    assert torch.equal(kept.state_dict["weight"], best_weights["weight"]) and kept.metrics["best_epoch"] == 1
    assert "kept_epoch" not in kept.metrics
    last = _fit_result(result, "run", tmp_path, split, scaling, 10.0, keep_weights="last")
    assert torch.equal(last.state_dict["weight"], last_weights["weight"])
    assert last.metrics["kept_epoch"] == 2 and last.metrics["best_epoch"] == 1  # the best is still reported
