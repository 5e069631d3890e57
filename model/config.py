"""ModelConfig: every knob of the GLaM model in one frozen, hashable dataclass.

Kept free of jax so that the CLI and YAML loaders can build and validate configs without paying for a jax
import. Hashability matters: the config (sharding rules included) is static under `jax.jit`, so changing the
rules re-traces instead of silently reusing a stale program.
"""

from __future__ import annotations

import dataclasses
import math

# Logical axis -> mesh axis (or axes, or None = replicated). Mesh axes are (data, expert, model).
# Outside the expert computation the batch is split over both data and expert axes (experts sit on their own
# axis, and the same devices act as data parallel for the dense parts). Inside the expert computation the
# token groups ("expert_group") stay on `data` while experts move to `expert`: that reshard is GShard's
# all-to-all. Model dims (heads, mlp, vocab) go on `model`; with model > 1 this is the paper's 2D sharding.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "expert")),
    ("length", None),
    ("embed", None),
    ("heads", "model"),
    ("kv", None),
    ("mlp", "model"),
    ("vocab", "model"),
    ("expert", "expert"),
    ("expert_group", "data"),
    ("buckets", None),
    ("layers", None),
)
# FSDP (`fsdp: true`): parameter dims named "embed" are split over every batch axis, so parameters, gradients and
# optimizer state are sharded over data and expert and gathered layer by layer when used. Activations are not
# affected: their batch dim comes first and takes those mesh axes (a mesh axis is used once per array).
FSDP_RULE = ("embed", ("data", "expert"))

