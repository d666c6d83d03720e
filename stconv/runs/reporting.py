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
(`stconv.evaluation.scoring.name_and_score`), the layout of
``results.json``; the tables, summaries and plots are derived from them as a
Dataset (`stconv.evaluation.scores`), each metric shown as
`stconv.runs.presentation.PRESENTATION` says. With one target variable the
tables read as they did before there could be several.
"""

import numpy as np
import xarray as xr

from stconv.data.climatology import DESCRIPTIONS
from stconv.data.registry import Dataset
from stconv.evaluation import confidence, maps, plots
from stconv.evaluation.field_scoring import FieldScoring
from stconv.evaluation.inference import to_physical
from stconv.evaluation.metrics import grid_weights
from stconv.evaluation.netcdf import ForecastWriter, lead_times
from stconv.evaluation.scores import (
    as_dataset,
    as_results,
    summary,
    summary_dataset,
    summary_record,
)
from stconv.evaluation.scoring import both
from stconv.runs.directory import RunDirectory
from stconv.runs.field_report import report_fields
from stconv.runs.forecaster import Forecaster
from stconv.runs.presentation import name_width, readable, shown, skill_panels, units_in
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
    source, lat, train = dataset.splits["test"], dataset.grid.lat, dataset.splits["train"]
    what = f"the test split of {config.data.dataset!r}"
    if not is_primary():
        with clock.phase("evaluation"):
            return forecaster.score(source, lat, what, train=train)
    init_times, valid_times = source.init_times(), source.valid_times()
    samples = min(config.evaluation.forecast_samples, len(source))
    if samples < config.evaluation.forecast_samples:
        print(
            f"evaluation.forecast_samples={config.evaluation.forecast_samples} is more than the "
            f"{len(source)} test windows: drawing all {samples}"
        )
    picks = np.linspace(0, len(source) - 1, samples).astype(int)
    grid = dataset.grid.first(outputs)  # a forecast file's variables are the targets
    lead_time = lead_times(source.times(), config.data.horizon)
    writer = ForecastWriter(
        run.file(run.TEST_FORECASTS), grid, mask, config.data.horizon, lead_time, overwrite=True
    )  # evaluate writes the run's test forecasts again
    climatology = forecaster.run.climatology
    climatology = None if climatology is None else climatology.first(outputs)
    maps, regions = config.evaluation.maps, config.evaluation.regions
    per_cell = maps or regions  # both are made of the per-cell sums
    fields = FieldScoring(config.model.name, (), normalizer, climatology, valid_times)
    with clock.phase("evaluation"), writer:
        forecasts = TestForecasts(writer, normalizer, mask, init_times, valid_times, picks, clock)
        on_batch = both(forecasts, fields if per_cell else None)
        results = forecaster.score(source, lat, what, on_batch=on_batch, train=train)
    with clock.phase("writing"):
        scores = as_dataset(results)
        run.write_json(run.RESULTS, as_results(scores))
        print(format_results(scores))
        plots.skill_by_lead(scores, skill_panels(), run.file(run.SKILL_BY_LEAD))
        weights = grid_weights(grid.latitudes, config.evaluation.area_weights, what)
        if per_cell:
            report_fields(
                fields, grid, run, config.model.name, maps, regions, mask[..., 0], weights
            )
        if config.evaluation.forecast_samples and maps:
            first = picks[0]
            title = f"init {str(init_times[first])[:16]}"
            draw_forecast_errors(*forecasts.whole[first], grid, title, run)
            rows = [forecasts.drawn[index] for index in picks]
            titles = [f"init {str(t)[:10]}, lead 1" for t in init_times[picks]]
            plots.forecast_maps(*stacked(rows), titles, grid, run.file(run.FORECAST_MAPS))
    return results


class TestForecasts:
    """Writes the model's test forecasts batch by batch (an ``on_batch`` of
    `stconv.runs.forecaster.Forecaster.score`) and keeps the windows
    ``picks`` to draw: ``drawn`` (the last input frame, truth and forecast
    at lead 1) and, of the first, ``whole`` (truth and forecast at every lead)."""

    def __init__(self, writer, normalizer, mask, init_times, valid_times, picks, clock):
        self.writer, self.normalizer, self.mask = writer, normalizer, mask
        self.init_times, self.valid_times, self.picks = init_times, valid_times, picks
        self.clock = clock
        self.drawn: dict[int, tuple] = {}
        self.whole: dict[int, tuple] = {}

    def __call__(self, batch: dict, predictions: dict) -> None:
        with self.clock.phase("writing"):
            start = self.writer.count
            stop = start + len(predictions["model"])
            valid = self.valid_times[start:stop] if self.valid_times is not None else None
            prediction = to_physical(predictions["model"], self.normalizer, self.mask, valid)
            self.writer.write(prediction, self.init_times[start:stop], valid)
            for index in self.picks[(self.picks >= start) & (self.picks < stop)]:
                self.keep(batch, index, index - start, prediction[index - start], valid)

    def keep(self, batch: dict, index: int, i: int, prediction, valid) -> None:
        """Keeps window ``index`` (row ``i`` of the batch) to draw."""
        times = None if valid is None else valid[i]
        truth = self.normalizer.denormalize(batch["targets"][i], times)
        truth = np.where(batch["mask"][i], truth, np.nan)
        if not self.whole:
            self.whole[index] = (truth, prediction)
        last = None if valid is None else self.init_times[index : index + 1]
        inputs = batch["inputs"][i, -1:, ..., : prediction.shape[-1]]
        last_input = self.normalizer.denormalize(inputs, last)[0]
        self.drawn[index] = (last_input, truth[0], prediction[0])


def draw_forecast_errors(truth, prediction, grid, title: str, run: RunDirectory) -> None:
    """``forecast_errors.png``: the truth, forecast and error of one window at
    every lead time (the first target variable)."""
    units = grid.units[0] if grid.units else ""
    leads = list(range(1, len(truth) + 1))
    figure = maps.forecast_figure(
        truth[..., 0], prediction[..., 0], grid.lat, grid.lon,
        f"{grid.channels[0]}, {title}", leads, units,
    )  # fmt: skip
    figure.savefig(run.file(run.FORECAST_ERRORS), dpi=100)


def stacked(rows: list[tuple]) -> tuple[np.ndarray, ...]:
    """Drawn windows' (last input, truth, prediction) rows as three arrays."""
    return tuple(np.stack(column) for column in zip(*rows, strict=True))


