"""stconv against the reference, side by side: ``benchmark.py --reference DIR``.

For every model with a reference counterpart (`stconv.models.reference_weights.WEIGHT_MAPS`)
and every configuration, ``--repeats`` times, it runs stconv's worker
(``benchmark.py --worker``: `benchmark.benchmark_model` in a fresh process)
and the reference's (``reference_step.py`` under ``--reference-python``, a
Python with torch) one after the other, alternating which goes first, so
that the machine's drift and noise hit both alike. Each worker times the
train step (the median of ``--steps`` steps after ``--warmup``) and the
eval-mode forecast, and reports its process's peak resident memory and
stconv's compile time (the reference, eager, reports its first step).

It reports, per model and configuration, the median over the repeats of
each side's median step and the ratio stconv / reference, with the range
over the repeats; models without a counterpart are timed alone. The JSON is
rewritten after every worker; the markdown table when all are done.
"""

import json
import os
import statistics
import subprocess
import sys

from stconv.config.presets import MODEL_SETTINGS
from stconv.models.reference_weights import WEIGHT_MAPS

HERE = os.path.dirname(os.path.abspath(__file__))


def stconv_command(model: str, config: str, args) -> list[str]:
    return [
        sys.executable, os.path.join(HERE, "benchmark.py"), "--worker", "--models", model,
        "--configs", config, "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--batch-size", str(args.batch_size), "--eval-batch-size", str(args.eval_batch_size),
        "--eval-repeats", str(args.eval_repeats or args.steps),
    ]  # fmt: skip


def reference_command(model: str, config: dict, args) -> list[str]:
    """The reference worker for the hyperparameters stconv's worker uses
    (the configuration's, with the model's own, e.g. PredRNN's kernel 3)."""
    hyper = {**config["hyperparameters"], **MODEL_SETTINGS.get(model, {})}
    return [
        args.reference_python, os.path.join(HERE, "reference_step.py"),
        "--reference", args.reference, "--model", model,
        "--grid", *map(str, config["grid"]), "--input-length", str(config["input_length"]),
        "--horizon", str(config["horizon"]), "--num-layers", str(hyper["num_layers"]),
        "--hidden-dim", str(hyper["hidden_dim"]), "--kernel-size", str(hyper["kernel_size"]),
        "--batch-size", str(args.batch_size), "--eval-batch-size", str(args.eval_batch_size),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--eval-repeats", str(args.eval_repeats or args.steps),
        "--dropout", str(hyper.get("dropout", 0.0)),
    ]  # fmt: skip


