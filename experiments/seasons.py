"""Do the right inputs pay off on data with seasons? The comparison on the
``weather`` dataset (`stconv.data.weather`: synthetic, coupled, daily, 20 years).

    python experiments/seasons.py --workdir runs/seasons --output experiments/results/seasons.md

Trains the ``weather`` preset (STConvS2S-R reading t2m, u10, v10, the static
orography and the calendar, as anomalies from the climatology by day of year,
forecasting t2m 1 to 5 days ahead) and the same model reading t2m alone, three
seeds each, and scores them on the test years beside persistence, the input
mean, the climatology by day of year, the anomaly persistence (damped and
not) and the training mean of every cell (the climatology stconv used before
seasons were known), with each seed's paired difference with the best
baseline and its p-value. Writes a Markdown table
per lead time, mean +- std over the seeds, with the command, machine and date.
Runs already finished in ``--workdir`` are read, not trained again.
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np
import xarray as xr
from report import current_commit, write_markdown

from stconv.config import get_config
from stconv.data.windows import time_segments
from stconv.evaluation.baselines import climatology_forecast
from stconv.evaluation.scores import as_dataset, summary_dataset
from stconv.evaluation.scoring import RunScoring, score_run
from stconv.runs.assembly import load_config_dataset
from stconv.runs.directory import RunDirectory
from stconv.runs.experiment import train_and_evaluate
from stconv.runs.provenance import machine

# The two models compared: the preset, and the preset without the extra inputs.
MODELS = {
    "all inputs": {},
    "t2m alone": dict(variables=("t2m",), static=None, time_features=False),
}
TARGET = "t2m"
# The baselines of the tables, as they are named there.
BASELINES = {
    "persistence": "persistence",
    "input_mean": "input_mean",
    "climatology": "climatology by day of year",
    "anomaly_persistence": "anomaly persistence",
    "damped_anomaly_persistence": "damped anomaly persistence",
}


def trained(config, workdir: str) -> dict:
    """``{"runs", "summary"}`` of the runs of ``config`` in ``workdir``, trained
    unless already finished."""
    top = RunDirectory(workdir)
    if top.has(top.SUMMARY):
        print(f"{workdir}: finished, read")
        return top.read_json(top.SUMMARY, "")
    return train_and_evaluate(config, workdir)


def training_mean_scores(config) -> xr.Dataset:
    """The test scores (`stconv.evaluation.scores`) of t2m of the training mean
    of every cell beside the baselines (the climatology by day of year among
    them), on the preset's test windows: scored as a run's forecasts are
    (`stconv.evaluation.scoring.score_run`)."""
    dataset = load_config_dataset(config.override(variables=(TARGET,), normalization="channel"))
    split = dataset.splits["test"]
    start, stop = time_segments(split.field.sizes["time"])["train"]
    mean = split.field.isel(time=slice(start, stop)).mean("time").values
    normalized = np.nan_to_num(dataset.normalizer.normalize(mean)).astype(np.float32)
    horizon = config.data.horizon
    scoring = RunScoring(
        model="training mean", targets=(TARGET,), units=dataset.grid.units[:1],
        normalizer=dataset.normalizer, climatology=dataset.climatology, horizon=horizon,
        batch_size=64, area_weights=config.evaluation.area_weights,
        geographic=dataset.grid.geographic,
    )  # fmt: skip

    def predict(inputs: np.ndarray) -> np.ndarray:
        return climatology_forecast(normalized, inputs, horizon)

    results = score_run(predict, scoring, split, dataset.grid.lat, "the test split of t2m")
    return as_dataset(results).sel(variable=TARGET)


def summary_of(result: dict) -> xr.Dataset:
    """The multi-seed summary of t2m of ``result`` (``{"runs", "summary"}``) as a
    Dataset (`stconv.evaluation.scores.summary_dataset`); its first forecast
    is the model's."""
    return summary_dataset(result["summary"]).sel(variable=TARGET)


