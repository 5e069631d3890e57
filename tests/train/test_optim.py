import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from data_specs.specs import OptimizerSpec
from train.optim import beta2_schedule, make_optimizer, make_schedule, state_specs


def test_schedule_is_constant_then_inverse_square_root():
    lr = make_schedule(OptimizerSpec(), total_steps=100_000)
    # count is 0-based; the paper's t = count + 1.
    assert np.isclose(lr(0), 0.01) and np.isclose(lr(9_999), 0.01)
    assert np.isclose(lr(39_999), 0.01 * np.sqrt(10_000 / 40_000))
    warm = make_schedule(OptimizerSpec(warmup_steps=10, constant_steps=100), 1000)
    assert np.isclose(warm(4), 0.005) and np.isclose(warm(50), 0.01)


def test_second_moment_decay_is_capped():
    decay = beta2_schedule(0.99)
    assert float(decay(0, 0.8)) == 0.0  # t = 1: the first step's second moment is g^2 itself
    assert np.isclose(float(decay(9, 0.8)), 1 - 10**-0.8)
    assert float(decay(100_000, 0.8)) == np.float32(0.99)


def test_adafactor_is_factored_momentum_free_and_clips_updates():
    params = {"w": jnp.ones((256, 512)) * 0.05, "b": jnp.ones((4,))}
    tx = make_optimizer(OptimizerSpec(), total_steps=10)
    state = tx.init(params)
    shapes = sorted(tuple(x.shape) for x in jax.tree.leaves(state))
    assert (256,) in shapes and (512,) in shapes and (256, 512) not in shapes  # factored; no momentum copy
    grads = {"w": jnp.zeros((256, 512)).at[0, 0].set(1e6), "b": jnp.full((4,), 1e6)}
    updates, _ = tx.update(grads, state, params)
    # Clipped to block RMS 1, then scaled by lr and the parameter's RMS.
    rms = float(jnp.sqrt(jnp.mean(updates["w"] ** 2)))
    assert rms <= 0.01 * 0.05 * 1.0001 and rms > 0
    adamw = make_optimizer(OptimizerSpec(kind="adamw"), 10)
    assert any(x.shape == (256, 512) for x in jax.tree.leaves(adamw.init(params)))


def test_optimizer_state_shards_like_its_parameters():
    params = {"wi": jax.ShapeDtypeStruct((16, 256, 1024), jnp.float32), "scale": jax.ShapeDtypeStruct((256,),
                                                                                                      jnp.float32)}
    specs = {"wi": P("expert", None, "model"), "scale": P(None)}
    tx = make_optimizer(OptimizerSpec(), 10)
    abstract = jax.eval_shape(tx.init, params)
    out = state_specs(tx, abstract, params, specs)
    factored = out[0]  # scale_by_factored_rms: (count, v_row, v_col, v)
    assert factored.v_row["wi"] == P("expert", None)  # the 1024 dim reduced away
    assert factored.v_col["wi"] == P("expert", "model")  # the 256 dim reduced away
    assert factored.v["scale"] == P(None) and factored.count == P()
    adamw = make_optimizer(OptimizerSpec(kind="adamw"), 10)
    adam_specs = state_specs(adamw, jax.eval_shape(adamw.init, params), params, specs)
    assert P("expert", None, "model") in jax.tree.leaves(adam_specs, is_leaf=lambda x: isinstance(x, P))
