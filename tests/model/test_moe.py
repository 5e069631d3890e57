import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model.moe import MoE, dropless_dispatch, dropless_rows, einsum_dispatch, route, router_aux, sort_dispatch
from model.presets import PRESETS

DISPATCHES = [einsum_dispatch, sort_dispatch]  # the capacity dispatches
# Every dispatch mode the layer offers, as (dispatch, dropless_impl) config overrides.
MODES = [dict(dispatch="sort"), dict(dispatch="einsum"), dict(dispatch="dropless", dropless_impl="blocks"),
         dict(dispatch="dropless", dropless_impl="ragged")]
MODE_IDS = ["sort", "einsum", "dropless-blocks", "dropless-ragged"]


def _reference_plan(experts: np.ndarray, capacity: int | None, num_experts: int,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Plain-Python GShard slot filling: first choices in token order, then second choices; padding (valid
    False) skipped; capacity None = no limit."""
    g, s, k = experts.shape
    kept = np.zeros((g, s, k), bool)
    for gi in range(g):
        load = [0] * num_experts
        for j in range(k):
            for si in range(s):
                e = experts[gi, si, j]
                if (valid is None or valid[gi, si]) and (capacity is None or load[e] < capacity):
                    load[e] += 1
                    kept[gi, si, j] = True
    return kept


def _skewed_routing(g: int, s: int, e: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first = np.where(rng.random((g, s)) < 0.6, 0, rng.integers(0, e, (g, s)))  # expert 0 is oversubscribed
    second = (first + rng.integers(1, e, (g, s))) % e
    gates = rng.random((g, s, 2)).astype(np.float32)
    return np.stack([first, second], -1).astype(np.int32), gates / gates.sum(-1, keepdims=True)


@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_capacity_priority_and_at_most_k_experts(dispatch):
    g, s, e, cap = 2, 32, 4, 6
    experts, gates = _skewed_routing(g, s, e)
    x = np.zeros((g, s, s), np.float32)
    x[:, np.arange(s), np.arange(s)] = 1.0  # row s identifies token s
    seen = {}

    def identity(inp):
        seen["in"] = np.asarray(inp)
        return inp

    y, kept = dispatch(jnp.asarray(x), jnp.asarray(experts), jnp.asarray(gates), e, cap, identity, ())
    expected = _reference_plan(experts, cap, e)
    np.testing.assert_array_equal(np.asarray(kept), expected)
    buf = seen["in"]  # [E, G, C, M]
    for gi in range(g):
        reached = np.zeros(s, int)
        for ei in range(e):
            rows = buf[ei, gi]
            tokens = np.flatnonzero(rows.sum(-1) > 0)
            assert len(tokens) <= cap
            ids = rows[tokens].argmax(-1)
            want = {si for si in range(s) for j in range(2)
                    if experts[gi, si, j] == ei and expected[gi, si, j]}
            assert set(ids.tolist()) == want and len(ids) == len(want)  # no duplicates, right tokens
            reached[ids] += 1
        assert reached.max() <= 2
    assert expected[..., 0].sum() < g * s  # expert 0 overflowed: the test exercised dropping
    want_y = x * (gates * expected).sum(-1, keepdims=True)  # identity experts: y = sum of kept gates * x
    np.testing.assert_allclose(np.asarray(y), want_y, atol=1e-6)


def _moe(make_config, **kw):
    cfg = make_config(num_experts=4, **kw)
    return cfg, MoE(cfg, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_dropped_tokens_output_exactly_zero(make_config, dispatch):
    cfg, moe = _moe(make_config, capacity_factor=0.25, num_groups=2)
    x = jax.random.normal(jax.random.key(0), (2, 32, cfg.embed_dim))
    xg = x.reshape(2, 32, -1)
    experts, gates, _ = route(jnp.einsum("gsm,me->gse", xg, moe.router[...]), cfg.k)
    y, kept = dispatch(xg, experts, gates, cfg.num_experts, cfg.capacity(32), moe.experts, ())
    dropped = ~np.asarray(kept).any(-1)
    assert dropped.sum() >= 4
    assert (np.asarray(y)[dropped] == 0.0).all()
    assert (np.abs(np.asarray(y)[~dropped]).sum(-1) > 0).all()
    y_layer, aux = moe(x)
    np.testing.assert_allclose(np.asarray(y_layer).reshape(y.shape), np.asarray(y), atol=1e-6)
    assert np.isclose(float(aux["dropped_tokens"]), dropped.mean())


@pytest.mark.parametrize("dispatch", ["einsum", "sort"])
def test_single_expert_equals_two_matrix_ffn(make_config, dispatch):
    cfg = make_config(num_experts=1, capacity_factor=1.0, dispatch=dispatch)
    moe = MoE(cfg, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 16, cfg.embed_dim))
    y, aux = moe(x)
    want = jax.nn.gelu(x @ moe.wi[...][0]) @ moe.wo[...][0]
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), atol=1e-5, rtol=1e-5)
    assert float(aux["dropped_fraction"]) == 0.0


def _loss_and_grads(cfg, x, r):
    graphdef, state = nnx.split(MoE(cfg, rngs=nnx.Rngs(0)))

    def loss(state):
        y, aux = nnx.merge(graphdef, state)(x)
        return jnp.sum(y * r) + aux["lb_loss"] + aux["z_loss"], (y, aux)

    (_, (y, aux)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(state)
    return y, aux, grads


@pytest.mark.parametrize("capacity_factor", [4.0, 0.5])
def test_dispatch_implementations_agree(make_config, capacity_factor):
    """Outputs, losses and gradients agree across modes; with capacity factor 4.0 (C = S) nothing can drop, so
    the dropless modes (a custom VJP for the block loop, JAX's own for ragged_dot) join the comparison."""
    x = jax.random.normal(jax.random.key(2), (4, 32, 32))
    r = jax.random.normal(jax.random.key(3), x.shape)
    modes = MODES if capacity_factor >= 4.0 else MODES[:2]
    runs = [_loss_and_grads(make_config(num_experts=8, capacity_factor=capacity_factor, num_groups=4, **mode),
                            x, r) for mode in modes]
    y1, aux1, g1 = runs[0]
    if capacity_factor < 1:
        assert float(aux1["dropped_fraction"]) >= 0.10
    else:
        assert float(aux1["dropped_fraction"]) == 0.0
    for y2, aux2, g2 in runs[1:]:
        np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), atol=1e-5, rtol=1e-5)
        for key in aux1:
            np.testing.assert_allclose(np.asarray(aux1[key]), np.asarray(aux2[key]), atol=1e-6)
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)


