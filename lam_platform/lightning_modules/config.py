"""One config dataclass for the LAM: every hyperparameter, with a default that trains in seconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class LAMConfig:
    # Vocabulary sizes include id 0 = pad and id 1 = out-of-vocabulary; set from the tokenizer.
    n_channels: int = 8
    n_objects: int = 64
    n_actions: int = 16
    attribute_vocab_sizes: tuple[int, ...] = ()  # one per declared categorical event attribute
    n_numeric: int = 2  # declared numeric event attributes
    profile_vocab_sizes: tuple[int, ...] = (6, 4, 5, 6)  # one per declared categorical profile field
    n_profile_numeric: int = 1  # declared numeric profile fields
    n_offers: int = 5
    n_methods: int = 4
    # Backbone.
    max_len: int = 64  # events per sequence
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    hierarchical: bool = True  # False: a flat causal Transformer over all events
    recent_events: int = 16  # kept at full resolution (and the positions the next-action loss uses)
    max_windows: int = 16  # day windows for older events; anything older shares the oldest window
    # Next-action head: 0 = full softmax over all objects; n > 0 = sampled softmax with n shared negatives.
    sampled_negatives: int = 0
    # Weight of the channel, action and gap terms next to the object term (1) in the next-action loss.
    auxiliary_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        self.profile_vocab_sizes = tuple(self.profile_vocab_sizes)
        self.attribute_vocab_sizes = tuple(self.attribute_vocab_sizes)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0 < self.recent_events <= self.max_len:
            raise ValueError(f"recent_events must be in 1..max_len ({self.max_len}), got {self.recent_events}")
        if self.auxiliary_loss_weight < 0:
            raise ValueError(f"auxiliary_loss_weight must be >= 0, got {self.auxiliary_loss_weight}")
        if self.sampled_negatives < 0:
            raise ValueError(f"sampled_negatives must be >= 0 (0 = full softmax), got {self.sampled_negatives}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LAMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown LAMConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
