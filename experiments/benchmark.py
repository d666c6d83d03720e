"""Speed of every model at the paper's configurations, and of the input pipeline.

For each (model, configuration) it measures, in one process on the default
device (CPU, GPU or TPU alike): parameters; compile time of the train step;
the train step's median time after a warm-up and its samples/s; its FLOP per
step and achieved GFLOP/s; the eval-mode forecast's samples/s
(`stconv.training.step.make_predict`) at ``--eval-batch-size``; and its memory.
Train-step inputs are random normal (speed does not depend on the values).
Models that reject a configuration (e.g. a horizon their temporal generator
cannot make) are reported as skipped with the reason.

- FLOP per step are the model's: the matrix products and convolutions of
  the train step written with plain XLA convolutions (`stconv.models.conv_algorithms.conv`
  replaced by `conv_general`), counted from its jaxpr, each ``lax.scan`` body
  times its length. stconv's own formulations (`stconv.models.conv_algorithms.conv`) run the
  same products differently and some pad them, so counting theirs, or XLA's
  cost analysis of the compiled step (which also counts a loop body once,
  whatever its trip count), would not compare like with like; XLA's number
  is kept in the JSON as ``xla_gflop_per_step``.
- The ceiling is this machine's f32 matmul throughput, measured in the same
  run (2048 x 2048 on CPU, 8192 x 8192 on GPU and TPU), at JAX's default
  matmul precision: the precision the models' convolutions run at, so the
  ratio compares like with like. On CPU that is exact f32. On GPU and TPU the
  default lets XLA use reduced-precision passes for f32 operands (TF32 on
  NVIDIA tensor cores, bfloat16 passes on TPU), so the true-f32 rate, measured
  with ``jax.default_matmul_precision("highest")``, is reported beside it and
  is the lower of the two.
- Memory: XLA's compile-time buffer assignment for the step (arguments +
  outputs + temporaries, less the donated inputs the outputs reuse), which
  every backend reports; where the device reports it, its peak bytes in use;
  and the process's peak resident memory (the host's memory on CPU). The last
  two are high-water marks of the whole process so far, not of one run.
- Input pipeline: per configuration, shuffled training batches of
  `stconv.data.pipeline.epoch_batches` over `stconv.data.registry.load_dataset` of a
  synthetic netCDF file of that grid (`stconv.data.synthetic`, written once under
  ``--data-dir``; synthetic values, not observations), copied to the device,
  in samples/s and as a multiple of the fastest model's train step at that
  configuration; issue 8 asks for at least 5x. Measured alone, not while the
  step runs.

The JSON is rewritten after every run; ``--resume`` skips the runs it holds.

    python experiments/benchmark.py --json results.json --markdown results.md
    python experiments/benchmark.py --configs cfsr --models stconvs2s-r stconvs2s-c --layers
"""

import argparse
import datetime
import functools
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from unittest import mock

import benchmark_reference
import flax
import jax
import jax.numpy as jnp
from benchmark_data import stream, synthetic_file
from jax.extend import core as jax_core

from stconv import models
from stconv.config.presets import DATASET_SETTINGS, MODEL_SETTINGS
from stconv.data.registry import load_dataset
from stconv.models.conv_algorithms import conv, conv_general
from stconv.runs.provenance import peak_memory_bytes
from stconv.training.step import count_parameters, create_optimizer, make_predict, make_train_step

GRIDS = {"cfsr": (32, 32), "chirps": (50, 50)}
MODEL_KEYS = ("num_layers", "hidden_dim", "kernel_size")
PIPELINE_TARGET = 5.0  # issue 8: the pipeline must deliver 5x the step's samples/s


def paper_config(dataset: str, horizon: int) -> dict:
    """One of the paper's configurations: its grid and the hyperparameters that
    ``experiments/reproduce.py`` trains with."""
    settings = DATASET_SETTINGS[dataset]
    return dict(
        grid=GRIDS[dataset],
        input_length=5,
        horizon=horizon,
        hyperparameters={key: settings[key] for key in MODEL_KEYS},
        normalization=settings["normalization"],
    )


