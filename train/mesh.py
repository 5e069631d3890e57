"""Device meshes: (data, expert, model) from the config, batch placement, multi-host start-up.

The same code path serves one CPU (a 1x1x1 mesh) and a pod: parameters and optimizer state are placed by the
model's logical axis rules, the batch is split over (data, expert) as the model's "batch" rule says, and each
process feeds only its own rows (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_specs.errors import GlamkitError
from data_specs.specs import MeshSpec
from model.sharding import make_mesh


def mesh_shape(spec: MeshSpec, num_devices: int) -> tuple[int, int, int]:
    """(data, expert, model) with one -1 axis taking the remaining devices."""
    sizes = [spec.data, spec.expert, spec.model]
    if sizes.count(-1) > 1:
        raise GlamkitError(f"mesh {sizes}: at most one axis may be -1")
    if -1 in sizes:
        fixed = int(np.prod([s for s in sizes if s != -1]))
        if num_devices % fixed:
            raise GlamkitError(f"mesh {sizes}: {num_devices} devices are not a multiple of {fixed}")
        sizes[sizes.index(-1)] = num_devices // fixed
    if int(np.prod(sizes)) > num_devices or min(sizes) < 1:
        raise GlamkitError(f"mesh data={sizes[0]} expert={sizes[1]} model={sizes[2]} needs "
                           f"{int(np.prod(sizes))} devices; {num_devices} available")
    return sizes[0], sizes[1], sizes[2]


def build_mesh(spec: MeshSpec) -> Mesh:
    data, expert, model = mesh_shape(spec, jax.device_count())
    return make_mesh(data=data, expert=expert, model=model)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows over (data, expert): the model's "batch" rule, so no reshard at the first layer."""
    return NamedSharding(mesh, PartitionSpec(("data", "expert")))


def data_parallel_size(mesh: Mesh) -> int:
    return int(mesh.shape["data"] * mesh.shape["expert"])


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over the mesh's batch axes."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def maybe_init_distributed() -> bool:
    """Join a multi-host job when the environment describes one; a no-op on one host.

    `jax.distributed.initialize()` reads the coordinator, process count and id from the cluster (TPU pods,
    SLURM, Open MPI) or from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("GLAMKIT_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False
