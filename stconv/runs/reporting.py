"""What a run reports: its test scores, forecasts and figures, and the
summary of several seeds, per target variable, each in its own units.

- `report_test_split`: a trained run's test split scored beside the baselines, written
  as ``results.json``, ``test_forecasts.nc``, ``forecast_maps.png`` and
  ``skill_by_lead.png``, and printed (`format_results`); the end of training
  and ``stconv evaluate`` both report this way;
- `report_seeds`: the runs of several seeds as mean +- std
  (``summary.json``, `format_summaries`, ``skill_by_lead.png`` of the means);
- `report_ensemble`: the runs of several seeds as one ensemble forecast
  (``results.json`` and ``ensemble.png`` of their folder, `format_ensemble`).

Results are ``{variable: {forecast: scores}}``
(`stconv.evaluation.scoring.name_and_score`); tables and summaries iterate
over `stconv.evaluation.metrics.METRICS`. With one target variable the tables
read as they did before there could be several.
"""

import numpy as np

from stconv.data.climatology import DESCRIPTIONS
from stconv.data.registry import Dataset
from stconv.evaluation import plots
from stconv.evaluation.inference import to_physical
from stconv.evaluation.metrics import METRICS
from stconv.evaluation.netcdf import ForecastWriter, lead_times
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster
from stconv.runs.provenance import PhaseClock
from stconv.training.distributed import is_primary

SKILL = "skill_vs_persistence"  # the skill column of the tables
ANNUAL = DESCRIPTIONS["annual"]  # each cell's mean: the tables say nothing more


def report_test_split(
    forecaster: Forecaster, dataset: Dataset, run: RunDirectory, clock: PhaseClock
) -> dict:
    """Test scores of the model and the baselines on ``dataset``'s test split
    (`stconv.runs.forecaster.Forecaster.score`); forecasts, maps, skill plot, the tables.

    Forecasts stream to ``test_forecasts.nc`` batch by batch; only the
    ``forecast_samples`` windows drawn in ``forecast_maps.png`` are kept.
    With several processes, the others compute with process 0 and write nothing.
    ``clock`` gets the seconds of the ``evaluation`` and of ``writing`` the files.
    """
    config, outputs = forecaster.config, forecaster.outputs
    normalizer, mask = forecaster.normalizer.first(outputs), dataset.mask[..., :outputs]
    source, lat = dataset.splits["test"], dataset.grid["lat"]
    what = f"the test split of {config.dataset!r}"
    if not is_primary():
        with clock.phase("evaluation"):
            return forecaster.score(source, lat, what)
    init_times, valid_times = source.init_times(), source.valid_times()
    samples = min(config.forecast_samples, len(source))
    if samples < config.forecast_samples:
        print(
            f"forecast_samples={config.forecast_samples} is more than the {len(source)} test "
            f"windows: drawing all {samples}"
        )
    picks = np.linspace(0, len(source) - 1, samples).astype(int)
    drawn = {}  # window index -> last input frame, truth and prediction at lead 1
    grid = {**dataset.grid, **{k: dataset.grid[k][:outputs] for k in TARGET_KEYS}}
    lead_time = lead_times(source.times(), config.horizon)
    writer = ForecastWriter(
        run.file(run.TEST_FORECASTS), grid, mask, config.horizon, lead_time, overwrite=True
    )  # evaluate writes the run's test forecasts again
    with clock.phase("evaluation"), writer:

        def write(batch: dict, predictions: dict) -> None:
            with clock.phase("writing"):
                start = writer.count
                stop = start + len(predictions["model"])
                valid = valid_times[start:stop] if valid_times is not None else None
                prediction = to_physical(predictions["model"], normalizer, mask, valid)
                writer.write(prediction, init_times[start:stop], valid)
                for index in picks[(picks >= start) & (picks < stop)]:
                    i = index - start
                    lead_1 = None if valid is None else valid[i, :1]
                    last = None if valid is None else init_times[index : index + 1]
                    truth = normalizer.denormalize(batch["targets"][i, :1], lead_1)[0]
                    inputs = batch["inputs"][i, -1:, ..., :outputs]
                    last_input = normalizer.denormalize(inputs, last)[0]
                    drawn[index] = (
                        last_input,
                        np.where(batch["mask"][i, 0], truth, np.nan),
                        prediction[i, 0],
                    )

        results = forecaster.score(source, lat, what, on_batch=write)
    with clock.phase("writing"):
        run.write_json(run.RESULTS, results)
        print(format_results(results))
        plots.skill_by_lead(results, run.file(run.SKILL_BY_LEAD))
        if config.forecast_samples:
            rows = [drawn[index] for index in picks]
            titles = [f"init {str(t)[:10]}, lead 1" for t in init_times[picks]]
            plots.forecast_maps(*stacked(rows), titles, grid, run.file(run.FORECAST_MAPS))
    return results


