"""Input-pipeline benchmark on a synthetic dataset larger than it needs to be in memory.

Writes (once) a multi-GB synthetic netCDF file, opens it lazily with dask,
streams shuffled training batches through the grain pipeline and prints
windows/s and the process's peak resident memory. The data are synthetic
(`stconv.synthetic`), labelled so in the file.

    python experiments/benchmark_data.py --steps 13000 --lat 192 --lon 256  # ~2.6 GB
"""

import argparse
import os
import resource
import time

from tqdm import tqdm

from stconv.datasets import load_dataset
from stconv.pipeline import epoch_batches
from stconv.synthetic import write_synthetic_netcdf


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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
        os.makedirs(os.path.dirname(args.path) or ".", exist_ok=True)
        print(f"writing {args.path}: {args.steps} x {args.lat} x {args.lon} f32 = {size_gb:.1f} GB")
        start = time.perf_counter()
        write_synthetic_netcdf(args.path, args.steps, args.lat, args.lon)
        print(f"  written in {time.perf_counter() - start:.0f} s")
    print(f"file: {args.path}, {os.path.getsize(args.path) / 1e9:.1f} GB on disk")

    start = time.perf_counter()
    dataset = load_dataset(args.path, chunks={"time": args.chunk})
    train = dataset.splits["train"]
    print(
        f"opened lazily and fitted statistics in {time.perf_counter() - start:.0f} s: "
        f"{len(train)} training windows; peak RSS {peak_rss_gib():.2f} GiB"
    )

    batches = epoch_batches(train, args.batch_size, seed=0, num_threads=args.threads)
    next(batches)  # start the reader threads
    start = time.perf_counter()
    for _ in tqdm(range(args.batches), desc="batches", unit="batch"):
        next(batches)
    seconds = time.perf_counter() - start
    windows = args.batches * args.batch_size
    print(
        f"streamed {windows} shuffled windows ({args.batch_size} per batch, "
        f"{args.threads} threads) in {seconds:.1f} s: {windows / seconds:.0f} windows/s, "
        f"{windows / seconds * dataset.input_shape[1] * dataset.input_shape[2] * 10 * 4 / 1e6:.0f}"
        f" MB/s of frames; peak RSS {peak_rss_gib():.2f} GiB for a {size_gb:.1f} GB file"
    )


if __name__ == "__main__":
    main()
