"""The LAM: event embedding -> hierarchical causal Transformer backbone -> separate heads.

Read top to bottom: EventEmbedding, CausalSelfAttention, Block, recent_activity, LAMBackbone (bare: hidden
states, no head), NextActionHead (pretraining), CampaignResponseHead and TargetHead (fine-tuning). A pretrained
backbone's state dict loads into any model that holds `backbone`.

The fine-tune heads read the customer as `BackboneOutput.customer`: the state after the latest event and
the recent activity (pooled event embeddings, see `recent_activity`). The state is trained to predict the
next event, which is mostly a routine one (a home page, a bill); a want that shows in a week of product views,
or a dialer's call results among hundreds of app events, fades from it. The pooled activity keeps both in view.

Hierarchical mode: all but the latest `recent_events` events are pooled per calendar
day into one vector each (stage 1), then a causal Transformer runs over [day windows, recent events]
(stage 2). Attention cost depends on max_windows + recent_events, not on the history length.
Flat mode is the same code with stage 1 off: the Transformer runs over every event.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lam_platform.lightning_modules.batches import CampaignContext, CustomerContext, EventBatch
from lam_platform.lightning_modules.config import LAMConfig


class EventEmbedding(nn.Module):
    """Sum of field embeddings, numeric projections with a learned 'missing' vector, and time features."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.channel = nn.Embedding(config.n_channels, d, padding_idx=0)
        self.object = nn.Embedding(config.n_objects, d, padding_idx=0)
        self.action = nn.Embedding(config.n_actions, d, padding_idx=0)
        self.attributes = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n in config.attribute_vocab_sizes)
        self.numeric_weight = nn.Parameter(torch.randn(config.n_numeric, d) * 0.02)  # value * w_f
        self.numeric_missing = nn.Parameter(torch.randn(config.n_numeric, d) * 0.02)  # used instead when missing
        self.gap = nn.Linear(1, d)
        self.hour = nn.Embedding(24, d)
        self.weekday = nn.Embedding(7, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, events: EventBatch) -> Tensor:
        cat = events.categorical
        x = self.channel(cat[..., 0]) + self.object(cat[..., 1]) + self.action(cat[..., 2])  # (B, L, d)
        for i, embedding in enumerate(self.attributes):
            x = x + embedding(events.attributes[..., i])
        present = (~events.numeric_missing).to(x.dtype)
        x = x + torch.einsum("blf,fd->bld", events.numeric * present, self.numeric_weight)
        x = x + torch.einsum("blf,fd->bld", 1.0 - present, self.numeric_missing)
        x = x + self.gap(events.log_gap_hours.unsqueeze(-1)) + self.hour(events.hour) + self.weekday(events.weekday)
        return self.norm(x) * events.mask.unsqueeze(-1)  # padding embeds to zero


class CausalSelfAttention(nn.Module):
    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm Transformer block (as in GPT-2 / nanoGPT)."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.mlp(self.ln2(x))


ACTIVITY_WINDOW_DAYS = (7, 30)  # recent windows pooled before the latest event's day, besides the whole sequence


def activity_width(config: LAMConfig) -> int:
    """Width of `recent_activity`: a mean embedding and a log count per pool (windows, all, each channel)."""
    pools = len(ACTIVITY_WINDOW_DAYS) + 1 + (config.n_channels - 2)  # channel ids 0 (pad), 1 (unseen) not pooled
    return pools * (config.d_model + 1)


def recent_activity(x: Tensor, events: EventBatch, n_channels: int) -> Tensor:
    """What a customer did, pooled: (B, L, d) event embeddings -> (B, activity_width).

    For each pool, the mean embedding of its events and log1p of their number: the events of the last 7 and
    30 days up to the latest event's day, all events of the sequence, and the events of each channel. No
    parameters: the heads learn what to read from it.
    """
    mask, day = events.mask, events.day
    latest = torch.where(mask, day, day.new_full((), -1)).amax(dim=1, keepdim=True)  # (B, 1)
    channel = events.categorical[..., 0]
    pools = [mask & (day > latest - days) for days in ACTIVITY_WINDOW_DAYS]
    pools += [mask, *(mask & (channel == c) for c in range(2, n_channels))]
    keep = torch.stack(pools, dim=1).to(x.dtype)  # (B, P, L)
    count = keep.sum(dim=-1, keepdim=True)  # (B, P, 1)
    mean = (keep @ x) / count.clamp(min=1)  # (B, P, d)
    return torch.cat([mean, torch.log1p(count)], dim=-1).flatten(1)


