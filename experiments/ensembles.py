"""Seeds and perturbed inputs as ensembles, on the README's main job.

    python experiments/ensembles.py --workdir runs/hadcm3-a1b \
        --output experiments/results/ensembles.md

Reads the main job's three seeds in ``--workdir`` (trained first with
``stconv train --preset main`` if the folder holds no finished run) and scores
them as one ensemble on the test split (`stconv.runs.forecaster.Forecaster.ensemble`),
beside the climatological ensemble (every training year a member) and the
deterministic baselines (whose CRPS is their area-weighted MAE). Then the
cheaper members: one seed's forecasts from perturbed inputs
(`stconv.runs.forecaster.Forecaster.perturbed`), the noise chosen on the
validation split only (`Forecaster.choose_perturbation`, as ``stconv evaluate
--members`` does), scored the same way. Writes a Markdown report with the
command, machine, date and commits.
"""

import argparse
import datetime
import sys
import time

import numpy as np
import xarray as xr
from report import current_commit, write_markdown

from stconv.config import get_config
from stconv.evaluation.scores import as_dataset
from stconv.runs.assembly import load_config_dataset
from stconv.runs.directory import RunDirectory
from stconv.runs.experiment import train_and_evaluate
from stconv.runs.forecaster import Forecaster
from stconv.runs.provenance import machine

SELECTION_MEMBERS = 10  # members of each perturbed ensemble tried
MEMBERS = (3, 10)  # perturbed ensembles scored on the test split


def score(
    forecaster: Forecaster, dataset, split: str, train: bool = False
) -> tuple[xr.Dataset, float]:
    """The scores of ``forecaster`` on ``split`` of the first target
    (`stconv.evaluation.scores.as_dataset`), and the seconds they took."""
    start = time.perf_counter()
    results = forecaster.score(
        dataset.splits[split], dataset.grid.lat, f"the {split} split",
        train=dataset.splits["train"] if train else None,
    )  # fmt: skip
    return as_dataset(results).isel(variable=0), time.perf_counter() - start


def per_lead(scores: xr.Dataset, metric: str) -> np.ndarray:
    """One forecast's ``metric`` per lead time."""
    return scores["per_lead"].sel(metric=metric).values


def ensemble_per_lead(ensemble: xr.Dataset, metric: str) -> np.ndarray:
    """One forecast's ensemble score ``metric`` per lead time."""
    return ensemble["ensemble_per_lead"].sel(ensemble_metric=metric).values


def ensemble_overall(ensemble: xr.Dataset, metric: str) -> float:
    """One forecast's ensemble score ``metric`` over all leads."""
    return float(ensemble["ensemble_overall"].sel(ensemble_metric=metric))


def table(rows: list[tuple[str, list[float]]], title: str, digits: int = 3) -> str:
    leads = len(rows[0][1])
    lines = [
        f"| {title} | " + " | ".join(f"lead {i + 1}" for i in range(leads)) + " |",
        "|---" * (leads + 1) + "|",
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |"
        for name, values in rows
    ]
    return "\n".join(lines)


def rank_counts(ensemble: xr.Dataset) -> np.ndarray:
    """One forecast's rank histogram over all leads: its ``members + 1`` ranks."""
    ranks = int(ensemble["members"]) + 1
    return ensemble["rank_histogram"].values[:, :ranks].sum(axis=0)


def rank_fractions(ensemble: xr.Dataset) -> str:
    counts = rank_counts(ensemble)
    return ", ".join(f"{v:.2f}" for v in counts / counts.sum())


def extremes(ensemble: xr.Dataset) -> str:
    """The fractions of cells whose truth lies below or above every member."""
    counts = rank_counts(ensemble)
    low, high = counts[0] / counts.sum(), counts[-1] / counts.sum()
    return f"{low:.2f} below every member, {high:.2f} above every member"


def training_seconds(workdir: str) -> float:
    """The seconds the seeds took to train and test, from the runs' record."""
    sessions = RunDirectory(workdir).provenance()["sessions"]
    phases = sessions[0]["phases_s"]
    return sum(seconds for phase, seconds in phases.items() if phase.startswith("seed"))