def run_worker(command: list[str]) -> dict:
    """The worker's JSON line (its last line of output), or its failure."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"status": "failed", "reason": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return {"status": "ok", **json.loads(lines[-1])}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(pair: dict) -> dict:
    """Medians and ranges over the repeats of one (model, configuration)."""
    ok = {side: [r for r in pair[side] if r["status"] == "ok"] for side in ("stconv", "reference")}
    summary = {}
    for side, runs in ok.items():
        if runs:
            summary[side] = {
                "step_s": spread([r["step_s"] for r in runs]),
                "eval_samples_per_s": spread([r["eval_samples_per_s"] for r in runs]),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
            }
            if all("train_peak_rss_bytes" in r for r in runs):  # not in older JSONs
                summary[side]["train_peak_rss_bytes"] = max(r["train_peak_rss_bytes"] for r in runs)
    if ok["stconv"]:
        summary["stconv"]["compile_s"] = spread([r["compile_s"] for r in ok["stconv"]])
    if ok["reference"]:
        summary["reference"]["first_step_s"] = spread([r["first_step_s"] for r in ok["reference"]])
    if ok["stconv"] and ok["reference"]:
        ratios = [
            s["step_s"] / r["step_s"] for s, r in zip(ok["stconv"], ok["reference"], strict=False)
        ]
        eval_ratios = [
            s["eval_samples_per_s"] / r["eval_samples_per_s"]
            for s, r in zip(ok["stconv"], ok["reference"], strict=False)
        ]
        summary["step_ratio"] = spread(ratios)
        summary["eval_throughput_ratio"] = spread(eval_ratios)
        memory = {"memory_ratio": "peak_rss_bytes", "train_memory_ratio": "train_peak_rss_bytes"}
        for ratio, key in memory.items():
            if key in summary["stconv"] and key in summary["reference"]:
                summary[ratio] = summary["stconv"][key] / max(summary["reference"][key], 1)
    return summary


def compare(args, configs: dict, description: dict) -> dict:
    """Runs every pair ``args.repeats`` times; returns (and writes to ``args.json``) the results."""
    results = {
        "command": " ".join(["python experiments/benchmark.py", *args.argv]),
        "machine": description,
        "settings": {
            k: getattr(args, k)
            for k in ("batch_size", "eval_batch_size", "steps", "warmup", "eval_repeats")
        },
        "repeats": args.repeats,
        "pairs": [],
    }
    for config_name in args.configs:
        for model in args.models:
            pair = {"model": model, "config": config_name, "stconv": [], "reference": []}
            results["pairs"].append(pair)
            sides = {"stconv": stconv_command(model, config_name, args)}
            if model in WEIGHT_MAPS:
                sides["reference"] = reference_command(model, configs[config_name], args)
            for repeat in range(args.repeats):
                order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
                for side in order:
                    pair[side].append(run_worker(sides[side]))
                    if args.json:
                        with open(args.json, "w") as f:
                            json.dump(results, f, indent=1)
            pair["summary"] = summarize(pair)
            print(line(pair), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


def _range(values: dict, spec: str) -> str:
    return f"{values['median']:{spec}} ({values['min']:{spec}}-{values['max']:{spec}})"


def line(pair: dict) -> str:
    """One printed line: each side's step and the ratio, or why it is missing."""
    summary = pair["summary"]
    parts = [f"{pair['model']:40s} {pair['config']:10s}"]
    for side in ("stconv", "reference"):
        if side in summary:
            parts.append(f"{side} {_range(summary[side]['step_s'], '.3f')} s")
        elif pair[side]:
            parts.append(f"{side} failed: {pair[side][0].get('reason', '?')[:80]}")
    if "step_ratio" in summary:
        parts.append(f"ratio {_range(summary['step_ratio'], '.2f')}")
    return "  ".join(parts)


def markdown(results: dict) -> str:
    """The side-by-side table: medians over the repeats, (min-max) ranges."""
    lines = [
        "# stconv against the reference, side by side",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']}",
        f"- settings: {results['settings']}, {results['repeats']} repeats alternating stconv "
        "and the reference in separate processes; medians over the repeats, ranges in "
        "parentheses",
        "",
        "| model | config | stconv step (s) | reference step (s) | stconv / reference "
        "| eval samples/s stconv / reference | stconv compile (s) | train steps' peak RSS "
        "stconv / reference (GB) | peak RSS with the forecast stconv / reference (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in results["pairs"]:
        lines.append(table_row(pair))
    return "\n".join(lines) + "\n"


def _gigabytes(side: dict, key: str) -> str:
    return f"{side[key] / 1e9:.2f}" if key in side else "-"


def table_row(pair: dict) -> str:
    summary = pair["summary"]
    stconv, reference = summary.get("stconv"), summary.get("reference")
    if stconv is None:
        reason = pair["stconv"][0].get("reason", "?") if pair["stconv"] else "?"
        return f"| {pair['model']} | {pair['config']} | failed: {reason[:80]} | | | | | | |"
    cells = [pair["model"], pair["config"], _range(stconv["step_s"], ".3f")]
    if reference is None:
        missing = "no counterpart"
        if pair["reference"]:  # it ran and failed
            missing = f"failed: {pair['reference'][0].get('reason', '?')[:60]}"
        cells += [missing, "-", f"{stconv['eval_samples_per_s']['median']:.0f} / -"]
    else:
        cells += [
            _range(reference["step_s"], ".3f"),
            _range(summary["step_ratio"], ".2f"),
            f"{stconv['eval_samples_per_s']['median']:.0f} / "
            f"{reference['eval_samples_per_s']['median']:.0f}",
        ]
    cells.append(f"{stconv['compile_s']['median']:.1f}")
    for key in ("train_peak_rss_bytes", "peak_rss_bytes"):
        cells.append(" / ".join(_gigabytes(side, key) for side in (stconv, reference) if side))
    return "| " + " | ".join(cells) + " |"
