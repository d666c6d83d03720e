"""Reproduce the paper's Table 2 (or its ablation table) in one command.

    # the paper's files in data/ (see data/README.md), every cell of Table 2:
    python experiments/reproduce.py --workdir runs/table2
    # a subset; cells already finished are skipped when rerun:
    python experiments/reproduce.py --workdir runs/table2 --models stconvs2s-r --datasets cfsr
    python experiments/reproduce.py --table ablation --workdir runs/ablation
    # the same comparison on the embedded dataset, on a CPU:
    python experiments/reproduce.py --datasets hadcm3-a1b --epochs 10 --iterations 1 \\
        --workdir runs/embedded --output experiments/results/embedded

Each cell (model, dataset, horizon) is one `stconv.runs.experiment.train_and_evaluate`
run with the paper's protocol: seeds 1000, 1010, 1020, RMSprop, batch 15, up
to 80 epochs with early stopping (patience 16), the best epoch restored for
the test. Hyperparameters follow the paper: CFSR 3 layers, 32 filters,
kernel 5; CHIRPS 2 layers, 8 filters, kernel 5; PredRNN kernel 3; PredRNN and
MIM dropout 0.5; raw values (no normalization), as the paper trained.

Writes ``results.md`` and ``results.csv``: test RMSE and MAE (mean +- std
over the runs, over the whole test set, in the data's units), seconds per
epoch, best epoch, and the published numbers beside them. Each row names the
SHA-256 of its data files and the code and software versions that made it
(from the cell's `stconv.runs.provenance` record); cells of one dataset and
horizon made from different data files are refused in one table.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import platform
import sys

import jax
import numpy as np

from stconv import models
from stconv.config import Config, cell_settings
from stconv.evaluation.metrics import REFERENCE_RMSE
from stconv.evaluation.scores import as_dataset, summary
from stconv.runs.directory import RunDirectory
from stconv.runs.experiment import train_and_evaluate

# Table 2 of Castro et al. (2021): test RMSE, MAE, mean of 3 runs.
PUBLISHED = {
    ("stconvs2s-r", "cfsr", 5): (1.2692, 0.8552),
    ("stconvs2s-r", "cfsr", 15): (1.8051, 1.2404),
    ("stconvs2s-r", "chirps", 5): (6.2248, 2.7821),
    ("stconvs2s-r", "chirps", 15): (6.2590, 2.8054),
    ("stconvs2s-c", "cfsr", 5): (1.3699, 0.9434),
    ("stconvs2s-c", "cfsr", 15): (1.8739, 1.2946),
    ("stconvs2s-c", "chirps", 5): (6.3091, 2.8487),
    ("stconvs2s-c", "chirps", 15): (6.2962, 2.8452),
    ("convlstm", "cfsr", 5): (1.8555, 1.2843),
    ("convlstm", "cfsr", 15): (2.0728, 1.4558),
    ("convlstm", "chirps", 5): (6.3666, 2.9074),
    ("convlstm", "chirps", 15): (6.3244, 2.8972),
    ("predrnn", "cfsr", 5): (1.6962, 1.1885),
    ("predrnn", "cfsr", 15): (2.0237, 1.4311),
    ("predrnn", "chirps", 5): (6.2625, 2.7880),
    ("predrnn", "chirps", 15): (6.2600, 2.7850),
    ("mim", "cfsr", 5): (1.6731, 1.1790),
    ("mim", "chirps", 5): (6.2621, 2.7900),
    ("mim", "chirps", 15): (6.2722, 2.7935),
    ("arima", "cfsr", 5): (2.1880, 1.9005),
    ("arima", "cfsr", 15): (2.2481, 1.9077),
    ("arima", "chirps", 5): (7.4377, 6.1694),
    ("arima", "chirps", 15): (7.9460, 5.9379),
    # The ablations: one run of 50 epochs each, from the reference
    # repository's logs (output/full-dataset/results/ablation-*).
    ("ablation-stconvs2s-nocausalconstraint", "cfsr", 5): (1.2811, 0.8645),
    ("ablation-stconvs2s-notemporal", "cfsr", 5): (1.6780, 1.1828),
    ("ablation-stconvs2s-r-nochannelincrease", "cfsr", 5): (1.3234, 0.8966),
    ("ablation-stconvs2s-c-nochannelincrease", "cfsr", 5): (1.4218, 0.9821),
    ("ablation-stconvs2s-r-inverted", "cfsr", 5): (1.3044, 0.8796),
    ("ablation-stconvs2s-c-inverted", "cfsr", 5): (1.4152, 0.9750),
    ("ablation-stconvs2s-r-notfactorized", "cfsr", 5): (1.3215, 0.8958),
    ("ablation-stconvs2s-c-notfactorized", "cfsr", 5): (1.4450, 1.0068),
    ("ablation-stconvs2s-nocausalconstraint", "chirps", 5): (6.2281, 2.8134),
    ("ablation-stconvs2s-notemporal", "chirps", 5): (6.3539, 2.8980),
    ("ablation-stconvs2s-r-nochannelincrease", "chirps", 5): (6.2434, 2.7829),
    ("ablation-stconvs2s-c-nochannelincrease", "chirps", 5): (6.3171, 2.8418),
    ("ablation-stconvs2s-r-inverted", "chirps", 5): (6.2397, 2.7971),
    ("ablation-stconvs2s-c-inverted", "chirps", 5): (6.3255, 2.8594),
    ("ablation-stconvs2s-r-notfactorized", "chirps", 5): (6.2510, 2.8082),
    ("ablation-stconvs2s-c-notfactorized", "chirps", 5): (6.3310, 2.9161),
}

ABLATIONS = list(models.ABLATIONS)  # the reference's names, in the paper's order
TABLES = {
    "main": dict(
        models=[
            "stconvs2s-r",
            "stconvs2s-c",
            "convlstm",
            "predrnn",
            "mim",
            "arima",
            # The reference's other baselines, not in the paper's table.
            "conv3d",
            "conv2plus1d",
            "enc-dec3d",
        ],
        horizons=[5, 15],
    ),
    "ablation": dict(models=["stconvs2s-r", "stconvs2s-c", *ABLATIONS], horizons=[5]),
}

PAPER_FILES = {
    "cfsr": "dataset-ucar-1979-2015-seq5-ystep{horizon}.nc",
    "chirps": "dataset-chirps-1981-2019-seq5-ystep{horizon}.nc",
}
CHIRPS_MASK = "chirps_mask_land.npy"


def cell_config(model: str, dataset: str, horizon: int, args: argparse.Namespace) -> Config:
    """The paper's configuration of one table cell, with the command line's overrides."""
    settings = cell_settings(model, dataset)
    for name in ("num_layers", "hidden_dim", "normalization"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if dataset in PAPER_FILES:
        path = os.path.join(args.data_dir, PAPER_FILES[dataset].format(horizon=horizon))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"file {path!r} not found: download the paper's {dataset} files "
                "(Zenodo doi 10.5281/zenodo.3558773, see data/README.md) into --data-dir"
            )
        settings["data_path"] = path
        mask = os.path.join(args.data_dir, CHIRPS_MASK)
        if dataset == "chirps" and os.path.exists(mask):
            settings["mask_file"] = mask
    return Config.from_flags(
        model=model,
        dataset=dataset,
        horizon=horizon,
        epochs=args.epochs,
        iterations=1 if models.is_fitted(model) else args.iterations,
        **settings,
    )


def is_finished(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, "cell.json"))


TABLE_BASELINES = ("persistence", "climatology", "input_mean")  # the paper's data are annual


def run_cell(config: Config, workdir: str) -> dict:
    """Trains and tests one cell (resuming an interrupted one); its row of the
    table: the scores of its (first) target variable."""
    results = train_and_evaluate(config, workdir, resume=os.path.exists(workdir))
    runs = results["runs"] if "summary" in results else [results]
    first = as_dataset(runs[0]).isel(variable=0)["overall"]  # the first target's scores
    # the mean and std over the runs (of one run: itself, std 0), with the intervals
    summarized = summary([as_dataset(run) for run in runs]).isel(variable=0)
    model = summarized["overall"].sel(forecast=config.model.name)
    low, high = summarized["interval"].sel(forecast=config.model.name, metric="rmse").values
    paths = glob.glob(os.path.join(workdir, "**", RunDirectory.METRICS), recursive=True)
    histories = [read_jsonl(path) for path in sorted(paths)]
    row = {
        "model": config.model.name,
        "dataset": config.data.dataset,
        "horizon": config.data.horizon,
        "runs": len(runs),
        **{
            f"{metric}_{statistic}": float(model.sel(metric=metric, statistic=statistic))
            for metric in ("rmse", "mae", "weighted_rmse", REFERENCE_RMSE)
            for statistic in ("mean", "std")
        },
        "rmse_low": float(low),
        "rmse_high": float(high),
        "acc_mean": float(model.sel(metric="acc", statistic="mean")),
        **{
            f"{name}_rmse": float(first.sel(forecast=name, metric="rmse"))
            for name in TABLE_BASELINES
        },
        "seconds_per_epoch": mean_or_none([r["seconds"] for h in histories for r in h]),
        "best_epoch": mean_or_none([best_epoch(h) for h in histories if h]),
    }
    row.update(made_by(RunDirectory(workdir).provenance()))
    with open(os.path.join(workdir, "cell.json"), "w") as f:
        json.dump(row, f, indent=2)
    return row


def made_by(origin: dict | None) -> dict:
    """A cell's data checksums and the code and software of its first session."""
    if origin is None or not origin["sessions"]:
        return {"data_sha256": None, "software": None}
    session = origin["sessions"][0]
    code = session["stconv"]
    commit = f" @{code['commit'][:7]}{'+dirty' * bool(code['dirty'])}" if code["commit"] else ""
    versions = ", ".join(f"{k} {v}" for k, v in session["software"].items() if v)
    return {
        "data_sha256": " ".join(item["sha256"] for item in origin["inputs"]),
        "software": f"stconv {code['version']}{commit}; {versions}",
    }


