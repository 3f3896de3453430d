"""The public-benchmark adapter on generated files: parsing, the leave-one-out split, and a learnable protocol run."""

import numpy as np
import pytest

from lam_platform.evaluation.public_benchmarks import leave_one_out, read_movielens, read_sasrec, run_leave_one_out

N_ITEMS = 30


def _cycling_users(n_users: int = 60, length: int = 12, seed: int = 0) -> list[list[int]]:
    """Each user walks the item cycle 1 -> 2 -> ... -> 30 -> 1 from a random start: the next item is learnable."""
    starts = np.random.default_rng(seed).integers(N_ITEMS, size=n_users)
    return [[(int(starts[u]) + k) % N_ITEMS + 1 for k in range(length - u % 3)] for u in range(n_users)]


def _write_movielens(path, users: list[list[int]]) -> None:
    lines = []
    for u, items in enumerate(users, start=1):
        for k, item in enumerate(items):
            lines.append(f"{u}::{item}::{1 + k % 5}::{978300000 + 60 * (k // 2)}")  # pairs share a second
    path.write_text("\n".join(reversed(lines[-4:])) + "\n" + "\n".join(lines[:-4]) + "\n")  # lines out of time order


def test_movielens_keeps_order_within_a_second_and_reads_ratings(tmp_path):
    users = _cycling_users(n_users=5)
    _write_movielens(tmp_path / "ratings.dat", users)
    events = read_movielens(tmp_path / "ratings.dat").to_pandas()
    first = events[events.customer_id == "u1"]
    assert first.object.tolist() == [f"item:{i}" for i in users[0]]  # ties broken by file order
    assert first.event_timestamp.is_monotonic_increasing and first.event_timestamp.is_unique
    assert first.amount.tolist() == [1 + k % 5 for k in range(len(users[0]))]
    assert set(events.action) == {"rate"} and set(events.channel) == {"web"}


def test_leave_one_out_holds_out_the_last_two_events_per_user(tmp_path):
    (tmp_path / "seq.txt").write_text("1 5\n1 6\n2 9\n1 7\n2 8\n1 4\n2 3\n3 1\n3 2\n")
    split = leave_one_out(read_sasrec(tmp_path / "seq.txt"))
    assert dict(zip(split.test.customer_id, split.test.object)) == {"u1": "item:4", "u2": "item:3"}
    assert dict(zip(split.validation.customer_id, split.validation.object)) == {"u1": "item:7", "u2": "item:8"}
    train = split.train.to_pandas()
    assert train.groupby("customer_id").object.apply(list).to_dict() == {"u1": ["item:5", "item:6"], "u2": ["item:9"]}
    assert "u3" not in set(train.customer_id)  # fewer than 3 events: dropped, as in the SASRec repos


def test_bad_lines_name_the_file_and_line(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::2::5::978300760\n1::x::5::978300761\n")
    with pytest.raises(ValueError, match=r"ratings.dat:2: expected UserID::MovieID::Rating::Timestamp"):
        read_movielens(tmp_path / "ratings.dat")


def test_protocol_learns_a_learnable_sequence_far_above_popularity(tmp_path):
    lines = [f"{u} {i}" for u, items in enumerate(_cycling_users(n_users=120), start=1) for i in items]
    (tmp_path / "seq.txt").write_text("\n".join(lines) + "\n")
    model = {
        "max_len": 12,
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 1,
        "dropout": 0.0,
        "hierarchical": False,
        "recent_events": 12,
        "max_windows": 1,
        "sampled_negatives": 8,
    }
    result = run_leave_one_out(
        read_sasrec(tmp_path / "seq.txt"),
        model,
        {"samples_per_customer": 4, "epochs": 8, "batch_size": 32, "learning_rate": 0.01},
        work=tmp_path,
    )
    assert result["users"] == 120 and result["items"] == N_ITEMS
    assert result["popularity_test"]["hr@10"] < 0.6  # ~uniform items: popularity is near 10/30
    assert result["test"]["hr@1"] > 0.8 and result["test"]["ndcg@10"] > 0.85  # full ranking over all 30 items
