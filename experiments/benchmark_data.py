"""Input-pipeline benchmark on a synthetic dataset larger than it needs to be in memory.

Writes (once) a multi-GB synthetic netCDF file, opens it lazily with dask,
streams shuffled training batches through the grain pipeline and prints
windows/s and the process's peak resident memory. The data are synthetic
(`stconv.data.synthetic`), labelled so in the file.

    python experiments/benchmark_data.py --steps 13000 --lat 192 --lon 256  # ~2.6 GB

`synthetic_file` and `stream` are shared with ``experiments/benchmark.py``,
which measures the pipeline at the paper's grids against the train step.

Streamed training (issue 43) has three more measurements, on synthetic zarr
stores of daily t2m (chunks of 64 days, written once under ``--data-dir``):

    # the peak RSS of `stconv train` streamed (--time-chunk) and in memory, at two lengths
    python experiments/benchmark_data.py memory --lengths 2000 8000 --lat 48 --lon 96
    # where a batch's time goes, and train batches streamed / in memory / the step alone
    python experiments/benchmark_data.py epoch --steps 10000 --lat 96 --lon 192 --batches 30
    # the peak RSS of `stconv check` at two lengths
    python experiments/benchmark_data.py check --lengths 8000 32000 --lat 48 --lon 96

Each writes ``--json`` and ``--markdown`` (the results of both go to
``experiments/results/benchmark_data-streaming.*`` by default, merged).
"""

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np
import pandas as pd
import xarray as xr

from stconv.data.pipeline import epoch_batches
from stconv.data.registry import load_dataset
from stconv.data.synthetic import ATTRS, synthetic_frames, write_synthetic_netcdf
from stconv.outputs import progress_bar
from stconv.runs.provenance import peak_memory_bytes


def synthetic_file(path: str, steps: int, lat: int, lon: int) -> str:
    """Writes the synthetic ``(steps, lat, lon)`` field to ``path`` unless it is there.

    The file is written under a temporary name and renamed, so an interrupted
    write never leaves a truncated file behind.

    Returns:
      ``path``.
    """
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        write_synthetic_netcdf(partial, steps, lat, lon)
        os.replace(partial, path)
    return path


def stream(
    source,
    batch_size: int,
    *,
    batches: int,
    seconds: float | None = None,
    to_device: bool = False,
    progress: bool = False,
    **options,
) -> dict:
    """Times shuffled batches of ``source`` through `stconv.data.pipeline.epoch_batches`.

    Epochs follow one another as in training (a new iterator, new order, each
    epoch); the first batch, which starts the reader threads, is not timed.

    Args:
      source: a random-access source, e.g. ``dataset.splits["train"]``.
      batch_size: examples per batch.
      batches: batches to time.
      seconds: stop earlier once this much time has passed.
      to_device: also copy each batch to the default device and wait for it,
        as the train step's input must be.
      progress: show a progress bar.
      **options: ``num_threads``, ``prefetch`` for `epoch_batches` (default: its own).

    Returns:
      ``{"batches", "samples", "seconds", "samples_per_s"}``.
    """
    epochs = (
        epoch_batches(source, batch_size, seed=0, epoch=epoch, **options)
        for epoch in itertools.count()
    )
    iterator = itertools.chain.from_iterable(epochs)
    next(iterator)  # start the reader threads
    bar = progress_bar(total=batches, desc="batches", unit="batch", show=progress, leave=True)
    samples = timed = 0
    start = time.perf_counter()
    while timed < batches and (seconds is None or time.perf_counter() - start < seconds):
        batch = next(iterator)
        if to_device:
            jax.block_until_ready(jax.device_put(batch))
        samples += len(batch["inputs"])
        timed += 1
        bar.update()
    elapsed = time.perf_counter() - start
    bar.close()
    return {
        "batches": timed,
        "samples": samples,
        "seconds": elapsed,
        "samples_per_s": samples / elapsed,
    }