DTYPES = ("float32", "bfloat16", "float16")
DISPATCHES = ("sort", "einsum", "dropless")
DROPLESS_IMPLS = ("auto", "blocks", "ragged")
REMAT_POLICIES = ("none", "full", "dots")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Decoder-only GLaM Transformer. `num_experts=0` gives a dense model.

    The model returns its auxiliary losses unweighted: their weights live in one place, the train spec's `loss:`
    section (data_specs.specs.LossSpec).
    """

    vocab_size: int = 8000
    num_layers: int = 4
    embed_dim: int = 256  # M
    mlp_dim: int = 1024  # H of the dense GLU blocks
    num_heads: int = 4
    head_dim: int = 64
    # Mixture of experts.
    num_experts: int = 0  # E; 0 = dense
    expert_mlp_dim: int | None = None  # hidden width of one expert; None = mlp_dim
    moe_interval: int = 2  # layers interval-1, 2*interval-1, ... are MoE (GLaM: every other layer)
    top_k: int = 2  # k = min(top_k, E)
    # Expert capacity C = ceil(capacity_factor * k * S / E) slots per expert per group of S tokens: 1.0 gives each
    # expert its even share of the group's k * S assignments, i.e. GShard's and GLaM's 2S/E at k = 2 (S = 1024,
    # E = 64 -> 32). This is MaxText's convention (capacity_factor 1.0 x k*S/E); Praxis writes the same capacity
    # as capacity_factor 2.0 x S/E, i.e. Praxis's factor = k x this one. Unused by the dropless dispatch.
    capacity_factor: float = 1.0
    num_groups: int | None = None  # routing groups; None = tokens // group_size (never the device count)
    group_size: int = 1024
    # "sort": capacity slots filled by sort/gather (default, no S x E x C tensor); "einsum": GShard's one-hot
    # dispatch/combine einsums; "dropless": no capacity, every assignment computed (grouped matmul over tokens
    # sorted by expert, each expert's run padded to `dropless_block` rows): what scoring uses.
    dispatch: str = "sort"
    # Dropless grouped matmul: "blocks" (a loop over row blocks, each against its expert's weights: fastest on
    # CPU), "ragged" (jax.lax.ragged_dot: a native grouped matmul on TPU), "auto" (ragged on TPU, else blocks).
    dropless_impl: str = "auto"
    dropless_block: int = 64
    # Relative position bias (T5 buckets, unidirectional), one table per layer.
    relpos_buckets: int = 32
    relpos_max_distance: int = 128
    # Precision: parameters are stored in param_dtype; matmuls run in dtype; router/softmax/norms in float32.
    dtype: str = "bfloat16"
    param_dtype: str = "float32"
    # Memory. scan_layers: the decoder is a jax.lax.scan over repeats of its layer pattern (moe_interval layers:
    # dense ones then the MoE one; one layer for a dense model), parameters stacked on a leading "layers" axis:
    # one compiled layer body whatever the depth, and what makes remat pay off. remat: what the backward pass
    # keeps of each scanned (or unrolled) block: "none" (everything), "full" (only the block's input; the block
    # is recomputed), "dots" (matmul outputs without batch dims, i.e. the projections; attention and
    # elementwise work are recomputed). fsdp: see FSDP_RULE.
    scan_layers: bool = False
    remat: str = "none"
    fsdp: bool = False
    sharding_rules: tuple[tuple[str, str | tuple[str, ...] | None], ...] = DEFAULT_RULES

    def __post_init__(self) -> None:
        # YAML gives lists; make the rules hashable tuples.
        rules = tuple(
            (str(name), tuple(axes) if isinstance(axes, (list, tuple)) else axes)
            for name, axes in self.sharding_rules
        )
        object.__setattr__(self, "sharding_rules", rules)
        for name in ("vocab_size", "num_layers", "embed_dim", "mlp_dim", "num_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_experts < 0 or self.moe_interval < 1 or self.top_k < 1:
            raise ValueError("num_experts must be >= 0, moe_interval >= 1, top_k >= 1")
        if self.capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be positive, got {self.capacity_factor}")
        if self.num_groups is not None and self.num_groups < 1:
            raise ValueError(f"num_groups must be >= 1 or None, got {self.num_groups}")
        if self.dispatch not in DISPATCHES:
            raise ValueError(f"dispatch must be one of {DISPATCHES}, got {self.dispatch!r}")
        if self.dropless_impl not in DROPLESS_IMPLS:
            raise ValueError(f"dropless_impl must be one of {DROPLESS_IMPLS}, got {self.dropless_impl!r}")
        if self.dropless_block < 1:
            raise ValueError(f"dropless_block must be >= 1, got {self.dropless_block}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name} must be one of {DTYPES}, got {getattr(self, name)!r}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {REMAT_POLICIES}, got {self.remat!r}")
        if self.scan_layers and self.num_layers % self.scan_unit:
            raise ValueError(f"scan_layers: num_layers {self.num_layers} is not a multiple of the repeated "
                             f"pattern's {self.scan_unit} layers (moe_interval)")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def k(self) -> int:
        """Experts per token: top-2, or fewer when there are fewer experts."""
        return min(self.top_k, self.num_experts) if self.is_moe else 0

    @property
    def expert_dim(self) -> int:
        return self.expert_mlp_dim or self.mlp_dim

    @property
    def rules(self) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
        """The logical-axis rules in force: `sharding_rules`, with FSDP_RULE when `fsdp` is on."""
        if not self.fsdp:
            return self.sharding_rules
        others = tuple((name, axes) for name, axes in self.sharding_rules if name != FSDP_RULE[0])
        return (*others, FSDP_RULE)

    @property
    def scan_unit(self) -> int:
        """Layers per scanned step: the MoE pattern (moe_interval layers), or one layer of a dense model."""
        return self.moe_interval if self.is_moe else 1

    def is_moe_layer(self, layer: int) -> bool:
        return self.is_moe and layer % self.moe_interval == self.moe_interval - 1

    @property
    def num_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    def groups_for(self, num_tokens: int) -> int:
        """Routing groups for a batch of `num_tokens` tokens; depends on the config and batch only."""
        groups = self.num_groups or max(1, num_tokens // self.group_size)
        if num_tokens % groups:
            raise ValueError(f"{num_tokens} tokens cannot be split into {groups} equal routing groups")
        return groups

    def capacity(self, group_tokens: int) -> int:
        """Per-expert slots in one group of `group_tokens` tokens: ceil(capacity_factor * k * S / E)."""
        return max(1, math.ceil(self.capacity_factor * group_tokens * self.k / self.num_experts))
