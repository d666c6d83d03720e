"""What a run reports: its test scores, forecasts and figures, and the
summary of several seeds.

- `report_test_split`: a trained run's test split scored beside the baselines, written
  as ``results.json``, ``test_forecasts.nc``, ``forecast_maps.png`` and
  ``skill_by_lead.png``, and printed (`format_table`); the end of training
  and ``stconv evaluate`` both report this way;
- `report_seeds`: the runs of several seeds as mean +- std
  (``summary.json``, `format_summary`, ``skill_by_lead.png`` of the means).

Tables and summaries iterate over `stconv.evaluation.metrics.METRICS`.
"""

import numpy as np

from stconv.data.registry import Dataset
from stconv.evaluation import plots
from stconv.evaluation.inference import to_physical
from stconv.evaluation.metrics import METRICS
from stconv.evaluation.netcdf import ForecastWriter
from stconv.forecaster import Forecaster
from stconv.provenance import PhaseClock
from stconv.run import RunDirectory
from stconv.training.distributed import is_primary

SKILL = "skill_vs_persistence"  # the skill column of the tables


def report_test_split(
    forecaster: Forecaster, dataset: Dataset, run: RunDirectory, clock: PhaseClock
) -> dict:
    """Test scores of the model and the baselines on ``dataset``'s test split
    (`stconv.forecaster.Forecaster.score`); forecasts, maps, skill plot, the table.

    Forecasts stream to ``test_forecasts.nc`` batch by batch; only the
    ``forecast_samples`` windows drawn in ``forecast_maps.png`` are kept.
    With several processes, the others compute with process 0 and write nothing.
    ``clock`` gets the seconds of the ``evaluation`` and of ``writing`` the files.
    """
    config, normalizer = forecaster.config, forecaster.normalizer
    source, lat = dataset.splits["test"], dataset.grid["lat"]
    what = f"the test split of {config.dataset!r}"
    if not is_primary():
        with clock.phase("evaluation"):
            return forecaster.score(source, lat, what)
    init_times = source.init_times()
    picks = np.linspace(0, len(source) - 1, config.forecast_samples).astype(int)
    drawn = {}  # window index -> last input frame, truth and prediction at lead 1
    writer = ForecastWriter(
        run.file(run.TEST_FORECASTS), dataset.grid, dataset.mask, config.horizon
    )
    with clock.phase("evaluation"), writer:

        def write(batch: dict, predictions: dict) -> None:
            with clock.phase("writing"):
                start = writer.count
                prediction = to_physical(predictions["model"], normalizer, dataset.mask)
                writer.write(prediction, init_times[start : start + len(prediction)])
                for index in picks[(picks >= start) & (picks < start + len(prediction))]:
                    i = index - start
                    truth = normalizer.denormalize(batch["targets"][i, 0])
                    drawn[index] = (
                        normalizer.denormalize(batch["inputs"][i, -1]),
                        np.where(batch["mask"][i, 0], truth, np.nan),
                        prediction[i, 0],
                    )

        results = forecaster.score(source, lat, what, on_batch=write)
    units = dataset.grid["units"]
    with clock.phase("writing"):
        run.write_json(run.RESULTS, results)
        print(format_table(results, units))
        plots.skill_by_lead(results, run.file(run.SKILL_BY_LEAD), units)
        if config.forecast_samples:
            rows = [drawn[index] for index in picks]
            last_inputs, truths, predictions = (np.stack(c) for c in zip(*rows, strict=True))
            plots.forecast_maps(
                last_inputs[..., 0],
                truths[..., 0],
                predictions[..., 0],
                [f"init {str(t)[:10]}, lead 1" for t in init_times[picks]],
                run.file(run.FORECAST_MAPS),
                units,
            )
    return results


def summarize(runs: list[dict]) -> dict:
    """``{forecast: {score: {"mean", "std"}}}`` over the runs of several seeds:
    every metric of `METRICS`, overall and per lead time (elementwise), and
    the skill against persistence."""
    scores = [SKILL]
    for name in METRICS:
        scores += [name, f"{name}_per_lead"]
    return {
        forecast: {
            score: {
                "mean": np.mean([run[forecast][score] for run in runs], axis=0).tolist(),
                "std": np.std([run[forecast][score] for run in runs], axis=0).tolist(),
            }
            for score in scores
            if score in runs[0][forecast]
        }
        for forecast in runs[0]
    }


def report_seeds(runs: list[dict], top: RunDirectory, units: str) -> dict:
    """The runs of several seeds `summarize`d: printed (`format_summary`) and,
    by process 0, written to ``summary.json`` with the runs, and drawn
    (``skill_by_lead.png`` of the means). Returns ``{"runs", "summary"}``."""
    summary = summarize(runs)
    print(format_summary(summary, units, len(runs)))
    if is_primary():
        top.write_json(RunDirectory.SUMMARY, {"runs": runs, "summary": summary})
        means = {
            forecast: {
                **{score: values["mean"] for score, values in scores.items()},
                "area_weighted": runs[0][forecast]["area_weighted"],
            }
            for forecast, scores in summary.items()
        }
        plots.skill_by_lead(means, top.file(top.SKILL_BY_LEAD), units)
    return {"runs": runs, "summary": summary}


def format_table(results: dict[str, dict], units: str, split: str = "test") -> str:
    """A text table: one row per forecast, its scores (the metrics of `METRICS`
    shown in tables, and the skill) over the whole ``split`` and its RMSE per
    lead time."""
    first = next(iter(results.values()))
    leads = len(first["rmse_per_lead"])
    weighted = first.get("area_weighted", False)
    columns = [(name, m.label, m.width) for name, m in METRICS.items() if m.in_table]
    columns.append((SKILL, "skill", 7))
    header = " ".join(f"{label:>{width}s}" for _, label, width in columns)
    header = f"{'forecast':14s} {header}  " + " ".join(
        f"{'lead ' + str(i + 1):>7s}" for i in range(leads)
    )
    lines = [
        f"{split} scores over the whole {split} split, in {units or 'no units'}; wRMSE "
        + ("area-weighted (cos latitude)" if weighted else "= RMSE (not area-weighted)")
        + "; ACC against the training climatology; skill 1 - wMSE/wMSE of persistence; "
        "per lead time: RMSE",
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


def format_summary(summary: dict[str, dict], units: str, runs: int) -> str:
    """A text table of `summarize`: mean +- std over the runs of each metric of
    `METRICS` shown in the summary table, overall and per lead time."""
    lines = [f"mean +- std over {runs} runs, in {units or 'no units'}:"]
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
