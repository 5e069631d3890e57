import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model.moe import MoE, einsum_dispatch, route, router_aux, sort_dispatch

DISPATCHES = [einsum_dispatch, sort_dispatch]


def _reference_plan(experts: np.ndarray, capacity: int, num_experts: int) -> np.ndarray:
    """Plain-Python GShard slot filling: first choices in token order, then second choices."""
    g, s, k = experts.shape
    kept = np.zeros((g, s, k), bool)
    for gi in range(g):
        load = [0] * num_experts
        for j in range(k):
            for si in range(s):
                e = experts[gi, si, j]
                if load[e] < capacity:
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


@pytest.mark.parametrize("capacity_factor", [2.0, 0.5])
def test_dispatch_implementations_agree(make_config, capacity_factor):
    x = jax.random.normal(jax.random.key(2), (4, 32, 32))
    r = jax.random.normal(jax.random.key(3), x.shape)
    runs = {}
    for d in ("einsum", "sort"):
        cfg = make_config(num_experts=8, capacity_factor=capacity_factor, num_groups=4, dispatch=d)
        runs[d] = _loss_and_grads(cfg, x, r)
    (y1, aux1, g1), (y2, aux2, g2) = runs["einsum"], runs["sort"]
    if capacity_factor < 1:
        assert float(aux1["dropped_fraction"]) >= 0.10
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


def test_capacity_and_z_loss_definitions(make_config):
    cfg = make_config(num_experts=16, capacity_factor=2.0)
    assert cfg.k == 2 and cfg.capacity(1024) == 256
    assert make_config(num_experts=3, capacity_factor=1.25).capacity(10) == math.ceil(1.25 * 10 * 2 / 3)
    assert make_config(num_experts=1).k == 1
    logits = jax.random.normal(jax.random.key(5), (2, 8, 4))
    experts, _, probs = route(logits, 2)
    aux = router_aux(logits, probs, experts, jnp.ones(experts.shape, bool))
    want = np.mean(np.log(np.exp(np.asarray(logits)).sum(-1)) ** 2)
    assert float(aux["z_loss"]) == pytest.approx(want, rel=1e-5)
