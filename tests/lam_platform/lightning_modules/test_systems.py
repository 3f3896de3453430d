"""The campaign-response system under a plain Lightning Trainer: which backbone parts each fine-tune mode trains."""

import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.systems import BackboneFinetuning, CampaignResponseSystem

B, L = 64, 12


def _campaign_rows(config: LAMConfig) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(B):
        treatment = int(torch.rand(1, generator=g) < 0.8)
        rows.append(
            {
                "categorical": torch.randint(2, 6, (L, 3), generator=g),
                "attributes": torch.zeros(L, 0, dtype=torch.long),
                "numeric": torch.zeros(L, 2),
                "numeric_missing": torch.ones(L, 2, dtype=torch.bool),
                "log_gap_hours": torch.rand(L, generator=g),
                "hour": torch.randint(0, 24, (L,), generator=g),
                "weekday": torch.randint(0, 7, (L,), generator=g),
                "day": torch.arange(L) // 3 + 20_000,
                "mask": torch.ones(L, dtype=torch.bool),
                "profile": torch.randint(2, 4, (4,), generator=g),
                "profile_numeric": torch.rand((1,), generator=g),
                "offer": torch.randint(0, config.n_offers, (), generator=g),
                "method": torch.randint(0, config.n_methods, (), generator=g),
                "log_hours_since_last_event": torch.rand((), generator=g),
                "contact_hour": torch.tensor(10),
                "contact_weekday": torch.tensor(2),
                "treatment": torch.tensor(treatment),
                "outcome": (torch.rand((), generator=g) < 0.3).float(),
                "weight": torch.rand((), generator=g) + 0.5,
            }
        )
    return rows


def _fit(trainable_blocks) -> tuple[dict, dict]:
    torch.manual_seed(0)
    config = LAMConfig(n_layers=2, d_model=16, n_heads=2, max_len=L, recent_events=4, max_windows=4, dropout=0.0)
    system = CampaignResponseSystem(config)
    before = {k: v.clone() for k, v in system.state_dict().items()}
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[BackboneFinetuning(trainable_blocks, unfreeze_at_epoch=0)],
    )
    trainer.fit(system, DataLoader(_campaign_rows(config), batch_size=16))
    return before, system.state_dict()


def _changed(before: dict, after: dict, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


@pytest.mark.parametrize(
    "trainable_blocks, trained",
    [
        (0, ()),
        (1, ("backbone.blocks.1.", "backbone.ln_f.")),
        ("all", ("backbone.embed.", "backbone.blocks.0.", "backbone.blocks.1.")),
    ],
)
def test_finetuning_modes_train_exactly_their_part_of_the_backbone(trainable_blocks, trained):
    before, after = _fit(trainable_blocks)
    assert _changed(before, after, "campaign_response.")  # the head always trains
    for prefix in ("backbone.embed.", "backbone.blocks.0.", "backbone.blocks.1.", "backbone.ln_f."):
        assert _changed(before, after, prefix) == (prefix in trained or trainable_blocks == "all"), prefix


def test_finetuning_mode_is_validated():
    with pytest.raises(ValueError, match="trainable_blocks"):
        BackboneFinetuning(trainable_blocks="some")


def test_scoring_processes_do_not_import_lightning():
    """The service and a Ray Data scoring actor load artifacts without the training framework (heads.py names
    the systems and imports them on first use); each registered kind still resolves to its LightningModule."""
    probe = (
        "import sys, lam_platform.service.app, lam_platform.ray_jobs.score\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'lightning'))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
    from lam_platform.lightning_modules.heads import HEAD_KINDS

    assert all(issubclass(kind.system, pl.LightningModule) for kind in HEAD_KINDS.values())
