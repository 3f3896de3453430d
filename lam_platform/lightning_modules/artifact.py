"""The model artifact: a versioned folder that scoring can load without the training code's pickles.

<artifacts>/lam-v<N>/
    model_card.json          config, feature views + schema fingerprint, data range, metrics, compute cost
    tokenizer.json           vocabularies and numeric scaling
    backbone.pt              backbone state dict (tensors only; loaded with weights_only=True)
    heads/<head>.pt          one state dict per head: next_action, campaign_response, one per target ...
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.heads import head_kind
from lam_platform.lightning_modules.model import LAMBackbone
from lam_platform.lightning_modules.tokenizer import EventTokenizer


class HeadLayoutError(ValueError):
    """A stored head whose layers are not the ones this release's head class has."""


class SchemaMismatchError(RuntimeError):
    """The feature views a model was trained on no longer match the registry."""


def split_state_dict(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{"backbone.x": t, "next_action.y": u} -> {"backbone": {"x": t}, "next_action": {"y": u}}."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        parts.setdefault(part, {})[rest] = value.detach().cpu()
    return parts


def next_version(artifacts: Path) -> Path:
    versions = [int(m.group(1)) for p in artifacts.glob("lam-v*") if (m := re.fullmatch(r"lam-v(\d+)", p.name))]
    return artifacts / f"lam-v{max(versions, default=0) + 1}"


def versions_with_head(artifacts: Path, head: str | None = None) -> list[Path]:
    """Artifact versions, oldest first; with `head`, only those that hold it (a version being written, or a
    pretraining-only one, has no campaign-response head)."""
    versions = sorted((int(p.name[5:]), p) for p in artifacts.glob("lam-v*") if p.name[5:].isdigit())
    return [p for _, p in versions if head is None or (p / "heads" / f"{head}.pt").exists()]


def latest_version(artifacts: Path, head: str | None = None) -> Path:
    """The newest version (that holds `head`, if given)."""
    versions = versions_with_head(artifacts, head)
    if not versions:
        need = (
            "`lam pretrain`"
            if head in (None, "next_action")
            else (
                "`lam pretrain` then `lam finetune`"
                if head == "campaign_response"
                else f"`lam pretrain` then `lam finetune --target {head}`"
            )
        )
        raise FileNotFoundError(
            f"no model artifact{f' with a {head} head' if head else ''} under {artifacts}: run {need} first"
        )
    return versions[-1]


def _save_whole(state: dict, path: Path) -> None:
    """torch.save to a hidden file beside `path`, fsync, rename: a crash leaves no half-written weights."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, staging)
        with open(staging, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


@dataclass
class ModelArtifact:
    path: Path

    @classmethod
    def create(
        cls, path: Path, config: LAMConfig, tokenizer: EventTokenizer, backbone: dict, card: dict
    ) -> ModelArtifact:
        (path / "heads").mkdir(parents=True, exist_ok=False)
        tokenizer.save(path / "tokenizer.json")
        _save_whole(backbone, path / "backbone.pt")
        artifact = cls(path)
        artifact.write_card({**card, "version": path.name, "config": config.to_dict(), "heads": {}})
        return artifact

    @property
    def card(self) -> dict:
        return json.loads((self.path / "model_card.json").read_text())

    def write_card(self, card: dict) -> None:
        # Write then rename: a service polling for new versions never reads half a card.
        tmp = self.path / "model_card.json.tmp"
        tmp.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.path / "model_card.json")

    @property
    def config(self) -> LAMConfig:
        return LAMConfig.from_dict(self.card["config"])

    @property
    def tokenizer(self) -> EventTokenizer:
        return EventTokenizer.load(self.path / "tokenizer.json")

    def add_head(self, name: str, state: dict, info: dict, kind: str | None = None) -> None:
        """Save a head's weights next to the backbone and record its kind, metrics and cost in the card.

        kind: the registered head kind (lam_platform.lightning_modules.heads); default: the head's name (next_action,
        campaign_response). Target heads are named after their target, of kind "target".
        """
        kind = kind or name
        head_kind(kind)
        _save_whole(state, self.path / "heads" / f"{name}.pt")  # whole before the card lists it as servable
        card = self.card
        card["heads"][name] = {**info, "kind": kind}
        self.write_card(card)

    def derive(self, path: Path, backbone: dict) -> ModelArtifact:
        """A new version with a retrained backbone: same tokenizer and card, no heads (they fit the old backbone).

        The card's `base_version` names this version, where the pretrained heads still live.
        """
        card = {k: v for k, v in self.card.items() if k not in ("version", "config", "heads")}
        derived = ModelArtifact.create(path, self.config, self.tokenizer, backbone, card)
        card = derived.card
        card["base_version"] = self.path.name
        derived.write_card(card)
        return derived

    def with_head(self, name: str) -> ModelArtifact:
        """This version if it has head `name`, else the version it was derived from that has it."""
        artifact = self
        while name not in artifact.card["heads"] and artifact.card.get("base_version"):
            artifact = ModelArtifact(artifact.path.parent / artifact.card["base_version"])
        return artifact

    def check_schema(self, fingerprint: str) -> None:
        expected = self.card.get("schema_fingerprint")
        if expected != fingerprint:
            raise SchemaMismatchError(
                f"model {self.path.name} was trained on feature views {self.card.get('feature_views')} with schema "
                f"fingerprint {expected}, but the registry now has {fingerprint}; retrain the model "
                "(`lam pretrain` then `lam finetune`) or point it at the registry it was trained on"
            )

    def load_backbone(self) -> LAMBackbone:
        backbone = LAMBackbone(self.config)
        backbone.load_state_dict(torch.load(self.path / "backbone.pt", weights_only=True))
        return backbone.eval()

    def load_head(self, name: str) -> nn.Module:
        file = self.path / "heads" / f"{name}.pt"
        if not file.exists():
            raise FileNotFoundError(
                f"model {self.path.name} has no {name!r} head yet (heads: {sorted(self.card['heads'])})"
            )
        head = head_kind(self.card["heads"].get(name, {}).get("kind", name)).head(self.config)
        weights = torch.load(file, weights_only=True)
        if set(weights) != set(head.state_dict()):
            # A head saved by an older release (e.g. before the heads read the recent activity) has other layers.
            raise HeadLayoutError(
                f"the {name!r} head of model {self.path.name} has another layout than this release's "
                f"{type(head).__name__} (missing {sorted(set(head.state_dict()) - set(weights))[:3]}, unexpected "
                f"{sorted(set(weights) - set(head.state_dict()))[:3]}); fine-tune it again (`lam finetune`)"
            )
        head.load_state_dict(weights)
        return head.eval()