def summarize(runs: list[dict]) -> dict:
    """``{variable: {forecast: {score: {"mean", "std"}}}}`` over the runs of
    several seeds (`stconv.evaluation.scores.summary_record`): every metric of
    `stconv.evaluation.metrics.METRICS`, overall and per lead time
    (elementwise), and the skill against persistence."""
    return summary_record(summary([as_dataset(run) for run in runs]))


def report_seeds(runs: list[dict], top: RunDirectory) -> dict:
    """The runs of several seeds summarized (`stconv.evaluation.scores.summary`):
    printed (`format_summaries`) and, by process 0, written to
    ``summary.json`` with the runs (`summarize`), and drawn
    (``skill_by_lead.png`` of the means). Returns ``{"runs", "summary"}``."""
    summarized = summary([as_dataset(run) for run in runs])
    print(format_summaries(summarized, len(runs)))
    written = {"runs": runs, "summary": summary_record(summarized)}
    if is_primary():
        top.write_json(RunDirectory.SUMMARY, written)
        means = summarized.sel(statistic="mean")
        plots.skill_by_lead(means, skill_panels(), top.file(top.SKILL_BY_LEAD))
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
    what = f"the test split of {forecaster.config.data.dataset!r}"
    with clock.phase("ensemble evaluation"):
        results = forecaster.score(
            dataset.splits["test"], dataset.grid.lat, what, train=dataset.splits["train"]
        )
    if forecaster.perturbation is not None:
        for forecasts in results.values():
            forecasts[forecaster.config.model.name]["ensemble"]["perturbation"] = (
                forecaster.perturbation
            )
    scores = as_dataset(results)
    print(format_ensemble(scores, forecaster.members))
    if is_primary():
        with clock.phase("writing"):
            results_file = run.PERTURBED_RESULTS if perturbed else run.RESULTS
            plot = run.PERTURBED_ENSEMBLE_PLOT if perturbed else run.ENSEMBLE_PLOT
            run.write_json(results_file, as_results(scores))
            plots.ensemble_scores(scores, run.file(plot))
    return results


