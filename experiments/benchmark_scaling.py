"""Train-step throughput against the device count: how data parallelism scales.

For device counts 1, 2, 4, ... up to ``len(jax.devices())`` (and that count
itself), it builds the model on a `stconv.training.distributed.data_mesh` of that many
devices and times the train step of `stconv.training.step.make_train_step` on a
random global batch already placed on the mesh (the step, not the input
pipeline): compile time, median step time over ``--steps`` steps after the
compiling one, samples/s, and the scaling efficiency
``samples/s(N) / (N * samples/s(1))``: 1.0 is perfect.

- Weak scaling (default): every device gets ``--per-device-batch`` windows,
  so the global batch grows with the device count.
- Strong scaling (``--global-batch B``): the same global batch split over more
  devices; only device counts that divide ``B`` are run.

On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8
host devices, but they share the machine's cores: the efficiency there stays
near ``1 / N`` and measures the overhead of splitting the step (collectives,
partitioning), not a speedup. Real scaling needs separate GPUs or TPU cores.

    python experiments/benchmark_scaling.py --json scaling.json
    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
        python experiments/benchmark_scaling.py --config chirps --per-device-batch 2
"""

import argparse
import json
import statistics
import time

import jax
import numpy as np
from benchmark import CONFIGS, model_kwargs, time_train_steps
from flax import nnx

from stconv import models
from stconv.training import distributed
from stconv.training.step import create_optimizer, make_train_step


def device_counts(available: int, global_batch: int | None) -> list[int]:
    """1, 2, 4, ... up to ``available``, and ``available``; with a fixed
    ``global_batch``, only the counts that divide it."""
    counts = sorted(
        {2**i for i in range(available.bit_length()) if 2**i <= available} | {available}
    )
    return [n for n in counts if global_batch is None or global_batch % n == 0]


def random_batch(rows: int, input_shape: tuple, horizon: int) -> dict[str, np.ndarray]:
    """Random normal windows (speed does not depend on the values)."""
    rng = np.random.default_rng(0)
    length, *grid = input_shape
    return {
        "inputs": rng.normal(size=(rows, length, *grid)).astype(np.float32),
        "targets": rng.normal(size=(rows, horizon, *grid)).astype(np.float32),
        "mask": np.ones((rows, horizon, *grid), bool),
    }


def measure(args: argparse.Namespace, num_devices: int, global_batch: int) -> dict:
    """Compile time, step times and samples/s of the train step on ``num_devices``."""
    config = CONFIGS[args.config]
    input_shape = (config["input_length"], *config["grid"], 1)
    model = models.create(
        args.model,
        input_shape=input_shape,
        horizon=config["horizon"],
        **model_kwargs(args.model, config),
        rngs=nnx.Rngs(0),
    )
    mesh = distributed.data_mesh(num_devices)
    train_step, state = make_train_step(model, create_optimizer(model), mesh=mesh, fsdp=args.fsdp)
    batch = random_batch(global_batch, input_shape, config["horizon"])
    batch = distributed.global_batch(batch, mesh)
    start = time.perf_counter()
    state, _, _ = time_train_steps(train_step, state, batch, 1)
    compile_s = time.perf_counter() - start
    _, _, times = time_train_steps(train_step, state, batch, args.steps)
    step_s = statistics.median(times)
    return {
        "devices": num_devices,
        "global_batch": global_batch,
        "compile_s": compile_s,
        "step_s": step_s,
        "step_times_s": times,
        "samples_per_s": global_batch / step_s,
    }


def add_efficiency(runs: list[dict]) -> None:
    """``efficiency = samples/s(N) / (N * samples/s(1))`` for every run."""
    base = runs[0]["samples_per_s"] / runs[0]["devices"]
    for run in runs:
        run["efficiency"] = run["samples_per_s"] / (run["devices"] * base)


def table(runs: list[dict]) -> str:
    lines = [
        "| devices | global batch | compile s | step s | samples/s | efficiency |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['devices']} | {r['global_batch']} | {r['compile_s']:.1f} | {r['step_s']:.3f} "
            f"| {r['samples_per_s']:.1f} | {r['efficiency']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cfsr")
    parser.add_argument("--model", default="stconvs2s-r", help="a name of stconv.models")
    parser.add_argument("--per-device-batch", type=int, default=8, help="weak scaling")
    parser.add_argument(
        "--global-batch", type=int, help="strong scaling: this global batch on every count"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the compiling one")
    parser.add_argument("--max-devices", type=int, help="default: all of jax.devices()")
    parser.add_argument("--fsdp", action="store_true", help="split parameters and optimizer state")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    for name in ("per_device_batch", "global_batch", "steps", "max_devices"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}={value} is invalid: must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    devices = jax.devices()
    available = min(len(devices), args.max_devices or len(devices))
    mode = "weak" if args.global_batch is None else "strong"
    platform = devices[0].platform
    print(
        f"{args.model} at the {args.config} configuration, {mode} scaling, "
        f"on up to {available} {devices[0].device_kind} devices ({platform})"
    )
    if platform == "cpu" and available > 1:
        print("CPU devices share the same cores: the efficiency measures overhead, not speedup")
    runs = []
    for n in device_counts(available, args.global_batch):
        global_batch = args.global_batch or n * args.per_device_batch
        runs.append(measure(args, n, global_batch))
        print(f"{n} devices: {runs[-1]['samples_per_s']:.1f} samples/s", flush=True)
    add_efficiency(runs)
    print(table(runs))
    results = {
        "model": args.model,
        "config": args.config,
        "mode": mode,
        "per_device_batch": args.per_device_batch if mode == "weak" else None,
        "fsdp": args.fsdp,
        "platform": platform,
        "device_kind": devices[0].device_kind,
        "shared_cores": platform == "cpu",
        "jax": jax.__version__,
        "runs": runs,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
