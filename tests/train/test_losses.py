import jax
import jax.numpy as jnp
import numpy as np

from data_specs.specs import LossSpec
from train.losses import objective, per_component


def _batch():
    targets = jnp.array([[1, 2, 3, 0]])
    return {"targets": targets, "weights": jnp.array([[1.0, 1.0, 0.0, 0.0]])}


def test_objective_masks_padding_and_weights_each_term():
    logits = jax.random.normal(jax.random.key(0), (1, 4, 8)) * 3
    aux = {"lb_loss": jnp.float32(1.5), "z_loss": jnp.float32(4.0)}
    spec = LossSpec(load_balance=0.01, router_z=0.001, logit_z=1e-4)
    total, parts = objective(logits, aux, _batch(), spec, num_tokens=jnp.float32(2))
    lse = jax.nn.logsumexp(logits[0, :2], axis=-1)
    ce = lse - jnp.array([logits[0, 0, 1], logits[0, 1, 2]])
    np.testing.assert_allclose(parts["ce"], ce.mean(), rtol=1e-6)
    np.testing.assert_allclose(parts["logit_z"], jnp.mean(lse**2), rtol=1e-6)
    np.testing.assert_allclose(total, ce.mean() + 0.01 * 1.5 + 0.001 * 4.0 + 1e-4 * jnp.mean(lse**2), rtol=1e-6)
    # Positions with weight 0 (padding, document boundaries) cannot move the loss.
    poisoned = logits.at[0, 2:].set(1e4)
    np.testing.assert_allclose(objective(poisoned, aux, _batch(), spec, jnp.float32(2))[0], total, rtol=1e-6)


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
        logits, aux = nnx.merge(graphdef, state)(batch["tokens"], batch["segment_ids"], batch["positions"])
        return logits, aux, objective(logits, aux, batch, spec, batch["weights"].sum())

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