CONFIGS = {
    "cfsr": paper_config("cfsr", 5),
    "cfsr-15": paper_config("cfsr", 15),
    "chirps": paper_config("chirps", 5),
    "chirps-15": paper_config("chirps", 15),
}


def describe(config: dict) -> str:
    lat, lon = config["grid"]
    h = config["hyperparameters"]
    return (
        f"{lat}x{lon}, {h['num_layers']} layers, {h['hidden_dim']} filters, "
        f"k{h['kernel_size']}, {config['input_length']} -> {config['horizon']}"
    )


def model_kwargs(model_name: str, config: dict) -> dict:
    """The configuration's hyperparameters with the model's own (PredRNN's kernel 3)."""
    return {**config["hyperparameters"], **MODEL_SETTINGS.get(model_name, {})}


def timed(fn, *args, repeats: int) -> list[float]:
    """Seconds per call of ``fn(*args)`` for ``repeats`` calls after one warm-up."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def time_train_steps(train_step, state, batch: dict, steps: int) -> tuple:
    """Seconds of each of ``steps`` train steps (the state threaded through).

    Returns:
      ``(state, metrics, times)`` after the last step.
    """
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = train_step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return state, metrics, times


def matmul_gflops(size: int, repeats: int = 10, precision: str | None = None) -> float:
    """Measured f32 ``size x size`` matmul throughput at ``precision``
    (None: JAX's default), the ceiling for convolution-bound steps: the best
    of ``repeats`` calls, what the hardware does when nothing disturbs it."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    with jax.default_matmul_precision(precision):
        matmul = jax.jit(lambda a: a @ a)
        seconds = min(timed(matmul, a, repeats=repeats))
    return 2 * size**3 / seconds / 1e9


def measure_ceiling(size: int | None = None) -> dict:
    """The f32 matmul rate at the default and at the highest precision (see the module doc)."""
    if size is None:
        size = 2048 if jax.default_backend() == "cpu" else 8192
    return {
        "matmul_size": size,
        "gflop_per_s": matmul_gflops(size),
        "highest_precision_gflop_per_s": matmul_gflops(size, precision="highest"),
    }


def _subjaxprs(value) -> list:
    if isinstance(value, jax_core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jax_core.Jaxpr):
        return [value]
    if isinstance(value, tuple | list):
        return [jaxpr for item in value for jaxpr in _subjaxprs(item)]
    return []


def live(jaxpr):
    """``jaxpr`` without the equations whose results are unused, which XLA drops
    too: e.g. the forward pass that `jax.vjp` traces inside a custom backward rule."""
    try:  # jax's own dead-code elimination, not public API: without it, count all
        from jax._src.interpreters.partial_eval import dce_jaxpr

        return dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))[0]
    except (ImportError, AttributeError, TypeError):
        return jaxpr


