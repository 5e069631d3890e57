"""Named model presets: every row of the GLaM paper's size table, plus tiny CPU models.

The paper's rows use a 256K SentencePiece vocabulary (256,000 here); the 0.1B rows fit a 32K one better (see
model/info.py for the counting convention). The tiny presets use the demo tokenizer's 8,000 and are sized so
that a few hundred training steps on two CPU cores take minutes. Override anything with
`get_config(name, **overrides)`, e.g. `get_config("tiny-moe", vocab_size=4000, dispatch="einsum")`.

Every preset scans its layers (`scan_layers`: one compiled (dense, MoE) pair, parameters stacked on a "layers"
axis); remat and FSDP are the train spec's choice (`model_overrides`), per hardware. Every MoE preset is GLaM's:
top-2 routing, capacity 2S/E per group of S = 1024 tokens (capacity_factor 1.0 in ModelConfig's convention), the
sort dispatch, no router z-loss (the train spec's `loss:` holds the weights).
Which layer of each (dense, MoE) pair is MoE: the second, i.e. layers 1, 3, 5, ... (`moe_interval` 2 makes
layers interval-1, 2*interval-1, ... MoE). Praxis's GLaM puts MoE first in each pair (layers 0, 2, 4, ...). The
paper only says "every other layer"; both give the same parameter and FLOP counts. We keep the dense layer
first so that the first router sees contextualised states (after one attention and one dense feed-forward)
rather than bare token embeddings, whose routing can only be lexical, and so that `moe_interval` > 2 still ends
each block of layers with its MoE layer, as GShard's and Switch's "every n-th layer" configurations do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from data_specs.errors import UnknownNameError
from model.config import ModelConfig

_VOCAB = 256_000


def _glam(layers: int, dim: int, hidden: int, heads: int, head_dim: int, experts: int = 0,
          vocab: int = _VOCAB) -> ModelConfig:
    return ModelConfig(vocab_size=vocab, num_layers=layers, embed_dim=dim, mlp_dim=hidden, num_heads=heads,
                       head_dim=head_dim, num_experts=experts, scan_layers=True)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(vocab_size=8000, num_layers=4, embed_dim=256, mlp_dim=1024, num_heads=4, head_dim=64,
                        scan_layers=True),
    "tiny-moe": ModelConfig(vocab_size=8000, num_layers=4, embed_dim=256, mlp_dim=1024, num_heads=4,
                            head_dim=64, num_experts=16, scan_layers=True),
    "glam-0.1b": _glam(12, 768, 3072, 12, 64, vocab=32_000),
    "glam-0.1b-64e": _glam(12, 768, 3072, 12, 64, experts=64, vocab=32_000),
    "glam-1.7b": _glam(24, 2048, 8192, 16, 128),
    "glam-1.7b-64e": _glam(24, 2048, 8192, 16, 128, experts=64),
    "glam-8b": _glam(32, 4096, 16384, 32, 128),
    "glam-8b-64e": _glam(32, 4096, 16384, 32, 128, experts=64),
    "glam-64b-64e": _glam(64, 8192, 32768, 128, 128, experts=64),
}

# The paper's (total, activated) parameter counts for each row, for the comparison table and its test.
PAPER_PARAMS: dict[str, tuple[float, float]] = {
    "glam-0.1b": (130e6, 130e6),
    "glam-0.1b-64e": (1.9e9, 145e6),
    "glam-1.7b": (1.7e9, 1.7e9),
    "glam-1.7b-64e": (27e9, 1.88e9),
    "glam-8b": (8.7e9, 8.7e9),
    "glam-8b-64e": (143e9, 9.8e9),
    "glam-64b-64e": (1.2e12, 96.6e9),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset `name` with `overrides` applied (as a train YAML's `model: tiny-moe` plus its keys)."""
    if name not in PRESETS:
        raise UnknownNameError("model preset", name, PRESETS)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown ModelConfig field(s) {unknown}; fields: {', '.join(sorted(fields))}")
    return dataclasses.replace(PRESETS[name], **overrides)
