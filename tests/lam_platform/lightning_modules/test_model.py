from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from lam_platform.data.events import TIMESTAMP
from lam_platform.features.sequences import build_sequences
from lam_platform.lightning_modules.artifact import (
    HeadLayoutError,
    ModelArtifact,
    SchemaMismatchError,
    split_state_dict,
)
from lam_platform.lightning_modules.batches import CampaignContext, EventBatch, dataclass_from_arrays
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.model import (
    CampaignResponseHead,
    LAMBackbone,
    NextActionHead,
    activity_width,
    recent_activity,
)
from lam_platform.lightning_modules.rollout import rollout
from lam_platform.lightning_modules.systems import NextActionSystem
from lam_platform.lightning_modules.tokenizer import EventTokenizer

OBJECTS = ["a", "b", "c", "d"]


def _sequences(n_customers: int = 8, events_each: int = 12, seed: int = 0) -> pa.Table:
    """Customers cycling through a -> b -> c -> d: a next-action pattern a model can learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 100)))
        for k in range(events_each - c % 3):  # different lengths, so padding is exercised
            rows.append((f"c{c}", start + pd.Timedelta(hours=7 * k), OBJECTS[(c + k) % 4], float(k) if k % 2 else None))
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "object", "amount"])
    events = pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(frame))],
            "customer_id": frame.customer_id,
            "event_timestamp": pa.array(frame.event_timestamp, TIMESTAMP),
            "channel": ["app"] * len(frame),
            "object": frame.object,
            "action": ["view"] * len(frame),
            "amount": pa.array(frame.amount, pa.float64()),
            "duration_s": pa.array([None] * len(frame), pa.float64()),
        }
    )
    ids = [f"c{c}" for c in range(n_customers)] + ["unknown"]
    return build_sequences(events, ids, pa.array([pd.Timestamp("2026-03-01", tz="UTC")] * len(ids), TIMESTAMP), 16)


def _tokenizer(sequences: pa.Table) -> EventTokenizer:
    profiles = pd.DataFrame({"age_band": ["30-44"], "gender": ["f"], "plan": ["basic"], "region": ["north"]})
    return EventTokenizer.fit(
        sequences, profiles, ["device_upgrade", "plan_change"], ["outbound_call", "sms"], 16, min_count=1
    )


def _config(tokenizer: EventTokenizer, **overrides) -> LAMConfig:
    return LAMConfig.from_dict(
        {
            "d_model": 16,
            "n_heads": 2,
            "n_layers": 1,
            "dropout": 0.0,
            "recent_events": 8,
            "max_windows": 4,
            **tokenizer.config_sizes(),
            **overrides,
        }
    )


@pytest.mark.parametrize("hierarchical", [True, False])
def test_head_output_shapes_and_empty_sequences_stay_finite(hierarchical):
    sequences = _sequences()
    tokenizer = _tokenizer(sequences)
    config = _config(tokenizer, hierarchical=hierarchical)
    arrays = tokenizer.encode_events(sequences)
    last = arrays.pop("last_event_us")
    out = LAMBackbone(config)(dataclass_from_arrays(EventBatch, arrays))
    b = sequences.num_rows
    assert out.recent_hidden.shape == (b, 8, 16) and out.state.shape == (b, 16)
    assert "activity" not in vars(out)  # pooled only for the fine-tune heads, on first use
    assert out.customer.shape == (b, 16 + activity_width(config))
    assert torch.isfinite(out.hidden).all() and torch.isfinite(out.customer).all()  # one customer has no events
    head = NextActionHead(config)
    nxt = head(out.recent_hidden)
    assert head.object_logits(out.recent_hidden).shape == (b, 8, config.n_objects)
    assert nxt.channel_logits.shape == (b, 8, config.n_channels) and nxt.log_gap_hours.shape == (b, 8)
    profiles = pd.DataFrame(
        {
            "age_band": ["30-44"] * b,
            "gender": ["x"] * b,
            "plan": ["basic"] * b,
            "region": [None] * b,
            "tenure_months": [12] * b,
        }
    )
    context = tokenizer.encode_campaigns(
        profiles, ["plan_change"] * b, ["sms"] * b, pd.Series([pd.Timestamp("2026-03-01", tz="UTC")] * b), last
    )
    response = CampaignResponseHead(config)(out.customer, dataclass_from_arrays(CampaignContext, context))
    assert response.logit_contacted.shape == (b,) and response.uplift.abs().max() <= 1


def test_recent_activity_pools_each_window_and_channel():
    # One customer, 4 events: days 100, 110, 128, 130 (the latest) on channels 2, 3, 2, 2; embeddings are one-hot
    # per event, so each pool's mean says which events it holds.
    day = torch.tensor([[0, 100, 110, 128, 130]])
    mask = torch.tensor([[False, True, True, True, True]])
    categorical = torch.zeros(1, 5, 3, dtype=torch.long)
    categorical[0, 1:, 0] = torch.tensor([2, 3, 2, 2])
    events = SimpleNamespace(day=day, mask=mask, categorical=categorical)
    x = torch.eye(5).unsqueeze(0)  # (1, L=5, d=5)
    activity = recent_activity(x, events, n_channels=4).view(5, 6)  # pools: 7d, 30d, all, channel 2, channel 3
    means, counts = activity[:, :5], torch.expm1(activity[:, 5])
    torch.testing.assert_close(counts, torch.tensor([2.0, 3.0, 4.0, 3.0, 1.0]))
    torch.testing.assert_close(means[0], torch.tensor([0, 0, 0, 0.5, 0.5]))  # days 128 and 130
    torch.testing.assert_close(means[1], torch.tensor([0, 0, 1 / 3, 1 / 3, 1 / 3]))  # days 110 to 130
    torch.testing.assert_close(means[4], torch.tensor([0, 0, 1.0, 0, 0]))  # the channel-3 event only
    assert activity.numel() == activity_width(LAMConfig(n_channels=4, d_model=5, n_heads=1))


def test_hierarchical_backbone_attends_over_fewer_positions_than_events():
    tokenizer = _tokenizer(_sequences())
    hier, flat = _config(tokenizer, hierarchical=True), _config(tokenizer, hierarchical=False)
    arrays = tokenizer.encode_events(_sequences())
    arrays.pop("last_event_us")
    batch = dataclass_from_arrays(EventBatch, arrays)
    assert LAMBackbone(hier)(batch).hidden.shape[1] == hier.max_windows + hier.recent_events
    assert LAMBackbone(flat)(batch).hidden.shape[1] == flat.max_len


def _pretrain_batch(tokenizer: EventTokenizer, sequences: pa.Table, recent: int) -> dict:
    full = tokenizer.encode_events(sequences, max_len=17)
    full.pop("last_event_us")
    batch = {k: torch.as_tensor(v[:, :-1]) for k, v in full.items()}
    batch["next_categorical"] = torch.as_tensor(full["categorical"][:, 1:][:, -recent:])
    batch["next_log_gap_hours"] = torch.as_tensor(full["log_gap_hours"][:, 1:][:, -recent:])
    return batch


def _train_on_cycles(negatives: int, steps: int = 60) -> tuple[NextActionSystem, EventTokenizer, list[float]]:
    torch.manual_seed(0)
    sequences = _sequences(n_customers=16)
    tokenizer = _tokenizer(sequences)
    system = NextActionSystem(_config(tokenizer, sampled_negatives=negatives), learning_rate=1e-2)
    system.log_dict = lambda *a, **k: None  # no Trainer attached in this unit test
    batch = _pretrain_batch(tokenizer, sequences, recent=8)
    optimizer = system.configure_optimizers()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = system._common_step(batch, "train")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return system.eval(), tokenizer, losses


@pytest.mark.parametrize("negatives", [0, 3])  # full softmax; sampled softmax with 3 of the 5 other objects
def test_pretraining_loss_decreases_on_a_learnable_pattern(negatives):
    _, _, losses = _train_on_cycles(negatives)
    assert losses[-1] < 0.5 * losses[0]


def test_sampled_softmax_masks_accidental_hits_and_falls_back_to_full():
    torch.manual_seed(0)
    config = LAMConfig(d_model=8, n_heads=2, n_objects=4)
    head = NextActionHead(config)
    hidden, targets = torch.randn(32, 8), torch.randint(1, 4, (32,))
    full = torch.nn.functional.cross_entropy(head.object_logits(hidden), targets)
    torch.testing.assert_close(head.object_loss(hidden, targets, negatives=0), full)
    torch.testing.assert_close(head.object_loss(hidden, targets, negatives=3), full)  # n >= V - 1: full softmax
    # Two negatives from ids 1..3 always include a target's own id sometimes: masked, the loss stays finite.
    assert all(torch.isfinite(head.object_loss(hidden, targets, negatives=2)) for _ in range(20))


def test_rollout_continues_a_learned_cycle():
    system, tokenizer, _ = _train_on_cycles(0, steps=150)
    sequences = _sequences(n_customers=16)
    arrays = tokenizer.encode_events(sequences)
    arrays.pop("last_event_us")
    batch = dataclass_from_arrays(EventBatch, arrays)
    future = rollout(system.backbone, system.next_action, batch, steps=4, temperature=0.0)
    assert future.categorical.shape == (sequences.num_rows, 4, 3)
    assert (future.hours_after.diff(dim=1) >= 0).all()
    generated = tokenizer.decode_events(future.categorical.numpy(), future.hours_after.numpy())
    last_seen = [objects[-1] for objects in sequences.column("objects").to_pylist()[:16]]
    expected = [OBJECTS[(OBJECTS.index(o) + step) % 4] for o in last_seen for step in range(1, 5)]
    got = generated[generated.row < 16].object.tolist()
    assert np.mean([g == e for g, e in zip(got, expected)]) > 0.9  # the cycle a -> b -> c -> d, 4 steps ahead
    sampled = rollout(
        system.backbone, system.next_action, batch, steps=2, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert (sampled.categorical > 0).all()  # pad is never generated


def test_artifact_round_trip_shares_one_backbone_and_checks_schema(tmp_path):
    sequences = _sequences()
    tokenizer = _tokenizer(sequences)
    config = _config(tokenizer)
    system = NextActionSystem(config)
    parts = split_state_dict(system.state_dict())
    artifact = ModelArtifact.create(
        tmp_path / "lam-v1",
        config,
        tokenizer,
        parts["backbone"],
        {"schema_fingerprint": "abc", "feature_views": ["customer_event_sequence"]},
    )
    artifact.add_head("next_action", parts["next_action"], {"metrics": {}})
    artifact.add_head("campaign_response", CampaignResponseHead(config).state_dict(), {"metrics": {}})
    loaded = ModelArtifact(tmp_path / "lam-v1")
    assert set(loaded.card["heads"]) == {"next_action", "campaign_response"}
    arrays = loaded.tokenizer.encode_events(sequences)
    arrays.pop("last_event_us")
    batch = dataclass_from_arrays(EventBatch, arrays)
    system.eval()
    with torch.no_grad():
        expected = system.next_action.object_logits(system.backbone(batch).recent_hidden)
        got = loaded.load_head("next_action").object_logits(loaded.load_backbone()(batch).recent_hidden)
    torch.testing.assert_close(got, expected)
    loaded.check_schema("abc")
    # A head stored by an older release (other layers) is refused by name, not with a state-dict dump.
    older = {k.replace("customer.profile", "profile"): v for k, v in CampaignResponseHead(config).state_dict().items()}
    older = {k: v for k, v in older.items() if not k.startswith("customer.activity")}
    artifact.add_head("campaign_response", older, {"metrics": {}})
    with pytest.raises(HeadLayoutError, match="fine-tune it again"):
        ModelArtifact(tmp_path / "lam-v1").load_head("campaign_response")
    with pytest.raises(SchemaMismatchError, match="customer_event_sequence"):
        loaded.check_schema("changed")


def test_tokenizer_maps_unseen_values_to_the_oov_bucket_and_round_trips(tmp_path):
    sequences = _sequences()
    tokenizer = _tokenizer(sequences)
    tokenizer.save(tmp_path / "tokenizer.json")
    assert EventTokenizer.load(tmp_path / "tokenizer.json") == tokenizer
    unseen = sequences.set_column(
        sequences.schema.get_field_index("objects"),
        "objects",
        pa.array([["zzz"] * len(x) for x in sequences.column("objects").to_pylist()], pa.list_(pa.string())),
    )
    arrays = tokenizer.encode_events(unseen)
    assert set(np.unique(arrays["categorical"][..., 1][arrays["mask"]])) == {1}
    with pytest.raises(ValueError, match="unknown offer"):
        tokenizer.encode_campaigns(
            pd.DataFrame({"age_band": ["x"], "gender": ["x"], "plan": ["x"], "region": ["x"], "tenure_months": [1]}),
            ["free_pizza"],
            ["sms"],
            pd.Series([pd.Timestamp("2026-03-01", tz="UTC")]),
            np.array([0]),
        )


def test_a_retrained_backbone_gets_a_new_version_without_stale_heads(tmp_path):
    sequences = _sequences()
    tokenizer = _tokenizer(sequences)
    config = _config(tokenizer)
    parts = split_state_dict(NextActionSystem(config).state_dict())
    base = ModelArtifact.create(
        tmp_path / "lam-v1", config, tokenizer, parts["backbone"], {"schema_fingerprint": "abc"}
    )
    base.add_head("next_action", parts["next_action"], {"metrics": {}})
    retrained = {k: v + 1 for k, v in parts["backbone"].items()}
    derived = base.derive(tmp_path / "lam-v2", retrained)
    derived.add_head("campaign_response", CampaignResponseHead(config).state_dict(), {"metrics": {}})
    assert set(derived.card["heads"]) == {"campaign_response"}  # next_action was trained on lam-v1's backbone
    assert derived.card["base_version"] == "lam-v1" and derived.card["schema_fingerprint"] == "abc"
    assert derived.with_head("next_action").path.name == "lam-v1"
    assert derived.with_head("campaign_response").path.name == "lam-v2"
    torch.testing.assert_close(derived.load_backbone().state_dict(), {k: v for k, v in retrained.items()})


def test_the_auxiliary_loss_weight_scales_only_the_channel_action_and_gap_terms():
    sequences = _sequences(n_customers=6)
    tokenizer = _tokenizer(sequences)
    batch = _pretrain_batch(tokenizer, sequences, recent=8)
    logged: dict = {}
    totals = {}
    for weight in (0.0, 1.0, 2.0):
        torch.manual_seed(0)
        system = NextActionSystem(_config(tokenizer, auxiliary_loss_weight=weight))
        system.log_dict = lambda metrics, **k: logged.update({k_: float(v) for k_, v in metrics.items()})
        totals[weight] = float(system._common_step(batch, "val"))
    auxiliary = logged["val_channel_loss"] + logged["val_action_loss"] + logged["val_gap_loss"]
    assert abs(totals[0.0] - logged["val_object_loss"]) < 1e-5  # the object term alone
    assert abs(totals[2.0] - totals[1.0] - auxiliary) < 1e-4  # each unit of weight adds the three terms once
    with pytest.raises(ValueError, match="auxiliary_loss_weight"):
        _config(tokenizer, auxiliary_loss_weight=-1.0)


def test_profiles_encode_the_same_from_online_rows_text_and_typed_columns(tmp_path):
    tokenizer = EventTokenizer(
        vocabularies={},
        numeric_scaling={},
        profile_vocabularies={"plan": ["basic", "premium"]},
        offers=["device_upgrade"],
        methods=["sms"],
        max_len=8,
        profile_scaling={"tenure_months": (12.0, 6.0)},
    )
    typed = pd.DataFrame({"plan": ["premium", None, "gold"], "tenure_months": [18.0, np.nan, 6.0]})
    online = pd.DataFrame({"plan": ["premium", None, "gold"], "tenure_months": [18.0, None, 6.0]}, dtype=object)
    text = pd.DataFrame({"plan": ["premium", pd.NA, "gold"], "tenure_months": ["18", "n/a", "6.0"]})
    numbered = tokenizer.encode_profiles(
        pd.DataFrame({"plan": pd.array([1, None], "Int64"), "tenure_months": [12, 12]})
    )
    assert numbered["profile"].ravel().tolist() == [1, 0]  # 1 is the token "1" (unseen here), not "1.0"
    expected = {
        "profile": np.array([[3], [0], [1]]),  # premium; missing -> pad; unseen -> out of vocabulary
        "profile_numeric": np.array([[1.0], [0.0], [-1.0]], np.float32),  # (value - median) / scale, missing -> 0
    }
    for frame in (typed, online, text):
        encoded = tokenizer.encode_profiles(frame)
        np.testing.assert_array_equal(encoded["profile"], expected["profile"])
        np.testing.assert_array_equal(encoded["profile_numeric"], expected["profile_numeric"])
    tokenizer.save(tmp_path / "tokenizer.json")  # the lookups built while encoding are not part of it
    assert "lookups" not in (tmp_path / "tokenizer.json").read_text()
    assert EventTokenizer.load(tmp_path / "tokenizer.json") == tokenizer