def jaxpr_flops(jaxpr) -> float:
    """FLOP of the matrix products and convolutions in ``jaxpr`` (2 per multiply-add,
    padding included), scan bodies counted ``length`` times, the costliest branch
    of a ``cond``; elementwise work is left out."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            contracted = 1
            for axis in lhs_contracting:
                contracted *= lhs[axis]
            total += 2.0 * eqn.outvars[0].aval.size * contracted
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
            per_output = 1
            for axis in rhs_spec[1:]:
                per_output *= rhs[axis]
            total += 2.0 * eqn.outvars[0].aval.size * per_output
        inner = [jaxpr_flops(sub) for value in eqn.params.values() for sub in _subjaxprs(value)]
        if inner:
            if name == "cond":
                total += max(inner)
            else:
                total += sum(inner) * (eqn.params["length"] if name == "scan" else 1)
    return total


def plain_conv(x, kernel, strides=None, padding=None, input_dilation=None):
    """`stconv.models.conv_algorithms.conv` as one XLA convolution: the plain formulation."""
    rank = kernel.ndim - 2
    return conv_general(
        x,
        kernel,
        strides or (1,) * rank,
        padding or ((0, 0),) * rank,
        input_dilation or (1,) * rank,
    )


def direct_conv(x, kernel, strides=None, padding=None, input_dilation=None):
    """`stconv.models.conv_algorithms.conv` with its FFT formulations turned off
    (`stconv.models.conv_algorithms.fourier_applies` false): what they win against."""
    with mock.patch("stconv.models.conv_algorithms.fourier_applies", lambda *args: False):
        return conv(x, kernel, strides, padding, input_dilation)


def model_flops(model, batch: dict) -> float:
    """FLOP of one train step of ``model`` on ``batch`` with plain XLA convolutions."""
    with mock.patch("stconv.models.layers.conv", plain_conv):
        train_step, state = make_train_step(model, create_optimizer(model))
        jaxpr = jax.make_jaxpr(train_step)(state, batch).jaxpr
    return jaxpr_flops(live(jaxpr))


def xla_flops(compiled) -> float:
    """FLOP by XLA's cost analysis of a compiled program (loop bodies counted once)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def compiled_memory(compiled) -> dict:
    """XLA's buffer assignment for a compiled program, in bytes."""
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    memory = {
        name: int(getattr(stats, f"{name}_size_in_bytes", 0))
        for name in ("argument", "output", "temp", "alias")
    }
    memory["total"] = memory["argument"] + memory["output"] + memory["temp"] - memory["alias"]
    return {f"{name}_bytes": value for name, value in memory.items()}


def process_memory() -> dict:
    """High-water marks of this process so far: the device's (where it reports
    one) and the host's resident memory."""
    memory = {"process_peak_rss_bytes": peak_memory_bytes()}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        memory["device_peak_bytes_in_use"] = int(stats["peak_bytes_in_use"])
    return memory


def benchmark_model(
    model_name: str,
    config: dict,
    batch_size: int,
    steps: int,
    eval_batch_size: int,
    warmup: int = 1,
    eval_repeats: int | None = None,
) -> dict:
    """Train step and eval forecast of one model at one configuration, ``steps``
    timed after ``warmup`` steps, the forecast ``eval_repeats`` times (default
    ``steps``).

    Returns:
      The run's measurements, or ``{"status": "skipped", "reason": ...}`` when
      the model rejects the configuration.
    """
    input_shape = (config["input_length"], *config["grid"], 1)
    horizon = config["horizon"]
    kwargs = model_kwargs(model_name, config)
    try:
        model = models.create(model_name, input_shape=input_shape, horizon=horizon, **kwargs)
    except ValueError as error:
        return {"status": "skipped", "reason": str(error), "hyperparameters": kwargs}
    parameters = count_parameters(model)
    train_step, state = make_train_step(model, create_optimizer(model))
    key_x, key_y, key_eval = jax.random.split(jax.random.key(0), 3)
    batch = {
        "inputs": jax.random.normal(key_x, (batch_size, *input_shape)),
        "targets": jax.random.normal(key_y, (batch_size, horizon, *input_shape[1:])),
    }

    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    flops = model_flops(model, batch)
    memory = compiled_memory(compiled)

    state, metrics, _ = time_train_steps(compiled, state, batch, warmup)
    state, metrics, times = time_train_steps(compiled, state, batch, steps)
    step_seconds = statistics.median(times)
    train_peak_rss_bytes = peak_memory_bytes()

    predict = make_predict(model, horizon)
    inputs = jax.random.normal(key_eval, (eval_batch_size, *input_shape))
    start = time.perf_counter()
    compiled_predict = predict.lower(state[0], inputs).compile()
    eval_compile_seconds = time.perf_counter() - start
    eval_times = timed(compiled_predict, state[0], inputs, repeats=eval_repeats or steps)
    eval_seconds = statistics.median(eval_times)
    return {
        "status": "ok",
        "hyperparameters": kwargs,
        "parameters": parameters,
        "compile_s": compile_seconds,
        "step_s": step_seconds,
        "step_times_s": times,
        "samples_per_s": batch_size / step_seconds,
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": flops / step_seconds / 1e9,
        "xla_gflop_per_step": xla_flops(compiled) / 1e9,
        "eval_compile_s": eval_compile_seconds,
        "eval_s": eval_seconds,
        "eval_samples_per_s": eval_batch_size / eval_seconds,
        "memory": {**memory, **process_memory(), "train_peak_rss_bytes": train_peak_rss_bytes},
        "final_loss": float(metrics["loss"]),
    }


