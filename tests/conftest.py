"""Small netCDF fixtures written by the tests themselves (synthetic values), and
comparisons of runs."""

import atexit
import hashlib
import os
import shutil
import tempfile

# The tests compile hundreds of small programs and run each a few times: XLA's
# CPU backend compiles them about twice as fast without LLVM's optimisations
# (as the golden replays and the distributed tests do too). Set before JAX
# starts its backend; subprocesses and notebook kernels inherit it.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

# One JAX compilation cache for the session, new each time and in this process
# only (subprocesses count their own compilations): the tiny runs that many
# tests train compile the same programs, which are then compiled once.
COMPILATION_CACHE = tempfile.mkdtemp(prefix="stconv-tests-jax-cache-")
atexit.register(shutil.rmtree, COMPILATION_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# The test files that take longest (`pytest --durations=0`), longest first. Each
# xdist worker runs whole files (``--dist=loadfile``) in this order
# (``--no-loadscope-reorder``; xdist would start the files of most tests first),
# so that no long file starts last and keeps one worker busy while the other waits.
SLOWEST_FILES = (
    "test_reference.py", "test_conv_algorithms.py", "test_experiment.py", "test_faults.py",
    "test_kills.py", "test_stconvs2s.py", "test_conv_baselines.py", "test_notebooks.py",
    "test_recurrent.py", "test_distributed.py", "test_ensemble_runs.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # the rest as collected


def digest(folder) -> dict:
    """Every file under ``folder`` and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def time_series_dataset(num_steps=30, lat=4, lon=5, variables=("tas",), start="2001-01-01"):
    """A CF dataset whose value at (t, i, j) is 100 * t + 10 * i + j (+ 1000 per variable),
    dimensionless (units ``1``): too large for a temperature in K."""
    t, i, j = np.meshgrid(np.arange(num_steps), np.arange(lat), np.arange(lon), indexing="ij")
    values = (100.0 * t + 10 * i + j).astype(np.float32)
    data_vars = {
        name: (("time", "lat", "lon"), values + 1000 * n, {"units": "1"})
        for n, name in enumerate(variables)
    }
    coords = {
        "time": pd.date_range(start, periods=num_steps, freq="D"),
        "lat": ("lat", np.linspace(-10, 10, lat), {"units": "degrees_north"}),
        "lon": ("lon", np.linspace(0, 40, lon), {"units": "degrees_east"}),
    }
    return xr.Dataset(data_vars, coords)


@pytest.fixture
def series_file(tmp_path):
    path = tmp_path / "series.nc"
    time_series_dataset().to_netcdf(path)
    return str(path)


def paper_format_dataset(num_samples=20, input_steps=15, target_steps=15, lat=4, lon=5):
    """x[s, t] = s + t / 100, y[s, t] = -(s + t / 100); dims (sample, time, lat, lon, channel)."""
    s = np.arange(num_samples)[:, None, None, None, None]
    x = s + np.arange(input_steps)[None, :, None, None, None] / 100 + np.zeros((1, 1, lat, lon, 1))
    y = -(s + np.arange(target_steps)[None, :, None, None, None] / 100) + np.zeros(
        (1, 1, lat, lon, 1)
    )
    dims = ("sample", "time", "lat", "lon", "channel")
    return xr.Dataset({"x": (dims, x.astype(np.float32)), "y": (dims, y.astype(np.float32))})


def checkpoint_arrays(workdir, kind: str) -> list:
    """The ``(path, array)`` leaves of a run's ``latest`` or ``best`` checkpoint."""
    import orbax.checkpoint as ocp

    from stconv.training.checkpoints import Checkpoints

    path = os.path.join(Checkpoints(str(workdir)).path(kind), "state")
    return jax.tree.leaves_with_path(ocp.StandardCheckpointer().restore(path))


def assert_same_checkpoints(left_workdir, right_workdir, kinds=("latest", "best")) -> None:
    """Bit-identical arrays in both runs' checkpoints."""
    for kind in kinds:
        left, right = checkpoint_arrays(left_workdir, kind), checkpoint_arrays(right_workdir, kind)
        assert [path for path, _ in left] == [path for path, _ in right]
        for (path, a), (_, b) in zip(left, right, strict=True):
            assert np.array_equal(raw(a), raw(b)), (kind, path)


def raw(array):
    """The array's values; a PRNG key's bits."""
    if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(array)
    return array
