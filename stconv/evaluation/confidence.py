"""The confidence of scores, as part of the Dataset of
`stconv.evaluation.scores`: how much of a score, and of the model's
difference with each baseline, the windows scored could give by chance
(`stconv.evaluation.significance`, a block bootstrap over the windows).

In a forecast's record of ``results.json`` (`confidence_record`):

- ``interval``: ``{metric: [low, high]}`` the 95% interval of each score
  over the whole set, and ``interval_per_lead``: ``{metric: [[low, high],
  ...]}`` per lead time;
- the model's only, ``versus``: ``{baseline: {metric: {"difference",
  "interval", "p_value"}}}``, the paired difference model - baseline on the
  same windows, its interval and the two-sided p-value of "no difference";
- ``bootstrap``: ``{"replicates", "windows", "block_length", "level"}``.

In the Dataset (`confidence_dataset`): ``interval`` ``(forecast, variable,
metric, bound)`` and ``interval_per_lead`` ``(..., lead_time, bound)``;
``difference``, ``difference_interval`` (with ``bound``) and ``p_value``
``(variable, baseline, metric)`` of the forecast named by the attribute
``tested``; ``block_length`` ``(variable,)``; the attributes
``replicates``, ``windows`` and ``level``. NaN where a score has none.
"""

import numpy as np
import xarray as xr

from stconv.evaluation.significance import combined_with_seeds

BOUNDS = ["low", "high"]
KEYS = ("interval", "interval_per_lead", "versus", "bootstrap")
SIGNIFICANCE = 0.05  # the level below which a p-value is significant


def confidence_dataset(
    records: list[list[dict]], forecasts: list, variables: list, metrics: list, leads: int
) -> xr.Dataset:
    """The confidence entries of ``records`` (per forecast, per variable) as
    `as_dataset` lays them out; an empty Dataset where none has one."""
    flat = [record for row in records for record in row]
    if not any("interval" in record for record in flat):
        return xr.Dataset()
    interval = np.full((len(forecasts), len(variables), len(metrics), 2), np.nan)
    per_lead = np.full((*interval.shape[:3], leads, 2), np.nan)
    for i, row in enumerate(records):
        for j, record in enumerate(row):
            for k, metric in enumerate(metrics):
                if metric in record.get("interval", {}):
                    interval[i, j, k] = record["interval"][metric]
                    per_lead[i, j, k] = record["interval_per_lead"][metric]
    dims = ("forecast", "variable", "metric")
    scores = xr.Dataset(
        {
            "interval": ((*dims, "bound"), interval),
            "interval_per_lead": ((*dims, "lead_time", "bound"), per_lead),
        },
        coords={"forecast": forecasts, "variable": variables, "metric": metrics, "bound": BOUNDS},
    )
    bootstrap = next(r["bootstrap"] for r in flat if "bootstrap" in r)
    scores.attrs.update({key: bootstrap[key] for key in ("replicates", "windows", "level")})
    blocks = [
        next(iter(row_of(records, j)))["bootstrap"]["block_length"] for j in range(len(variables))
    ]
    scores["block_length"] = ("variable", np.asarray(blocks, np.int64))
    tested = [i for i, row in enumerate(records) if "versus" in row[0]]
    if tested:
        scores = scores.merge(paired_dataset(records[tested[0]], variables, metrics))
        scores.attrs["tested"] = str(forecasts[tested[0]])
    return scores


def row_of(records: list[list[dict]], variable: int) -> list[dict]:
    """The records of one variable that have a bootstrap entry."""
    return [row[variable] for row in records if "bootstrap" in row[variable]]


def paired_dataset(row: list[dict], variables: list, metrics: list) -> xr.Dataset:
    """The ``versus`` entries of the tested forecast's records (one per variable)."""
    baselines = list(dict.fromkeys(b for record in row for b in record["versus"]))
    shape = (len(variables), len(baselines), len(metrics))
    difference, p_value = np.full(shape, np.nan), np.full(shape, np.nan)
    interval = np.full((*shape, 2), np.nan)
    for j, record in enumerate(row):
        for b, baseline in enumerate(baselines):
            for k, metric in enumerate(metrics):
                paired = record["versus"].get(baseline, {}).get(metric)
                if paired is not None:
                    difference[j, b, k] = paired["difference"]
                    interval[j, b, k] = paired["interval"]
                    p_value[j, b, k] = paired["p_value"]
    dims = ("variable", "baseline", "metric")
    return xr.Dataset(
        {
            "difference": (dims, difference),
            "difference_interval": ((*dims, "bound"), interval),
            "p_value": (dims, p_value),
        },
        coords={"baseline": baselines, "bound": BOUNDS},
    )


