"""The model behind the service: one loaded version, a population prior for unknown customers, hot reload.

A `ServingModel` is immutable once loaded. `ModelWatcher` polls the artifacts folder and, when a newer
complete version (one with a campaign-response or a target head) appears, loads it beside the old one
and then swaps one reference: a request holds the model it started with, so none fails during the switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lam_platform.campaigns.explanations import DrivingEvent
from lam_platform.campaigns.scorer import CampaignScorer, TargetScorer, online_event_batch
from lam_platform.lightning_modules.artifact import ModelArtifact, versions_with_head
from lam_platform.service.state_cache import CachedState, StateCache

log = logging.getLogger(__name__)

NEXT_ACTION_FIELDS = {"where": ("channels", "channel_logits"), "how": ("actions", "action_logits")}


PRIOR_STRENGTH = 20.0  # pseudo-observations of the overall rate added to every campaign's own


@dataclass(frozen=True)
class PopulationPrior:
    """Order rates per campaign from the campaign log: the answer for customers with no history.

    Each campaign's observed rate, contacted and held out, shrunk toward the overall rate of its group
    (contacted or held out) with PRIOR_STRENGTH pseudo-observations: (orders + k * overall) / (rows + k).
    Small arms (a handful of controls) then neither claim 0% nor swing from one order to the next.
    """

    rates: pd.DataFrame  # offer, method, p_order_if_called, p_order_if_not_called

    @classmethod
    def from_campaign_log(cls, path: Path) -> PopulationPrior | None:
        log_ = pd.read_parquet(path, columns=["offer", "method", "treatment", "outcome"])
        log_ = log_[log_.outcome.notna()]  # outcomes derived from events are not in the stored log
        if log_.empty:
            return None
        arms = log_.groupby(["offer", "method"]).size().index
        columns = {}
        for treatment, name in ((1, "p_order_if_called"), (0, "p_order_if_not_called")):
            group = log_[log_.treatment == treatment]
            overall = group.outcome.mean() if len(group) else 0.0
            stats = group.groupby(["offer", "method"]).outcome.agg(["sum", "size"]).reindex(arms, fill_value=0)
            columns[name] = ((stats["sum"] + PRIOR_STRENGTH * overall) / (stats["size"] + PRIOR_STRENGTH)).to_numpy()
        return cls(pd.DataFrame({"offer": arms.get_level_values(0), "method": arms.get_level_values(1), **columns}))

    def campaigns(self, campaigns: list[tuple[str, str]], time_slot: pd.Timestamp) -> list[dict]:
        """The same answer for every customer without history: each campaign's rates, largest uplift first.

        The prior does not know the hour, so the slot is the first candidate one.
        """
        rates = self.rates.set_index(["offer", "method"])
        overall = rates.mean()
        answer = []
        for offer, method in campaigns:
            r = rates.loc[(offer, method)] if (offer, method) in rates.index else overall
            answer.append(
                {
                    "offer": offer,
                    "method": method,
                    "time_slot": time_slot,
                    "p_order_if_contacted": float(r.p_order_if_called),
                    "p_order_if_not_contacted": float(r.p_order_if_not_called),
                    "uplift": float(r.p_order_if_called - r.p_order_if_not_called),
                }
            )
        return sorted(answer, key=lambda c: -c["uplift"])  # stable: ties keep the campaigns' order


class ServingModel:
    """A model version loaded for serving: campaign scores (if it has the head), target probabilities (its
    target heads), next actions and explanations."""

    def __init__(self, artifact: ModelArtifact, state_cache: int = 0) -> None:
        self.version = artifact.path.name
        heads = artifact.card["heads"]
        self.tokenizer = artifact.tokenizer
        self.backbone = artifact.load_backbone()
        self.campaigns = CampaignScorer(artifact, self.backbone) if "campaign_response" in heads else None
        target_names = sorted(n for n, info in heads.items() if info.get("kind") == "target")
        self.targets = TargetScorer(artifact, target_names, self.backbone) if target_names else None
        # The next-action head lives in the version this one was derived from when fine-tuning retrained
        # the backbone; it needs that version's backbone.
        base = artifact.with_head("next_action")
        self.next_action_head = base.load_head("next_action") if "next_action" in base.card["heads"] else None
        self.next_action_backbone = (
            self.backbone
            if base.path == artifact.path
            else (base.load_backbone() if self.next_action_head is not None else None)
        )
        self.state_cache = StateCache(self.tokenizer.list_types(), state_cache)

    @property
    def target_names(self) -> list[str]:
        return self.targets.names if self.targets else []

    def states(
        self, rows: pd.DataFrame, with_next: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        """Customer states for this version's heads (`BackboneOutput.customer`) and, `with_next`, for the
        next-action head (its state, else None), and last event times; rows whose sequence is in the state cache
        skip the backbones."""
        with_next = with_next and self.next_action_head is not None
        if not self.state_cache.enabled:
            return self._run_backbones(rows, with_next)
        keys = self.state_cache.keys(rows)
        found = self.state_cache.get(keys)
        # An entry cached by a request that skipped next actions lacks the next state: computed again.
        missing = [i for i, entry in enumerate(found) if entry is None or (with_next and entry.next_state is None)]
        if missing:
            computed = self._compute_and_cache(rows.iloc[missing], [keys[i] for i in missing], with_next)
            for i, entry in zip(missing, computed):
                found[i] = entry
        state = torch.stack([entry.state for entry in found])
        next_state = torch.stack([entry.next_state for entry in found]) if with_next else None
        return state, next_state, np.array([entry.last_event_us for entry in found], dtype=np.int64)

    def warm(self, rows: pd.DataFrame) -> int:
        """Put the states of `rows` (online rows, customers with history) into the state cache, as many as it
        holds; returns how many it computed. Each state is what a request for that customer would compute (to float
        rounding: it is computed in a batch of hundreds)."""
        room = max(self.state_cache.max_entries - len(self.state_cache), 0)
        rows = rows.iloc[:room]
        if len(rows):  # not through `states`: a warm-up is neither a hit nor a miss of the cache
            self._compute_and_cache(rows, self.state_cache.keys(rows), self.next_action_head is not None)
        return len(rows)

    def _compute_and_cache(self, rows: pd.DataFrame, keys: list, with_next: bool) -> list[CachedState]:
        """The states of `rows` from the backbones, put into the state cache under `keys` (aligned)."""
        state, next_state, last_event_us = self._run_backbones(rows.reset_index(drop=True), with_next)
        # clone(): a cached row must not keep its whole batch's tensor alive
        computed = [
            CachedState(state[j].clone(), next_state[j].clone() if next_state is not None else None, int(us))
            for j, us in enumerate(last_event_us)
        ]
        self.state_cache.put(keys, computed)
        return computed

    @torch.inference_mode()
    def _run_backbones(
        self, rows: pd.DataFrame, with_next: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        """The backbone over `rows` and, `with_next`, the next-action one (tokenized once; one pass when the
        versions share a backbone)."""
        events, last_event_us = online_event_batch(self.tokenizer, rows)
        out = self.backbone(events)
        if not with_next:
            return out.customer, None, last_event_us
        same = self.next_action_backbone is self.backbone
        return out.customer, out.state if same else self.next_action_backbone(events).state, last_event_us

    @torch.inference_mode()
    def next_actions(self, n_rows: int, state: torch.Tensor | None, top: int) -> list[dict]:
        """Per row: the top `top` what / how / where of the next event with probabilities, and hours until it.

        state: from `states` (the next-action backbone's), None when this version has no next-action head.
        """
        if self.next_action_head is None or state is None:
            return [{} for _ in range(n_rows)]
        out = self.next_action_head(state)
        fields = {
            "what": ("objects", self.next_action_head.object_logits(state)),
            **{k: (column, getattr(out, attr)) for k, (column, attr) in NEXT_ACTION_FIELDS.items()},
        }
        answers: list[dict] = [{} for _ in range(n_rows)]
        for key, (column, logits) in fields.items():
            probs = torch.softmax(logits[:, 2:], dim=-1)  # ids 0 (pad) and 1 (out of vocabulary) are no answer
            p, ids = probs.topk(min(top, probs.shape[-1]), dim=-1)
            tokens = self.tokenizer.decode(column, (ids + 2).numpy())
            for i in range(n_rows):
                answers[i][key] = [
                    {"value": str(t), "probability": round(float(q), 6)} for t, q in zip(tokens[i], p[i])
                ]
        hours = torch.expm1(out.log_gap_hours.clamp(min=0)).numpy()
        for i in range(n_rows):
            answers[i]["hours_until_next"] = round(float(hours[i]), 3)
        return answers

    def explain(
        self, rows: pd.DataFrame, best: pd.DataFrame, as_of: pd.Timestamp, steps: int = 32, top: int = 3
    ) -> list[tuple[list[DrivingEvent], str]]:
        """Driving events and a reason per row, for the uplift of that row's best campaign (`best`, aligned)."""
        return self.campaigns.explain(rows, best, as_of, steps, top)


def servable_versions(artifacts: Path) -> list[Path]:
    """Versions the service may serve, oldest first: those with a campaign-response head when any has one
    (a later target-only fine-tune must not take the call list away), else those with a target head. A
    version being written has no head yet."""
    campaign = versions_with_head(artifacts, "campaign_response")
    if campaign:
        return campaign
    return [
        v
        for v in versions_with_head(artifacts)
        if any(info.get("kind") == "target" for info in ModelArtifact(v).card["heads"].values())
    ]


class ModelWatcher:
    """Holds the current ServingModel and swaps in newer versions found by polling `artifacts`."""

    def __init__(
        self,
        artifacts: Path,
        poll_seconds: float = 5.0,
        pinned: Path | None = None,
        state_cache: int = 0,
        warm: Callable[[ServingModel], None] | None = None,
    ) -> None:
        self.artifacts, self.poll_seconds, self.pinned = artifacts, poll_seconds, pinned
        self.state_cache = state_cache  # customer states each loaded version caches (0: none)
        self.warm = warm  # run on each loaded version before it is served (fills its state cache)
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Load the newest servable version if it is not the current one; True if the model changed."""
        try:
            if self.pinned is not None:
                target = self.pinned
            else:
                versions = servable_versions(self.artifacts)
                if not versions:
                    self.last_error = f"no model with a campaign_response or target head under {self.artifacts}"
                    return False
                target = versions[-1]
            if self.current is not None and self.current.version == target.name:
                return False
            model = ServingModel(ModelArtifact(target), self.state_cache)  # loaded fully before anyone sees it
            if self.warm is not None:
                self.warm(model)
        except Exception as error:  # noqa: BLE001 -- a half-written version, a bad file: keep the old model
            self.last_error = f"loading a model failed: {type(error).__name__}: {error}"
            log.warning(self.last_error)
            return False
        self.current, self.last_error = model, None
        log.info("serving model %s", model.version)
        return True

    def start(self) -> None:
        if self._thread is None and self.pinned is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()
