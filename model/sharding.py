"""Logical axis names -> mesh axes.

Parameters carry logical axis names as `nnx.Param(..., logical_axes=(...))` metadata and major activations
are constrained with `constrain(x, names, rules)`. The rules (ModelConfig.sharding_rules) map names onto a
mesh with axes (data, expert, model); a rule naming a mesh axis that the current mesh lacks is ignored, and
without a mesh every constraint is a no-op. So nothing here assumes a device count, and moving from expert
parallelism to the paper's 2D sharding is a change of mesh shape and rules, not of code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from model.config import DEFAULT_RULES

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]
MESH_AXES = ("data", "expert", "model")


def logical_to_spec(names: Sequence[str | None], rules: Rules = DEFAULT_RULES,
                    mesh_axes: Sequence[str] = MESH_AXES) -> PartitionSpec:
    """PartitionSpec for an array whose dims have logical `names`.

    A mesh axis is used at most once per array (first dim wins), as a PartitionSpec requires.
    """
    table = dict(rules)
    used: set[str] = set()
    spec: list[Any] = []
    for name in names:
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a in mesh_axes and a not in used)
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


def constrain(x: jax.Array, names: Sequence[str | None], rules: Rules) -> jax.Array:
    """with_sharding_constraint by logical names under the current mesh (`jax.set_mesh`); else a no-op."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(names, rules, mesh.axis_names))


def make_mesh(data: int = 1, expert: int = 1, model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A (data, expert, model) mesh with automatic (GSPMD) axis types, laid out on the physical topology.

    `mesh_utils.create_device_mesh` places the axes on the interconnect (ICI rings on TPU, NVLink islands on
    GPU) so that an expert or model axis never straddles hosts when it fits in one; with several slices
    (multi-slice TPU), `create_hybrid_device_mesh` puts the data axis across slices (DCN) and the rest inside each.
    """
    from jax.experimental import mesh_utils

    devices = list(devices if devices is not None else jax.devices())
    n = data * expert * model
    if n > len(devices):
        raise ValueError(f"mesh {data}x{expert}x{model} needs {n} devices, have {len(devices)}")
    devices = devices[:n]
    slices = len({getattr(d, "slice_index", 0) for d in devices})
    if slices > 1 and data % slices == 0:
        grid = mesh_utils.create_hybrid_device_mesh((data // slices, expert, model), (slices, 1, 1), devices)
    else:
        try:
            grid = mesh_utils.create_device_mesh((data, expert, model), devices)
        except (ValueError, NotImplementedError, AssertionError):  # a subset of a topology it cannot tile
            grid = np.asarray(devices).reshape(data, expert, model)
    auto = (jax.sharding.AxisType.Auto,) * 3
    return Mesh(grid, MESH_AXES, axis_types=auto)


def _is_var(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def param_specs(state: Any, rules: Rules, mesh_axes: Sequence[str] = MESH_AXES) -> Any:
    """A tree like `state` (from nnx.state/split) whose Variables hold PartitionSpecs."""
    def spec(v: Any) -> Any:
        if not _is_var(v):
            return PartitionSpec()
        names = v.get_metadata().get("logical_axes")
        return v.replace(logical_to_spec(names, rules, mesh_axes) if names else PartitionSpec())
    return jax.tree.map(spec, state, is_leaf=_is_var)


def param_shardings(state: Any, mesh: Mesh, rules: Rules) -> Any:
    specs = param_specs(state, rules, mesh.axis_names)
    is_spec = lambda x: isinstance(x, PartitionSpec)  # noqa: E731
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=is_spec)


def shard_model(model: Any, mesh: Mesh) -> Any:
    """Move an existing (e.g. single-device) model's parameters onto `mesh` by its config's rules."""
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, param_shardings(state, mesh, model.config.rules))
    return nnx.merge(graphdef, state)