# The entries of a grid that are per channel: a forecast file's are the targets'.
TARGET_KEYS = ("channel", "units", "long_name", "standard_name")


def stacked(rows: list[tuple]) -> tuple[np.ndarray, ...]:
    """Drawn windows' (last input, truth, prediction) rows as three arrays."""
    return tuple(np.stack(column) for column in zip(*rows, strict=True))


def summarize(runs: list[dict]) -> dict:
    """``{variable: {forecast: {score: {"mean", "std"}}}}`` over the runs of
    several seeds: every metric of `METRICS`, overall and per lead time
    (elementwise), and the skill against persistence."""
    scores = [SKILL]
    for name in METRICS:
        scores += [name, f"{name}_per_lead"]
    return {
        variable: {
            forecast: {
                score: {
                    "mean": np.mean([run[variable][forecast][score] for run in runs], 0).tolist(),
                    "std": np.std([run[variable][forecast][score] for run in runs], 0).tolist(),
                }
                for score in scores
                if score in runs[0][variable][forecast]
            }
            for forecast in runs[0][variable]
        }
        for variable in runs[0]
    }


def report_seeds(runs: list[dict], top: RunDirectory) -> dict:
    """The runs of several seeds `summarize`d: printed (`format_summaries`) and,
    by process 0, written to ``summary.json`` with the runs, and drawn
    (``skill_by_lead.png`` of the means). Returns ``{"runs", "summary"}``."""
    summary = summarize(runs)
    print(format_summaries(summary, runs[0], len(runs)))
    written = {"runs": runs, "summary": summary}
    if is_primary():
        top.write_json(RunDirectory.SUMMARY, written)
        means = {
            variable: {
                forecast: {
                    **{score: values["mean"] for score, values in scores.items()},
                    "area_weighted": runs[0][variable][forecast]["area_weighted"],
                    "units": units_of(runs[0][variable]),
                }
                for forecast, scores in forecasts.items()
            }
            for variable, forecasts in summary.items()
        }
        plots.skill_by_lead(means, top.file(top.SKILL_BY_LEAD))
    return written


def report_ensemble(
    forecaster: Forecaster,
    dataset: Dataset,
    run: RunDirectory,
    clock: PhaseClock,
    perturbed: bool = False,
) -> dict:
    """The ensemble ``forecaster`` (`stconv.runs.forecaster.Forecaster.ensemble`)
    scored on ``dataset``'s test split beside the baselines and the
    climatological ensemble of its training split: written by process 0 to
    ``run``'s ``results.json`` (every forecast's ensemble scores under
    ``"ensemble"``) and ``ensemble.png`` (``perturbed``: the members of one
    run's perturbed inputs, to ``perturbed_results.json`` and
    ``perturbed_ensemble.png``, beside the run's own), and printed
    (`format_ensemble`)."""
    what = f"the test split of {forecaster.config.dataset!r}"
    with clock.phase("ensemble evaluation"):
        results = forecaster.score(
            dataset.splits["test"], dataset.grid["lat"], what, train=dataset.splits["train"]
        )
    if forecaster.perturbation is not None:
        for forecasts in results.values():
            forecasts[forecaster.config.model]["ensemble"]["perturbation"] = forecaster.perturbation
    print(format_ensemble(results, forecaster.members))
    if is_primary():
        with clock.phase("writing"):
            results_file = run.PERTURBED_RESULTS if perturbed else run.RESULTS
            plot = run.PERTURBED_ENSEMBLE_PLOT if perturbed else run.ENSEMBLE_PLOT
            run.write_json(results_file, results)
            plots.ensemble_scores(results, run.file(plot))
    return results


def format_ensemble(results: dict[str, dict], members: tuple[str, ...]) -> str:
    """A text table per target variable of the ensemble scores of every
    forecast (`stconv.evaluation.ensemble`), in its units."""
    several = len(results) > 1
    tables = []
    for variable, forecasts in results.items():
        units = units_of(forecasts)
        leads = len(next(iter(forecasts.values()))["ensemble"]["crps_per_lead"])
        of = f" of {variable}" if several else ""
        lines = [
            f"ensemble scores{of} over the whole test split, in {units or 'no units'}: the "
            f"model's {len(members)} members ({', '.join(members)}); CRPS (fair, area-weighted) "
            "= skill - spread part, a single forecast's CRPS is its wMAE; spread sqrt(mean "
            "unbiased variance); ratio sqrt((M+1)/M) spread / wRMSE of the mean; per lead: CRPS",
            f"{'forecast':24s} {'members':>7s} {'CRPS':>7s} {'skill':>7s} {'spread':>7s} "
            f"{'std':>7s} {'ratio':>6s} {'wRMSE':>7s}  "
            + " ".join(f"{'lead ' + str(i + 1):>7s}" for i in range(leads)),
        ]
        for name, scores in forecasts.items():
            e = scores["ensemble"]
            ratio = f"{e['spread_skill_ratio']:6.3f}" if e["members"] > 1 else f"{'-':>6s}"
            per_lead = " ".join(f"{value:7.3f}" for value in e["crps_per_lead"])
            lines.append(
                f"{name:24s} {e['members']:7d} {e['crps']:7.3f} {e['crps_skill']:7.3f} "
                f"{e['crps_spread']:7.3f} {e['spread']:7.3f} {ratio} "
                f"{scores['weighted_rmse']:7.3f}  {per_lead}"
            )
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def units_of(results: dict[str, dict]) -> str:
    """The units of one variable's results (``""`` for results without them)."""
    return next(iter(results.values())).get("units", "")