def confidence_record(one: xr.Dataset, scores: xr.Dataset, forecast: str) -> dict:
    """The confidence entries of one forecast and variable (``one``, of the
    Dataset ``scores``) in the layout of ``results.json``."""
    if "interval" not in one:
        return {}
    record: dict = {"interval": {}, "interval_per_lead": {}}
    for metric in one["metric"].values:
        bounds = one["interval"].sel(metric=metric).values
        if np.all(np.isfinite(bounds)):
            record["interval"][str(metric)] = bounds.tolist()
            per_lead = one["interval_per_lead"].sel(metric=metric).values
            record["interval_per_lead"][str(metric)] = per_lead.tolist()
    if scores.attrs.get("tested") == forecast and "difference" in one:
        record["versus"] = {
            str(baseline): paired_record(one.sel(baseline=baseline))
            for baseline in one["baseline"].values
        }
    record["bootstrap"] = {
        "replicates": int(scores.attrs["replicates"]),
        "windows": int(scores.attrs["windows"]),
        "block_length": int(one["block_length"]),
        "level": float(scores.attrs["level"]),
    }
    return record


def paired_record(of: xr.Dataset) -> dict:
    """``{metric: {"difference", "interval", "p_value"}}`` of one baseline."""
    return {
        str(metric): {
            "difference": float(of["difference"].sel(metric=metric)),
            "interval": of["difference_interval"].sel(metric=metric).values.tolist(),
            "p_value": float(of["p_value"].sel(metric=metric)),
        }
        for metric in of["metric"].values
        if np.isfinite(of["difference"].sel(metric=metric))
    }


def seeds_interval(runs: list[xr.Dataset], summarized: xr.Dataset) -> xr.Dataset:
    """The interval of the mean score over the runs of several seeds
    (`stconv.evaluation.significance.combined_with_seeds`: the windows'
    sampling spread, the mean of the runs' own, with the seeds' spread of
    the mean), ``interval`` ``(forecast, variable, metric, bound)`` around
    the mean, overall and per lead; and the same of the tested forecast's
    paired differences (`seeds_difference`); empty where the runs have none."""
    if not all("interval" in run for run in runs):
        return xr.Dataset()
    level = float(runs[0].attrs["level"])
    result = {}
    for name, scores in (("interval", "overall"), ("interval_per_lead", "per_lead")):
        bounds = xr.concat([run[name] for run in runs], "run", join="outer").mean("run")
        mean = summarized[scores].sel(statistic="mean")
        each = xr.concat([run[scores] for run in runs], "run", join="outer")
        std = each.std("run", ddof=1) if len(runs) > 1 else xr.zeros_like(mean)
        low, high = bounds.sel(bound="low"), bounds.sel(bound="high")
        half = combined_with_seeds(low, high, std, len(runs), level)
        result[name] = xr.concat([mean - half, mean + half], "bound").assign_coords(bound=BOUNDS)
    if all("difference" in run for run in runs):
        result.update(seeds_difference(runs, level))
    return xr.Dataset(result).assign_attrs(
        {key: runs[0].attrs[key] for key in ("tested", "windows") if key in runs[0].attrs}
    )


def seeds_difference(runs: list[xr.Dataset], level: float) -> dict[str, xr.DataArray]:
    """The tested forecast's mean paired difference with each baseline over
    the runs, and its interval with the seeds' spread (`seeds_interval`)."""
    each = xr.concat([run["difference"] for run in runs], "run", join="outer")
    bounds = xr.concat([run["difference_interval"] for run in runs], "run").mean("run")
    std = each.std("run", ddof=1) if len(runs) > 1 else xr.zeros_like(each.isel(run=0))
    mean = each.mean("run")
    low, high = bounds.sel(bound="low"), bounds.sel(bound="high")
    half = combined_with_seeds(low, high, std, len(runs), level)
    interval = xr.concat([mean - half, mean + half], "bound").assign_coords(bound=BOUNDS)
    return {"difference": mean, "difference_interval": interval}


def is_significant(p_value: float) -> bool:
    """Whether a paired difference's p-value is significant at 5%."""
    return bool(np.isfinite(p_value) and p_value < SIGNIFICANCE)
