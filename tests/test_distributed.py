"""Data parallelism on forced host CPU devices: 1 vs 8 devices, checkpoints across
device counts, per-process batches, and ``stconv train`` on 2 processes of 4 devices.

The device count is fixed when JAX starts, so the runs compared happen in
subprocesses (``XLA_FLAGS=--xla_force_host_platform_device_count=8``), all at
once: this file run as a script is a worker (`WORKERS`) answering in JSON on
its last line of output; the 2 processes talk through `jax.distributed`.
"""

import contextlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import without_compilation_cache
from flax import nnx
from jax.sharding import PartitionSpec as P

from stconv import cli, models
from stconv.config import Config
from stconv.data.pipeline import epoch_batches
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.training import distributed
from stconv.training.checkpoints import Checkpoints
from stconv.training.step import create_optimizer, make_train_step

BATCH_ROWS = (16, 16, 16, 12)  # 12 rows do not split over 8 devices: replicated
CLI_ARGS = [
    "--num-layers", "1", "--hidden-dim", "8", "--kernel-size", "3", "--dropout", "0.1",
    "--batch-size", "16", "--epochs", "1", "--forecast-samples", "0", "--no-maps",
]  # fmt: skip


def forced_devices(count: int) -> dict:
    """The environment of a CPU-only JAX process with ``count`` host devices.

    LLVM's optimisation is off: XLA compiles the tiny train step 4x faster, and
    every process compared here runs with the same setting.
    """
    flags = f"--xla_force_host_platform_device_count={count} --xla_backend_optimization_level=0"
    # They count their compilations: the session's cache would hide them.
    return {**without_compilation_cache(os.environ), "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


def tiny_batches() -> list[dict]:
    """Seeded batches of (rows, 5, 8, 8, 1) windows with a few masked target cells."""
    rng = np.random.default_rng(0)
    batches = []
    for rows in BATCH_ROWS:
        shape = (rows, 5, 8, 8, 1)
        batches.append(
            {
                "inputs": rng.normal(size=shape).astype(np.float32),
                "targets": rng.normal(size=shape).astype(np.float32),
                "mask": rng.random(shape) > 0.1,
            }
        )
    return batches


def tiny_step(mesh, fsdp: bool = False, seed: int = 3):
    """`make_train_step` of a 1-layer STConvS2S-R (hidden 8, dropout 0.1) on ``mesh``."""
    model = models.create(
        "stconvs2s-r", input_shape=(5, 8, 8, 1), horizon=5, num_layers=1, hidden_dim=8,
        kernel_size=3, dropout=0.1, rngs=nnx.Rngs(seed),
    )  # fmt: skip
    return make_train_step(model, create_optimizer(model), mesh=mesh, fsdp=fsdp)


def train_steps(mesh, fsdp: bool = False) -> tuple[list[float], nnx.State, int]:
    """`tiny_step` trained on `tiny_batches` over ``mesh``.

    Returns:
      ``(losses, state, compilations)``: XLA compilations during the steps.
    """
    train_step, state = tiny_step(mesh, fsdp)
    compilations = []

    def count(event: str, seconds: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compilations.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(count)
    losses = []
    try:
        for batch in tiny_batches():
            state, metrics = train_step(state, distributed.global_batch(batch, mesh))
            losses.append(float(metrics["loss"]))
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    return losses, state, len(compilations)


def leaves(state: nnx.State) -> list[np.ndarray]:
    """Every array of ``state`` as numpy (random keys as their data)."""
    return [
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )
        for x in jax.tree.leaves(state)
    ]


def save_leaves(path: str, state: nnx.State) -> None:
    np.savez(path, *leaves(state))


def load_leaves(path: str) -> list[np.ndarray]:
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def restored(directory: str, mesh, fsdp: bool) -> nnx.State:
    """A fresh state placed on ``mesh`` with the checkpoint in ``directory`` restored into it."""
    _, state = tiny_step(mesh, fsdp, seed=99)
    Checkpoints(directory).restore("latest", state)
    return state


def wait_for(path: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {timeout} s")
        time.sleep(0.1)


def specs(state: nnx.State) -> list:
    return [x.sharding.spec for x in jax.tree.leaves(state)]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``stconv`` in this process: the exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


def intended_specs(state: nnx.State, mesh, fsdp: bool) -> list:
    return [s.spec for s in jax.tree.leaves(distributed.state_shardings(state, mesh, fsdp))]


def one_device_worker(tmp: str) -> dict:
    """The 1-device reference: `train_steps`, their checkpoint ``one`` (and its
    arrays) for the 8-device worker, and ``stconv train`` in ``run-1``."""
    mesh = distributed.data_mesh()
    losses, state, compilations = train_steps(mesh)
    Checkpoints(os.path.join(tmp, "one")).save("latest", 4, state, {"epoch": 4})
    save_leaves(os.path.join(tmp, "one.npz"), state)
    open(os.path.join(tmp, "one.ready"), "w").close()
    run = ["train", "--dataset", os.path.join(tmp, "field.nc"), *CLI_ARGS]
    cli_run = run_cli([*run, "--workdir", os.path.join(tmp, "run-1")])
    return {"devices": len(jax.devices()), "losses": losses, "compilations": compilations,
            "cli": cli_run}  # fmt: skip


def eight_device_worker(tmp: str) -> dict:
    """On 8 devices: `train_steps` replicated and FSDP, their placements, their
    checkpoints (and arrays) in ``tmp``, checkpoint ``one`` restored, ``stconv
    train`` in ``run-8`` and CLI errors."""
    answers = {"devices": len(jax.devices())}
    mesh = distributed.data_mesh()
    for fsdp, name in ((False, "replicated"), (True, "fsdp")):
        losses, state, compilations = train_steps(mesh, fsdp)
        answers[name] = {
            "losses": losses,
            "compilations": compilations,
            "specs_kept": specs(state) == intended_specs(state, mesh, fsdp),
            "replicated": all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state)),
            "split": sum(spec != P() for spec in specs(state)),
        }
        Checkpoints(os.path.join(tmp, f"eight-{name}")).save("latest", 4, state, {"epoch": 4})
        save_leaves(os.path.join(tmp, f"eight-{name}.npz"), state)
        wait_for(os.path.join(tmp, "one.ready"))
        from_one = restored(os.path.join(tmp, "one"), mesh, fsdp)
        answers[name]["restored_specs_kept"] = specs(from_one) == intended_specs(state, mesh, fsdp)
        save_leaves(os.path.join(tmp, f"one-on-eight-{name}.npz"), from_one)
    run = ["train", "--dataset", os.path.join(tmp, "field.nc"), *CLI_ARGS]
    answers["cli"] = run_cli([*run, "--workdir", os.path.join(tmp, "run-8")])
    answers["bad_batch"] = run_cli([*run, "--workdir", tmp, "--batch-size", "12"])
    answers["too_many"] = run_cli([*run, "--workdir", tmp, "--num-devices", "9"])
    return answers