def commits_of(workdir: str) -> str:
    sessions = RunDirectory(workdir).provenance()["sessions"]
    commits = {s["stconv"]["commit"] for s in sessions}  # None: installed without git
    return ", ".join(sorted(f"`{c[:7]}`" if c else "(no git commit)" for c in commits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="folder of the main job's run")
    parser.add_argument("--output", required=True, help="the Markdown file to write")
    args = parser.parse_args(argv)
    top = RunDirectory(args.workdir)
    if not top.has(top.SUMMARY):
        train_and_evaluate(get_config("main"), args.workdir)
    runs = top.read_json(top.SUMMARY, "")["runs"]
    ensemble = Forecaster.load(args.workdir)
    config = ensemble.config
    dataset = load_config_dataset(config)

    seeds, seeds_seconds = score(ensemble, dataset, "test", train=True)
    model = config.model.name
    variable, units = str(seeds["variable"].values), str(seeds["units"].values)
    runs = [as_dataset(run).sel(variable=variable, forecast=model) for run in runs]
    seed_numbers = [int(name.split()[-1]) for name in ensemble.members]
    member = Forecaster.load(top.iteration(seed_numbers[0]).path)
    scale, validation = member.choose_perturbation(
        dataset.splits["validation"], dataset.grid.lat, SELECTION_MEMBERS
    )
    perturbed = {}
    for count in MEMBERS:
        perturbed[count] = score(member.perturbed(count, scale), dataset, "test")

    member_rmse = [
        (f"seed {seed} (member)", per_lead(run, "rmse"))
        for seed, run in zip(seed_numbers, runs, strict=True)
    ]
    ensembles = {
        f"{len(seed_numbers)} seeds": seeds.sel(forecast=model),
        **{
            f"{c} perturbed (seed {seed_numbers[0]})": perturbed[c][0].sel(forecast=model)
            for c in MEMBERS
        },
        "climatological ensemble": seeds.sel(forecast="climatological_ensemble"),
    }
    crps_rows = [(name, ensemble_per_lead(e, "crps")) for name, e in ensembles.items()]
    crps_rows += [
        (f"{name} (its wMAE)", ensemble_per_lead(seeds.sel(forecast=name), "crps"))
        for name in ("input_mean", "persistence")
    ]
    ratio_rows = [
        (name, ensemble_per_lead(e, "spread_skill_ratio")) for name, e in ensembles.items()
    ]
    spread_rows = [(name, ensemble_per_lead(e, "spread")) for name, e in ensembles.items()]
    mean_rmse = per_lead(seeds.sel(forecast=model), "rmse")
    best_member = np.min([values for _, values in member_rmse], axis=0)
    mean_member = np.mean([values for _, values in member_rmse], axis=0)
    crps_seeds = ensemble_per_lead(seeds.sel(forecast=model), "crps")
    crps_climate = ensemble_per_lead(ensembles["climatological ensemble"], "crps")
    mae_input_mean = ensemble_per_lead(seeds.sel(forecast="input_mean"), "crps")
    ratios = {name: ensemble_overall(e, "spread_skill_ratio") for name, e in ensembles.items()}

    def verdict(holds) -> str:
        holds = np.asarray(holds)
        return "yes, at every lead" if holds.all() else f"no: leads {np.flatnonzero(~holds) + 1}"

    commit = current_commit()
    host = machine()
    text = [
        "# Ensembles on the README's main job",
        "",
        f"- command: `python {' '.join(['experiments/ensembles.py', *sys.argv[1:]])}`",
        f"- date: {datetime.date.today().isoformat()}; written at commit `{commit}`, the runs "
        f"trained at {commits_of(args.workdir)} (`stconv train --workdir {args.workdir} "
        "--preset main`)",
        f"- machine: {host['platform']}, {host['cpu_count']} CPU cores, {host['backend']}",
        f"- data: the embedded HadCM3 A1B field ({variable}, {units}), annual; the test split, "
        "scores area-weighted (cos latitude) but the paper's RMSE",
        "- scores: `stconv.evaluation.ensemble` (fair CRPS, spread = sqrt of the mean unbiased "
        "variance, spread-skill ratio with the sqrt((M+1)/M) correction, rank histogram); the "
        "climatological ensemble has every training year as a member",
        "",
        "## Findings",
        "",
        f"- The ensemble mean of the seeds beats the members' mean RMSE: "
        f"{verdict(np.asarray(mean_rmse) < mean_member)} ({mean_member.round(3).tolist()} "
        f"{units}); and its best member at each lead: "
        f"{verdict(np.asarray(mean_rmse) < best_member)} ({np.round(mean_rmse, 3).tolist()} "
        f"against {best_member.round(3).tolist()} {units}).",
        f"- The seed ensemble's CRPS beats the climatological ensemble's: "
        f"{verdict(crps_seeds < crps_climate)}; and the input mean's MAE (the best "
        f"deterministic baseline's CRPS): {verdict(crps_seeds < mae_input_mean)}.",
        "- Spread-skill ratio over all leads: "
        + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
        + " (1 is reliable; below 1 under-dispersive: the members agree more than their "
        "error says).",
        "- The ensemble mean's area-weighted RMSE: "
        + ", ".join(
            f"{name} {ensemble_overall(e, 'ensemble_mean_rmse'):.3f}"
            for name, e in ensembles.items()
        )
        + f" {units} (one seed alone: "
        f"{float(runs[0]['overall'].sel(metric='weighted_rmse')):.3f}).",
        f"- Perturbed inputs: noise {scale} training std, chosen on the validation split "
        f"(CRPS over the training std, {SELECTION_MEMBERS} members: "
        + ", ".join(f"{s:g}: {c:.4f}" for s, c in validation.items())
        + ").",
        f"- Cost: the seed ensemble trained {len(seed_numbers)} networks "
        f"({training_seconds(args.workdir):.0f} s for the seeds' training and test) and "
        f"scored the test split in "
        f"{seeds_seconds:.1f} s; the perturbed ensembles train nothing more and scored it in "
        + ", ".join(f"{perturbed[c][1]:.1f} s ({c} members)" for c in MEMBERS)
        + " (these include compiling).",
        "",
        f"## RMSE per lead time ({units})",
        "",
        table([*member_rmse, ("ensemble mean of the seeds", mean_rmse),
               ("input_mean", per_lead(seeds.sel(forecast="input_mean"), "rmse"))], "forecast"),
        "",
        f"## CRPS per lead time ({units}); a single forecast's is its area-weighted MAE",
        "",
        table(crps_rows, "forecast"),
        "",
        "## Spread-skill ratio per lead time",
        "",
        table(ratio_rows, "ensemble", 2),
        "",
        f"## Spread per lead time ({units})",
        "",
        table(spread_rows, "ensemble"),
        "",
        "## Rank histograms, all leads (fraction of cells per rank, lowest first)",
        "",
        *[f"- {name}: {rank_fractions(e)}" for name, e in ensembles.items()
          if name != "climatological ensemble"],
        f"- climatological ensemble ({int(ensembles['climatological ensemble']['members'])} "
        "members): "
        f"{extremes(ensembles['climatological ensemble'])}",
        "",
    ]  # fmt: skip
    write_markdown(args.output, text)


if __name__ == "__main__":
    main()
