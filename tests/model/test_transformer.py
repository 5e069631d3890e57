import jax
import jax.numpy as jnp
from flax import nnx

from model.transformer import Transformer


def test_precision_and_aux(make_config, jit_forward):
    cfg = make_config(num_experts=4, dtype="bfloat16", num_layers=4)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert all(p.dtype == jnp.float32 for p in params)
    logits, aux = jit_forward(model)(jnp.zeros((2, 16), jnp.int32))
    assert logits.dtype == jnp.float32 and logits.shape == (2, 16, cfg.vocab_size)
    assert aux["expert_load"].shape == (2, 4)  # layers 1 and 3 are MoE
    assert jnp.allclose(aux["expert_load"].sum(-1), 1.0)
    assert jnp.allclose(aux["lb_loss"], aux["lb_loss_per_layer"].sum())


def test_dense_model_has_zero_aux(make_config, jit_forward):
    model = Transformer(make_config(), rngs=nnx.Rngs(0))
    _, aux = jit_forward(model)(jnp.zeros((1, 8), jnp.int32))
    assert float(aux["lb_loss"]) == 0.0 and float(aux["z_loss"]) == 0.0
    assert not any(isinstance(b.ffn, nnx.Module) and hasattr(b.ffn, "router") for b in model.blocks)


def test_every_other_layer_is_moe(make_config):
    cfg = make_config(num_experts=4, num_layers=6)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    assert [hasattr(b.ffn, "router") for b in model.blocks] == [False, True] * 3
    cfg3 = make_config(num_experts=4, num_layers=6, moe_interval=3)
    assert [cfg3.is_moe_layer(i) for i in range(6)] == [False, False, True] * 2


def test_embedding_is_tied_and_nothing_has_a_bias(make_config):
    cfg = make_config(num_experts=4, vocab_size=97)  # a size no other dim has
    state = nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param)
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    names = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat]
    vocab_sized = [n for n, (_, leaf) in zip(names, flat, strict=True) if cfg.vocab_size in leaf.shape]
    assert len(vocab_sized) == 1 and vocab_sized[0].startswith("embed/embedding")  # one table, in and out
    assert not any("bias" in n for n in names)