WORKERS = {"one": one_device_worker, "eight": eight_device_worker}


def start(argv: list[str], env: dict, log) -> subprocess.Popen:
    """``argv`` in the background, its output (stdout and stderr) to the file ``log``."""
    with open(log, "w") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    process.log = log
    return process


def start_worker(name: str, tmp, devices: int) -> subprocess.Popen:
    """This file as a script: ``WORKERS[name](tmp)`` with ``devices`` forced host devices."""
    argv = [sys.executable, __file__, name, str(tmp)]
    return start(argv, forced_devices(devices), tmp / f"{name}.log")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_two_processes(tmp) -> list[subprocess.Popen]:
    """``stconv train`` in ``run-2x4`` as 2 processes of 4 forced devices each, on one
    coordinator (`jax.distributed`)."""
    env = {**forced_devices(4), "JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}"}
    argv = [sys.executable, "-m", "stconv.cli", "train", "--dataset", str(tmp / "field.nc")]
    argv += [*CLI_ARGS, "--workdir", str(tmp / "run-2x4")]
    return [
        start(argv, {**env, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}, tmp / f"p{i}.log")
        for i in range(2)
    ]


def finish(process: subprocess.Popen) -> str:
    """Waits for ``process`` to succeed and returns its output."""
    process.wait(timeout=300)
    with open(process.log) as f:
        output = f.read()
    assert process.returncode == 0, output
    return output