def format_ensemble(results: xr.Dataset | dict[str, dict], members: tuple[str, ...]) -> str:
    """A text table per target variable of the ensemble scores of every
    forecast (`stconv.evaluation.ensemble`) of ``results`` (a Dataset of
    `stconv.evaluation.scores`, or its ``results.json`` layout), in its units."""
    scores = readable(as_dataset(results) if isinstance(results, dict) else results)
    several = scores.sizes["variable"] > 1
    tables = []
    width = name_width(scores["forecast"].values, 24)
    for variable in scores["variable"].values:
        of_variable = scores.sel(variable=variable)
        of = f" of {variable}" if several else ""
        lines = [
            f"ensemble scores{of} over the whole test split, in "
            f"{units_in(of_variable) or 'no units'}: the "
            f"model's {len(members)} members ({', '.join(members)}); CRPS (fair, area-weighted) "
            "= skill - spread part, a single forecast's CRPS is its wMAE; spread sqrt(mean "
            "unbiased variance); ratio sqrt((M+1)/M) spread / wRMSE of the mean; per lead: CRPS",
            f"{'forecast':{width}s} {'members':>7s} {'CRPS':>7s} {'skill':>7s} {'spread':>7s} "
            f"{'std':>7s} {'ratio':>6s} {'wRMSE':>7s}  "
            + " ".join(f"{'lead ' + str(lead):>7s}" for lead in scores["lead_time"].values),
        ]
        for name in scores["forecast"].values:
            one = of_variable.sel(forecast=name)
            e = {
                str(k): float(v)
                for k, v in zip(
                    one["ensemble_metric"].values, one["ensemble_overall"].values, strict=True
                )
            }
            count = int(one["members"])
            ratio = f"{e['spread_skill_ratio']:6.3f}" if count > 1 else f"{'-':>6s}"
            crps = one["ensemble_per_lead"].sel(ensemble_metric="crps").values.tolist()
            per_lead = " ".join(f"{value:7.3f}" for value in crps)
            wrmse = float(one["overall"].sel(metric="weighted_rmse"))
            lines.append(
                f"{name:{width}s} {count:7d} {e['crps']:7.3f} {e['crps_skill']:7.3f} "
                f"{e['crps_spread']:7.3f} {e['spread']:7.3f} {ratio} "
                f"{wrmse:7.3f}  {per_lead}"
            )
        if has_events(of_variable):
            lines.append(format_events(of_variable, units_in(of_variable, scaled=False)))
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def format_results(results: xr.Dataset | dict[str, dict], split: str = "test") -> str:
    """`format_table` of every target variable of ``results`` (a Dataset of
    `stconv.evaluation.scores`, or its ``results.json`` layout), in its units;
    a variable is named in its table's first line when there are several."""
    scores = readable(as_dataset(results) if isinstance(results, dict) else results)
    several = scores.sizes["variable"] > 1
    return "\n\n".join(
        format_table(of, units_in(of), split, str(variable) if several else None)
        for variable, of in ((v, scores.sel(variable=v)) for v in scores["variable"].values)
    )


def format_table(
    results: xr.Dataset | dict[str, dict],
    units: str,
    split: str = "test",
    variable: str | None = None,
) -> str:
    """A text table of one variable (its Dataset of `stconv.evaluation.scores`,
    or its ``{forecast: scores}``): one row per forecast, its scores (the
    metrics of `stconv.evaluation.metrics.METRICS` shown in tables, and the
    skill) over the whole ``split`` and its RMSE per lead time."""
    scores = as_dataset({"": results}).isel(variable=0) if isinstance(results, dict) else results
    weighted = scores.attrs.get("area_weighted", False)
    columns = [(name, p.label, p.width) for name, p in shown().items() if p.in_table]
    columns.append((SKILL, "skill", 7))
    header = " ".join(f"{label:>{width}s}" for _, label, width in columns)
    names = name_width(scores["forecast"].values, 14)
    header = f"{'forecast':{names}s} {header}  " + " ".join(
        f"{'lead ' + str(lead):>7s}" for lead in scores["lead_time"].values
    )
    of = f" of {variable}" if variable else ""
    lines = [
        f"{split} scores{of} over the whole {split} split, in {units or 'no units'}; wRMSE "
        + ("area-weighted (cos latitude)" if weighted else "= RMSE (not area-weighted)")
        + f"; ACC against the training climatology{seasonal_note(scores.attrs)}; skill 1 - "
        "wMSE/wMSE of persistence; per lead time: RMSE",
        header,
    ]
    confident = "interval" in scores
    if confident:
        lines[0] += (
            f"; {INTERVAL}: 95% interval of the RMSE; {TESTED}: the model's RMSE minus this "
            f"forecast's, p its p-value ({NOT_SIGNIFICANT}: not significant at 5%; block "
            f"bootstrap of the windows, {scores.attrs['replicates']} resamples)"
        )
        lines[1] = lines[1].replace("  lead 1", f" {INTERVAL:>15s} {TESTED:>9s} {'p':>8s}  lead 1")
    metrics = set(scores["metric"].values.tolist())
    for name in scores["forecast"].values:
        overall = scores["overall"].sel(forecast=name)
        values = [
            float(overall.sel(metric=key)) if key in metrics else np.nan for key, *_ in columns
        ]
        cells = [
            f"{value:{width}.3f}" if np.isfinite(value) else f"{'-':>{width}s}"
            for value, (_, _, width) in zip(values, columns, strict=True)
        ]
        if confident:
            cells.append(confidence_cells(scores, str(name)))
        rmse = scores["per_lead"].sel(forecast=name, metric="rmse").values
        per_lead = " ".join(f"{value:7.3f}" for value in rmse.tolist())
        lines.append(f"{name:{names}s} {' '.join(cells)}  {per_lead}")
    if "difference" in scores:
        lines.append(significance_line(scores, units))
    if has_events(scores):
        lines.append(format_events(scores, units_in(scores, scaled=False) or units))
    return "\n".join(lines)


