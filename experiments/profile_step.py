"""Where one train step (or eval forecast) of a model spends its time, by operation.

Runs the compiled step under `jax.profiler.trace`, reads the trace's events
(one per XLA operation executed, its name the HLO instruction's) and adds
their durations up by the JAX operation each instruction comes from (the
``op_name`` that the compiled HLO records), split into the forward pass
(``jvp``), the backward pass (``transpose``) and the rest. Synthetic random
inputs at one of the paper's configurations (`benchmark.CONFIGS`), as in
``benchmark.py``.

    python experiments/profile_step.py --model predrnn --config chirps
    python experiments/profile_step.py --model convlstm --config chirps --eval --top 10

Durations are per step, averaged over ``--steps`` traced steps. The sum can
exceed the step's wall time, since XLA's CPU runtime runs independent
operations on its threads at once; it is the operations' own time.
"""

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import CONFIGS, model_kwargs

from stconv import models
from stconv.training.step import create_optimizer, make_predict, make_train_step

INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\S+) .*?op_name="([^"]+)"')


def step_parser(description: str) -> argparse.ArgumentParser:
    """The arguments `compiled_step` reads but ``eval``: model, configuration, batches."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, choices=models.available())
    parser.add_argument("--config", required=True, choices=list(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--eval", action="store_true", help="profile the eval forecast instead")
    parser.add_argument("--steps", type=int, default=2, help="traced steps")
    parser.add_argument("--top", type=int, default=20, help="operations to print")
    return parser.parse_args(argv)


def compiled_step(args: argparse.Namespace, compiler_options: dict | None = None):
    """The compiled train step (or forecast) and a function running it once;
    ``compiler_options`` go to XLA (`jax.stages.Lowered.compile`)."""
    config = CONFIGS[args.config]
    input_shape = (config["input_length"], *config["grid"], 1)
    model = models.create(
        args.model, input_shape=input_shape, horizon=config["horizon"],
        **model_kwargs(args.model, config),
    )  # fmt: skip
    key_x, key_y = jax.random.split(jax.random.key(0))
    train_step, state = make_train_step(model, create_optimizer(model))
    if args.eval:
        inputs = jax.random.normal(key_x, (args.eval_batch_size, *input_shape))
        lowered = make_predict(model, config["horizon"]).lower(state[0], inputs)
        compiled = lowered.compile(compiler_options)
        return compiled, lambda: compiled(state[0], inputs)
    batch = {
        "inputs": jax.random.normal(key_x, (args.batch_size, *input_shape)),
        "targets": jax.random.normal(key_y, (args.batch_size, config["horizon"], *input_shape[1:])),
    }
    compiled = train_step.lower(state, batch).compile(compiler_options)
    holder = {"state": state}

    def run():
        holder["state"], metrics = compiled(holder["state"], batch)
        return metrics

    return compiled, run


def instruction_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (its shape, the JAX operation it comes from)."""
    sources = {}
    for line in hlo_text.splitlines():
        match = INSTRUCTION.match(line)
        if match:
            name, shape, op_name = match.groups()
            sources[name] = (shape, op_name)
    return sources


def operation(op_name: str) -> tuple[str, str]:
    """``(pass, operation)`` of an ``op_name`` such as
    ``jit(train_step)/transpose(jvp())/while/body/closed_call/conv_general_dilated``."""
    parts = [p for p in op_name.split("/")[1:] if p not in ("while", "body", "closed_call")]
    stage = "backward" if any(p.startswith("transpose(") for p in parts) else "forward"
    if not any(p.startswith(("jvp(", "transpose(")) for p in parts):
        stage = "other"
    parts = [p for p in parts if not p.startswith(("jvp(", "transpose("))]
    return stage, "/".join(parts[-2:]) if parts else "?"


def traced_durations(run, steps: int) -> list[dict]:
    """The trace's complete events ("X") of ``steps`` runs, after one untraced run."""
    jax.block_until_ready(run())
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for _ in range(steps):
                jax.block_until_ready(run())
        (path,) = Path(folder).rglob("*.trace.json.gz")
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    return [e for e in events if e.get("ph") == "X"]


def profile(args: argparse.Namespace) -> list[dict]:
    """Milliseconds per step by (pass, operation), largest first."""
    compiled, run = compiled_step(args)
    sources = instruction_sources(compiled.as_text())
    totals, examples = collections.Counter(), collections.defaultdict(set)
    for event in traced_durations(run, args.steps):
        if event["name"] not in sources:
            continue  # the runtime's own events, not an XLA operation
        shape, op_name = sources[event["name"]]
        key = operation(op_name)
        totals[key] += event.get("dur", 0) / 1e3 / args.steps
        examples[key].add(shape.split("{")[0])
    return [
        {"pass": stage, "operation": name, "ms": ms, "shapes": sorted(examples[stage, name])[:3]}
        for (stage, name), ms in totals.most_common()
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    rows = profile(args)
    total = sum(row["ms"] for row in rows)
    what = "eval forecast" if args.eval else "train step"
    print(f"{args.model} at {args.config}, {what}: {total:.1f} ms of XLA operations per step")
    print(f"{'ms':>8} {'share':>6}  {'pass':9} {'operation':42} shapes")
    for row in rows[: args.top]:
        print(
            f"{row['ms']:8.1f} {row['ms'] / total:6.1%}  {row['pass']:9} "
            f"{row['operation'][:42]:42} {', '.join(row['shapes'])}"
        )
    return rows


if __name__ == "__main__":
    main()
