"""Which simple forecast should a residual network start from? The choice on
the validation split, on the ``weather`` dataset (`stconv.data.weather`:
synthetic, daily, with seasons).

    python experiments/residual_bases.py --workdir runs/bases \\
        --output experiments/results/residual-bases.md

Trains the ``weather`` preset (inputs as anomalies from the climatology by day
of year) as it is and as a residual network around each base of
`stconv.models.ANOMALY_BASES` (the climatology, the persisted anomaly, the
damped persisted anomaly), one seed each, and chooses the base
of the lowest best validation RMSE: the test scores are shown for every
variant, but only the validation split chooses. Runs already finished in
``--workdir`` are read, not trained again.
"""

import argparse
import datetime
import json
import os
import sys

from report import current_commit, write_markdown

from stconv.config import get_config
from stconv.evaluation.scores import as_dataset
from stconv.models import ANOMALY_BASES
from stconv.runs.directory import RunDirectory
from stconv.runs.experiment import train_and_evaluate
from stconv.runs.provenance import machine

TARGET = "t2m"
VARIANTS = {"no residual": {}} | {
    f"residual around {base}": dict(residual=True, residual_base=base) for base in ANOMALY_BASES
}


def trained(config, workdir: str) -> dict:
    """The results of one run of ``config`` in ``workdir``, trained unless finished."""
    run = RunDirectory(workdir)
    if run.has(run.RESULTS):
        print(f"{workdir}: finished, read")
        return run.read_json(run.RESULTS, "")
    return train_and_evaluate(config, workdir)


def best_validation(workdir: str) -> float:
    """The lowest validation RMSE of the run's epochs (``metrics.jsonl``)."""
    with open(RunDirectory(workdir).file(RunDirectory.METRICS)) as f:
        return min(json.loads(line)["validation_rmse"] for line in f if line.strip())


def row(name: str, results: dict, validation: float, chosen: bool) -> str:
    """One variant: its validation and test RMSE (with the interval), its
    difference with the best baseline and the p-value."""
    scores = as_dataset(results).sel(variable=TARGET)
    model = str(scores.attrs["tested"])
    rmse = float(scores["overall"].sel(forecast=model, metric="rmse"))
    low, high = scores["interval"].sel(forecast=model, metric="rmse").values
    best = str(scores["best_baseline"].values)
    of = scores.sel(baseline=best, metric="rmse")
    mark = " (chosen)" if chosen else ""
    return (
        f"| {name}{mark} | {validation:.4f} | {rmse:.3f} [{low:.3f}, {high:.3f}] "
        f"| {best} | {float(of['difference']):+.3f} | {float(of['p_value']):.3f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="folder of the runs")
    parser.add_argument("--output", required=True, help="the Markdown file to write")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    args = parser.parse_args(argv)
    overrides = {"iterations": 1}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    results, validation = {}, {}
    for name, changes in VARIANTS.items():
        folder = os.path.join(args.workdir, name.replace(" ", "-"))
        results[name] = trained(get_config("weather", **overrides, **changes), folder)
        validation[name] = best_validation(folder)
    chosen = min(validation, key=validation.get)
    host = machine()
    text = [
        "# The residual network's base, chosen on the validation split",
        "",
        f"- command: `python {' '.join(['experiments/residual_bases.py', *sys.argv[1:]])}`",
        f"- date: {datetime.date.today().isoformat()}, commit `{current_commit()}`",
        f"- machine: {host['platform']}, {host['cpu_count']} CPU cores, {host['backend']}",
        "- data: `--dataset weather` (synthetic, seed 0), the `weather` preset (t2m from t2m, "
        "u10, v10, orography and calendar, as anomalies), one seed (1000) per variant: a "
        "difference in validation RMSE smaller than the seeds' spread (about 0.01-0.02 K on "
        "this preset, experiments/results/seasons.md) chooses by chance",
        f"- chosen on the validation split: **{chosen}**; the test columns are shown for "
        "every variant, but did not choose",
        "- with anomaly inputs, the residual around the climatology (no shift, base 0) is "
        "the network without a residual, by construction: the same seed gives the same run",
        "",
        "| variant | best validation RMSE (K) | test RMSE (K) [95%] | best baseline "
        "| RMSE minus it (K) | p |",
        "|---|---|---|---|---|---|",
        *[row(name, results[name], validation[name], name == chosen) for name in VARIANTS],
        "",
    ]
    write_markdown(args.output, text)


if __name__ == "__main__":
    main()
