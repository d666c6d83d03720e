"""The image-classification baseline: CNN vs MLP on real handwritten digits.

    pip install 'stconv[mnist]'
    python experiments/classify.py --workdir runs/mnist-5k
    python experiments/classify.py --workdir runs/mnist-seeds --seeds 0 1 2 3 4 \\
        --output experiments/results/classify

Without ``--seeds`` it is ``stconv classify``: test accuracy, trainable
parameters and training time of both models and a confusion-matrix PNG for
each. With ``--seeds``, it runs ``stconv classify`` once per seed (the seed
draws the split, the initialisation and the batch order) into
``WORKDIR/seed-N`` and writes ``OUTPUT.md`` and ``OUTPUT.json``: each model's
accuracy per seed, their mean and standard deviation, and the data file's
SHA-256 and the software versions from the runs' provenance records.
"""

import argparse
import json
import os
import sys

import numpy as np

from stconv import cli
from stconv.runs.directory import RunDirectory


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="one run per seed")
    parser.add_argument("--output", help="with --seeds: OUTPUT.md and OUTPUT.json")
    parser.add_argument("--workdir", required=True)
    return parser.parse_known_args(argv)


def run_seeds(args: argparse.Namespace, classify_args: list[str]) -> dict:
    """``stconv classify`` per seed; the accuracies, their mean and std, and the provenance."""
    runs = {}
    for seed in args.seeds:
        workdir = os.path.join(args.workdir, f"seed-{seed}")
        if not RunDirectory(workdir).has(RunDirectory.RESULTS):
            argv = ["classify", "--workdir", workdir, "--seed", str(seed), *classify_args]
            if cli.main(argv) != 0:
                raise SystemExit(f"error: stconv classify failed for seed {seed}")
        runs[seed] = RunDirectory(workdir)
    results = {seed: run.results() for seed, run in runs.items()}
    first = runs[args.seeds[0]].provenance()
    models = [name for name in results[args.seeds[0]] if name != "dataset"]
    summary = {
        name: {
            "accuracy": [results[seed][name]["accuracy"] for seed in args.seeds],
            "mean": float(np.mean([results[seed][name]["accuracy"] for seed in args.seeds])),
            "std": float(np.std([results[seed][name]["accuracy"] for seed in args.seeds])),
            "parameters": results[args.seeds[0]][name]["parameters"],
            "train_seconds": [results[seed][name]["train_seconds"] for seed in args.seeds],
        }
        for name in models
    }
    return {
        "command": " ".join(["python experiments/classify.py", *sys.argv[1:]]),
        "dataset": results[args.seeds[0]]["dataset"],
        "seeds": args.seeds,
        "config": first["config"],
        "data": first["inputs"],
        "software": first["sessions"][0]["software"],
        "stconv": first["sessions"][0]["stconv"],
        "machine": first["sessions"][0]["machine"],
        "models": summary,
    }


def markdown(summary: dict) -> str:
    config = summary["config"]
    lines = [
        f"# Image classification over {len(summary['seeds'])} seeds",
        "",
        f"- command: `{summary['command']}`",
        f"- {summary['dataset']}: stratified 80/20 split, {config['epochs']} epochs, Adam "
        f"{config['learning_rate']:g}, batch {config['batch_size']}; each seed draws the split, "
        "the initialisation and the batch order",
        "- data: " + ", ".join(f"{d['path']} (SHA-256 {d['sha256']})" for d in summary["data"]),
        f"- code: stconv {summary['stconv']['version']}, commit {summary['stconv']['commit']}"
        + " (with uncommitted changes)" * bool(summary["stconv"]["dirty"]),
        f"- software: {', '.join(f'{k} {v}' for k, v in summary['software'].items() if v)}",
        f"- machine: {summary['machine']['platform']}, {summary['machine']['cpu_count']} CPU "
        f"cores, {summary['machine']['backend']}",
        "",
        "| model | test accuracy, mean ± std | per seed "
        f"({', '.join(map(str, summary['seeds']))}) | trainable parameters | training time |",
        "|---|---|---|---|---|",
    ]
    for name, model in summary["models"].items():
        per_seed = ", ".join(f"{a:.1%}" for a in model["accuracy"])
        seconds = np.median(model["train_seconds"])
        lines.append(
            f"| {name.upper()} | {model['mean']:.2%} ± {model['std']:.2%} | {per_seed} "
            f"| {model['parameters']:,} | {seconds:.0f} s (median) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, classify_args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.seeds:
        return cli.main(["classify", "--workdir", args.workdir, *classify_args])
    summary = run_seeds(args, classify_args)
    text = markdown(summary)
    print(text)
    if args.output:
        with open(f"{args.output}.md", "w") as f:
            f.write(text)
        with open(f"{args.output}.json", "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
