"""Devices, the data-parallel mesh and where arrays live on it (JAX's own runtime).

Training runs on a `jax.sharding.Mesh` with one axis, ``data``, over all
devices (or the first ``num_devices``). Every global batch is split along
that axis; the model and optimizer state is replicated on every device, or,
FSDP-style, each array of it is split along its largest axis that the device
count divides. The train step is compiled once for the mesh and GSPMD
inserts the reductions: the loss, the gradients and BatchNorm's batch
statistics are those of the whole global batch, as on one device.

Several hosts run one process each (or one per GPU), all the same command:
`maybe_initialize` starts `jax.distributed` when the environment says so,
`jax.devices()` then lists every process's devices, and each process reads
only its own rows of every global batch (`stconv.data.pipeline.epoch_batches`),
which `global_batch` assembles into one array over the mesh.

On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set before
JAX starts) gives 8 host devices to try all of this on.
"""

import os

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from stconv.data.pipeline import pad_rows

DATA_AXIS = "data"


def multi_process_environment(environ: dict | None = None) -> bool:
    """Whether this process is one of several that train together.

    True when ``JAX_COORDINATOR_ADDRESS`` is set, inside a SLURM job step
    (``srun``) of more than one task, under Open MPI with more than one process,
    or when ``STCONV_DISTRIBUTED=1`` asks for JAX's cluster auto-detection
    (multi-host TPU VMs).
    """
    env = os.environ if environ is None else environ
    if env.get("JAX_COORDINATOR_ADDRESS") or env.get("STCONV_DISTRIBUTED") == "1":
        return True
    if "SLURM_STEP_NODELIST" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return True
    return int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1


def maybe_initialize() -> bool:
    """Calls `jax.distributed.initialize` once, before any computation, when
    `multi_process_environment` says so.

    JAX finds the coordinator, the process count and this process's index
    itself on SLURM, Open MPI and Cloud TPU; elsewhere set
    ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.

    Returns:
      True if JAX runs distributed.
    """
    if jax.distributed.is_initialized():
        return True
    if not multi_process_environment():
        return False
    count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
    jax.distributed.initialize(
        num_processes=None if count is None else int(count),
        process_id=None if index is None else int(index),
    )
    return True


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A mesh with one axis, ``data``, over all devices or the first ``num_devices``.

    Raises:
      ValueError: ``num_devices`` is more than there are, or, with several
        processes, not all of them.
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if num_devices > len(devices):
        raise ValueError(
            f"execution.num_devices={num_devices} is invalid: must be at most {len(devices)}, "
            f"the number of {devices[0].platform} devices"
        )
    if jax.process_count() > 1 and num_devices != len(devices):
        raise ValueError(
            f"execution.num_devices={num_devices} is invalid with {jax.process_count()} processes: "
            f"they train on all {len(devices)} devices (leave execution.num_devices unset)"
        )
    return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,))


def describe(mesh: Mesh) -> str:
    """``mesh: 8 cpu devices (data axis), 1 process``."""
    processes = jax.process_count()
    platform = mesh.devices.flat[0].platform
    return (
        f"mesh: {mesh.size} {platform} device{'s' * (mesh.size > 1)} ({DATA_AXIS} axis), "
        f"{processes} process{'es' * (processes > 1)}"
    )


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raises a ValueError unless ``batch_size`` splits evenly over the mesh's
    devices (and so over the processes)."""
    if batch_size % mesh.size:
        raise ValueError(
            f"training.batch_size={batch_size} is invalid on {mesh.size} devices: choose a "
            f"multiple of {mesh.size}, or execution.num_devices=N with N dividing {batch_size}"
        )


def is_primary() -> bool:
    """Whether this is process 0, the one that writes the run's files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits for every process to reach this point (nothing with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over the ``data`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def fsdp_spec(shape: tuple[int, ...], num_devices: int) -> P:
    """The FSDP placement of one array: split along its largest axis that
    ``num_devices`` divides; replicated if there is none (scalars, small biases)."""
    axes = [a for a, size in enumerate(shape) if size % num_devices == 0]
    if not axes or num_devices == 1:
        return P()
    axis = max(axes, key=lambda a: shape[a])  # the first of equally large axes
    return P(*[DATA_AXIS if a == axis else None for a in range(len(shape))])


def state_shardings(state: nnx.State, mesh: Mesh, fsdp: bool = False) -> nnx.State:
    """The sharding of every array of ``state``: replicated, or `fsdp_spec`'s.

    Args:
      state: model and optimizer state (any pytree of arrays).
      mesh: the `data_mesh`.
      fsdp: split each array over the devices instead of replicating it.

    Returns:
      A pytree like ``state`` of `NamedSharding`s.
    """
    if not fsdp:
        return jax.tree.map(lambda _: replicated(mesh), state)
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, mesh.size)), state)


def place_state(state: nnx.State, mesh: Mesh, fsdp: bool = False) -> nnx.State:
    """``state`` (the same on every process) placed on the mesh as `state_shardings` says."""
    return jax.tree.map(put, state, state_shardings(state, mesh, fsdp))


def put(array: jax.Array, sharding: NamedSharding) -> jax.Array:
    """``array``, the same on every process, placed as ``sharding`` says; each
    process fills its own devices (`jax.device_put` cannot reach other hosts')."""
    if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        data = put(jax.random.key_data(array), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(array))
    host = np.asarray(array)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def global_batch(local_batch: dict, mesh: Mesh, whole: bool = False) -> dict[str, jax.Array]:
    """One global batch over the mesh from this process's rows of it.

    Each process passes its consecutive share of the rows (process 0 the
    first); the global batch has ``process_count`` times as many; or, if
    ``whole``, every process passes the whole batch (the last, smaller batch
    of an epoch). A batch whose rows the device count does not divide is
    replicated instead of split: the same result, one more compilation.

    Raises:
      ValueError: several processes and shares that do not split over the devices.
    """
    if whole:
        return {key: split_or_replicated(value, mesh) for key, value in local_batch.items()}
    rows = len(next(iter(local_batch.values()))) * jax.process_count()
    if rows % mesh.size == 0:
        sharding = batch_sharding(mesh)
    elif jax.process_count() == 1:
        sharding = replicated(mesh)
    else:
        raise ValueError(
            f"a global batch of {rows} rows does not split over {mesh.size} devices: "
            "with several processes every batch must"
        )
    return {
        key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for key, value in local_batch.items()
    }


def split_or_replicated(rows: np.ndarray, mesh: Mesh) -> jax.Array:
    """``rows`` that every process holds in full, split over the mesh's devices
    if their count divides them, else replicated."""
    rows = np.asarray(rows)
    sharding = batch_sharding(mesh) if len(rows) % mesh.size == 0 else replicated(mesh)
    return jax.make_array_from_callback(rows.shape, sharding, lambda index: rows[index])


def split_rows(inputs: np.ndarray, mesh: Mesh) -> jax.Array:
    """A batch that every process holds in full, split over the mesh's devices;
    zero rows are appended to make the device count divide it (forward passes:
    the caller drops their outputs)."""
    inputs = np.asarray(inputs)
    inputs = pad_rows(inputs, len(inputs) + -len(inputs) % mesh.size)
    return jax.make_array_from_callback(inputs.shape, batch_sharding(mesh), lambda i: inputs[i])