@dataclass
class BackboneOutput:
    hidden: Tensor  # (B, T, d): T = max_windows + recent_events (hierarchical) or max_len (flat)
    recent_hidden: Tensor  # (B, R, d): hidden states of the latest R events, oldest first
    state: Tensor  # (B, d): the customer state after the latest event (last position)
    embeddings: Tensor  # (B, L, d): the event embeddings the backbone read, pooled by `activity`
    events: EventBatch
    n_channels: int

    # Computed on first use: pretraining, next-item evaluation and rollouts read only the state, and the
    # pooling is about a tenth of a 2-layer backbone's work. Attribution differentiates through it.
    @cached_property
    def activity(self) -> Tensor:
        """(B, activity_width): the recent activity (`recent_activity`)."""
        return recent_activity(self.embeddings, self.events, self.n_channels)

    @property
    def customer(self) -> Tensor:
        """(B, d + activity_width): what the fine-tune heads read, state and activity side by side."""
        return torch.cat([self.state, self.activity], dim=-1)


class LAMBackbone(nn.Module):
    """Bare backbone: events in, hidden states out. No head."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = EventEmbedding(config)
        n_positions = (config.max_windows + config.recent_events) if config.hierarchical else config.max_len
        self.position = nn.Embedding(n_positions, config.d_model)
        self.window_mlp = nn.Sequential(nn.Linear(config.d_model, config.d_model), nn.GELU())
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)

    def forward(self, events: EventBatch) -> BackboneOutput:
        return self.encode(self.embed(events), events)

    def encode(self, x: Tensor, events: EventBatch) -> BackboneOutput:
        """The backbone from event embeddings x (B, L, d) on: attribution methods perturb x, not the ids."""
        mask, embeddings = events.mask, x
        if self.config.hierarchical:
            x, mask = self._compress_old_events(x, events)
        t = x.shape[1]
        x = x + self.position(torch.arange(t, device=x.device))
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        # Every position may attend to itself, so fully padded rows stay finite.
        allowed = (causal & mask[:, None, None, :]) | torch.eye(t, dtype=torch.bool, device=x.device)
        for block in self.blocks:
            x = block(x, allowed)
        x = self.ln_f(x)
        return BackboneOutput(
            hidden=x,
            recent_hidden=x[:, -self.config.recent_events :],
            state=x[:, -1],
            embeddings=embeddings,
            events=events,
            n_channels=self.config.n_channels,
        )

    def _compress_old_events(self, x: Tensor, events: EventBatch) -> tuple[Tensor, Tensor]:
        """Stage 1: mean-pool the older events per calendar day into max_windows window vectors."""
        r, w = self.config.recent_events, self.config.max_windows
        old, old_mask, old_day = x[:, :-r], events.mask[:, :-r], events.day[:, :-r]
        b, d = x.shape[0], x.shape[2]
        newest_old_day = torch.where(old_mask, old_day, old_day.new_full((), -1)).amax(dim=1, keepdim=True)  # (B, 1)
        age = (newest_old_day - old_day).clamp(0, w - 1)  # 0 = the newest old day; older days share w-1
        slot = (w - 1 - age) * old_mask  # oldest window first; padding goes to slot 0 with zero weight
        pooled = x.new_zeros(b, w, d).scatter_add_(1, slot.unsqueeze(-1).expand(-1, -1, d), old)
        counts = x.new_zeros(b, w).scatter_add_(1, slot, old_mask.to(x.dtype))  # (B, W)
        windows = self.window_mlp(pooled / counts.clamp(min=1).unsqueeze(-1)) * (counts > 0).unsqueeze(-1)
        return torch.cat([windows, x[:, -r:]], dim=1), torch.cat([counts > 0, events.mask[:, -r:]], dim=1)


@dataclass
class NextActionOutput:
    hidden: Tensor  # (B, R, d): the positions read; object scores come from NextActionHead.object_logits
    channel_logits: Tensor  # (B, R, n_channels)
    action_logits: Tensor  # (B, R, n_actions)
    log_gap_hours: Tensor  # (B, R): predicted log1p(hours until the next event)


class NextActionHead(nn.Module):
    """Pretraining head: from each recent position, the next event's where / what / how and when.

    Channel and action vocabularies are small: plain linear layers. The object ("what") vocabulary can
    hold 100k+ products, so its scores are a dot product with an output embedding per object, computed
    for all objects (`object_logits(h)`, full softmax, evaluation) or only for the target and sampled
    negatives (`object_loss(..., negatives=n)`, sampled softmax for training).
    """

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.channel = nn.Linear(d, config.n_channels)
        self.action = nn.Linear(d, config.n_actions)
        self.gap = nn.Linear(d, 1)
        self.object_query = nn.Linear(d, d)
        self.object_embedding = nn.Embedding(config.n_objects, d)  # output embeddings, one per object id
        self.object_bias = nn.Parameter(torch.zeros(config.n_objects))

    def forward(self, hidden: Tensor) -> NextActionOutput:
        return NextActionOutput(hidden, self.channel(hidden), self.action(hidden), self.gap(hidden).squeeze(-1))

    def object_logits(self, hidden: Tensor) -> Tensor:
        """(..., d) -> (..., n_objects): scores over every object (id 0 = pad is never a target)."""
        return self.object_query(hidden) @ self.object_embedding.weight.T + self.object_bias

    def object_loss(self, hidden: Tensor, targets: Tensor, negatives: int = 0) -> Tensor:
        """Mean cross-entropy of the target objects: (N, d), (N,) int64 -> scalar.

        negatives = 0: full softmax over all objects. negatives = n > 0: sampled softmax with n negatives
        drawn uniformly from ids 1..n_objects-1 and shared by the batch (as in SASRec/HSTU-style training);
        a negative equal to a row's target is masked out. Uniform sampling needs no log-Q correction: it
        adds the same constant to every logit.
        """
        n_objects = self.object_embedding.num_embeddings
        if negatives <= 0 or negatives >= n_objects - 1:
            return F.cross_entropy(self.object_logits(hidden), targets)
        query = self.object_query(hidden)  # (N, d)
        positive = (query * self.object_embedding(targets)).sum(-1) + self.object_bias[targets]  # (N,)
        sampled = torch.randint(1, n_objects, (negatives,), device=hidden.device)  # (n,)
        negative = query @ self.object_embedding(sampled).T + self.object_bias[sampled]  # (N, n)
        negative = negative.masked_fill(sampled[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1)  # (N, 1 + n): the target is class 0
        return F.cross_entropy(logits, torch.zeros_like(targets))


@dataclass
class CampaignResponseOutput:
    logit_contacted: Tensor  # (B,): log-odds of an order if contacted with this campaign
    logit_not_contacted: Tensor  # (B,): log-odds of an order if left alone

    @property
    def uplift(self) -> Tensor:  # (B,): P(order | contacted) - P(order | not contacted)
        return torch.sigmoid(self.logit_contacted) - torch.sigmoid(self.logit_not_contacted)


class CustomerEncoder(nn.Module):
    """The customer a fine-tune head sees: `BackboneOutput.customer` (state and recent activity) + profile."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        d, width = config.d_model, activity_width(config)
        self.d_model = d
        self.activity = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, d))
        self.profile = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n in config.profile_vocab_sizes)

    def forward(self, customer: Tensor, profile: Tensor) -> Tensor:
        """(B, d + activity_width), (B, P) profile ids -> (B, 2d): state + profile, projected activity."""
        state, activity = customer[:, : self.d_model], customer[:, self.d_model :]
        state = state + sum(emb(profile[:, i]) for i, emb in enumerate(self.profile))
        return torch.cat([state, self.activity(activity)], dim=-1)