def _lb_loss(logits):
    experts, _, probs = route(jnp.asarray(logits), 2)
    kept = jnp.ones(experts.shape, bool)
    return float(router_aux(jnp.asarray(logits), probs, experts, kept)["lb_loss"])


def test_load_balancing_loss_minimal_when_uniform_and_grows_with_imbalance():
    s, e = 64, 4
    losses = []
    for share in (0.25, 0.5, 0.75, 1.0):  # fraction of tokens whose first choice is expert 0
        n0 = int(share * s)
        choice = np.concatenate([np.zeros(n0, int), np.arange(s - n0) % (e - 1) + 1])
        losses.append(_lb_loss(5.0 * np.eye(e)[choice][None]))
    assert losses[0] == pytest.approx(1.0, abs=1e-5)  # perfectly balanced: the minimum, 1.0
    assert _lb_loss(np.zeros((1, s, e))) == pytest.approx(1.0, abs=1e-5)  # uniform probabilities too
    assert all(b > a + 0.05 for a, b in itertools.pairwise(losses))
    assert losses[-1] == pytest.approx(e * 1.0, rel=0.05)  # all on one expert: about E


@pytest.mark.parametrize("dispatch", ["einsum", "sort"])
def test_gradients_reach_router(make_config, dispatch):
    cfg = make_config(num_experts=4, dispatch=dispatch)
    x = jax.random.normal(jax.random.key(4), (2, 16, cfg.embed_dim))
    graphdef, state = nnx.split(MoE(cfg, rngs=nnx.Rngs(0)))

    def task_loss(state):  # no auxiliary losses: the gates alone must carry gradient to the router
        return jnp.sum(nnx.merge(graphdef, state)(x)[0] ** 2)

    grads = jax.jit(jax.grad(task_loss))(state)
    assert float(jnp.abs(grads["router"][...]).max()) > 1e-6


@pytest.mark.parametrize("preset", [name for name, cfg in PRESETS.items() if name.startswith("glam") and cfg.is_moe])
def test_glam_presets_have_gshard_capacity(preset):
    """GLaM's capacity: 2S/E slots per expert per group; S = 1024 tokens, E = 64 experts -> 32."""
    cfg = PRESETS[preset]
    assert cfg.num_experts == 64 and cfg.k == 2 and cfg.dispatch == "sort"
    assert cfg.capacity(1024) == 32 == 2 * 1024 // 64


