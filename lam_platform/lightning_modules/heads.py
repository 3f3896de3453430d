"""Where heads register: kind -> (head module, Lightning system, attribute of the head in the system).

A new head is one module (its nn.Module and LightningModule) plus one line here. An artifact stores
each head under its own name (`heads/<name>.pt`); a target head's name is its target's (e.g.
`purchase_30d`) and its kind is `target`, recorded in the model card.

The Lightning systems are named here and imported on first use (`HeadKind.system`): loading an artifact
to score (the service, a Ray Data scoring actor) needs only the nn.Modules, and importing Lightning costs
a process about 4 s and 190 MB.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from lam_platform.lightning_modules.model import CampaignResponseHead, NextActionHead, TargetHead

if TYPE_CHECKING:
    import lightning.pytorch as pl

SYSTEMS = "lam_platform.lightning_modules.systems"


@dataclass(frozen=True)
class HeadKind:
    head: type[nn.Module]
    system_name: str  # the LightningModule's class in SYSTEMS
    attribute: str  # the system's attribute holding the head (its state-dict prefix)

    @property
    def system(self) -> type[pl.LightningModule]:
        return getattr(importlib.import_module(SYSTEMS), self.system_name)


HEAD_KINDS: dict[str, HeadKind] = {
    "next_action": HeadKind(NextActionHead, "NextActionSystem", "next_action"),
    "campaign_response": HeadKind(CampaignResponseHead, "CampaignResponseSystem", "campaign_response"),
    "target": HeadKind(TargetHead, "TargetSystem", "target"),
}


def head_kind(kind: str) -> HeadKind:
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; registered: {sorted(HEAD_KINDS)}")
    return HEAD_KINDS[kind]
