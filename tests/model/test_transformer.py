import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def _stack_unrolled(unrolled_state, cfg):
    """The scanned tree's parameters from an unrolled model's: layer i * unit + j -> layers/blocks/j[i]."""
    blocks = unrolled_state["blocks"]
    unit, n = cfg.scan_unit, cfg.num_layers // cfg.scan_unit
    stacked = {j: jax.tree.map(lambda *xs: jnp.stack(xs), *[blocks[i * unit + j] for i in range(n)])
               for j in range(unit)}
    return {"embed": unrolled_state["embed"], "final_norm": unrolled_state["final_norm"],
            "layers": {"blocks": stacked}}


@pytest.mark.parametrize("experts", [0, 4])
def test_scanned_layers_equal_unrolled_ones_with_every_remat_policy(make_config, experts):
    """The same parameters, stacked on a "layers" axis and scanned, give the unrolled model's logits, losses and
    gradients; remat policies change what the backward pass keeps, not what it computes."""
    base = make_config(num_experts=experts, num_layers=4, capacity_factor=0.5, num_groups=2)
    unrolled = Transformer(base, rngs=nnx.Rngs(0))
    params = _stack_unrolled(nnx.to_pure_dict(nnx.state(unrolled, nnx.Param)), base)
    tokens = jax.random.randint(jax.random.key(3), (2, 16), 0, base.vocab_size)
    segments = jnp.asarray([[1] * 10 + [2] * 6, [1] * 12 + [0] * 4])

    def run(cfg, state):
        graphdef = nnx.graphdef(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))

        def loss(state):
            logits, aux = nnx.merge(graphdef, state)(tokens, segments)
            return jnp.sum(logits ** 2) * 1e-3 + aux["lb_loss"], (logits, aux)

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(state)

    import dataclasses

    unrolled_state = nnx.state(unrolled)
    (ref_loss, (ref_logits, ref_aux)), ref_grads = run(base, unrolled_state)
    ref_grads = _stack_unrolled(nnx.to_pure_dict(ref_grads), base)
    for policy in ("none", "full", "dots"):
        cfg = dataclasses.replace(base, scan_layers=True, remat=policy)
        state = nnx.state(nnx.eval_shape(lambda cfg=cfg: Transformer(cfg, rngs=nnx.Rngs(0))))
        nnx.replace_by_pure_dict(state, params)
        (loss, (logits, aux)), grads = run(cfg, state)
        np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
        for key in ref_aux:
            np.testing.assert_allclose(np.asarray(aux[key]), np.asarray(ref_aux[key]), rtol=1e-5, atol=1e-6)
        for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(grads)), jax.tree.leaves(ref_grads), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_scanned_parameters_carry_the_layers_axis(make_config):
    cfg = make_config(num_experts=4, num_layers=6, scan_layers=True)
    state = nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param)
    wi = state["layers"]["blocks"][1]["ffn"]["wi"]
    assert wi.shape == (3, 4, cfg.embed_dim, cfg.mlp_dim)
    assert wi.get_metadata()["logical_axes"] == ("layers", "expert", "embed", "mlp")
    assert "blocks" not in state  # one tree: the stacked one


def test_gelu_with_a_saved_derivative_matches_jax_gelu():
    from model.layers import gelu

    x = jax.random.normal(jax.random.key(0), (64, 33)) * 3
    g = jax.random.normal(jax.random.key(1), x.shape)
    np.testing.assert_array_equal(np.asarray(gelu(x)), np.asarray(jax.nn.gelu(x)))
    mine = jax.vjp(gelu, x)[1](g)[0]
    want = jax.vjp(jax.nn.gelu, x)[1](g)[0]
    np.testing.assert_allclose(np.asarray(mine), np.asarray(want), rtol=1e-5, atol=1e-5)  # float32 rounding
    second = jax.grad(lambda x: jax.grad(lambda x: gelu(x).sum())(x).sum())  # the derivative's own derivative
    assert np.isfinite(np.asarray(second(x))).all()