def check_one_data_per_cell(rows: list[dict]) -> None:
    """Raises SystemExit naming the cells, if cells of one dataset and horizon
    were made from different data files (by SHA-256)."""
    groups = {}
    for row in rows:
        if row.get("data_sha256"):
            key = (row["dataset"], row["horizon"])
            groups.setdefault(key, {}).setdefault(row["data_sha256"], []).append(row["model"])
    for (dataset, horizon), files in groups.items():
        if len(files) > 1:
            cells = "; ".join(
                f"{', '.join(models)} from SHA-256 {sha[:12]}..." for sha, models in files.items()
            )
            raise SystemExit(
                f"error: the {dataset} {horizon}-step cells were made from different data "
                f"files ({cells}): rerun them on one file, in a new --workdir"
            )


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def best_epoch(history: list[dict]) -> int:
    return history[int(np.argmin([r["validation_rmse"] for r in history]))]["epoch"]


def mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def published(row: dict) -> tuple[float, float] | None:
    return PUBLISHED.get((row["model"], row["dataset"], row["horizon"]))


def write_tables(rows: list[dict], output: str, header: str) -> None:
    """``output.md`` (with ``header``) and ``output.csv``, one row per cell; the
    software of each cell is listed under the table, numbered."""
    check_one_data_per_cell(rows)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(f"{output}.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=[*rows[0], "published_rmse", "published_mae"], lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            paper = published(row) or (None, None)
            writer.writerow({**row, "published_rmse": paper[0], "published_mae": paper[1]})
    lines = [
        header,
        "",
        "RMSE is over the whole test set (every valid cell), mean ± std over the runs and, in "
        "brackets, the 95% interval of the mean (a block bootstrap of the test windows with "
        "the seeds' spread); RMSE as the reference is the "
        "score the paper published: the mean over test batches of 15 of sqrt(MSE + 1e-6), "
        "every cell in the MSE (masked ones with error 0). Compare the published RMSE with "
        "the latter.",
        "",
        "| model | dataset | steps | runs | RMSE | RMSE as the reference | published RMSE / MAE "
        "| wRMSE | MAE | ACC | persistence RMSE | climatology RMSE | input mean RMSE | s/epoch "
        "| best epoch | data SHA-256 | software |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    software = list(dict.fromkeys(row.get("software") or "not recorded" for row in rows))
    for row in rows:
        paper = published(row)
        sha = row.get("data_sha256")
        lines.append(
            f"| {row['model']} | {row['dataset']} | {row['horizon']} | {row['runs']} "
            f"| {row['rmse_mean']:.4f} ± {row['rmse_std']:.4f} "
            f"[{row['rmse_low']:.4f}, {row['rmse_high']:.4f}] "
            f"| {row[f'{REFERENCE_RMSE}_mean']:.4f} ± {row[f'{REFERENCE_RMSE}_std']:.4f} "
            f"| {f'{paper[0]:.4f} / {paper[1]:.4f}' if paper else '-'} "
            f"| {row['weighted_rmse_mean']:.4f} ± {row['weighted_rmse_std']:.4f} "
            f"| {row['mae_mean']:.4f} ± {row['mae_std']:.4f} | {row['acc_mean']:.3f} "
            + "".join(f"| {row[f'{name}_rmse']:.4f} " for name in TABLE_BASELINES)
            + f"| {format_optional(row['seconds_per_epoch'], '.1f')} "
            f"| {format_optional(row['best_epoch'], '.1f')} "
            f"| {sha[:12] + '...' if sha else 'not recorded'} "
            f"| [{software.index(row.get('software') or 'not recorded') + 1}] |"
        )
    lines += ["", "Software of the cells:", ""]
    lines += [f"{i}. {versions}" for i, versions in enumerate(software, 1)]
    with open(f"{output}.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def format_optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def describe_run(args: argparse.Namespace) -> str:
    """Machine, date and settings, for the head of the results table."""
    device = jax.devices()[0]
    return (
        f"# Reproduction: {args.table} table\n\n"
        f"- date: {datetime.date.today().isoformat()}\n"
        f"- machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
        f"JAX {jax.__version__} on {device.platform} ({device.device_kind})\n"
        f"- command: `python experiments/reproduce.py {' '.join(sys.argv[1:])}`\n"
        f"- up to {args.epochs} epochs, early stopping patience 16, "
        f"{args.iterations} run(s) per cell (seeds 1000, 1010, ...); ARIMA is fitted once\n"
        "- RMSE and MAE over the whole test set (not the reference's mean of per-batch "
        "RMSE), in the data's units; mean ± std over the runs"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=sorted(TABLES), default="main")
    parser.add_argument("--models", nargs="+", help="a subset of the table's models")
    parser.add_argument("--datasets", nargs="+", default=["cfsr", "chirps"])
    parser.add_argument("--horizons", nargs="+", type=int, help="default: the table's")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--data-dir", default="data", help="where the paper's files are")
    parser.add_argument("--workdir", required=True, help="one folder per cell goes here")
    parser.add_argument("--output", help="results.md/.csv path prefix; default WORKDIR/results")
    parser.add_argument("--num-layers", type=int, help="override the paper's (for quick runs)")
    parser.add_argument("--hidden-dim", type=int, help="override the paper's (for quick runs)")
    parser.add_argument("--normalization", help="override the default (none; embedded: cell)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    table = TABLES[args.table]
    models = args.models or table["models"]
    unknown = sorted(set(models) - set(table["models"]))
    if unknown:
        raise SystemExit(f"error: --models {unknown} are not in the {args.table} table: {table}")
    rows = []
    for dataset in args.datasets:
        for horizon in args.horizons or table["horizons"]:
            for model in models:
                workdir = os.path.join(args.workdir, f"{dataset}-step{horizon}", model)
                if is_finished(workdir):
                    print(f"{workdir}: finished, skipped")
                    with open(os.path.join(workdir, "cell.json")) as f:
                        rows.append(json.load(f))
                    continue
                print(f"{workdir}: {model} on {dataset}, {horizon} steps")
                rows.append(run_cell(cell_config(model, dataset, horizon, args), workdir))
    output = args.output or os.path.join(args.workdir, "results")
    write_tables(rows, output, describe_run(args))
    return rows


if __name__ == "__main__":
    main()
