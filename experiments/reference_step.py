"""Times the reference's train step and eval forecast: the worker that
``experiments/benchmark.py --reference DIR`` runs beside stconv's.

It runs in an environment with torch (not a dependency of stconv; the CPU
build on these machines) and a checkout of the reference (github
MLRG-CEFET-RJ/stconvs2s), builds the reference's model of one configuration
(its class by stconv's registry name, `tests/reference/record.py`), and
prints one JSON line: the median and every time of ``--steps`` train steps
after ``--warmup`` (the paper's RMSE loss ``sqrt(MSE + 1e-6)`` and RMSprop,
lr 1e-3, alpha 0.9, eps 1e-6, as in the reference's training), the first
step's time (the reference runs eagerly: there is no compile), the
eval-mode forecast's samples/s at ``--eval-batch-size`` and the process's
peak resident memory, after the train steps and after the forecast. Inputs
are random normal, as in stconv's worker.
MIM's train step runs under ``record.cloning_split``, as when its golden
fixtures were recorded: the reference's MIM modifies in place the views that
``torch.split`` returns, which torch 2 refuses when it needs gradients. The
copies cost MIM some time the reference did not spend under the torch it was
written for; the other models (ConvLSTM splits too) run unchanged.

    /tmp/torch-env/bin/python experiments/reference_step.py --reference /path/to/stconvs2s \\
        --model stconvs2s-r --grid 32 32 --horizon 5 --num-layers 3 --hidden-dim 32 \\
        --kernel-size 5
"""

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

RECURRENT = ("convlstm", "predrnn", "mim")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="checkout of the reference")
    parser.add_argument("--model", required=True, help="stconv's registry name")
    parser.add_argument("--grid", type=int, nargs=2, required=True, metavar=("LAT", "LON"))
    parser.add_argument("--input-length", type=int, default=5)
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--num-layers", type=int, required=True)
    parser.add_argument("--hidden-dim", type=int, required=True)
    parser.add_argument("--kernel-size", type=int, required=True)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eval-repeats", type=int, default=3, help="timed forecasts")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not (Path(args.reference) / "model" / "stconvs2s.py").is_file():
        sys.exit(f"--reference {args.reference!r} is not a checkout of the reference")
    sys.path.insert(0, args.reference)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
    from record import cloning_split, reference_classes

    torch.manual_seed(0)
    input_size = (args.batch_size, 1, args.input_length, *args.grid)
    model = reference_classes()[args.model](
        input_size,
        args.num_layers,
        args.hidden_dim,
        args.kernel_size,
        "cpu",
        args.dropout,
        args.horizon,
    )
    output_length = (
        args.horizon if args.model in RECURRENT else max(args.horizon, args.input_length)
    )
    inputs = torch.randn(input_size)
    targets = torch.randn((args.batch_size, 1, output_length, *args.grid))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-6)

    def train_step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad()
        with cloning_split() if args.model == "mim" else contextlib.nullcontext():
            output = model(inputs)
        loss = torch.sqrt(torch.nn.functional.mse_loss(output, targets) + 1e-6)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    model.train()
    first_step = train_step()
    for _ in range(args.warmup - 1):
        train_step()
    times = [train_step() for _ in range(args.steps)]
    train_peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    model.eval()
    eval_inputs = torch.randn((args.eval_batch_size, 1, args.input_length, *args.grid))
    eval_times = []
    with torch.no_grad():
        model(eval_inputs)
        for _ in range(args.eval_repeats):
            start = time.perf_counter()
            model(eval_inputs)
            eval_times.append(time.perf_counter() - start)
    eval_seconds = statistics.median(eval_times)
    result = {
        "step_s": statistics.median(times),
        "step_times_s": times,
        "first_step_s": first_step,
        "eval_samples_per_s": args.eval_batch_size / eval_seconds,
        "train_peak_rss_bytes": train_peak_rss_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
