"""Where one train step's (or eval forecast's) resident memory goes.

Prints the process's resident memory and its high-water mark after each
stage (imports, the runtime's first array, building the model and compiling
its step, running the step), XLA's buffer assignment of the compiled program
(arguments, outputs, temporaries) and its largest allocations, each with the
shapes of the values that share it (alike allocations added up), from the
memory-usage report XLA writes when it dumps the program. Synthetic random
inputs at one of the paper's configurations (`benchmark.CONFIGS`), as in
``profile_step.py``.

    python experiments/profile_memory.py --model conv3d --config cfsr
    python experiments/profile_memory.py --model mim --config chirps --eval --top 10

The compiler's freed memory is given back before the step runs, as in
training (`stconv.training.heap`); ``--keep-heap`` leaves it in the heap, to
see what that saves; ``--no-fourier`` convolves directly where stconv would
use FFTs, to see what their spectra cost. Reads ``/proc/self/status``, so Linux only.
"""

import argparse
import contextlib
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_step import compiled_step, step_parser

from stconv.models import conv_algorithms
from stconv.training import heap

ALLOCATION = re.compile(r"^\s*[\d.]+\w*\(\s*\d+%\);\s*([\d.]+)(\w*);\s*\d+;\s*\d+;\s*(.*)$")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--eval", action="store_true", help="the eval forecast instead")
    parser.add_argument("--steps", type=int, default=2, help="steps run before the last stage")
    parser.add_argument("--top", type=int, default=8, help="temporary allocations to print")
    parser.add_argument(
        "--keep-heap", action="store_true",
        help="keep what the compiler frees in the heap (no `stconv.training.heap` trim)",
    )  # fmt: skip
    parser.add_argument(
        "--no-fourier", action="store_true",
        help="convolve directly where stconv would use FFTs (what their buffers cost)",
    )  # fmt: skip
    return parser.parse_args(argv)


def resident_memory() -> dict:
    """This process's resident memory now and its high-water mark so far, in bytes."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024  # kB
    return {"rss_bytes": fields["VmRSS"], "peak_bytes": fields["VmHWM"]}


def allocations(report: str) -> list[dict]:
    """The allocations of the first (default) memory space of an XLA
    memory-usage report: bytes, and the shapes of the values that share it."""
    rows = []
    for line in report.split("\n\n")[0].splitlines():
        match = ALLOCATION.match(line)
        if match:
            size, unit, shapes = match.groups()
            rows.append({"bytes": float(size) * UNITS[unit or "B"], "shapes": shapes})
    return rows


def largest_groups(rows: list[dict], top: int) -> list[dict]:
    """Allocations holding the same shapes added up: the ``top`` largest groups,
    each with its allocations' count and total bytes."""
    groups = {}
    for row in rows:
        group = groups.setdefault(row["shapes"], {"shapes": row["shapes"], "count": 0, "bytes": 0})
        group["count"] += 1
        group["bytes"] += row["bytes"]
    return sorted(groups.values(), key=lambda group: -group["bytes"])[:top]


def memory_report(folder: str, module_name: str) -> str:
    """The memory-usage report of the last program called ``module_name`` dumped to ``folder``."""
    paths = sorted(Path(folder).glob(f"module_*.{module_name}.*memory-usage-report.txt"))
    if not paths:
        raise FileNotFoundError(f"no memory-usage report for {module_name} in {folder}")
    return paths[-1].read_text()


def profile(args: argparse.Namespace, dump_folder: str) -> dict:
    """Resident memory by stage, XLA's buffer sizes and the largest temporaries."""
    stages = {"imports": resident_memory()}
    jnp.zeros(1).block_until_ready()
    stages["runtime"] = resident_memory()
    cached = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)  # a cached program is not dumped
    try:
        compiled, run = compiled_step(args, {"xla_dump_to": dump_folder})
    finally:
        jax.config.update("jax_enable_compilation_cache", cached)
    stages["model and compile"] = resident_memory()
    for _ in range(args.steps):
        jax.block_until_ready(run())
    stages["eval forecast" if args.eval else "train steps"] = resident_memory()
    stats = compiled.memory_analysis()
    buffers = {
        name: int(getattr(stats, f"{name}_size_in_bytes"))
        for name in ("argument", "output", "alias", "temp")
    }
    module_name = compiled.as_text().split(maxsplit=2)[1].rstrip(",")
    rows = allocations(memory_report(dump_folder, module_name))
    return {
        "stages": stages,
        "buffers": buffers,
        "allocations": len(rows),
        "complex_bytes": sum(row["bytes"] for row in rows if "c64[" in row["shapes"]),
        "largest": largest_groups(rows, args.top),
    }


def no_fourier(frames: jax.Array, kernel: jax.Array) -> bool:
    """`stconv.models.conv_algorithms.fourier_applies` for ``--no-fourier``."""
    return False


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.3f}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.keep_heap:
            stack.enter_context(mock.patch.object(heap, "_malloc_trim", lambda pad: 0))
        if args.no_fourier:
            stack.enter_context(mock.patch.object(conv_algorithms, "fourier_applies", no_fourier))
        result = profile(args, stack.enter_context(tempfile.TemporaryDirectory()))
    what = "eval forecast" if args.eval else "train step"
    print(f"{args.model} at {args.config}, {what}; resident memory (GB):")
    print(f"{'stage':20} {'now':>7} {'peak':>7}")
    for stage, memory in result["stages"].items():
        print(
            f"{stage:20} {gigabytes(memory['rss_bytes']):>7} {gigabytes(memory['peak_bytes']):>7}"
        )
    print("XLA's buffers (GB): " + ", ".join(
        f"{name} {gigabytes(size)}" for name, size in result["buffers"].items()
    ))  # fmt: skip
    print(
        f"{result['allocations']} allocations, {gigabytes(result['complex_bytes'])} GB of them "
        "holding complex values (FFT spectra); the largest, alike ones added up (GB):"
    )
    for group in result["largest"]:
        print(f"{gigabytes(group['bytes']):>7}  {group['count']:3d} x  {group['shapes']}")
    return result


if __name__ == "__main__":
    main()
