"""bf16 autocast and torch.compile on the backbone: the paths a GPU run uses, checked on the CPU we have."""

import pytest
import torch

from lam_platform.lightning_modules.batches import EventBatch
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.model import LAMBackbone, NextActionHead


def _batch(b: int = 4, length: int = 32) -> EventBatch:
    g = torch.Generator().manual_seed(0)
    return EventBatch(
        categorical=torch.randint(2, 8, (b, length, 3), generator=g),
        attributes=torch.randint(0, 5, (b, length, 1), generator=g),
        numeric=torch.randn(b, length, 2, generator=g),
        numeric_missing=torch.rand(b, length, 2, generator=g) < 0.3,
        log_gap_hours=torch.rand(b, length, generator=g),
        hour=torch.randint(0, 24, (b, length), generator=g),
        weekday=torch.randint(0, 7, (b, length), generator=g),
        day=torch.arange(length).repeat(b, 1) // 3 + 20_000,
        mask=torch.arange(length).repeat(b, 1) >= 5,
    )


def _model(hierarchical: bool = True) -> tuple[LAMBackbone, NextActionHead]:
    torch.manual_seed(0)
    config = LAMConfig(
        d_model=32,
        n_heads=2,
        n_layers=1,
        max_len=32,
        recent_events=8,
        max_windows=4,
        hierarchical=hierarchical,
        dropout=0.0,
        attribute_vocab_sizes=(5,),
    )
    return LAMBackbone(config).eval(), NextActionHead(config).eval()


@pytest.mark.parametrize("hierarchical", [True, False])
def test_bf16_autocast_matches_float32(hierarchical):
    backbone, head = _model(hierarchical)
    batch = _batch()
    with torch.no_grad():
        reference = head.object_logits(backbone(batch).state)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = head.object_logits(backbone(batch).state)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), reference, atol=0.05, rtol=0.05)


@pytest.mark.compile
def test_torch_compile_matches_eager():
    backbone, _ = _model()
    batch = _batch()
    with torch.no_grad():
        eager = backbone(batch).state
        compiled = torch.compile(backbone)(batch).state
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
