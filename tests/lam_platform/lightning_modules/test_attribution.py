import pandas as pd
import pytest
import torch

from lam_platform.lightning_modules.attribution import integrated_gradients
from lam_platform.lightning_modules.batches import CampaignContext, EventBatch, dataclass_from_arrays
from lam_platform.lightning_modules.model import CampaignResponseHead, LAMBackbone
from tests.lam_platform.lightning_modules.test_model import _config, _sequences, _tokenizer


def _inputs(hierarchical: bool):
    torch.manual_seed(0)
    sequences = _sequences()
    tokenizer = _tokenizer(sequences)
    config = _config(tokenizer, hierarchical=hierarchical)
    arrays = tokenizer.encode_events(sequences)
    last = arrays.pop("last_event_us")
    b = sequences.num_rows
    profiles = pd.DataFrame(
        {
            "age_band": ["30-44"] * b,
            "gender": ["f"] * b,
            "plan": ["basic"] * b,
            "region": ["north"] * b,
            "tenure_months": [12] * b,
        }
    )
    context = tokenizer.encode_campaigns(
        profiles, ["plan_change"] * b, ["sms"] * b, pd.Series([pd.Timestamp("2026-03-01 10:00", tz="UTC")] * b), last
    )
    backbone, head = LAMBackbone(config).eval(), CampaignResponseHead(config).eval()
    return backbone, head, dataclass_from_arrays(EventBatch, arrays), dataclass_from_arrays(CampaignContext, context)


@pytest.mark.parametrize("hierarchical", [True, False])
def test_attributions_add_up_to_the_uplift_gap_and_padding_gets_none(hierarchical):
    backbone, head, events, context = _inputs(hierarchical)
    attributions, gap = integrated_gradients(backbone, head, events, context, steps=128)
    assert attributions.shape == events.mask.shape
    assert (attributions[~events.mask] == 0).all()
    # Completeness: the sum over events equals F(x) - F(0), up to the Riemann sum's error.
    assert torch.allclose(attributions.sum(dim=1), gap, atol=1e-4, rtol=0.02), (attributions.sum(dim=1), gap)
    assert (gap[:-1].abs() > 0).all()  # rows with events moved the uplift; the last row has none
    assert attributions[-1].abs().sum() == 0 and gap[-1].abs() < 1e-6


def test_batched_interpolation_equals_one_row_at_a_time():
    backbone, head, events, context = _inputs(True)
    together, _ = integrated_gradients(backbone, head, events, context, steps=8)
    first = integrated_gradients(backbone, head, _row(events, 2), _row(context, 2), steps=8)[0]
    assert torch.allclose(together[2:3], first, atol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(backbone, head, events, context, steps=0)


def _row(batch, i: int):
    from dataclasses import fields, replace

    return replace(batch, **{f.name: getattr(batch, f.name)[i : i + 1] for f in fields(batch)})
