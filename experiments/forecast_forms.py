"""A model's forecast with stconv's forecast forms against the train step's forms,
in one process, alternating.

`stconv.models.conv_algorithms` gives a forecast (no gradient taken) its own
forms where they measured faster than the train step's forward pass: banded
3D convolutions to few channels, direct 2D convolutions to more channels
than they read, XLA's strided convolution. This compiles the forecast with
them and without them (every convolution then runs the train step's forward
form), and times the two alternately, at one of the paper's configurations
(synthetic random inputs, as in ``benchmark.py``):

    python experiments/forecast_forms.py --model enc-dec3d --config chirps
    python experiments/forecast_forms.py --model convlstm --config cfsr --train

``--train`` times the train step instead, which the forms must leave as it
was: it says so when the two compiled programs are the same.
"""

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_step import compiled_step, step_parser

from stconv.models import conv_algorithms


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="time the train step instead")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
    args = parser.parse_args(argv)
    args.eval = not args.train
    return args


def train_step_forms() -> contextlib.ExitStack:
    """While open, programs traced take no forecast form: every convolution's
    forward pass is the one the train step runs."""
    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(conv_algorithms, "uses_banded", lambda *_: False))
    stack.enter_context(mock.patch.object(conv_algorithms, "forecast_is_direct", lambda *_: False))
    stack.enter_context(
        mock.patch.object(conv_algorithms, "STRIDED_DIRECT_MIN_CHANNELS", float("inf"))
    )
    return stack


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Seconds per run of each side, ``repeats`` each, alternating."""
    args = parse_args(argv)
    runs, programs = {}, set()
    for name, forms in (("train-step forms", train_step_forms), ("forecast forms", None)):
        with forms() if forms else contextlib.nullcontext():
            compiled, run = compiled_step(args)  # traced and compiled here
        programs.add(compiled.as_text())
        jax.block_until_ready(run())
        runs[name] = run
    if len(programs) == 1:
        print(f"{args.model} at {args.config}: the forecast forms leave the program as it was")
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    what = "train step" if args.train else f"forecast of {args.eval_batch_size}"
    for name, seconds in times.items():
        median, low, high = statistics.median(seconds), min(seconds), max(seconds)
        print(
            f"{args.model} at {args.config}, {what}, {name}: median {median:.3f} s"
            f" ({low:.3f}-{high:.3f}); " + " ".join(f"{s:.3f}" for s in seconds),
            flush=True,
        )
    return times


if __name__ == "__main__":
    main()