def has_events(scores: xr.Dataset) -> bool:
    """Whether one variable's ``scores`` hold event scores (thresholds were given)."""
    return "events" in scores and not np.isnan(scores["events"].values).all()


EVENT_COLUMNS = {"hit_rate": "hit", "false_alarm_ratio": "FAR", "csi": "CSI", "ets": "ETS"}
EVENT_COLUMNS.update(frequency_bias="bias", sedi="SEDI")


def format_events(scores: xr.Dataset, units: str) -> str:
    """The event scores of one variable: per forecast and threshold, the
    categorical scores and the FSS at each neighbourhood."""
    scales = [int(s) for s in scores["scale"].values]
    width = name_width(scores["forecast"].values, 26)
    lines = [
        f"events (value >= threshold, {units or 'no units'}; qNN: the training split's "
        "percentile per cell): hit rate, false-alarm ratio, CSI, ETS, frequency bias, SEDI, "
        f"fractions skill score over {', '.join(f'{s}x{s}' for s in scales)} cells",
        f"{'forecast':{width}s} {'threshold':>9s} "
        + " ".join(f"{label:>6s}" for label in EVENT_COLUMNS.values())
        + " " + " ".join(f"{'FSS ' + str(s):>6s}" for s in scales),
    ]  # fmt: skip
    for name in scores["forecast"].values:
        for threshold in scores["threshold"].values:
            one = scores.sel(forecast=name, threshold=threshold)
            values = [float(one["events"].sel(event_metric=m)) for m in EVENT_COLUMNS]
            values += one["fss"].values.tolist()
            cells = " ".join(f"{v:6.3f}" if np.isfinite(v) else f"{'-':>6s}" for v in values)
            lines.append(f"{name:{width}s} {threshold:>9s} {cells}")
    return "\n".join(lines)


INTERVAL = "RMSE 95%"
TESTED = "diff"
NOT_SIGNIFICANT = "ns"


def confidence_cells(scores: xr.Dataset, forecast: str) -> str:
    """The interval of ``forecast``'s RMSE, and the model's RMSE minus its with
    the p-value (marked where not significant)."""
    low, high = scores["interval"].sel(forecast=forecast, metric="rmse").values
    cells = f"[{low:6.3f},{high:6.3f}]" if np.isfinite(low) else "-"
    if "difference" not in scores or forecast not in scores["baseline"].values:
        return f"{cells:>15s} {'':9s} {'':8s}"
    of = scores.sel(baseline=forecast, metric="rmse")
    p = float(of["p_value"])
    mark = "" if confidence.is_significant(p) else f" {NOT_SIGNIFICANT}"
    return f"{cells:>15s} {float(of['difference']):9.3f} {f'{p:.3f}{mark}':>8s}"


