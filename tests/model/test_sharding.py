import dataclasses
import os
import subprocess
import textwrap

import jax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from model.config import DEFAULT_RULES
from model.sharding import logical_to_spec, param_specs
from model.transformer import Transformer
from tests.conftest import PYTHON, REPO


def test_logical_to_spec_follows_rules_and_mesh():
    assert logical_to_spec(("batch", "length", "embed"), DEFAULT_RULES) == P(("data", "expert"), None, None)
    assert logical_to_spec(("expert", "embed", "mlp"), DEFAULT_RULES) == P("expert", None, "model")
    # A mesh without a `model` axis just replicates model dims; a mesh axis is never used twice.
    assert logical_to_spec(("embed", "mlp"), DEFAULT_RULES, ("data", "expert")) == P(None, None)
    assert logical_to_spec(("expert", "batch"), DEFAULT_RULES) == P("expert", "data")
    two_d = (("batch", "data"), ("expert", "expert"), ("mlp", "model"), ("heads", "model"))
    assert logical_to_spec(("expert", "embed", "mlp"), two_d) == P("expert", None, "model")


@pytest.mark.parametrize("scan", [False, True])
def test_every_parameter_has_logical_axes(make_config, scan):
    cfg = make_config(num_experts=4, scan_layers=scan)
    model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    for var in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable)):
        axes = var.get_metadata().get("logical_axes")
        assert axes is not None and len(axes) == len(var.shape), var
    specs = param_specs(state, DEFAULT_RULES)
    moe = specs["layers"]["blocks"][1] if scan else specs["blocks"][1]
    assert moe["ffn"]["wi"].get_value() == (P(None, "expert", None, "model") if scan else P("expert", None, "model"))
    assert specs["embed"]["embedding"].get_value() == P("model", None)
    # FSDP: every parameter's embed dim is split over the batch axes not already taken (experts keep theirs).
    fsdp = param_specs(state, dataclasses.replace(cfg, fsdp=True).rules)
    moe = fsdp["layers"]["blocks"][1] if scan else fsdp["blocks"][1]
    assert moe["ffn"]["wi"].get_value() == (P(None, "expert", "data", "model") if scan
                                            else P("expert", "data", "model"))
    assert moe["attn"]["wq"].get_value()[-3] == ("data", "expert")
    assert fsdp["embed"]["embedding"].get_value() == P("model", ("data", "expert"))


SCRIPT = textwrap.dedent("""
    import dataclasses, re
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec as P
    from model.config import ModelConfig
    from model.moe import MoE
    from model.sharding import make_mesh, shard_model
    from model.transformer import create_sharded_model
    from model.transformer import Transformer

    assert jax.device_count() == 8, jax.devices()
    base = ModelConfig(vocab_size=64, num_layers=2, embed_dim=32, mlp_dim=64, num_heads=4, head_dim=8,
                       num_experts=4, num_groups=8, capacity_factor=1.0, dtype="float32")
    tokens = jax.random.randint(jax.random.key(0), (8, 32), 0, base.vocab_size)
    mesh = make_mesh(data=2, expert=4)

    def forward(model, tokens):
        graphdef, state = nnx.split(model)
        fn = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t))
        return fn(state, tokens)

    def moe_collectives(cfg):
        # The MoE layer's forward and backward on a (data=2, expert=4) mesh: collective op -> largest operand.
        layer = shard_model(MoE(cfg, rngs=nnx.Rngs(0)), mesh)
        graphdef, state = nnx.split(layer)
        x = jax.device_put(jax.random.normal(jax.random.key(1), (8, 32, 32)),
                           NamedSharding(mesh, P(("data", "expert"))))
        def loss(s, x):
            y, aux = nnx.merge(graphdef, s)(x)
            return jnp.sum(y ** 2) + aux["lb_loss"]
        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(state, x).compile().as_text()
        return re.findall(r"= .*? (all-to-all|all-gather|all-reduce|reduce-scatter|collective-permute)\\(", hlo)

    for dispatch in ("einsum", "sort", "dropless"):
        cfg = dataclasses.replace(base, dispatch=dispatch)
        model = Transformer(cfg, rngs=nnx.Rngs(0))
        ref_logits, ref_aux = forward(model, tokens)
        with jax.set_mesh(mesh):
            sharded = shard_model(model, mesh)
            wi = sharded.blocks[1].ffn.wi[...]
            assert wi.sharding.spec == P("expert", None, "model"), wi.sharding
            assert wi.addressable_shards[0].data.shape == (1, 32, 64)  # one expert per device column
            batch = jax.device_put(tokens, NamedSharding(mesh, P(("data", "expert"))))
            logits, aux = forward(sharded, batch)
            built = create_sharded_model(cfg, mesh, seed=0)  # built in place, same values as a plain init
            assert built.blocks[1].ffn.wi[...].sharding.spec == P("expert", None, "model")
            np.testing.assert_array_equal(np.asarray(built.blocks[1].ffn.wi[...]),
                                          np.asarray(model.blocks[1].ffn.wi[...]))
            if dispatch != "dropless":  # capacity modes: tokens move by all-to-all, never by an all-gather
                ops = moe_collectives(cfg)
                assert "all-to-all" in ops and "all-gather" not in ops, (dispatch, sorted(set(ops)))
        dropped = float(ref_aux["dropped_fraction"].mean())
        assert dropped > 0 if dispatch != "dropless" else dropped == 0.0  # mesh-independent, drops or not
        np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), atol=2e-5, rtol=2e-5)
        for key in ref_aux:
            np.testing.assert_allclose(np.asarray(aux[key]), np.asarray(ref_aux[key]), atol=1e-5)
        print(dispatch, "OK")
""")


@pytest.mark.slow
def test_mesh_forward_equals_single_device():
    """On 8 forced CPU devices, a (data=2, expert=4) mesh gives the single-device forward in every dispatch mode,
    and the capacity modes' MoE layer (forward and backward) exchanges tokens by all-to-all, with no all-gather."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([PYTHON, "-c", SCRIPT], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.count("OK") == 3, proc.stdout + proc.stderr
