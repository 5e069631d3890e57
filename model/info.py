"""Parameter and FLOP counts of a config, from shapes alone (`nnx.eval_shape`: nothing is allocated).

Counting convention (the one that reproduces the GLaM paper's large rows):
- total_params: every parameter once. The embedding is tied with the output projection and counted once.
- activated_params: the parameters one token's forward pass uses, *excluding* the embedding: attention,
  norms, relative-position tables, dense GLU blocks (three M x H matrices), and in each MoE layer the router
  plus k of the E experts (each expert two M x H matrices). Capacity padding does not count.
- flops_per_token: training FLOPs (forward + backward = 3 x forward) per token at sequence length `seq_len`,
  PaLM-style: 6 * (activated_params + vocab * M for the output logits) + 12 * layers * heads * head_dim *
  seq_len for the attention scores and weighted sum (causal masking not subtracted). This is the "model FLOPs"
  that model FLOP utilisation divides by; it ignores capacity padding and dispatch work.
"""

from __future__ import annotations

from typing import Any

from model.config import ModelConfig


def _path_str(path: tuple[Any, ...]) -> str:
    return "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)


def param_shapes(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], tuple[str | None, ...]]]:
    """Parameter path -> (shape, logical axis names) for `config`, computed abstractly. With scan_layers the
    paths are the stacked ones (layers/blocks/<i>/...) and shapes lead with the "layers" axis."""
    import jax
    from flax import nnx

    from model.transformer import Transformer

    abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    state = nnx.state(abstract, nnx.Param)
    is_var = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
    leaves = jax.tree_util.tree_flatten_with_path(state, is_leaf=is_var)[0]
    return {_path_str(path): (tuple(leaf.shape), tuple(leaf.get_metadata()["logical_axes"]))
            for path, leaf in leaves}


def model_info(config: ModelConfig, seq_len: int = 1024) -> dict[str, Any]:
    """total_params, activated_params, flops_per_token and their parts (see the module docstring)."""
    shapes = param_shapes(config)
    size = {path: int(_prod(shape)) for path, (shape, _) in shapes.items()}
    total = sum(size.values())
    embedding = sum(n for p, n in size.items() if p.startswith("embed/"))
    expert = sum(n for p, n in size.items() if "expert" in shapes[p][1])  # expert weights: an "expert" axis
    e = config.num_experts
    inactive = expert - (expert * config.k // e if e else 0)
    activated = total - embedding - inactive
    attention = 12 * config.num_layers * config.num_heads * config.head_dim * seq_len
    flops = 6 * (activated + config.vocab_size * config.embed_dim) + attention
    return {
        "total_params": total,
        "activated_params": activated,
        "flops_per_token": flops,
        "embedding_params": embedding,
        "expert_params": expert,
        "num_moe_layers": config.num_moe_layers,
        "num_experts": e,
        "k": config.k,
        "seq_len": seq_len,
    }


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