def test_capacity_and_z_loss_definitions(make_config):
    cfg = make_config(num_experts=16, capacity_factor=2.0)
    assert cfg.k == 2 and cfg.capacity(1024) == 256
    assert make_config(num_experts=16).capacity(1024) == 128  # default factor 1.0: 2S/E
    assert make_config(num_experts=3, capacity_factor=1.25).capacity(10) == math.ceil(1.25 * 10 * 2 / 3)
    assert make_config(num_experts=1).k == 1
    logits = jax.random.normal(jax.random.key(5), (2, 8, 4))
    experts, _, probs = route(logits, 2)
    aux = router_aux(logits, probs, experts, jnp.ones(experts.shape, bool))
    want = np.mean(np.log(np.exp(np.asarray(logits)).sum(-1)) ** 2)
    assert float(aux["z_loss"]) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------------------------- plain reference
def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))  # jax.nn.gelu's tanh form


def _reference_moe(x, router, wi, wo, k, capacity, valid):
    """Token by token in float64: top-k of the softmax router, renormalised gates, GShard slot filling (first
    choices in token order, then second choices; padding skipped), output = sum of kept gates x expert FFN.
    `capacity` None: no limit. x [G, S, M] -> (y [G, S, M], kept [G, S, k])."""
    x = np.asarray(x, np.float64)
    e = router.shape[1]
    logits = x @ np.asarray(router, np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    choice = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    gates = np.take_along_axis(probs, choice, -1)
    gates = gates / gates.sum(-1, keepdims=True) if k > 1 else gates
    kept = _reference_plan(choice, capacity, e, valid)
    y = np.zeros_like(x)
    for gi, si, j in zip(*np.nonzero(kept), strict=True):
        ei = choice[gi, si, j]
        ffn = _gelu(x[gi, si] @ np.asarray(wi[ei], np.float64)) @ np.asarray(wo[ei], np.float64)
        y[gi, si] += gates[gi, si, j] * ffn
    return y, kept


def _layer_and_reference(cfg, x, valid=None):
    moe = MoE(cfg, rngs=nnx.Rngs(0))
    g = cfg.num_groups
    valid_g = np.ones(x.shape[:2], bool) if valid is None else np.asarray(valid)
    graphdef, state = nnx.split(moe)
    y, aux = jax.jit(lambda s, x, v: nnx.merge(graphdef, s)(x, v))(state, x, valid_g if valid is not None else None)
    capacity = None if cfg.dispatch == "dropless" else cfg.capacity(x.size // x.shape[-1] // g)
    want_y, want_kept = _reference_moe(np.asarray(x).reshape(g, -1, x.shape[-1]), moe.router[...], moe.wi[...],
                                       moe.wo[...], cfg.k, capacity, valid_g.reshape(g, -1))
    return moe, np.asarray(y), aux, want_y.reshape(x.shape), want_kept


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("capacity_factor", [1.0, 0.5])
def test_every_mode_equals_the_per_token_reference(make_config, mode, capacity_factor):
    cfg = make_config(num_experts=8, capacity_factor=capacity_factor, num_groups=2, dropless_block=4, **mode)
    x = jax.random.normal(jax.random.key(6), (4, 16, cfg.embed_dim))
    _, y, aux, want_y, want_kept = _layer_and_reference(cfg, x)
    np.testing.assert_allclose(y, want_y, atol=1e-5, rtol=1e-4)
    dropped = 1.0 - want_kept.mean()
    assert float(aux["dropped_fraction"]) == pytest.approx(dropped, abs=1e-6)
    if cfg.dispatch == "dropless":
        assert dropped == 0.0
    elif capacity_factor < 1:
        assert dropped > 0.4  # the capacity modes did drop, exactly where the reference does


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_padding_takes_no_slot_and_changes_no_real_token(make_config, mode):
    """Padding inside groups (segment id 0) is routed nowhere: real tokens keep the reference's slots (computed
    as if the padding were absent), padding outputs are zero, and neither its values nor its count move any
    real token's output, loss or statistic."""
    cfg = make_config(num_experts=4, capacity_factor=0.5, num_groups=2, dropless_block=4, **mode)
    x = jax.random.normal(jax.random.key(7), (4, 16, cfg.embed_dim))
    valid = np.asarray(jax.random.uniform(jax.random.key(8), (4, 16)) > 0.4)
    _, y, aux, want_y, _ = _layer_and_reference(cfg, x, valid)
    np.testing.assert_allclose(y, want_y, atol=1e-5, rtol=1e-4)
    assert (y[~valid] == 0).all()
    other = jnp.where(jnp.asarray(valid)[..., None], x, 3.0 * jax.random.normal(jax.random.key(9), x.shape))
    _, y2, aux2, _, _ = _layer_and_reference(cfg, other, valid)
    np.testing.assert_array_equal(y2[valid], y[valid])
    for key in aux:
        np.testing.assert_allclose(np.asarray(aux2[key]), np.asarray(aux[key]), rtol=1e-6, atol=1e-7)


def test_routing_statistics_ignore_padding():
    g, s, e = 2, 8, 4
    logits = jax.random.normal(jax.random.key(10), (g, s, e))
    valid = np.zeros((g, s), bool)
    valid[0, :5] = True  # group 1 holds only padding
    experts, _, probs = route(logits, 2, jnp.asarray(valid))
    assert (np.asarray(experts)[~valid] == e).all()  # routed to no expert
    kept = jnp.asarray(np.asarray(experts) < e)
    aux = router_aux(logits, probs, experts, kept, jnp.asarray(valid))
    real = router_aux(logits[:1, :5], probs[:1, :5], experts[:1, :5], kept[:1, :5])  # the real tokens alone
    for key in real:
        np.testing.assert_allclose(np.asarray(aux[key]), np.asarray(real[key]), rtol=1e-6, atol=1e-7)
    assert float(aux["dropped_fraction"]) == 0.0 and float(aux["expert_load"].sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("impl", ["blocks", "ragged"])
@pytest.mark.parametrize("block", [1, 3, 8])
def test_dropless_keeps_every_token_when_all_route_to_one_expert(make_config, impl, block):
    cfg = make_config(num_experts=8, num_groups=2, dispatch="dropless", dropless_impl=impl, dropless_block=block)
    moe = MoE(cfg, rngs=nnx.Rngs(0))
    moe.router[...] = moe.router[...].at[0, 3].set(100.0)  # feature 0 is large for every token: expert 3 first
    x = jax.random.normal(jax.random.key(11), (2, 16, cfg.embed_dim)).at[..., 0].set(5.0)
    y, aux = moe(x)
    experts, _, _ = route(jnp.einsum("gsm,me->gse", x, moe.router[...]), 2)
    assert (np.asarray(experts)[..., 0] == 3).all()
    assert float(aux["dropped_fraction"]) == 0.0 and float(aux["dropped_tokens"]) == 0.0
    want, kept = _reference_moe(np.asarray(x), moe.router[...], moe.wi[...], moe.wo[...], 2, None,
                                np.ones((2, 16), bool))
    assert kept.all()
    np.testing.assert_allclose(np.asarray(y), want, atol=1e-5, rtol=1e-4)
    capped = MoE(make_config(num_experts=8, num_groups=2), rngs=nnx.Rngs(0))  # the capacity mode drops here
    capped.router[...] = moe.router[...]
    assert float(capped(x)[1]["dropped_fraction"]) > 0.4


def test_dropless_buffer_holds_the_worst_case():
    """Each expert's run starts on a block boundary: A assignments over E experts need at most
    A + E x (block - 1) rows, rounded up to whole blocks."""
    assert dropless_rows(64, 8, 1) == 64
    assert dropless_rows(64, 8, 4) == 88
    assert dropless_rows(10, 4, 8) == 40  # ceil((10 + 28) / 8) = 5 blocks
    x = jnp.ones((1, 10, 2))
    experts = jnp.asarray([[[0, 1], [2, 3]] * 5], jnp.int32)  # 5 assignments each to experts 0..3
    seen = {}

    def grouped(rows, block_expert, group_sizes):
        seen.update(rows=rows, block_expert=block_expert, group_sizes=group_sizes)
        return rows

    y, kept = dropless_dispatch(x, experts, jnp.full((1, 10, 2), 0.5), 4, 8, grouped)
    assert np.asarray(kept).all() and seen["rows"].shape == (dropless_rows(20, 4, 8), 2) == (48, 2)
    np.testing.assert_array_equal(np.asarray(seen["block_expert"]), [0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(np.asarray(seen["group_sizes"]), [8, 8, 8, 24])  # the tail goes to the last
    np.testing.assert_allclose(np.asarray(y), 1.0)  # identity experts, gates summing to one
