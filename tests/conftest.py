"""Small netCDF fixtures written by the tests themselves (synthetic values), and
comparisons of runs."""

import atexit
import hashlib
import os
import shutil
import tempfile

# The tests compile hundreds of small programs and run each a few times: XLA's
# CPU backend compiles them about twice as fast without LLVM's optimisations
# (as the golden replays and the distributed tests do too), and their tiny
# arrays gain nothing from Eigen's threads while two test processes share two
# cores. Set before JAX starts its backend; subprocesses and notebook kernels
# inherit it.
FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_multi_thread_eigen=false"
)
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

# One JAX compilation cache for the session, new each time, shared by its test
# processes and their subprocesses (the `stconv` commands the tests run, the
# notebooks' kernels): the first process (pytest, or xdist's controller) makes it
# and removes it at exit, and every process started from it reads its path from
# the environment (JAX's ``JAX_COMPILATION_CACHE_DIR``). The tiny runs that many
# tests train, in any process, compile the same programs, which are then compiled
# once. Programs that compile in under 0.1 s (op-by-op dispatch) are not written:
# writing each costs more than compiling it again. Tests that count compilations in
# a subprocess take the cache out of its environment (`without_compilation_cache`).
CACHE_ENVIRONMENT = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
if "STCONV_TESTS_JAX_CACHE" not in os.environ:
    os.environ["STCONV_TESTS_JAX_CACHE"] = tempfile.mkdtemp(prefix="stconv-tests-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["STCONV_TESTS_JAX_CACHE"], ignore_errors=True)
COMPILATION_CACHE = os.environ["STCONV_TESTS_JAX_CACHE"]
os.environ.update(CACHE_ENVIRONMENT, JAX_COMPILATION_CACHE_DIR=COMPILATION_CACHE)
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def without_compilation_cache(environment: dict) -> dict:
    """``environment`` without the session's compilation cache: a process that
    counts its compilations compiles everything itself."""
    return {
        key: value
        for key, value in environment.items()
        if key not in CACHE_ENVIRONMENT and key != "JAX_COMPILATION_CACHE_DIR"
    }


# The test files that take longest (`pytest --durations=0`), longest first. Each
# xdist worker runs whole files (``--dist=loadfile``) in this order
# (``--no-loadscope-reorder``; xdist would start the files of most tests first),
# so that no long file starts last and keeps one worker busy while the other waits.
SLOWEST_FILES = (
    "test_reference.py", "test_kills.py", "test_experiment.py", "test_conv_algorithms.py",
    "test_notebooks.py", "test_conv_baselines.py", "test_distributed.py", "test_recurrent.py",
    "test_stconvs2s.py", "test_reproduce.py", "test_ensemble_runs.py", "test_faults.py",
    "test_precision.py", "test_seasons.py", "test_classification.py", "test_variables.py",
    "test_arima.py", "test_provenance.py", "test_benchmark.py", "test_checkpoints.py",
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


# The flags of `tiny_run`: one epoch of a one-layer STConvS2S-R on the synthetic
# dataset (16 x 16, 400 daily steps), no forecast maps, forecasts in batches of 8.
TINY_RUN = (
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--epochs", "1", "--eval-batch-size", "8",
    "--no-maps",
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run (`TINY_RUN`), trained once per test process and shared by
    the tests that read it; a test that writes into a run copies it first
    (``shutil.copytree``). When the session ends, its files must be as trained."""
    from stconv import cli

    workdir = tmp_path_factory.mktemp("tiny") / "run"
    assert cli.main(["train", "--workdir", str(workdir), *TINY_RUN]) == 0
    trained = digest(workdir)
    yield workdir
    assert digest(workdir) == trained, f"a test wrote into the shared {workdir}: copy it first"


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