def per_lead(summary: xr.Dataset, forecast: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    values = summary["per_lead"].sel(forecast=forecast, metric=metric)
    return values.sel(statistic="mean").values, values.sel(statistic="std").values


def model_of(summary: xr.Dataset) -> str:
    return str(summary["forecast"].values[0])


def rows(results: dict, baselines: xr.Dataset, metric: str) -> list[tuple[str, list[str]]]:
    """One row per forecast: the ``metric`` per lead, mean +- std over the seeds."""
    table = []
    for name, result in results.items():
        summary = summary_of(result)
        mean, std = per_lead(summary, model_of(summary), metric)
        cells = [f"{m:.3f} +- {s:.3f}" for m, s in zip(mean, std, strict=True)]
        table.append((f"STConvS2S-R, {name}", cells))
    summary = summary_of(next(iter(results.values())))
    for forecast, label in BASELINES.items():
        if forecast in summary["forecast"]:
            mean, _ = per_lead(summary, forecast, metric)
            table.append((label, [f"{m:.3f}" for m in mean]))
    if metric in baselines["metric"]:
        values = baselines["per_lead"].sel(forecast="training mean", metric=metric).values
        table.append(("training mean of every cell", [f"{v:.3f}" for v in values]))
    return table


def markdown(table: list[tuple[str, list[str]]], title: str) -> str:
    leads = len(table[0][1])
    header = f"| {title} | " + " | ".join(f"day {i + 1}" for i in range(leads)) + " |"
    lines = [header, "|---" * (leads + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in table]
    return "\n".join(lines)


def findings(results: dict, baselines: xr.Dataset) -> list[str]:
    """The comparison's claims, each checked on the numbers."""
    summaries = {name: summary_of(result) for name, result in results.items()}
    every = next(iter(summaries.values()))
    model = {name: per_lead(s, model_of(s), "rmse") for name, s in summaries.items()}
    full, alone = model["all inputs"], model["t2m alone"]
    seasonal = per_lead(every, "climatology", "rmse")[0]
    flat = baselines["per_lead"].sel(forecast="training mean", metric="rmse").values
    gain = alone[0] - full[0]
    spread = np.maximum(full[1], alone[1])
    present = [name for name in BASELINES if name in every["forecast"]]
    best_baseline = np.min([per_lead(every, name, "rmse")[0] for name in present], axis=0)

    def verdict(holds: np.ndarray) -> str:
        return "yes, at every lead" if holds.all() else f"no: leads {np.flatnonzero(~holds) + 1}"

    def overall(name: str) -> tuple[float, float]:
        summary = summaries[name]
        scores = summary["overall"].sel(forecast=model_of(summary), metric="rmse")
        return float(scores.sel(statistic="mean")), float(scores.sel(statistic="std"))

    (full_all, full_std), (alone_all, alone_std) = overall("all inputs"), overall("t2m alone")
    overall_gain = "yes" if alone_all - full_all > max(full_std, alone_std) else "no"

    return [
        f"- The climatology by day of year beats the training mean of every cell: "
        f"{verdict(seasonal < flat)} (RMSE {seasonal.round(3).tolist()} against "
        f"{flat.round(3).tolist()} K).",
        f"- Reading the winds, orography and calendar beats reading t2m alone by more than the "
        f"seed std, over all leads: {overall_gain} "
        f"(RMSE {full_all:.3f} +- {full_std:.3f} against {alone_all:.3f} +- {alone_std:.3f} K); "
        f"per lead: {verdict(gain > spread)} (RMSE gain {gain.round(3).tolist()} K, larger seed "
        f"std {spread.round(3).tolist()} K).",
        f"- The model with all inputs beats every baseline ({', '.join(BASELINES.values())}): "
        f"{verdict(full[0] < best_baseline)} (the best of them "
        f"{best_baseline.round(3).tolist()} K).",
        *significance(results["all inputs"]),
    ]


def significance(result: dict) -> list[str]:
    """Per seed, the model's RMSE minus the best baseline's over the whole
    test split, its 95% interval and p-value (block bootstrap of the windows)."""
    lines = []
    for seed, run in zip((1000, 1010, 1020), result["runs"], strict=False):
        scores = as_dataset(run).sel(variable=TARGET)
        best = str(scores["best_baseline"].values)
        of = scores.sel(baseline=best, metric="rmse")
        low, high = of["difference_interval"].values
        lines.append(
            f"- Seed {seed}: RMSE minus the best baseline's ({best}) {float(of['difference']):.3f} "
            f"K, 95% interval [{low:.3f}, {high:.3f}], p = {float(of['p_value']):.3f} over "
            f"{scores.attrs['windows']} test windows (blocks of {int(scores['block_length'])})."
        )
    return lines


def seconds_per_seed(workdir: str) -> dict[str, float]:
    """The wall-clock seconds of each seed (training, test and writing) in the
    last session of the runs in ``workdir``."""
    phases = RunDirectory(workdir).provenance()["sessions"][-1]["phases_s"]
    return {phase: seconds for phase, seconds in phases.items() if phase.startswith("seed")}


def best_validation(workdir: str) -> list[float]:
    """The best validation RMSE of every seed of each model in ``workdir``, from
    the runs' ``metrics.jsonl``."""
    values = []
    for name in MODELS:
        top = RunDirectory(os.path.join(workdir, name.replace(" ", "-")))
        for seed in top.provenance()["seeds"]:
            path = top.iteration(seed).file(RunDirectory.METRICS)
            with open(path) as f:
                history = [json.loads(line) for line in f if line.strip()]
            values.append(min(row["validation_rmse"] for row in history))
    return values


def schedule_choice(workdir: str, other: str) -> list[str]:
    """The best validation RMSE per model and seed of the runs in ``workdir``
    and of the same comparison in ``other`` (another learning-rate schedule)."""
    lines = [
        "| runs | schedule | "
        + " | ".join(f"{name}, seed {i}" for name in MODELS for i in (1, 2, 3))
        + " | mean |",
        "|---" * 9 + "|",
    ]
    for folder in (other, workdir):
        config = RunDirectory(os.path.join(folder, "all-inputs")).provenance()["config"]
        values = best_validation(folder)
        schedule = config.get("learning_rate_schedule", "constant")
        cells = " | ".join(f"{v:.4f}" for v in values)
        lines.append(f"| `{folder}` | {schedule} | {cells} | {np.mean(values):.4f} |")
    return lines


def trained_at(workdir: str) -> str:
    """The commits that trained the runs in ``workdir`` (their provenance records)."""
    commits = set()
    for name in MODELS:
        record = RunDirectory(os.path.join(workdir, name.replace(" ", "-"))).provenance()
        commits |= {
            f"`{session['stconv']['commit'][:7]}`"
            + (" with uncommitted changes" if session["stconv"].get("dirty") else "")
            for session in record["sessions"]
        }
    return ", ".join(sorted(commits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="folder of the runs")
    parser.add_argument("--output", required=True, help="the Markdown file to write")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument(
        "--other-workdir",
        help="the same comparison trained with other settings (a learning-rate schedule): "
        "its best validation RMSE is shown beside, the choice made on it",
    )
    args = parser.parse_args(argv)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    results = {}
    for name, changes in MODELS.items():
        config = get_config("weather", **overrides, **changes)
        folder = os.path.join(args.workdir, name.replace(" ", "-"))
        results[name] = trained(config, folder)
    baselines = training_mean_scores(get_config("weather", **overrides))
    host = machine()
    commit = current_commit()
    text = [
        "# Seasons and inputs on the weather dataset",
        "",
        f"- command: `python {' '.join(['experiments/seasons.py', *sys.argv[1:]])}`",
        f"- date: {datetime.date.today().isoformat()}; this table written at commit `{commit}`, "
        f"the runs trained at {trained_at(args.workdir)}",
        f"- machine: {host['platform']}, {host['cpu_count']} CPU cores, {host['backend']}",
        "- data: `--dataset weather` (`stconv.data.weather`, synthetic, seed 0): daily, "
        "1990-2009, 16x32 over 20-70N; test years the last 20% of the days",
        "- models: the `weather` preset (`stconv/config/presets.py`), and the same without "
        "u10, v10, orography and calendar; 3 seeds each (1000, 1010, 1020); the test split "
        "scored in K (RMSE over every window and cell, as the paper's) and by the "
        "area-weighted ACC against the climatology by day of year (61-day window)",
        "",
        "## Findings",
        "",
        *findings(results, baselines),
        "",
        "## RMSE per lead time (K), mean +- std over the seeds",
        "",
        markdown(rows(results, baselines, "rmse"), "forecast"),
        "",
        "## ACC per lead time, against the climatology by day of year",
        "",
        markdown(rows(results, baselines, "acc"), "forecast"),
        "",
        *(
            [
                "## The preset's learning-rate schedule, chosen on the validation split",
                "",
                "Best validation RMSE (K) of every run, here and in the same comparison with "
                "the other schedule:",
                "",
                *schedule_choice(args.workdir, args.other_workdir),
                "",
            ]
            if args.other_workdir
            else []
        ),
        "## Seconds per seed (training, test and files), from the runs' provenance",
        "",
        *[
            f"- {name}: {seconds_per_seed(os.path.join(args.workdir, name.replace(' ', '-')))}"
            for name in MODELS
        ],
        "",
    ]
    write_markdown(args.output, text)


if __name__ == "__main__":
    main()
