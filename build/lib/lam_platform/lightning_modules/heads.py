"""Where heads register: kind -> (head module, Lightning system, attribute of the head in the system).

A new head is one module (its nn.Module and LightningModule) plus one line here. An artifact stores
each head under its own name (`heads/<name>.pt`); a target head's name is its target's (e.g.
`purchase_30d`) and its kind is `target`, recorded in the model card.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning.pytorch as pl
from torch import nn

from lam_platform.lightning_modules.model import CampaignResponseHead, NextActionHead, TargetHead
from lam_platform.lightning_modules.systems import CampaignResponseSystem, NextActionSystem, TargetSystem


@dataclass(frozen=True)
class HeadKind:
    head: type[nn.Module]
    system: type[pl.LightningModule]
    attribute: str  # the system's attribute holding the head (its state-dict prefix)


HEAD_KINDS: dict[str, HeadKind] = {
    "next_action": HeadKind(NextActionHead, NextActionSystem, "next_action"),
    "campaign_response": HeadKind(CampaignResponseHead, CampaignResponseSystem, "campaign_response"),
    "target": HeadKind(TargetHead, TargetSystem, "target"),
}


def head_kind(kind: str) -> HeadKind:
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; registered: {sorted(HEAD_KINDS)}")
    return HEAD_KINDS[kind]
