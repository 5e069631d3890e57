"""The train state and the jitted train/eval steps.

The state is a plain pytree, {params, opt, step, skipped, rng}, so Orbax saves it as is and jit can pin its
shardings: parameters by the model's logical axis rules, optimizer statistics like their parameters, counters
replicated. One step: gradients over `grad_accum` micro-batches (a scan; token terms divided by the whole
batch's token count, so accumulation matches one big batch), then the update, which is discarded (and
counted in `skipped`) when the gradients or the loss hold NaN/Inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_specs.specs import LossSpec
from model.config import ModelConfig
from model.sharding import param_specs
from model.transformer import Transformer, create_sharded_model
from train.losses import chunked_token_terms, objective, per_component
from train.optim import state_specs

State = dict[str, Any]
STATS = ("expert_load", "dropped_fraction", "router_entropy")


def state_layout(config: ModelConfig, mesh: Mesh, tx: optax.GradientTransformation) -> tuple[Any, State, State]:
    """(graphdef, abstract state, state shardings), from shapes alone: nothing is allocated, so a layout (and a
    compiled step, train/plan.py) exists for a model no device here could hold. Parameters shard by the model's
    logical-axis rules, optimizer statistics like their parameters, counters are replicated."""
    graphdef, variables = nnx.split(nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0))))
    params = nnx.to_pure_dict(variables)
    pspecs = nnx.to_pure_dict(param_specs(variables, config.rules, mesh.axis_names))
    opt = jax.eval_shape(tx.init, params)
    ospecs = state_specs(tx, opt, params, pspecs)
    named = lambda spec: NamedSharding(mesh, spec)  # noqa: E731
    is_spec = lambda x: isinstance(x, PartitionSpec)  # noqa: E731
    replicated = named(PartitionSpec())
    shardings = {
        "params": jax.tree.map(named, pspecs, is_leaf=is_spec),
        "opt": jax.tree.map(named, ospecs, is_leaf=is_spec),
        "step": replicated, "skipped": replicated, "rng": replicated,
    }
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    shapes = {"params": params, "opt": opt, "step": scalar, "skipped": scalar,
              "rng": jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))}
    return graphdef, abstract_state(shapes, shardings), shardings


def init_state(config: ModelConfig, mesh: Mesh, tx: optax.GradientTransformation, seed: int
               ) -> tuple[Any, State, State]:
    """(graphdef, state, state shardings): parameters built in place on the mesh, optimizer state beside them."""
    graphdef, _, shardings = state_layout(config, mesh, tx)
    params = nnx.to_pure_dict(nnx.state(create_sharded_model(config, mesh, seed)))
    replicated = shardings["step"]
    with jax.set_mesh(mesh):
        opt = jax.jit(tx.init, out_shardings=shardings["opt"])(params)
        state = {
            "params": params, "opt": opt,
            "step": jax.device_put(jnp.zeros((), jnp.int32), replicated),
            "skipped": jax.device_put(jnp.zeros((), jnp.int32), replicated),
            "rng": jax.device_put(jax.random.key_data(jax.random.key(seed)), replicated),
        }
    return graphdef, state, shardings


def abstract_state(state: State, shardings: State) -> State:
    """ShapeDtypeStructs with shardings: the target Orbax restores into."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


def output_logits(model: Transformer) -> Callable[[jax.Array], jax.Array]:
    """States -> float32 logits with the output table prepared once, for the chunked loss to call per chunk."""
    table = model.embed.output_table()
    return lambda hidden: model.embed.attend(hidden, table)


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(graphdef: Any, tx: optax.GradientTransformation, schedule: optax.Schedule, loss: LossSpec,
                    grad_accum: int, skip_nonfinite: bool, shardings: State, batch_sharding: NamedSharding
                    ) -> Callable[[State, dict[str, jax.Array]], tuple[State, dict[str, jax.Array]]]:
    def loss_fn(params: Any, mb: dict[str, jax.Array], num_tokens: jax.Array
                ) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, jax.Array]]]:
        model = nnx.merge(graphdef, params)
        hidden, aux = model.hidden(mb["tokens"], mb["segment_ids"])
        ce, lse2 = chunked_token_terms(hidden, output_logits(model), mb["targets"], mb["weights"], loss.chunk)
        total, parts = objective(ce, lse2, aux, loss, num_tokens, 1.0 / grad_accum)
        return total, (parts, {k: aux[k] / grad_accum for k in STATS})

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state: State, batch: dict[str, jax.Array]) -> tuple[State, dict[str, jax.Array]]:
        params = state["params"]
        num_tokens = batch["weights"].sum()
        if grad_accum == 1:
            (total, (parts, stats)), grads = grad_fn(params, batch, num_tokens)
        else:
            # Micro-batch j takes rows j, j + A, ...: every device keeps an equal share of each micro-batch.
            def split(x: jax.Array) -> jax.Array:
                x = x.reshape(x.shape[0] // grad_accum, grad_accum, *x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(
                    x, NamedSharding(batch_sharding.mesh, PartitionSpec(None, *batch_sharding.spec)))

            micro = jax.tree.map(split, batch)

            def body(carry: Any, mb: dict[str, jax.Array]) -> tuple[Any, None]:
                (total, (parts, stats)), grads = grad_fn(params, mb, num_tokens)
                return jax.tree.map(jnp.add, carry, (total, parts, stats, grads)), None

            (total, (parts, stats)), grads = grad_fn(params, jax.tree.map(lambda x: x[0], micro), num_tokens)
            rest = jax.tree.map(lambda x: x[1:], micro)
            (total, parts, stats, grads), _ = jax.lax.scan(body, (total, parts, stats, grads), rest)
        finite = _all_finite(grads) & jnp.isfinite(total)
        updates, opt = tx.update(grads, state["opt"], params)
        new_params = optax.apply_updates(params, updates)
        if skip_nonfinite:
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
            new_params = jax.tree.map(keep, new_params, params)
            opt = jax.tree.map(keep, opt, state["opt"])
        applied = state["step"] - state["skipped"]  # optimizer updates so far = the schedule's count
        new_state = {
            "params": new_params, "opt": opt,
            "step": state["step"] + 1,
            "skipped": state["skipped"] + (~finite).astype(jnp.int32) if skip_nonfinite else state["skipped"],
            "rng": jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])),
        }
        metrics = {"loss": total, **parts, "grad_norm": optax.tree.norm(grads), "lr": schedule(applied),
                   "finite": finite, "skipped": new_state["skipped"], "tokens": num_tokens, **stats}
        return new_state, metrics

    return jax.jit(step, out_shardings=(shardings, None), donate_argnums=0)


def make_eval_step(graphdef: Any, num_components: int, loss: LossSpec
                   ) -> Callable[[Any, dict[str, jax.Array]], dict[str, jax.Array]]:
    """Summed cross-entropy and token counts, overall and per mixture component, of one validation batch."""

    def evaluate(params: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        model = nnx.merge(graphdef, params)
        hidden, _ = model.hidden(batch["tokens"], batch["segment_ids"])
        ce, _ = chunked_token_terms(hidden, output_logits(model), batch["targets"], batch["weights"], loss.chunk)
        sums, counts = per_component(ce, batch["components"], num_components)
        return {"ce_sum": ce.sum(), "tokens": batch["weights"].sum(), "component_sums": sums,
                "component_counts": counts}

    return jax.jit(evaluate)