def significance_line(scores: xr.Dataset, units: str) -> str:
    """Whether the model's RMSE differs from the best baseline's by more than
    the windows could give by chance."""
    best = str(scores["best_baseline"].values) if "best_baseline" in scores else None
    if best is None or best not in scores["baseline"].values:
        return ""
    of = scores.sel(baseline=best, metric="rmse")
    difference, p = float(of["difference"]), float(of["p_value"])
    low, high = of["difference_interval"].values
    verdict = "significant" if confidence.is_significant(p) else "NOT significant"
    better = "lower" if difference < 0 else "higher"
    return (
        f"{scores.attrs['tested']}: RMSE {abs(difference):.3f} {units} {better} than the best "
        f"baseline ({best}), 95% interval of the difference [{low:.3f}, {high:.3f}], "
        f"p = {p:.3f}: {verdict} at 5% over {scores.attrs['windows']} windows (resampled in "
        f"blocks of {int(scores['block_length'])})"
    )


def seasonal_note(scores: dict) -> str:
    """`` (by day of year, ...)``: the climatology of a score (its ``climatology``
    entry, or a Dataset's attribute) when it is by time of year; nothing for
    each cell's mean, as tables always read."""
    climatology = scores.get("climatology", ANNUAL)
    return "" if climatology == ANNUAL else f" ({climatology})"


def format_summaries(summarized: xr.Dataset, runs: int) -> str:
    """`format_summary` of every target variable of ``summarized``
    (`stconv.evaluation.scores.summary`), in its units; a variable is named
    when there are several."""
    summarized = readable(summarized)
    several = summarized.sizes["variable"] > 1
    return "\n\n".join(
        format_summary(of, units_in(of), runs, str(variable) if several else None)
        for variable, of in ((v, summarized.sel(variable=v)) for v in summarized["variable"].values)
    )


def format_summary(
    summary: xr.Dataset | dict[str, dict], units: str, runs: int, variable: str | None = None
) -> str:
    """A text table of one variable's summary (its Dataset of
    `stconv.evaluation.scores.summary`, or its part of `summarize`): mean +-
    std over the runs of each metric shown in the summary table, overall and
    per lead time."""
    if isinstance(summary, dict):
        summary = summary_dataset({"": summary}).isel(variable=0)
    of = f"{variable} " if variable else ""
    lines = [f"mean +- std over {runs} runs, {of}in {units or 'no units'}:"]
    metrics = set(summary["metric"].values.tolist())
    width = name_width([*summary["forecast"].values, *(p.label for p in shown().values())], 14)
    for metric, shows in shown().items():
        if not shows.in_summary_table or metric not in metrics:
            continue
        header = f"{shows.label:{width}s} {'all':>15s}  " + " ".join(
            f"{'lead ' + str(lead):>15s}" for lead in summary["lead_time"].values
        )
        lines.append(header)
        confident = "interval" in summary
        if confident:
            lines[-1] = lines[-1].replace("  lead 1", f" {'95% interval':>15s}  lead 1")
        for name in summary["forecast"].values:
            one = summary.sel(forecast=name, metric=metric)
            cells = [one["overall"].values.tolist()]
            cells += one["per_lead"].transpose("lead_time", "statistic").values.tolist()
            values = [f"{mean:7.3f} +- {std:5.3f}" for mean, std in cells]
            if confident:
                low, high = one["interval"].values
                values[0] += f" {f'[{low:6.3f},{high:6.3f}]':>15s}"
            lines.append(f"{name:{width}s} {values[0]:>15s}  " + " ".join(values[1:]))
    if "interval" in summary:
        lines.append(
            "95% interval: of the mean over the runs, the test windows' sampling spread (block "
            "bootstrap) combined with the seeds' spread"
        )
    if "difference" in summary:
        lines.append(seeds_verdict(summary, units))
    return "\n".join(lines)


def seeds_verdict(summary: xr.Dataset, units: str) -> str:
    """Whether the mean over the seeds of the model's RMSE differs from the
    best baseline's (the lowest mean wRMSE) by more than chance, the seeds'
    spread included: its interval excludes 0."""
    tested = summary.attrs["tested"]
    baselines = [str(b) for b in summary["baseline"].values]
    wrmse = summary["overall"].sel(metric="weighted_rmse", statistic="mean")
    best = min(baselines, key=lambda name: float(wrmse.sel(forecast=name)))
    of = summary.sel(baseline=best, metric="rmse")
    difference, (low, high) = float(of["difference"]), of["difference_interval"].values
    verdict = "significant" if low > 0 or high < 0 else "NOT significant"
    return (
        f"{tested} minus {best} (the best baseline), mean over the runs: RMSE {difference:.3f} "
        f"{units}, 95% interval [{low:.3f}, {high:.3f}] with the seeds' spread: {verdict} at 5%"
    )
