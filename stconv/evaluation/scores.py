"""Scores as an xarray Dataset: one value per forecast, target variable, metric
and lead time, from which ``results.json``, the printed tables, the
multi-seed summary and the plots are derived.

The layout (`as_dataset`):

- dimensions ``forecast`` (the model under its name, then the baselines),
  ``variable`` (the targets, in channel order), ``metric`` (every metric of
  `stconv.evaluation.metrics.METRICS` scored, then the skills of `with_skill`)
  and ``lead_time`` (1 to ``horizon``, steps);
- ``per_lead`` ``(forecast, variable, metric, lead_time)``: each score per
  lead time; ``overall`` ``(forecast, variable, metric)``: the score over the
  whole set (not the mean of the per-lead values: an RMSE of every window and
  cell);
- ``cells`` ``(forecast, variable)``: the valid cells scored;
  ``best_baseline`` ``(variable,)``: the baseline the skill is against;
- the coordinate ``units`` of ``variable``: each variable's units (``""``:
  none given), the units of every score but the pure numbers (ACC, skill);
- attributes ``area_weighted`` (the weighted scores are weighted) and
  ``climatology`` (the climatology of the climatology forecast and of the
  ACC, `stconv.data.climatology.Climatology.describe`; absent where none);
- an ensemble's scores (`stconv.evaluation.ensemble`), where there are:
  ``members`` ``(forecast,)``, ``ensemble_overall`` and ``ensemble_per_lead``
  over the dimension ``ensemble_metric``, ``rank_histogram`` ``(forecast,
  variable, lead_time, rank)`` (``-1`` past a forecast's ``members + 1``
  ranks) and ``perturbation`` ``(forecast,)`` (NaN where none).

`as_results` writes it back in the layout of ``results.json`` (``{variable:
{forecast: scores}}``, ``rmse`` and ``rmse_per_lead``, docs/metrics.md),
number for number, and `as_dataset` reads that layout (a run's recorded
``results.json`` included); `scored` makes the Dataset of what
`stconv.evaluation.scoring.evaluate` accumulated; `summary` is the
multi-seed mean and std, with a ``statistic`` dimension.
"""

import numpy as np
import xarray as xr

from stconv.evaluation import confidence, event_scoring
from stconv.evaluation.metrics import METRICS, REFERENCE_RMSE, skill

PER_LEAD = "_per_lead"
BASELINES = (
    "persistence",
    "climatology",
    "input_mean",
    "anomaly_persistence",
    "damped_anomaly_persistence",
)
SKILL_REFERENCES = {"persistence": "persistence", "best_baseline": None}  # None: the best
SUMMARIZED = "skill_vs_persistence"  # the skill of the multi-seed summary
# The entries of a forecast's scores that are not a score over leads.
OTHER = (
    "cells", "area_weighted", "ensemble", "units", "climatology", "best_baseline",
    *confidence.KEYS, event_scoring.KEY,
)  # fmt: skip
ENSEMBLE_OTHER = ("members", "rank_histogram", "perturbation")


def is_skill(metric: str) -> bool:
    """Whether ``metric`` is a skill against a reference (`with_skill`)."""
    return metric.startswith("skill_vs_")


def as_dataset(results: dict[str, dict]) -> xr.Dataset:
    """The Dataset of scores in the layout of ``results.json`` (``{variable:
    {forecast: scores}}``, each score overall and ``..._per_lead``).

    A score that a forecast lacks and another has is NaN.
    """
    variables = list(results)
    forecasts = list(dict.fromkeys(f for forecasts in results.values() for f in forecasts))
    records = [[results[v].get(f, {}) for v in variables] for f in forecasts]
    flat = [record for row in records for record in row]
    metrics = ordered(k for r in flat for k in r if k not in OTHER and not k.endswith(PER_LEAD))
    overall, per_lead = score_arrays(records, metrics)
    leads = per_lead.shape[-1]
    dims = ("forecast", "variable", "metric")
    scores = xr.Dataset(
        {"overall": (dims, overall), "per_lead": ((*dims, "lead_time"), per_lead)},
        coords={
            "forecast": forecasts,
            "variable": variables,
            "metric": metrics,
            "lead_time": np.arange(1, leads + 1),
        },
    )
    first = flat[0] if flat else {}
    if "cells" in first:
        cells = [[record.get("cells", -1) for record in row] for row in records]
        scores["cells"] = (dims[:2], np.asarray(cells, np.int64))
    if "units" in first:
        scores.coords["units"] = (
            "variable",
            [next(iter(results[v].values())).get("units", "") for v in variables],
        )
    if "best_baseline" in first:
        best = [next(iter(results[v].values())).get("best_baseline", "") for v in variables]
        scores["best_baseline"] = ("variable", best)
    scores.attrs.update(
        {key: first[key] for key in ("area_weighted", "climatology") if key in first}
    )
    if any("ensemble" in record for record in flat):
        scores = scores.merge(ensemble_dataset(records, forecasts, variables))
    scores = scores.merge(event_scoring.event_dataset(records, forecasts, variables))
    confident = confidence.confidence_dataset(records, forecasts, variables, metrics, leads)
    attrs = {**scores.attrs, **confident.attrs}
    return scores.merge(confident).assign_attrs(attrs)


