import jax
import jax.numpy as jnp
import numpy as np

from data_specs.specs import LossSpec
from train.losses import chunked_token_terms, objective, per_component, token_terms


def _batch():
    targets = jnp.array([[1, 2, 3, 0]])
    return {"targets": targets, "weights": jnp.array([[1.0, 1.0, 0.0, 0.0]])}


def test_objective_masks_padding_and_weights_each_term():
    logits = jax.random.normal(jax.random.key(0), (1, 4, 8)) * 3
    aux = {"lb_loss": jnp.float32(1.5), "z_loss": jnp.float32(4.0)}
    spec = LossSpec(load_balance=0.01, router_z=0.001, logit_z=1e-4)
    batch = _batch()
    total, parts = objective(*token_terms(logits, batch["targets"], batch["weights"]), aux, spec,
                             num_tokens=jnp.float32(2))
    lse = jax.nn.logsumexp(logits[0, :2], axis=-1)
    ce = lse - jnp.array([logits[0, 0, 1], logits[0, 1, 2]])
    np.testing.assert_allclose(parts["ce"], ce.mean(), rtol=1e-6)
    np.testing.assert_allclose(parts["logit_z"], jnp.mean(lse**2), rtol=1e-6)
    np.testing.assert_allclose(total, ce.mean() + 0.01 * 1.5 + 0.001 * 4.0 + 1e-4 * jnp.mean(lse**2), rtol=1e-6)
    # Positions with weight 0 (padding, document boundaries) cannot move the loss.
    poisoned = logits.at[0, 2:].set(1e4)
    terms = token_terms(poisoned, batch["targets"], batch["weights"])
    np.testing.assert_allclose(objective(*terms, aux, spec, jnp.float32(2))[0], total, rtol=1e-6)


def test_per_component_sums_and_counts():
    ce = jnp.array([[1.0, 2.0, 3.0, 4.0]])
    sums, counts = per_component(ce, jnp.array([[0, 1, 1, -1]]), 2)
    assert sums.tolist() == [1.0, 5.0] and counts.tolist() == [1.0, 2.0]


def test_padding_rows_change_no_real_output_and_no_loss():
    """Rows of padding (segment id 0) appended to a batch leave the real rows' logits and every loss term as they
    were: padding takes no expert slot and counts in no routing loss (groups of two rows, so the real rows keep
    their routing groups)."""
    from flax import nnx

    from model.config import ModelConfig
    from model.transformer import Transformer
    from train.data import make_batch

    cfg = ModelConfig(vocab_size=64, num_layers=2, embed_dim=32, mlp_dim=64, num_heads=2, head_dim=16,
                      num_experts=4, capacity_factor=0.5, group_size=32, dtype="float32", relpos_buckets=8,
                      relpos_max_distance=16)
    graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 64, (4, 16))
    segments = np.repeat([[1] * 10 + [2] * 6], 4, axis=0)
    segments[3, 12:] = 0  # a padded tail inside a real row, too
    positions = np.concatenate([np.arange(10), np.arange(6)])[None].repeat(4, 0)
    spec = LossSpec(load_balance=0.01, router_z=0.001, logit_z=1e-4)

    @jax.jit
    def run(batch):
        logits, aux = nnx.merge(graphdef, state)(batch["tokens"], batch["segment_ids"])
        terms = token_terms(logits, batch["targets"], batch["weights"])
        return logits, aux, objective(*terms, aux, spec, batch["weights"].sum())

    real = make_batch(tokens, segments, positions, np.zeros_like(tokens))
    padded = make_batch(np.concatenate([tokens, rng.integers(0, 64, (2, 16))]),
                        np.concatenate([segments, np.zeros((2, 16), int)]),
                        np.concatenate([positions, np.zeros((2, 16), int)]), np.zeros((6, 16), int))
    logits, aux, (total, parts) = run(real)
    logits_p, aux_p, (total_p, parts_p) = run(padded)
    assert float(aux["dropped_fraction"].mean()) > 0.1  # capacity is tight: a slot taken by padding would show
    np.testing.assert_allclose(np.asarray(logits_p[:4]), np.asarray(logits), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(total_p), float(total), rtol=1e-6)
    for key in parts:
        np.testing.assert_allclose(float(parts_p[key]), float(parts[key]), rtol=1e-6, atol=1e-9)
    for key in ("lb_loss", "z_loss", "dropped_fraction", "dropped_tokens", "expert_load", "router_entropy"):
        np.testing.assert_allclose(np.asarray(aux_p[key]), np.asarray(aux[key]), rtol=1e-6, atol=1e-7)


def test_chunked_terms_equal_the_full_computation_in_value_and_gradient():
    """Chunked cross-entropy and logit z-loss (uneven last chunk included) equal the terms of the full float32
    logits, and so do their gradients with respect to the states and the output embedding."""
    b, t, m, v = 3, 37, 16, 50
    keys = jax.random.split(jax.random.key(1), 4)
    hidden = jax.random.normal(keys[0], (b, t, m))
    table = jax.random.normal(keys[1], (v, m))
    targets = jax.random.randint(keys[2], (b, t), 0, v)
    weights = (jax.random.uniform(keys[3], (b, t)) > 0.2).astype(jnp.float32)

    def loss(hidden, table, chunk):
        logits_fn = lambda h: jnp.einsum("btm,vm->btv", h, table)  # noqa: E731
        if chunk:
            ce, lse2 = chunked_token_terms(hidden, logits_fn, targets, weights, chunk)
        else:
            ce, lse2 = token_terms(logits_fn(hidden), targets, weights)
        return ce.sum() + 1e-1 * lse2.sum(), (ce, lse2)

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2)
    (full, (ce, lse2)), grads = grad(hidden, table, 0)
    for chunk in (8, 37, 64):
        (value, (ce_c, lse2_c)), grads_c = grad(hidden, table, chunk)
        np.testing.assert_allclose(np.asarray(ce_c), np.asarray(ce), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(lse2_c), np.asarray(lse2), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(value), float(full), rtol=1e-5)
        for a, c in zip(grads, grads_c, strict=True):
            np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=1e-5, atol=1e-5)