def answer(process: subprocess.Popen) -> dict:
    """A worker's answers: the JSON on its last line of output."""
    return json.loads(finish(process).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The workers on 1 and on 8 devices and ``stconv train`` on 2 processes of 4
    devices (``run-2x4``), all at once, each in its own subprocess."""
    tmp = tmp_path_factory.mktemp("distributed")
    # 34 training windows: 2 batches of 16 and a last one of 2 rows, which 8
    # devices do not split and which 2 processes both read.
    write_synthetic_netcdf(tmp / "field.nc", 72, 8, 8, seed=4, variable="t")
    two = start_two_processes(tmp)
    one, eight = start_worker("one", tmp, 1), start_worker("eight", tmp, 8)
    try:
        runs = {"tmp": tmp, "one": answer(one), "eight": answer(eight)}
        for process in two:
            finish(process)
    finally:
        for process in (one, eight, *two):
            if process.poll() is None:
                process.kill()
    return runs


@pytest.mark.parametrize("placement", ["replicated", "fsdp"])
def test_losses_on_one_and_eight_devices_agree(runs, placement):
    one, eight = runs["one"], runs["eight"][placement]
    assert (runs["one"]["devices"], runs["eight"]["devices"]) == (1, 8)
    difference = np.max(np.abs(np.array(eight["losses"]) - one["losses"]))
    print(f"losses on 1 device: {one['losses']}, on 8 ({placement}): {eight['losses']}")
    print(f"max |difference| {difference:.1e}")
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=2e-5)
    # Compiled once for the mesh, and once more for the replicated 12-row batch.
    assert eight["compilations"] == one["compilations"] == 2


def test_state_is_replicated_or_split_as_asked(runs):
    replicated, fsdp = runs["eight"]["replicated"], runs["eight"]["fsdp"]
    assert replicated["specs_kept"] and fsdp["specs_kept"]  # the steps kept the placement
    assert replicated["replicated"] and replicated["split"] == 0
    assert not fsdp["replicated"] and fsdp["split"] >= 10  # kernels, BatchNorm, RMSprop's nu


@pytest.mark.parametrize("placement", ["replicated", "fsdp"])
def test_checkpoints_restore_across_device_counts(runs, placement):
    tmp = runs["tmp"]
    on_one = restored(str(tmp / f"eight-{placement}"), distributed.data_mesh(), fsdp=False)
    for got, saved in zip(leaves(on_one), load_leaves(tmp / f"eight-{placement}.npz"), strict=True):
        np.testing.assert_array_equal(got, saved)
    on_eight = load_leaves(tmp / f"one-on-eight-{placement}.npz")
    for got, saved in zip(on_eight, load_leaves(tmp / "one.npz"), strict=True):
        np.testing.assert_array_equal(got, saved)
    assert runs["eight"][placement]["restored_specs_kept"]


@pytest.mark.parametrize("run", ["run-8", "run-2x4"])
def test_cli_on_eight_devices_equals_one_device(runs, run):
    """``stconv train`` with no device flag on 8 devices, in 1 process or 2 of 4 devices."""
    assert runs["one"]["cli"][0] == 0, runs["one"]["cli"][1]
    assert runs["eight"]["cli"][0] == 0, runs["eight"]["cli"][1]
    results, rows = {}, {}
    for name in ("run-1", run):
        results[name] = json.loads((runs["tmp"] / name / "results.json").read_text())["t"]
        rows[name] = json.loads((runs["tmp"] / name / "metrics.jsonl").read_text())
        print(f"{name}: {rows[name]}, test RMSE {results[name]['stconvs2s-r']['rmse']}")
    for key in ("train_loss", "validation_rmse", "validation_mae"):
        assert rows[run][key] == pytest.approx(rows["run-1"][key], rel=1e-6)
    for forecaster, result in results["run-1"].items():
        assert results[run][forecaster]["rmse"] == pytest.approx(result["rmse"], rel=1e-6)
    assert (runs["tmp"] / run / "test_forecasts.nc").exists()


def test_cli_errors_on_eight_devices(runs):
    code, err = runs["eight"]["bad_batch"]
    assert code == 2 and err.count("\n") == 1
    assert "--batch-size 12 is invalid on 8 devices: choose a multiple of 8" in err
    code, err = runs["eight"]["too_many"]
    assert code == 2 and "--num-devices 9 is invalid: must be at most 8" in err


def test_errors_name_the_parameter():
    with pytest.raises(
        ValueError, match=r"^execution.num_devices=0 is invalid: must be an integer >= 1$"
    ):
        Config.from_flags(num_devices=0)
    with pytest.raises(
        ValueError, match=r"^execution.num_devices=2 is invalid: must be at most 1, the"
    ):
        distributed.data_mesh(2)
    assert (
        Config().execution.num_devices is None and not Config().execution.fsdp
    )  # old config.json files load


def test_fsdp_splits_the_largest_divisible_axis():
    assert distributed.fsdp_spec((3, 1, 1, 8, 16), 8) == P(None, None, None, None, "data")
    assert distributed.fsdp_spec((3, 1, 1, 16, 16), 8) == P(None, None, None, "data", None)
    assert distributed.fsdp_spec((3, 3, 3, 4, 1), 8) == P()
    assert distributed.fsdp_spec((), 8) == P()
    assert distributed.fsdp_spec((8,), 1) == P()


def test_environment_decides_multi_process():
    assert not distributed.multi_process_environment({})
    assert distributed.multi_process_environment({"JAX_COORDINATOR_ADDRESS": "h:1234"})
    step = {"SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2"}
    assert distributed.multi_process_environment(step)
    assert not distributed.multi_process_environment({**step, "SLURM_NTASKS": "1"})
    assert not distributed.multi_process_environment({"SLURM_NTASKS": "4"})  # sbatch, no srun
    assert distributed.multi_process_environment({"STCONV_DISTRIBUTED": "1"})


class Recording:
    """A source of ``{"index": i}`` that records which examples were read."""

    def __init__(self, size: int):
        self.size, self.read = size, set()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        self.read.add(index)
        return {"index": np.array(index)}


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_batches_reassemble_the_global_batches(process_count):
    size, batch_size = 50, 8
    whole = [b["index"] for b in epoch_batches(Recording(size), batch_size, seed=1, epoch=2)]
    parts, reads = [], []
    for index in range(process_count):
        source = Recording(size)
        batches = epoch_batches(
            source, batch_size, seed=1, epoch=2, process_index=index, process_count=process_count
        )
        parts.append([b["index"] for b in batches])
        reads.append(source.read)
    assert len(whole) == 7 and all(len(p) == 7 for p in parts)
    assembled = [np.concatenate(local) for local in zip(*parts, strict=True)][:-1]
    for got, expected in zip(assembled, whole[:-1], strict=True):
        np.testing.assert_array_equal(got, expected)
    for part in parts:  # the last, partial batch: every process reads it whole
        np.testing.assert_array_equal(part[-1], whole[-1])
    # Each process read only its own rows of the full batches, and the last batch.
    for read, part in zip(reads, parts, strict=True):
        assert read == set(np.concatenate(part))
        assert len(read) == 48 // process_count + 2
    dropped = epoch_batches(Recording(size), 8, drop_remainder=True, process_count=2)
    assert [len(b["index"]) for b in dropped] == [4] * 6
    with pytest.raises(ValueError, match=r"^batch_size=10 is invalid for 4 processes"):
        epoch_batches(Recording(size), 10, process_count=4)


if __name__ == "__main__":
    print(json.dumps(WORKERS[sys.argv[1]](sys.argv[2])))


def test_scaling_benchmark_counts_and_efficiency():
    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "benchmark_scaling.py")
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec = importlib.util.spec_from_file_location("benchmark_scaling", path)
        scaling = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(scaling)
    finally:
        sys.path.remove(os.path.dirname(path))
    assert scaling.device_counts(8, None) == [1, 2, 4, 8]
    assert scaling.device_counts(6, None) == [1, 2, 4, 6]
    assert scaling.device_counts(8, 12) == [1, 2, 4]
    runs = [{"devices": 1, "samples_per_s": 10.0}, {"devices": 4, "samples_per_s": 30.0}]
    scaling.add_efficiency(runs)
    assert [run["efficiency"] for run in runs] == [1.0, 0.75]