def format_results(results: dict[str, dict], split: str = "test") -> str:
    """`format_table` of every target variable, in its units; a variable is
    named in its table's first line when there are several."""
    several = len(results) > 1
    return "\n\n".join(
        format_table(scores, units_of(scores), split, variable if several else None)
        for variable, scores in results.items()
    )


def format_table(
    results: dict[str, dict], units: str, split: str = "test", variable: str | None = None
) -> str:
    """A text table of one variable: one row per forecast, its scores (the
    metrics of `METRICS` shown in tables, and the skill) over the whole
    ``split`` and its RMSE per lead time."""
    first = next(iter(results.values()))
    leads = len(first["rmse_per_lead"])
    weighted = first.get("area_weighted", False)
    columns = [(name, m.label, m.width) for name, m in METRICS.items() if m.in_table]
    columns.append((SKILL, "skill", 7))
    header = " ".join(f"{label:>{width}s}" for _, label, width in columns)
    header = f"{'forecast':14s} {header}  " + " ".join(
        f"{'lead ' + str(i + 1):>7s}" for i in range(leads)
    )
    of = f" of {variable}" if variable else ""
    lines = [
        f"{split} scores{of} over the whole {split} split, in {units or 'no units'}; wRMSE "
        + ("area-weighted (cos latitude)" if weighted else "= RMSE (not area-weighted)")
        + f"; ACC against the training climatology{seasonal_note(first)}; skill 1 - "
        "wMSE/wMSE of persistence; per lead time: RMSE",
        header,
    ]
    for name, result in results.items():
        cells = [
            f"{result[key]:{width}.3f}" if key in result else f"{'-':>{width}s}"
            for key, _, width in columns
        ]
        per_lead = " ".join(f"{value:7.3f}" for value in result["rmse_per_lead"])
        lines.append(f"{name:14s} {' '.join(cells)}  {per_lead}")
    return "\n".join(lines)


def seasonal_note(scores: dict) -> str:
    """`` (by day of year, ...)``: the climatology of a score when it is by
    time of year; nothing for each cell's mean, as tables always read."""
    climatology = scores.get("climatology", ANNUAL)
    return "" if climatology == ANNUAL else f" ({climatology})"


def format_summaries(summary: dict[str, dict], results: dict[str, dict], runs: int) -> str:
    """`format_summary` of every target variable, in its units (from one
    run's ``results``); a variable is named when there are several."""
    several = len(summary) > 1
    return "\n\n".join(
        format_summary(scores, units_of(results[variable]), runs, variable if several else None)
        for variable, scores in summary.items()
    )


def format_summary(
    summary: dict[str, dict], units: str, runs: int, variable: str | None = None
) -> str:
    """A text table of one variable of `summarize`: mean +- std over the runs
    of each metric of `METRICS` shown in the summary table, overall and per
    lead time."""
    of = f"{variable} " if variable else ""
    lines = [f"mean +- std over {runs} runs, {of}in {units or 'no units'}:"]
    for metric, label in [(n, m.label) for n, m in METRICS.items() if m.in_summary_table]:
        first = next(iter(summary.values()))[f"{metric}_per_lead"]["mean"]
        header = f"{label:14s} {'all':>15s}  " + " ".join(
            f"{'lead ' + str(i + 1):>15s}" for i in range(len(first))
        )
        lines.append(header)
        for name, metrics in summary.items():
            overall, per_lead = metrics[metric], metrics[f"{metric}_per_lead"]
            cells = [(overall["mean"], overall["std"])]
            cells += list(zip(per_lead["mean"], per_lead["std"], strict=True))
            values = [f"{mean:7.3f} +- {std:5.3f}" for mean, std in cells]
            lines.append(f"{name:14s} {values[0]:>15s}  " + " ".join(values[1:]))
    return "\n".join(lines)