def file_benchmark(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/tmp/stconv-benchmark/synthetic.nc")
    parser.add_argument("--steps", type=int, default=13000, help="time steps in the file")
    parser.add_argument("--lat", type=int, default=192)
    parser.add_argument("--lon", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--batches", type=int, default=200, help="batches to time")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=16, help="dask chunk length in time")
    args = parser.parse_args(argv)

    size_gb = args.steps * args.lat * args.lon * 4 / 1e9
    if not os.path.exists(args.path):
        print(f"writing {args.path}: {args.steps} x {args.lat} x {args.lon} f32 = {size_gb:.1f} GB")
        start = time.perf_counter()
        synthetic_file(args.path, args.steps, args.lat, args.lon)
        print(f"  written in {time.perf_counter() - start:.0f} s")
    print(f"file: {args.path}, {os.path.getsize(args.path) / 1e9:.1f} GB on disk")

    start = time.perf_counter()
    dataset = load_dataset(args.path, chunks={"time": args.chunk})
    train = dataset.splits["train"]
    print(
        f"opened lazily and fitted statistics in {time.perf_counter() - start:.0f} s: "
        f"{len(train)} training windows; peak RSS {peak_memory_bytes() / 2**30:.2f} GiB"
    )

    timing = stream(
        train, args.batch_size, batches=args.batches, num_threads=args.threads, progress=True
    )
    windows, seconds = timing["samples"], timing["seconds"]
    frame_bytes = dataset.input_shape[1] * dataset.input_shape[2] * 4
    print(
        f"streamed {windows} shuffled windows ({args.batch_size} per batch, "
        f"{args.threads} threads) in {seconds:.1f} s: {windows / seconds:.0f} windows/s, "
        f"{windows / seconds * frame_bytes * dataset.spec.length / 1e6:.0f}"
        f" MB/s of frames; peak RSS {peak_memory_bytes() / 2**30:.2f} GiB for a "
        f"{size_gb:.1f} GB file"
    )


STREAMING_RESULTS = os.path.join(os.path.dirname(__file__), "results", "benchmark_data-streaming")


def zarr_store(path: str, steps: int, lat: int, lon: int, chunk: int = 64) -> str:
    """Writes (once, under a temporary name) a zarr store of a synthetic daily
    ``t2m`` field ``(steps, lat, lon)`` from 2000-01-01, ``chunk`` days per
    chunk, labelled synthetic; returns ``path``."""
    if os.path.exists(path):
        return path
    times = pd.date_range("2000-01-01", periods=steps, freq="D")
    grid = {"lat": np.linspace(-89.0, 89.0, lat), "lon": np.linspace(0.0, 358.0, lon)}
    partial, written = f"{path}.{os.getpid()}.partial", 0
    for frames in synthetic_frames(steps, lat, lon, 1, chunk=chunk * 8):
        times_here = times[written : written + len(frames)]
        variable = (("time", "lat", "lon"), frames[..., 0], {**ATTRS, "units": "K"})
        block = xr.Dataset({"t2m": variable}, coords={"time": times_here, **grid})
        block.attrs["synthetic"] = "yes: stconv.data.synthetic, not observations"
        if written == 0:
            block.to_zarr(partial, mode="w", encoding={"t2m": {"chunks": (chunk, lat, lon)}})
        else:
            block.to_zarr(partial, append_dim="time")
        written += len(frames)
    os.replace(partial, path)
    return path


TRAIN_FLAGS = ("--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--epochs", "1")
CHILD = """import sys, warnings
warnings.filterwarnings("ignore")
from stconv.cli import main
code = main(sys.argv[1:])
from stconv.runs.provenance import peak_memory_bytes
print("PEAK_RSS_BYTES", peak_memory_bytes())
sys.exit(code)
"""


def train_peak(store: str, workdir: str, batch_size: int, time_chunk: int | None) -> dict:
    """Runs ``stconv train`` (the issue's smallest STConvS2S-R, one epoch) on
    ``store`` in a fresh process; its peak RSS and wall time."""
    flags = ["train", "--workdir", workdir, "--dataset", store, *TRAIN_FLAGS]
    flags += ["--batch-size", str(batch_size)]
    flags += [] if time_chunk is None else ["--time-chunk", str(time_chunk)]
    return command_peak(flags)


def command_peak(flags: list[str]) -> dict:
    """Runs ``stconv FLAGS`` in a fresh process; its peak RSS and wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *flags], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"stconv {flags[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = next(line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_BYTES"))
    return {"peak_rss_gib": int(peak.split()[1]) / 2**30, "seconds": seconds}


def length_store(steps: int, args: argparse.Namespace) -> str:
    """The synthetic store of ``steps`` days on the grid of ``args`` (`zarr_store`)."""
    path = os.path.join(args.data_dir, f"t2m-{steps}x{args.lat}x{args.lon}.zarr")
    return zarr_store(path, steps, args.lat, args.lon, args.chunk)


def peaks_by_length(args: argparse.Namespace, modes: dict) -> dict:
    """For every length of ``args`` and mode of ``modes`` (a name -> the
    function of the store and the run's folder that measures it, `command_peak`):
    the peak RSS and wall time, and the largest streamed peak over the smallest."""
    runs = []
    for steps in args.lengths:
        store = length_store(steps, args)
        for mode, measure in modes.items():
            name = f"{steps}-{mode.replace(' ', '-')}-{time.strftime('%Y%m%dT%H%M%S')}"
            workdir = os.path.join(args.data_dir, "runs", name)  # a new run each time
            row = {"steps": steps, "mode": mode, "data_gb": data_bytes(steps, args) / 1e9}
            runs.append({**row, **measure(store, workdir)})
            print(json.dumps(runs[-1]))
    streamed = [run["peak_rss_gib"] for run in runs if run["mode"] != "in memory"]
    return {
        "command": " ".join(sys.argv),
        "grid": [args.lat, args.lon],
        "runs": runs,
        "streamed_peak_ratio": max(streamed) / min(streamed),
    }


def memory_benchmark(args: argparse.Namespace) -> dict:
    """The peak RSS of `stconv train` streamed and in memory (or as
    ``--modes`` says) at every length."""
    modes = {
        "streamed": lambda store, workdir: train_peak(store, workdir, args.batch_size, args.chunk),
        "in memory": lambda store, workdir: train_peak(store, workdir, args.batch_size, None),
    }
    return peaks_by_length(args, {mode: modes[mode] for mode in args.modes})


def check_benchmark(args: argparse.Namespace) -> dict:
    """The peak RSS of `stconv check` (which streams the values) at every length."""
    return peaks_by_length(
        args, {"stconv check": lambda store, workdir: command_peak(["check", store, "--json"])}
    )


def data_bytes(steps: int, args: argparse.Namespace) -> int:
    return steps * args.lat * args.lon * 4


def batch_profile(dataset, batch_size: int, seed: int = 0) -> dict:
    """Milliseconds per batch of each stage, for one batch of random windows
    of the training split: read (a dask compute per window, as the source read
    before blocks; and per block, amortized over its windows), cut and
    normalize the windows, stack them, copy them to the device."""
    source = dataset.splits["train"]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(source), batch_size, replace=False)
    length, split = source.spec.length, source.spec.input_length
    timings = {}
    start = time.perf_counter()
    frames = [
        source.field.isel(time=slice(source.starts[i], source.starts[i] + length)).values
        for i in picks
    ]
    timings["read per window (dask compute per window, before)"] = time.perf_counter() - start
    blocks = source.read_blocks()
    start = time.perf_counter()
    block = source.read_block(0)
    per_window = (time.perf_counter() - start) / len(blocks[0])
    timings["read and normalize per block, amortized over its windows (now)"] = (
        per_window * batch_size
    )
    start = time.perf_counter()
    examples = [
        source.example(
            f[:split], f[split:], source.frame_times[source.starts[i] : source.starts[i] + length]
        )
        for f, i in zip(frames, picks, strict=True)
    ]
    timings["normalize, zero NaN, mask (per window)"] = time.perf_counter() - start
    start = time.perf_counter()
    batch = {key: np.stack([e[key] for e in examples]) for key in examples[0]}
    timings["stack into a batch"] = time.perf_counter() - start
    jax.block_until_ready(jax.device_put(batch))
    start = time.perf_counter()
    jax.block_until_ready(jax.device_put(batch))
    timings["host to device"] = time.perf_counter() - start
    del block
    return {name: seconds * 1e3 for name, seconds in timings.items()}


def tiny_step(dataset, batch_size: int):
    """The issue's smallest STConvS2S-R train step, compiled, and a batch for it."""
    from stconv import models
    from stconv.training.step import create_optimizer, make_train_step

    batch = next(epoch_batches(dataset.splits["train"], batch_size, seed=0, epoch=1))
    model = models.create(
        "stconvs2s-r", input_shape=dataset.input_shape, horizon=dataset.spec.horizon,
        num_layers=1, hidden_dim=2, kernel_size=3,
    )  # fmt: skip
    step, state = make_train_step(model, create_optimizer(model))
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    return step, state, batch


def timed_batches(step, state, batches, count: int) -> tuple[float, object]:
    """Seconds per train step over ``count`` batches of ``batches`` (the first one untimed)."""
    state, metrics = step(state, jax.device_put(next(batches)))
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(count):
        state, metrics = step(state, jax.device_put(next(batches)))
        float(metrics["loss"])  # as train_epoch does: wait for the step
    return (time.perf_counter() - start) / count, state


def epoch_benchmark(args: argparse.Namespace) -> dict:
    """Train batches streamed, in memory and the step alone on one batch,
    alternating ``--repeats`` times in this process, and a batch's profile."""
    store = length_store(args.steps, args)
    streamed = load_dataset(store, chunks={"time": args.chunk})
    in_memory = load_dataset(store)
    step, state, batch = tiny_step(in_memory, args.batch_size)
    profile = batch_profile(streamed, args.batch_size)
    repeated = {"streamed": [], "in memory": [], "step alone": []}
    for repeat in range(args.repeats):
        for name, dataset in (("streamed", streamed), ("in memory", in_memory)):
            batches = epoch_batches(
                dataset.splits["train"], args.batch_size, seed=0, epoch=repeat + 1
            )
            seconds, state = timed_batches(step, state, iter(batches), args.batches)
            repeated[name].append(seconds)
        seconds, state = timed_batches(step, state, itertools.repeat(batch), args.batches)
        repeated["step alone"].append(seconds)
        print(json.dumps({name: values[-1] for name, values in repeated.items()}))
    best = {name: min(values) for name, values in repeated.items()}
    profile["train step"] = best["step alone"] * 1e3
    return {
        "command": " ".join(sys.argv),
        "store": store,
        "data_gb": data_bytes(args.steps, args) / 1e9,
        "batch_size": args.batch_size,
        "batches_per_repeat": args.batches,
        "seconds_per_batch": repeated,
        "best_seconds_per_batch": best,
        "windows_per_s": {name: args.batch_size / value for name, value in best.items()},
        "streamed_over_in_memory": best["streamed"] / best["in memory"],
        "in_memory_over_step": best["in memory"] / best["step alone"],
        "profile_ms": profile,
    }


def machine() -> dict:
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "device": str(jax.devices()[0]),
        "date": time.strftime("%Y-%m-%d"),
        "jax": jax.__version__,
    }


MEMORY_SECTIONS = {
    "memory": "Peak memory of `stconv train`",
    "memory_before": "Before: the same, with the data and baseline modules of commit 20a5271",
    "memory_large": "Peak memory of `stconv train` streamed, on the issue's grid",
    "check": "Peak memory of `stconv check`",
}


def streaming_markdown(results: dict) -> str:
    """The results of ``memory`` and ``epoch`` as markdown tables."""
    lines = ["# Streamed training: memory and speed (issue 43)", ""]
    lines += [
        f"Machine: {results['machine']['machine']}, {results['machine']['device']}, "
        f"jax {results['machine']['jax']}, {results['machine']['date']}. The data are "
        "synthetic (`stconv.data.synthetic`), labelled so in the stores.",
        "",
    ]
    for key, title in MEMORY_SECTIONS.items():
        if key not in results:
            continue
        memory = results[key]
        lines += [
            f"## {title}",
            "",
            f"`{memory['command']}`",
            "",
            "| time steps | data | mode | peak RSS | wall time |",
            "|---|---|---|---|---|",
        ]
        for run in memory["runs"]:
            lines.append(
                f"| {run['steps']} | {run['data_gb']:.2f} GB | {run['mode']} | "
                f"{run['peak_rss_gib']:.2f} GiB | {run['seconds']:.0f} s |"
            )
        lines += [
            "",
            f"Streamed peak, largest over smallest: {memory['streamed_peak_ratio']:.3f}.",
            "",
        ]
    if "epoch" in results:
        epoch = results["epoch"]
        lines += [
            "## Train batches: streamed, in memory, the step alone",
            "",
            f"`{epoch['command']}`",
            "",
            f"{epoch['data_gb']:.2f} GB store, batch {epoch['batch_size']}, "
            f"{epoch['batches_per_repeat']} timed batches per side and repeat (best repeat):",
            "",
            "| side | s per batch | windows/s | every repeat |",
            "|---|---|---|---|",
        ]
        for name, best in epoch["best_seconds_per_batch"].items():
            every = ", ".join(f"{v:.2f}" for v in epoch["seconds_per_batch"][name])
            lines.append(f"| {name} | {best:.3f} | {epoch['windows_per_s'][name]:.1f} | {every} |")
        lines += [
            "",
            f"Streamed over in memory: {epoch['streamed_over_in_memory']:.3f}; "
            f"in memory over the step alone: {epoch['in_memory_over_step']:.3f}.",
            "",
            "Where a batch's time goes (ms per batch, single thread):",
            "",
            "| stage | ms |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.1f} |" for name, value in epoch["profile_ms"].items()]
        lines.append("")
    lines += [*results.get("notes", []), ""] if results.get("notes") else []
    return "\n".join(lines)


def streaming_benchmark(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="streamed training: memory, speed (issue 43)")
    parser.add_argument("measure", choices=tuple(MEASURES))
    parser.add_argument("--data-dir", default="/tmp/stconv-bench")
    parser.add_argument("--lengths", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--steps", type=int, default=10000, help="epoch: time steps")
    parser.add_argument("--lat", type=int, default=48)
    parser.add_argument("--lon", type=int, default=96)
    parser.add_argument(
        "--chunk", type=int, default=64, help="days per zarr chunk and --time-chunk"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="epoch: timed batches per side")
    parser.add_argument("--repeats", type=int, default=2, help="epoch: alternations")
    parser.add_argument(
        "--modes", nargs="+", default=["streamed", "in memory"], choices=("streamed", "in memory")
    )
    parser.add_argument("--key", help="the results' name in the JSON (default: the measure)")
    parser.add_argument("--json", default=f"{STREAMING_RESULTS}.json")
    parser.add_argument("--markdown", default=f"{STREAMING_RESULTS}.md")
    args = parser.parse_args(argv)
    results = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            results = json.load(f)
    measured = MEASURES[args.measure](args)
    results.update({args.key or args.measure: measured, "machine": machine()})
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    with open(args.markdown, "w") as f:
        f.write(streaming_markdown(results))


MEASURES = {"memory": memory_benchmark, "epoch": epoch_benchmark, "check": check_benchmark}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in MEASURES:
        streaming_benchmark(argv)
    else:
        file_benchmark(argv)


if __name__ == "__main__":
    main()