def conv_calls(model, input_shape: tuple) -> list[tuple]:
    """``(input shape, kernel shape, strides, padding, input_dilation)`` of every
    convolution in one forward pass, recorded without running it."""
    calls = []

    def recording_conv(x, kernel, strides=None, padding=None, input_dilation=None):
        calls.append((x.shape, kernel.shape, strides, padding, input_dilation))
        return conv(x, kernel, strides, padding, input_dilation)

    model.eval()
    with mock.patch("stconv.models.layers.conv", recording_conv):
        jax.eval_shape(model, jax.ShapeDtypeStruct(input_shape, jnp.float32))
    model.train()
    return calls


def benchmark_layers(model, input_shape: tuple, repeats: int) -> list[dict]:
    """Forward+backward time of each conv as stconv writes it, without its FFTs
    (`direct_conv`) and as a plain XLA conv; and its forward pass alone as
    stconv writes it, in a forecast (no gradient: ``forward``) and in the
    train step (``train_forward``, which may take another form)."""
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
        for label, fn in (("stconv", conv), ("direct", direct_conv), ("xla", conv_general)):

            def loss(x, k, fn=fn, options=(strides, padding, dilation)):
                return jnp.sum(fn(x, k, *options) ** 2)

            grad = jax.jit(jax.grad(loss, (0, 1)))
            row[f"{label}_ms"] = 1e3 * statistics.median(timed(grad, x, kernel, repeats=repeats))
        forward = functools.partial(conv, strides=strides, padding=padding, input_dilation=dilation)
        train_forward = jax.jit(lambda x, k, forward=forward: jax.vjp(forward, x, k)[0])
        for label, fn in (("forward", jax.jit(forward)), ("train_forward", train_forward)):
            row[f"{label}_ms"] = 1e3 * statistics.median(timed(fn, x, kernel, repeats=repeats))
        rows.append(row)
    return rows


def benchmark_pipeline(config: dict, batch_size: int, args: argparse.Namespace) -> dict:
    """The input pipeline's samples/s on a synthetic file of the configuration's grid."""
    lat, lon = config["grid"]
    path = os.path.join(args.data_dir, f"synthetic-{args.synthetic_steps}x{lat}x{lon}.nc")
    synthetic_file(path, args.synthetic_steps, lat, lon)
    dataset = load_dataset(
        path,
        input_length=config["input_length"],
        horizon=config["horizon"],
        normalization=config["normalization"],
    )
    timing = stream(
        dataset.splits["train"],
        batch_size,
        batches=args.pipeline_batches,
        seconds=args.pipeline_seconds,
        to_device=True,
    )
    return {"file": path, "data": "synthetic (stconv.data.synthetic), not observations", **timing}


def device_description() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "host": {"machine": platform.machine(), "cpu_count": os.cpu_count()},
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "flax": flax.__version__,
        "python": platform.python_version(),
    }


