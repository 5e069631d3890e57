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
