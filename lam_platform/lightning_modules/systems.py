"""Lightning systems: each wraps the shared backbone and one head. They run with or without Ray.

Method order follows the Lightning style guide: __init__, forward, training_step, validation_step,
_common_step, configure_optimizers.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BaseFinetuning

from lam_platform.lightning_modules.batches import (
    CampaignContext,
    CampaignLabels,
    CustomerContext,
    EventBatch,
    NextActionTargets,
    TargetLabels,
    dataclass_from_arrays,
)
from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.model import (
    CampaignResponseHead,
    CampaignResponseOutput,
    LAMBackbone,
    NextActionHead,
    NextActionOutput,
    TargetHead,
)
from lam_platform.lightning_modules.schedule import optimizers


class NextActionSystem(pl.LightningModule):
    """Pretraining: predict each recent event's successor (channel, object, action, time gap)."""

    def __init__(
        self,
        config: LAMConfig,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        schedule: dict | None = None,  # a WarmupCosine as a dict; None: a constant rate
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = LAMBackbone(config)
        self.next_action = NextActionHead(config)

    def forward(self, events: EventBatch) -> NextActionOutput:
        return self.next_action(self.backbone(events).recent_hidden)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "val")

    def _common_step(self, batch: dict, stage: str) -> torch.Tensor:
        events = dataclass_from_arrays(EventBatch, batch)
        targets = NextActionTargets(batch["next_categorical"], batch["next_log_gap_hours"])
        out = self(events)
        r = out.hidden.shape[1]
        has_next = (targets.categorical[..., 0] != 0) & events.mask[:, -r:]  # (B, R)
        ignore = torch.where(has_next.unsqueeze(-1), targets.categorical, torch.zeros_like(targets.categorical))
        negatives = self.hparams.config.sampled_negatives if stage == "train" else 0  # validation: full softmax
        losses = {
            "channel": F.cross_entropy(out.channel_logits.transpose(1, 2), ignore[..., 0], ignore_index=0),
            "object": self.next_action.object_loss(
                out.hidden[has_next], targets.categorical[..., 1][has_next], negatives
            ),
            "action": F.cross_entropy(out.action_logits.transpose(1, 2), ignore[..., 2], ignore_index=0),
            "gap": F.mse_loss(out.log_gap_hours[has_next], targets.log_gap_hours[has_next]),
        }
        auxiliary = getattr(self.hparams.config, "auxiliary_loss_weight", 1.0)  # checkpoints from before the field
        loss = losses["object"] + auxiliary * (losses["channel"] + losses["action"] + losses["gap"])
        metrics = {f"{stage}_loss": loss, **{f"{stage}_{k}_loss": v for k, v in losses.items()}}
        if stage != "train":
            with torch.no_grad():
                predicted = self.next_action.object_logits(out.hidden[has_next]).argmax(-1)
                metrics[f"{stage}_object_acc"] = (predicted == targets.categorical[..., 1][has_next]).float().mean()
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=events.mask.shape[0])
        return loss

    def configure_optimizers(self):
        # Checkpoints written before the schedule existed have no such hyperparameter: a constant rate.
        schedule = self.hparams.get("schedule")
        return optimizers(self.parameters(), self.hparams.learning_rate, self.hparams.weight_decay, schedule)


class _FineTuneSystem(pl.LightningModule):
    """What every fine-tune system shares: the same step for training and validation, and an optimizer over
    the parameters left trainable (BackboneFinetuning freezes the backbone and adds its unfrozen part)."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "val")

    def _common_step(self, batch: dict, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        # A constant rate: BackboneFinetuning adds the backbone's parameter group after the optimizer is made,
        # and a LambdaLR made before would fail at its next step (torch pairs rates and groups strictly).
        return optimizers(params, self.hparams.learning_rate, self.hparams.weight_decay, None)


class CampaignResponseSystem(_FineTuneSystem):
    """Fine-tuning: P(order | contacted) and P(order | not contacted) for a customer and a campaign."""

    def __init__(self, config: LAMConfig, learning_rate: float = 3e-3, weight_decay: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = LAMBackbone(config)
        self.campaign_response = CampaignResponseHead(config)

    def forward(self, events: EventBatch, context: CampaignContext) -> CampaignResponseOutput:
        return self.campaign_response(self.backbone(events).customer, context)

    def _common_step(self, batch: dict, stage: str) -> torch.Tensor:
        out = self(dataclass_from_arrays(EventBatch, batch), dataclass_from_arrays(CampaignContext, batch))
        labels = dataclass_from_arrays(CampaignLabels, batch)
        # Only the arm that happened is observed: contacted rows train the contacted logit, controls the other.
        logit = torch.where(labels.treatment == 1, out.logit_contacted, out.logit_not_contacted)
        # Inverse-propensity weights undo the logged policy's selection (who it contacted, which arm).
        per_row = F.binary_cross_entropy_with_logits(logit, labels.outcome, reduction="none")
        loss = (per_row * labels.weight).sum() / labels.weight.sum().clamp(min=1e-6)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=logit.shape[0])
        return loss


class TargetSystem(_FineTuneSystem):
    """Fine-tuning on an event-derived target (e.g. purchase within 30 days): P(target | customer at t)."""

    def __init__(self, config: LAMConfig, learning_rate: float = 3e-3, weight_decay: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = LAMBackbone(config)
        self.target = TargetHead(config)

    def forward(self, events: EventBatch, context: CustomerContext) -> torch.Tensor:
        return self.target(self.backbone(events).customer, context)

    def _common_step(self, batch: dict, stage: str) -> torch.Tensor:
        logit = self(dataclass_from_arrays(EventBatch, batch), dataclass_from_arrays(CustomerContext, batch))
        loss = F.binary_cross_entropy_with_logits(logit, dataclass_from_arrays(TargetLabels, batch).label)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=logit.shape[0])
        return loss


class BackboneFinetuning(BaseFinetuning):
    """How much of a pretrained backbone a fine-tune trains: none of it, its last k blocks, or all of it.

    trainable_blocks: 0 = frozen (the backbone stays shared with every other head), k = the last k
    Transformer blocks and the final norm, "all" = the whole backbone. The trainable part is unfrozen at
    `unfreeze_at_epoch` and trained at `backbone_lr_factor` times the head's learning rate.
    """

    def __init__(
        self, trainable_blocks: int | str = 0, unfreeze_at_epoch: int = 0, backbone_lr_factor: float = 0.1
    ) -> None:
        super().__init__()
        if trainable_blocks != "all" and not (isinstance(trainable_blocks, int) and trainable_blocks >= 0):
            raise ValueError(
                f"trainable_blocks must be 0 (frozen), a number of last blocks, or 'all'; got {trainable_blocks!r}"
            )
        self.trainable_blocks = trainable_blocks
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_lr_factor = backbone_lr_factor

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone)

    def finetune_function(self, pl_module: pl.LightningModule, current_epoch: int, optimizer) -> None:
        if current_epoch != self.unfreeze_at_epoch or self.trainable_blocks == 0:
            return
        backbone = pl_module.backbone
        if self.trainable_blocks == "all":
            modules = [backbone]
        else:
            modules = [*backbone.blocks[-self.trainable_blocks :], backbone.ln_f]
        self.unfreeze_and_add_param_group(
            modules, optimizer, lr=pl_module.hparams.learning_rate * self.backbone_lr_factor
        )