def ordered(keys) -> list[str]:
    """``keys`` once each, in the order first seen."""
    return list(dict.fromkeys(keys))


def score_arrays(records: list[list[dict]], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The scores ``names`` of ``records`` (per forecast, per variable: ``{name:
    overall, name_per_lead: [...]}``) as arrays ``(forecast, variable, name)``
    and ``(forecast, variable, name, lead)``, NaN where a record lacks one."""
    flat = [record for row in records for record in row]
    leads = max(
        (len(r[m]) for r in flat for m in r if m.endswith(PER_LEAD) and m not in OTHER), default=0
    )
    overall = np.full((len(records), len(records[0]) if records else 0, len(names)), np.nan)
    per_lead = np.full((*overall.shape, leads), np.nan)
    for i, row in enumerate(records):
        for j, record in enumerate(row):
            for k, name in enumerate(names):
                if name in record:
                    overall[i, j, k] = record[name]
                    per_lead[i, j, k] = record.get(f"{name}{PER_LEAD}", np.nan)
    return overall, per_lead


def ensemble_dataset(records: list[list[dict]], forecasts: list, variables: list) -> xr.Dataset:
    """The ensemble scores of ``records`` (per forecast, per variable) as
    `as_dataset` lays them out."""
    ensembles = [[record.get("ensemble", {}) for record in row] for row in records]
    flat = [e for row in ensembles for e in row]
    names = ordered(
        k for e in flat for k in e if k not in ENSEMBLE_OTHER and not k.endswith(PER_LEAD)
    )
    overall, per_lead = score_arrays(ensembles, names)
    leads = per_lead.shape[-1]
    ranks = max((len(e["rank_histogram"][0]) for e in flat if e.get("rank_histogram")), default=0)
    histogram = np.full((len(forecasts), len(variables), leads, ranks), -1, np.int64)
    members = np.zeros(len(forecasts), np.int64)
    perturbation = np.full(len(forecasts), np.nan)
    for i, row in enumerate(ensembles):
        for j, ensemble in enumerate(row):
            counts = np.asarray(ensemble.get("rank_histogram", np.zeros((0, 0))), np.int64)
            histogram[i, j, : counts.shape[0], : counts.shape[1]] = counts
            members[i] = ensemble.get("members", members[i])
            perturbation[i] = ensemble.get("perturbation", perturbation[i])
    dims = ("forecast", "variable", "ensemble_metric")
    return xr.Dataset(
        {
            "members": ("forecast", members),
            "ensemble_overall": (dims, overall),
            "ensemble_per_lead": ((*dims, "lead_time"), per_lead),
            "rank_histogram": (("forecast", "variable", "lead_time", "rank"), histogram),
            "perturbation": ("forecast", perturbation),
        },
        coords={"forecast": forecasts, "variable": variables, "ensemble_metric": names},
    )


def as_results(scores: xr.Dataset) -> dict[str, dict]:
    """``scores`` in the layout of ``results.json``, as `as_dataset` reads it:
    per variable and forecast the metrics (overall, then ``..._per_lead``),
    ``cells``, ``area_weighted``, ``ensemble``, ``units``, ``climatology``,
    the skills and ``best_baseline``, each where the Dataset has it."""
    metrics = [str(m) for m in scores["metric"].values]
    results = {}
    for variable in scores["variable"].values:
        of = scores.sel(variable=variable)
        forecasts = {}
        for forecast in of["forecast"].values:
            one = of.sel(forecast=forecast)
            record = scored_metrics(one, [m for m in metrics if not is_skill(m)])
            if "cells" in one:
                record["cells"] = int(one["cells"])
            if "area_weighted" in scores.attrs:
                record["area_weighted"] = bool(scores.attrs["area_weighted"])
            if "ensemble_overall" in one:
                record["ensemble"] = ensemble_record(one)
            if "units" in one.coords:
                record["units"] = str(one["units"].values)
            if "climatology" in scores.attrs:
                record["climatology"] = scores.attrs["climatology"]
            record.update(scored_metrics(one, [m for m in metrics if is_skill(m)]))
            if "best_baseline" in one:
                record["best_baseline"] = str(one["best_baseline"].values)
            record.update(event_scoring.event_record(one))
            record.update(confidence.confidence_record(one, scores, str(forecast)))
            forecasts[str(forecast)] = record
        results[str(variable)] = forecasts
    return results


def scored_metrics(one: xr.Dataset, metrics: list[str]) -> dict:
    """``{metric: overall, metric_per_lead: [...]}`` of one forecast and variable."""
    record = {}
    for metric in metrics:
        record[metric] = float(one["overall"].sel(metric=metric))
        record[f"{metric}{PER_LEAD}"] = one["per_lead"].sel(metric=metric).values.tolist()
    return record


def ensemble_record(one: xr.Dataset) -> dict:
    """The ``"ensemble"`` entry of one forecast and variable."""
    members = int(one["members"])
    record = {"members": members}
    for name in one["ensemble_metric"].values:
        record[str(name)] = float(one["ensemble_overall"].sel(ensemble_metric=name))
        per_lead = one["ensemble_per_lead"].sel(ensemble_metric=name)
        record[f"{name}{PER_LEAD}"] = per_lead.values.tolist()
    record["rank_histogram"] = one["rank_histogram"].values[:, : members + 1].tolist()
    if np.isfinite(one["perturbation"]):
        record["perturbation"] = float(one["perturbation"])
    return record


def scored(
    evaluated: dict[str, list[dict]],
    model: str,
    variables: list[str],
    units: list[str],
    climatology: str | None = None,
) -> xr.Dataset:
    """The Dataset of the scores `stconv.evaluation.scoring.evaluate`
    accumulated (per forecaster, one record per target channel), with the
    forecaster ``"model"`` named ``model``, the ``variables`` and their
    ``units`` in channel order, the ``climatology`` its ACC and the
    climatology forecast used (None: there was none), and the skills of
    `with_skill`."""
    used = {} if climatology is None else {"climatology": climatology}
    named = {
        variable: {
            model if name == "model" else name: {
                **records[channel],
                "units": units[channel],
                **used,
            }
            for name, records in evaluated.items()
        }
        for channel, variable in enumerate(variables)
    }
    return with_skill(as_dataset(named))


def with_skill(scores: xr.Dataset) -> xr.Dataset:
    """``scores`` with every forecast's skill ``1 - MSE / MSE_reference``
    (area-weighted MSE), overall and per lead, against persistence and
    against the best baseline present (per variable, the lowest overall
    weighted RMSE): the metrics ``skill_vs_persistence`` and
    ``skill_vs_best_baseline``, and ``best_baseline``; ``scores`` itself
    where no baseline is present."""
    forecasts = [str(f) for f in scores["forecast"].values]
    present = [name for name in BASELINES if name in forecasts]
    if not present:
        return scores
    wrmse = scores["overall"].sel(metric="weighted_rmse")
    wrmse_per_lead = scores["per_lead"].sel(metric="weighted_rmse")
    references = [k for k, r in SKILL_REFERENCES.items() if r is None or r in forecasts]
    shape = (len(forecasts), scores.sizes["variable"], len(references))
    overall, per_lead = np.zeros(shape), np.zeros((*shape, scores.sizes["lead_time"]))
    best = []
    for j, variable in enumerate(scores["variable"].values):
        of = wrmse.sel(variable=variable)
        best.append(min(present, key=lambda name: float(of.sel(forecast=name))))
        for k, key in enumerate(references):
            reference = SKILL_REFERENCES[key] or best[-1]
            ref = float(of.sel(forecast=reference))
            ref_per_lead = wrmse_per_lead.sel(variable=variable, forecast=reference).values
            for i, forecast in enumerate(forecasts):
                overall[i, j, k] = skill(float(of.sel(forecast=forecast)) ** 2, ref**2)
                mine = wrmse_per_lead.sel(variable=variable, forecast=forecast).values
                per_lead[i, j, k] = skill(np.square(mine), np.square(ref_per_lead))
    dims = ("forecast", "variable", "metric")
    names = [f"skill_vs_{key}" for key in references]
    skills = xr.Dataset(
        {"overall": (dims, overall), "per_lead": ((*dims, "lead_time"), per_lead)},
        coords={
            **{dim: scores[dim].values for dim in ("forecast", "variable", "lead_time")},
            "metric": names,
        },
    )
    kept = scores.drop_sel(metric=[name for name in names if name in scores["metric"]])
    combined = xr.concat([kept[["overall", "per_lead"]], skills], "metric", coords="minimal")
    by_metric = [name for name in kept.data_vars if "metric" in kept[name].dims]
    reindexed = kept[by_metric].reindex(metric=combined["metric"].values)  # NaN for the skills
    reindexed["overall"], reindexed["per_lead"] = combined["overall"], combined["per_lead"]
    result = kept.drop_vars([*by_metric, "metric"]).assign(reindexed.data_vars)
    result["best_baseline"] = ("variable", best)
    return result


def summary(runs: list[xr.Dataset]) -> xr.Dataset:
    """Mean and std (numpy's, over the runs of several seeds, elementwise) of
    every score of ``runs``, over the dimension ``statistic`` (``"mean"``,
    ``"std"``); the units, attributes and ``area_weighted`` of the first run;
    where the runs have intervals, the interval of the mean with the seeds'
    spread (`stconv.evaluation.confidence.seeds_interval`)."""
    stacked = xr.concat([run[["overall", "per_lead"]] for run in runs], "run", join="outer")
    statistics = [stacked.reduce(np.mean, dim="run"), stacked.reduce(np.std, dim="run")]
    result = xr.concat(statistics, "statistic", coords="minimal")
    result.coords["statistic"] = ["mean", "std"]
    if "units" in runs[0].coords:
        result.coords["units"] = runs[0]["units"]
    result.attrs = dict(runs[0].attrs)
    return result.merge(confidence.seeds_interval(runs, result))


def summary_record(summary_scores: xr.Dataset) -> dict[str, dict]:
    """`summary` in the layout of ``summary.json``: ``{variable: {forecast:
    {score: {"mean", "std"}}}}`` for the skill against persistence, every
    metric of `stconv.evaluation.metrics.METRICS` scored and the reference's
    RMSE (`stconv.evaluation.metrics.reference_rmse`), overall and per lead;
    overall, the ``interval`` of the mean with the seeds' spread, where known."""
    names = [m for m in [SUMMARIZED, *METRICS, REFERENCE_RMSE] if m in summary_scores["metric"]]
    record = {}
    for variable in summary_scores["variable"].values:
        forecasts = {}
        for forecast in summary_scores["forecast"].values:
            one = summary_scores.sel(variable=variable, forecast=forecast)
            scores = {}
            for name in names:
                keys = ("",) if name == SUMMARIZED else ("", PER_LEAD)
                for key in keys:
                    stats = one["per_lead" if key else "overall"].sel(metric=name)
                    scores[f"{name}{key}"] = {
                        s: stats.sel(statistic=s).values.tolist() for s in ("mean", "std")
                    }
                bounds = one["interval"].sel(metric=name).values if "interval" in one else [np.nan]
                if np.isfinite(bounds).all():
                    scores[name]["interval"] = bounds.tolist()
            forecasts[str(forecast)] = scores
        record[str(variable)] = forecasts
    return record


def summary_dataset(record: dict[str, dict]) -> xr.Dataset:
    """`summary_record`'s layout read back as `summary` lays it out."""
    statistics = [
        as_dataset(
            {
                variable: {
                    forecast: {score: values[s] for score, values in scores.items()}
                    for forecast, scores in forecasts.items()
                }
                for variable, forecasts in record.items()
            }
        )
        for s in ("mean", "std")
    ]
    result = xr.concat(statistics, "statistic", coords="minimal")
    result.coords["statistic"] = ["mean", "std"]
    return result
