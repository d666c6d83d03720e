"""What a run reports per grid cell, region and wavenumber, from the
`stconv.evaluation.field_scoring.FieldScoring` of its test split:

- ``cell_scores.nc``: RMSE, MAE, bias and the anomaly correlation of every
  forecast per cell and lead time (`stconv.evaluation.cells`), and
  ``cell_maps.png``: the model's RMSE, bias and ACC at the first and last
  lead time, drawn as maps (the first target variable);
- ``regional_scores.json`` and a printed table, with ``evaluation.regions``
  (maps or not): every forecast's scores per region (`stconv.evaluation.regions`);
- ``spectra.nc`` and ``spectra.png``: the mean zonal power spectrum of the
  truth and of every forecast per lead time (`stconv.evaluation.spectra`;
  drawn at the first and last lead time):
  a blurred forecast has less power than the truth at high wavenumbers;
- ``forecast_errors.png``: the truth, the forecast and its error at every
  lead time of one window (`stconv.evaluation.maps.forecast_figure`).

These are the run's own files: evaluating it again replaces them.
"""

import os

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from stconv.data.grid import Grid
from stconv.evaluation import maps, regions
from stconv.evaluation.cells import cell_scores, write_cell_scores
from stconv.evaluation.event_scoring import as_json
from stconv.evaluation.field_scoring import FieldScoring
from stconv.runs.directory import RunDirectory
from stconv.runs.presentation import name_width, readable, units_in

MAPPED = ("rmse", "bias", "acc")  # the scores drawn as maps


def report_fields(
    fields: FieldScoring,
    grid: Grid,
    run: RunDirectory,
    model: str,
    maps: bool,
    region_spec: str | None,
    valid: np.ndarray,
    weights: np.ndarray | None,
) -> None:
    """Writes the run's per-cell and spectral files, and its regional scores
    (module docstring).

    Args:
      fields: what the evaluation accumulated.
      grid: the targets' grid.
      run: the run's folder.
      model: the model's forecast name.
      maps: ``evaluation.maps``: the per-cell scores, spectra and their plots.
      region_spec: ``evaluation.regions``, or None (no regional scores).
      valid: ``(lat, lon)`` the mask's valid cells (land, where it is a land mask).
      weights: ``(lat,)`` area weights, or None.
    """
    sums = fields.cell_sums(grid)
    if maps:
        report_maps(fields, sums, grid, run, model)
    if region_spec:
        specs = regions.parse_regions(region_spec)
        masks = regions.region_masks(specs, grid.lat, grid.lon, scored=valid)
        regional = regions.regional_scores(sums, masks, weights)
        run.write_json(run.REGIONAL_SCORES, regional_record(regional))
        print(format_regions(regional, model))


def report_maps(
    fields: FieldScoring, sums: xr.Dataset, grid: Grid, run: RunDirectory, model: str
) -> None:
    """``cell_scores.nc``, ``spectra.nc`` and their plots."""
    scores = cell_scores(sums)
    replace(run.file(run.CELL_SCORES), lambda path: write_cell_scores(scores, path))
    of_model = scores.sel(forecast=model).isel(variable=0)
    drawn = [m for m in MAPPED if m in scores and np.isfinite(of_model[m]).any()]
    ends = sorted({int(scores["lead_time"][0]), int(scores["lead_time"][-1])})
    variable = str(scores["variable"].values[0])
    save(maps.score_maps(scores, model, drawn, variable, ends), run.file(run.CELL_MAPS))
    power = fields.power(grid)
    replace(run.file(run.SPECTRA), power.to_netcdf)
    if power.sizes["wavenumber"] > 1:  # a grid of one longitude has no zonal wave
        save(maps.spectra_figure(power, ends), run.file(run.SPECTRA_PLOT))


def save(figure: Figure, path: str) -> None:
    figure.savefig(path, dpi=100)


def replace(path: str, write) -> None:
    """Writes the run's file ``path`` with ``write(path)``, replacing the one
    an earlier evaluation of the run wrote."""
    if os.path.exists(path):
        os.remove(path)
    write(path)


def regional_record(regional: xr.Dataset) -> dict:
    """``{variable: {region: {forecast: {metric: overall, metric_per_lead}}}}``."""
    record: dict = {}
    for variable in regional["variable"].values:
        of_variable = record.setdefault(str(variable), {})
        for region in regional["region"].values:
            of_region = of_variable.setdefault(str(region), {})
            for forecast in regional["forecast"].values:
                one = regional.sel(variable=variable, region=region, forecast=forecast)
                scores = {"cells": int(one["cells"])}
                for metric in one["metric"].values:
                    scores[str(metric)] = float(one["overall"].sel(metric=metric))
                    per_lead = one["per_lead"].sel(metric=metric).values.tolist()
                    scores[f"{metric}_per_lead"] = per_lead
                of_region[str(forecast)] = scores
    return as_json(record)  # a region whose cells are all missing in the split: None


def format_regions(regional: xr.Dataset, model: str) -> str:
    """Per variable and region, every forecast's RMSE over the whole split."""
    regional = readable(regional)
    widths = {str(f): name_width([f], 14) for f in regional["forecast"].values}
    lines = ["RMSE per region over the whole test split"]
    for variable in regional["variable"].values:
        label = f"{variable} ({units_in(regional.sel(variable=variable))})"
        first = name_width([label, *regional["region"].values], 24)
        counts = regional["cells"].sel(variable=variable, forecast=model).values
        count = name_width(map(str, counts), 7)
        lines.append(
            f"{label:{first}s} {'cells':>{count}s} "
            + " ".join(f"{f:>{width}s}" for f, width in widths.items())
        )
        for region in regional["region"].values:
            one = regional.sel(variable=variable, region=region)
            rmse = one["overall"].sel(metric="rmse").values
            cells = int(one["cells"].sel(forecast=model))
            values = [f"{v:{width}.3f}" for v, width in zip(rmse, widths.values(), strict=True)]
            lines.append(f"{region!s:{first}s} {cells:{count}d} " + " ".join(values))
    return "\n".join(lines)
