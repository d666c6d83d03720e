"""Input-pipeline benchmark on a synthetic dataset larger than it needs to be in memory.

Writes (once) a multi-GB synthetic netCDF file, opens it lazily with dask,
streams shuffled training batches through the grain pipeline and prints
windows/s and the process's peak resident memory. The data are synthetic
(`stconv.data.synthetic`), labelled so in the file.

    python experiments/benchmark_data.py --steps 13000 --lat 192 --lon 256  # ~2.6 GB

`synthetic_file` and `stream` are shared with ``experiments/benchmark.py``,
which measures the pipeline at the paper's grids against the train step.
"""

import argparse
import itertools
import os
import resource
import sys
import time

import jax

from stconv.data.pipeline import epoch_batches
from stconv.data.registry import load_dataset
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.outputs import progress_bar


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/tmp/stconv-benchmark/synthetic.nc")
    parser.add_argument("--steps", type=int, default=13000, help="time steps in the file")
    parser.add_argument("--lat", type=int, default=192)
    parser.add_argument("--lon", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--batches", type=int, default=200, help="batches to time")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=16, help="dask chunk length in time")
    args = parser.parse_args()

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
        f"{len(train)} training windows; peak RSS {peak_rss_bytes() / 2**30:.2f} GiB"
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
        f" MB/s of frames; peak RSS {peak_rss_bytes() / 2**30:.2f} GiB for a {size_gb:.1f} GB file"
    )


if __name__ == "__main__":
    main()