def check_pipeline(results: dict, config_name: str) -> None:
    """Adds to the config's pipeline entry its ratio to the fastest train step there."""
    pipeline = results["pipeline"].get(config_name)
    runs = [r for r in results["runs"] if r["config"] == config_name and r["status"] == "ok"]
    if pipeline is None or not runs:
        return
    fastest = max(runs, key=lambda run: run["samples_per_s"])
    pipeline["fastest_model"] = fastest["model"]
    pipeline["fastest_train_samples_per_s"] = fastest["samples_per_s"]
    pipeline["ratio"] = pipeline["samples_per_s"] / fastest["samples_per_s"]
    pipeline["target_ratio"] = PIPELINE_TARGET
    pipeline["meets_target"] = pipeline["ratio"] >= PIPELINE_TARGET


def _number(value, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


COLUMNS = [
    ("config", "{:8s}"),
    ("model", "{:38s}"),
    ("params", "{:>9s}"),
    ("compile s", "{:>9s}"),
    ("step s", "{:>8s}"),
    ("samples/s", "{:>9s}"),
    ("GFLOP", "{:>8s}"),
    ("GFLOP/s", "{:>8s}"),
    ("of ceil", "{:>7s}"),
    ("eval/s", "{:>8s}"),
    ("mem MiB", "{:>8s}"),
]


def row_cells(run: dict) -> list[str]:
    """The table cells of one run (markdown and printed table alike)."""
    if run["status"] != "ok":
        return [run["config"], run["model"], f"{run['status']}: {run['reason']}"]
    return [
        run["config"],
        run["model"],
        f"{run['parameters']:,}",
        f"{run['compile_s']:.1f}",
        f"{run['step_s']:.3g}",
        f"{run['samples_per_s']:.3g}",
        f"{run['gflop_per_step']:.3g}",
        f"{run['gflop_per_s']:.3g}",
        f"{run['fraction_of_ceiling']:.0%}",
        f"{run['eval_samples_per_s']:.3g}",
        _number(run["memory"].get("total_bytes", math.nan) / 2**20, ".0f"),
    ]


def print_row(cells: list[str]) -> None:
    if len(cells) < len(COLUMNS):
        print(f"{cells[0]:8s} {cells[1]:38s} {' '.join(cells[2:])}", flush=True)
        return
    print(
        " ".join(fmt.format(cell) for (_, fmt), cell in zip(COLUMNS, cells, strict=True)),
        flush=True,
    )


def pipeline_line(name: str, pipeline: dict) -> str:
    line = f"{name:8s} pipeline {pipeline['samples_per_s']:.0f} samples/s (synthetic file)"
    if "ratio" in pipeline:
        verdict = "meets" if pipeline["meets_target"] else "FAILS"
        line += (
            f", {pipeline['ratio']:.1f}x the fastest train step ({pipeline['fastest_model']}, "
            f"{pipeline['fastest_train_samples_per_s']:.3g} samples/s): {verdict} the "
            f">= {PIPELINE_TARGET:.0f}x target"
        )
    return line


def markdown(results: dict) -> str:
    """The results as a markdown page for experiments/results/."""
    device, ceiling, settings = results["device"], results["ceiling"], results["settings"]
    lines = [
        "# Benchmark: every model at the paper's configurations",
        "",
        f"`{results['command']}`",
        "",
        f"Device: {device['platform']} ({device['device_kind']}) x {device['device_count']}, "
        f"host {device['host']['machine']} with {device['host']['cpu_count']} cores; "
        f"jax {device['jax']}, flax {device['flax']}; {results['date']}. "
        f"Train batch {settings['batch_size']}, eval batch {settings['eval_batch_size']}, "
        f"median of {settings['steps']} steps after a warm-up, synthetic random-normal inputs.",
        "",
        f"Ceiling: {ceiling['matmul_size']} x {ceiling['matmul_size']} f32 matmul, measured in "
        f"the same run: {ceiling['gflop_per_s']:.0f} GFLOP/s at the default precision "
        f"({ceiling['highest_precision_gflop_per_s']:.0f} GFLOP/s at the highest).",
        "",
        "Configurations: "
        + "; ".join(f"{name} {describe(config)}" for name, config in results["configs"].items())
        + ". PredRNN kernel 3, PredRNN and MIM dropout 0.5, as the paper trained them.",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for run in results["runs"]:
        cells = row_cells(run)
        cells += [""] * (len(COLUMNS) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "GFLOP per train step: the model's matrix products and convolutions written as "
        "plain XLA convolutions, counted from the jaxpr (scan bodies times their length). "
        "`of ceil`: "
        "GFLOP/s over the matmul ceiling. `eval/s`: samples/s of the eval-mode forecast. "
        "`mem MiB`: XLA's buffer assignment for the train step (arguments, outputs, "
        "temporaries).",
        "",
        "## Input pipeline",
        "",
        "Shuffled training batches of the real pipeline over a synthetic netCDF file of each "
        "grid (synthetic values), copied to the device; measured alone.",
        "",
        "| config | samples/s | fastest train step | its samples/s | ratio | >= 5x |",
        "|---|---|---|---|---|---|",
    ]
    for name, pipeline in results["pipeline"].items():
        lines.append(
            f"| {name} | {pipeline['samples_per_s']:.0f} | {pipeline.get('fastest_model', '-')} "
            f"| {_number(pipeline.get('fastest_train_samples_per_s'), '.3g')} "
            f"| {_number(pipeline.get('ratio'), '.1f')} "
            f"| {'yes' if pipeline.get('meets_target') else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def write_json(results: dict, path: str) -> None:
    """Writes ``results`` atomically, so an interrupted run leaves the last good file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(partial, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    available = models.available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["all"], choices=["all", *available],
        help="models to run (default: all registered)",
    )  # fmt: skip
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
        help="configurations (default: all)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=15, help="train batch (paper: 15)")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after a warm-up")
    parser.add_argument("--layers", action="store_true", help="also time each conv layer")
    parser.add_argument("--json", help="write the results here, after every run")
    parser.add_argument("--markdown", help="write a markdown table here")
    parser.add_argument("--resume", action="store_true", help="skip the runs --json holds")
    parser.add_argument("--matmul-size", type=int, help="ceiling matmul size (default: auto)")
    parser.add_argument(
        "--data-dir", default=os.path.join(tempfile.gettempdir(), "stconv-benchmark"),
        help="where the synthetic files for the pipeline are written once",
    )  # fmt: skip
    parser.add_argument("--synthetic-steps", type=int, default=2000, help="time steps per file")
    parser.add_argument("--pipeline-batches", type=int, default=300)
    parser.add_argument("--pipeline-seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=1, help="untimed train steps first")
    parser.add_argument(
        "--reference", metavar="DIR",
        help="time the reference (a checkout of MLRG-CEFET-RJ/stconvs2s) side by side "
        "(`benchmark_reference`) instead",
    )  # fmt: skip
    parser.add_argument(
        "--reference-python", default="python3",
        help="a Python with torch for the reference (pip install torch==2.13.0)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="--reference: runs per side")
    parser.add_argument("--eval-repeats", type=int, help="timed forecasts (default: --steps)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "all" in args.models:
        args.models = available
    if args.resume and not args.json:
        parser.error("--resume needs --json")
    return args


def worker(args: argparse.Namespace) -> dict:
    """One model at one configuration, printed as a JSON line (for `benchmark_reference`)."""
    ((model_name,), (config_name,)) = (args.models, args.configs)
    run = benchmark_model(
        model_name, CONFIGS[config_name], args.batch_size, args.steps, args.eval_batch_size,
        args.warmup, args.eval_repeats,
    )  # fmt: skip
    if run["status"] == "ok":
        run["peak_rss_bytes"] = run["memory"]["process_peak_rss_bytes"]
        run["train_peak_rss_bytes"] = run["memory"]["train_peak_rss_bytes"]
    print(json.dumps(run), flush=True)
    return run


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark; returns the results also written to ``--json``."""
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.worker:
        return worker(args)
    if args.reference:
        args.argv = argv
        results = benchmark_reference.compare(args, CONFIGS, device_description())
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(benchmark_reference.markdown(results))
        return results
    settings = {
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "steps": args.steps,
    }
    old = {"runs": [], "configs": {}, "pipeline": {}}
    if args.resume and os.path.exists(args.json):
        with open(args.json) as f:
            old = json.load(f)
        if old["settings"] != settings:
            raise SystemExit(f"{args.json} holds runs with {old['settings']}, not {settings}")

    device = device_description()
    print(f"devices: {jax.devices()}", flush=True)
    ceiling = measure_ceiling(args.matmul_size)
    print(
        f"f32 matmul ceiling ({ceiling['matmul_size']}^2): {ceiling['gflop_per_s']:.0f} GFLOP/s "
        f"at the default precision, {ceiling['highest_precision_gflop_per_s']:.0f} at the highest",
        flush=True,
    )
    results = {
        "command": " ".join(["python experiments/benchmark.py", *argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device,
        "ceiling": ceiling,
        "settings": settings,
        "configs": {**old["configs"], **{name: CONFIGS[name] for name in args.configs}},
        "runs": old["runs"],
        "pipeline": old["pipeline"],
    }
    done = {(run["model"], run["config"]) for run in old["runs"]}

    def save() -> None:
        if args.json:
            write_json(results, args.json)
        if args.markdown:
            os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
            with open(args.markdown, "w") as f:
                f.write(markdown(results))

    print(" ".join(fmt.format(title) for title, fmt in COLUMNS), flush=True)
    for run in old["runs"]:
        print_row(row_cells(run))
    for config_name in args.configs:
        config = CONFIGS[config_name]
        for model_name in args.models:
            if (model_name, config_name) in done:
                continue
            try:
                run = benchmark_model(
                    model_name, config, args.batch_size, args.steps, args.eval_batch_size
                )
            except Exception as error:  # e.g. out of device memory: report, go on
                traceback.print_exc()
                run = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
            run = {"model": model_name, "config": config_name, **run}
            if run["status"] == "ok":
                run["ceiling_gflop_per_s"] = ceiling["gflop_per_s"]
                run["fraction_of_ceiling"] = run["gflop_per_s"] / ceiling["gflop_per_s"]
            results["runs"].append(run)
            print_row(row_cells(run))
            if args.layers and run["status"] == "ok":
                input_shape = (args.batch_size, config["input_length"], *config["grid"], 1)
                model = models.create(
                    model_name,
                    input_shape=input_shape[1:],
                    horizon=config["horizon"],
                    **run["hyperparameters"],
                )
                run["layers"] = benchmark_layers(model, input_shape, repeats=3)
                print(
                    "    forward+backward of each conv: stconv's formulation, "
                    "without FFTs, as a plain XLA conv; stconv's forward alone, in a "
                    "forecast and in the train step"
                )
                for row in run["layers"]:
                    print(
                        f"    input {tuple(row['input'])!s:22s} "
                        f"kernel {tuple(row['kernel'])!s:22s}"
                        f" stconv {row['stconv_ms']:7.1f} ms  direct {row['direct_ms']:7.1f} ms"
                        f"  xla {row['xla_ms']:7.1f} ms  forward {row['forward_ms']:7.1f} ms"
                        f"  train-step forward {row['train_forward_ms']:7.1f} ms",
                        flush=True,
                    )
            save()
        results["pipeline"][config_name] = benchmark_pipeline(config, args.batch_size, args)
        check_pipeline(results, config_name)
        print(pipeline_line(config_name, results["pipeline"][config_name]), flush=True)
        save()
    return results


if __name__ == "__main__":
    main()