class CampaignResponseHead(nn.Module):
    """Fine-tuning head: customer (state, activity, profile) + candidate campaign (offer, method, timing) -> two
    order odds."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.customer = CustomerEncoder(config)
        self.offer = nn.Embedding(config.n_offers, d)
        self.method = nn.Embedding(config.n_methods, d)
        self.hour = nn.Embedding(24, d)
        self.weekday = nn.Embedding(7, d)
        self.numeric = nn.Linear(1 + config.n_profile_numeric, d)  # log hours since the last event, profile numbers
        self.mlp = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(d, 2))

    def forward(self, customer: Tensor, context: CampaignContext) -> CampaignResponseOutput:
        """customer: `BackboneOutput.customer` (B, d + activity_width)."""
        return self.respond(self.customer(customer, context.profile), context)

    def respond(self, customer: Tensor, context: CampaignContext) -> CampaignResponseOutput:
        """customer: already through `self.customer` (B, 2d): a scorer encodes each customer once and repeats
        the result over the candidate campaigns and times instead of encoding every (customer, campaign) row."""
        numeric = torch.cat([context.log_hours_since_last_event.unsqueeze(-1), context.profile_numeric], dim=-1)
        campaign = (
            self.offer(context.offer)
            + self.method(context.method)
            + self.hour(context.contact_hour)
            + self.weekday(context.contact_weekday)
            + self.numeric(numeric)
        )
        base, effect = self.mlp(torch.cat([customer, campaign], dim=-1)).unbind(-1)  # (B,), (B,)
        # Contacted = the customer's baseline odds plus the contact's effect: every row, contacted or control,
        # trains the baseline, so the few controls (10% of the log) need not learn it alone.
        return CampaignResponseOutput(logit_contacted=base + effect, logit_not_contacted=base)


class TargetHead(nn.Module):
    """Event-derived target head: customer (state, activity, profile) + time since the last event -> log-odds
    that the target (an action within H days, or no event within H days) happens after the prediction time.

    The backbone's state is the customer after the latest event; how long ago that was at the prediction time
    is the head's input, so the same state scored a week later reads as a week less active.
    """

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.customer = CustomerEncoder(config)
        self.numeric = nn.Linear(1 + config.n_profile_numeric, d)
        self.mlp = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(d, 1))

    def forward(self, customer: Tensor, context: CustomerContext) -> Tensor:
        """customer: `BackboneOutput.customer` (B, d + activity_width)."""
        customer = self.customer(customer, context.profile)
        numeric = torch.cat([context.log_hours_since_last_event.unsqueeze(-1), context.profile_numeric], dim=-1)
        return self.mlp(torch.cat([customer, self.numeric(numeric)], dim=-1)).squeeze(-1)  # (B,) log-odds
