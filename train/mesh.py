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


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> bool:
    """Join a multi-host job (`jax.distributed.initialize`) when one is described; False on a single host.

    Explicit settings (arguments, else JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) win; without
    them JAX's own cluster detection runs when it recognises its environment (TPU pods, Slurm, Open MPI,
    Kubernetes) or GLAMKIT_DISTRIBUTED=1 asks for it. Must run before anything touches a JAX device. Processes
    on CPUs exchange collectives through gloo.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not coordinator and not (os.environ.get("GLAMKIT_DISTRIBUTED") == "1" or _cluster_detected()):
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator:
        num_processes = num_processes or int(os.environ["JAX_NUM_PROCESSES"])
        process_id = process_id if process_id is not None else int(os.environ["JAX_PROCESS_ID"])
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    else:
        jax.distributed.initialize()
    return True


def _cluster_detected() -> bool:
    """Whether one of JAX's cluster environments (TPU, Slurm, MPI, k8s) describes this process."""
    try:
        from jax._src import clusters

        return any(env.is_env_present() for env in clusters.ClusterEnv._cluster_types)
    except Exception:  # a private API: if it moves, fall back to explicit settings
        return False
