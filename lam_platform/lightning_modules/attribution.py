"""Integrated gradients over event embeddings: which past events drove a customer's campaign uplift.

Method (Sundararajan et al., 2017): attribution of event i = sum over its embedding dimensions of
(x_i - x0_i) * mean over alpha in (0, 1] of dF/dx_i at x0 + alpha (x - x0), with F the uplift of one
campaign, x the event embeddings after EventEmbedding and x0 = 0, the embedding padding gets. The mean
is a midpoint Riemann sum over `steps` points; the attributions add up to F(x) - F(x0) up to its error
(completeness), which the tests check.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch
from torch import Tensor

from lam_platform.lightning_modules.batches import CampaignContext, EventBatch
from lam_platform.lightning_modules.model import CampaignResponseHead, LAMBackbone


def _repeat(batch, n: int):
    """Every tensor of a batch dataclass repeated n times along the batch dimension (b0, b1, .., b0, b1, ..)."""
    return replace(
        batch,
        **{f.name: getattr(batch, f.name).repeat(n, *[1] * (getattr(batch, f.name).dim() - 1)) for f in fields(batch)},
    )


def uplift_from_embeddings(
    backbone: LAMBackbone, head: CampaignResponseHead, x: Tensor, events: EventBatch, context: CampaignContext
) -> Tensor:
    """F(x): the campaign's uplift (B,) computed from event embeddings x (B, L, d)."""
    return head(backbone.encode(x, events).customer, context).uplift


def integrated_gradients(
    backbone: LAMBackbone, head: CampaignResponseHead, events: EventBatch, context: CampaignContext, steps: int = 32
) -> tuple[Tensor, Tensor]:
    """Per-event attributions (B, L), 0 on padding, and the gap F(x) - F(0) (B,) they should add up to.

    Runs the `steps` interpolation points as one batch of B * steps rows; modules must be in eval mode.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    with torch.no_grad():
        x = backbone.embed(events)  # (B, L, d)
    b = x.shape[0]
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps  # midpoints of (0, 1]
    path = (alphas.view(steps, 1, 1, 1) * x.unsqueeze(0)).reshape(steps * b, *x.shape[1:]).requires_grad_()
    with torch.enable_grad():
        uplift = uplift_from_embeddings(backbone, head, path, _repeat(events, steps), _repeat(context, steps))
        (grad,) = torch.autograd.grad(uplift.sum(), path)
    mean_grad = grad.reshape(steps, *x.shape).mean(dim=0)
    attributions = (x * mean_grad).sum(dim=-1) * events.mask
    with torch.no_grad():
        gap = uplift_from_embeddings(backbone, head, x, events, context) - uplift_from_embeddings(
            backbone, head, torch.zeros_like(x), events, context
        )
    return attributions.detach(), gap
