"""Train-step benchmark for STConvS2S at the paper's configurations.

Prints compile time, train-step time, samples/s and achieved GFLOP/s (from
XLA's cost analysis) next to this machine's measured f32 matmul throughput,
and, with ``--layers``, each convolution of the model timed forward and
backward in stconv's formulation and as a plain XLA 3D convolution.
Inputs are synthetic (random normal): speed does not depend on the values.

    python experiments/benchmark.py                  # CFSR and CHIRPS, STConvS2S-R
    python experiments/benchmark.py --configs cfsr --model stconvs2s-c --layers
"""

import argparse
import json
import statistics
import time
from unittest import mock

import jax
import jax.numpy as jnp

from stconv import models
from stconv.layers import conv, conv_general
from stconv.train import count_parameters, create_optimizer, make_train_step

# The paper's configurations (batch 15, 5 -> 5).
CONFIGS = {
    "cfsr": dict(input_shape=(5, 32, 32, 1), num_layers=3, hidden_dim=32, kernel_size=5),
    "chirps": dict(input_shape=(5, 50, 50, 1), num_layers=2, hidden_dim=8, kernel_size=5),
}


def timed(fn, *args, repeats: int) -> list[float]:
    """Seconds per call of ``fn(*args)`` for ``repeats`` calls after one warm-up."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Measured f32 matmul throughput, the ceiling for convolution-bound steps."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    matmul = jax.jit(lambda a: a @ a)
    return 2 * size**3 / statistics.median(timed(matmul, a, repeats=repeats)) / 1e9


def benchmark_train_step(model_name: str, config: dict, horizon: int, batch_size: int, steps: int):
    model = models.create(model_name, horizon=horizon, **config)
    train_step, state = make_train_step(model, create_optimizer(model))
    key_x, key_y = jax.random.split(jax.random.key(0))
    inputs = jax.random.normal(key_x, (batch_size, *config["input_shape"]))
    targets = jax.random.normal(key_y, (batch_size, horizon, *config["input_shape"][1:]))
    batch = {"inputs": inputs, "targets": targets}

    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))

    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_seconds = statistics.median(times)
    return {
        "model": model_name,
        "parameters": count_parameters(model),
        "batch_size": batch_size,
        "horizon": horizon,
        "compile_s": compile_seconds,
        "step_s": step_seconds,
        "samples_per_s": batch_size / step_seconds,
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": flops / step_seconds / 1e9,
    }


def conv_calls(model, input_shape: tuple) -> list[tuple]:
    """``(input shape, kernel shape, strides, padding, input_dilation)`` of every
    convolution in one forward pass, recorded without running it."""
    calls = []

    def recording_conv(x, kernel, strides=None, padding=None, input_dilation=None):
        calls.append((x.shape, kernel.shape, strides, padding, input_dilation))
        return conv(x, kernel, strides, padding, input_dilation)

    model.eval()
    with mock.patch("stconv.layers.conv", recording_conv):
        jax.eval_shape(model, jax.ShapeDtypeStruct(input_shape, jnp.float32))
    return calls


def benchmark_layers(model, input_shape: tuple, repeats: int) -> list[dict]:
    """Forward+backward time of each conv as stconv writes it and as a plain XLA conv."""
    rows = []
    for x_shape, kernel_shape, *options in conv_calls(model, input_shape):
        x = jax.random.normal(jax.random.key(1), x_shape)
        kernel = 0.1 * jax.random.normal(jax.random.key(2), kernel_shape)
        rank = len(kernel_shape) - 2
        strides, padding, dilation = (
            option or default
            for option, default in zip(
                options, [(1,) * rank, ((0, 0),) * rank, (1,) * rank], strict=True
            )
        )
        row = {"input": list(x_shape), "kernel": list(kernel_shape)}
        for label, fn in (("stconv", conv), ("xla", conv_general)):

            def loss(x, k, fn=fn, options=(strides, padding, dilation)):
                return jnp.sum(fn(x, k, *options) ** 2)

            grad = jax.jit(jax.grad(loss, (0, 1)))
            row[f"{label}_ms"] = 1e3 * statistics.median(timed(grad, x, kernel, repeats=repeats))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["cfsr", "chirps"])
    parser.add_argument("--model", default="stconvs2s-r", choices=models.available())
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after a warm-up")
    parser.add_argument("--layers", action="store_true", help="also time each conv layer")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    print(f"devices: {jax.devices()}")
    ceiling = matmul_gflops()
    print(f"f32 matmul ceiling: {ceiling:.0f} GFLOP/s\n")
    results = {"device": str(jax.devices()[0]), "matmul_gflop_per_s": ceiling, "runs": []}
    columns = ["params", "compile s", "step s", "samples/s", "GFLOP", "GFLOP/s", "of ceiling"]
    print(f"{'config':8s} " + " ".join(f"{c:>9s}" for c in columns))
    for name in args.configs:
        run = benchmark_train_step(
            args.model, CONFIGS[name], args.horizon, args.batch_size, args.steps
        )
        run["config"] = name
        run["fraction_of_matmul"] = run["gflop_per_s"] / ceiling
        results["runs"].append(run)
        print(
            f"{name:8s} {run['parameters']:9d} {run['compile_s']:9.1f} {run['step_s']:9.2f} "
            f"{run['samples_per_s']:9.1f} {run['gflop_per_step']:9.1f} {run['gflop_per_s']:9.1f} "
            f"{run['fraction_of_matmul']:9.0%}",
            flush=True,
        )
        if args.layers:
            model = models.create(args.model, horizon=args.horizon, **CONFIGS[name])
            input_shape = (args.batch_size, *CONFIGS[name]["input_shape"])
            run["layers"] = benchmark_layers(model, input_shape, repeats=3)
            print("    forward+backward of each conv: stconv's formulation vs plain XLA conv")
            for row in run["layers"]:
                print(
                    f"    input {tuple(row['input'])!s:22s} kernel {tuple(row['kernel'])!s:22s}"
                    f" stconv {row['stconv_ms']:7.1f} ms  xla {row['xla_ms']:7.1f} ms",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
