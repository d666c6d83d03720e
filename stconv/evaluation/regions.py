"""Forecast scores per region, from the per-cell sums of `stconv.evaluation.cells`.

A region is a set of grid cells, ``(lat, lon)`` True inside (`region_masks`):

- a named one of `REGIONS`: ``global`` (every cell); the latitude bands
  ``tropics`` (-20..20), ``northern_extratropics`` (20..90),
  ``southern_extratropics`` (-90..-20), ``arctic`` (66.5..90) and
  ``antarctic`` (-90..-66.5); ``land`` and ``sea``, the cells on and off
  land of a land mask (True, or a land fraction above 0.5, on land);
- a box ``name=lat_min:lat_max:lon_min:lon_max`` (degrees);
- the regions of a netCDF file, ``file:PATH``: each boolean or 0/1 variable
  on the grid's ``(lat, lon)`` (or ``latitude``, ``longitude``), or on a
  wider grid that holds its cells, is a region named after the variable,
  True (1) inside.

Bounds are inclusive (a row at 20 degrees is in the tropics and the northern
extratropics), to within 1e-5 degrees. Longitudes of a box and of the grid
may be in either convention (-180..180 or 0..360): all are taken modulo 360
and a box runs east from ``lon_min`` to ``lon_max``, so ``350:10`` (or
``-10:10``) is the 20 degrees across the 0/360 seam, and a box spanning 360
degrees or more (``0:360``, ``-180:180``) holds every longitude.

`regional_scores` sums the cell sums over each region's cells (``n`` the
valid cells and windows, ``e = forecast - truth``, ``w`` the area weight of a
cell's latitude row): ``rmse`` ``sqrt(sum e^2 / n)``, ``mae`` ``sum |e| / n``,
``bias`` ``sum e / n``, ``weighted_rmse`` ``sqrt(sum w e^2 / sum w)`` and
``weighted_mae`` ``sum w |e| / sum w`` -- the definitions of
`stconv.evaluation.metrics`, so the region ``global`` scores exactly what the
whole grid scores. The ACC is left out: the whole grid's is a mean over
windows of a correlation over cells, which per-cell sums cannot give.
"""

import dataclasses
import os

import numpy as np
import xarray as xr

from stconv.data.errors import DataError
from stconv.data.grid import cells_of

TOLERANCE = 1e-5  # degrees: bounds and coordinates this close are equal
LAT_NAMES, LON_NAMES = ("lat", "latitude"), ("lon", "longitude")
METRICS = ("rmse", "weighted_rmse", "mae", "weighted_mae", "bias")


@dataclasses.dataclass(frozen=True)
class RegionSpec:
    """A region, as `parse_regions` reads it.

    Attributes:
      name: the region's name (of a file: ``file:PATH``; its regions are
        named after its variables).
      lat: ``(lat_min, lat_max)`` degrees, inclusive; None: every latitude.
      lon: ``(lon_min, lon_max)`` degrees east from ``lon_min``, either
        convention; None: every longitude.
      surface: ``"land"`` or ``"sea"`` of the land mask; None: both.
      path: the netCDF file of regions; None for any other region.
    """

    name: str
    lat: tuple[float, float] | None = None
    lon: tuple[float, float] | None = None
    surface: str | None = None
    path: str | None = None


REGIONS: dict[str, RegionSpec] = {
    spec.name: spec
    for spec in (
        RegionSpec("global"),
        RegionSpec("tropics", lat=(-20.0, 20.0)),
        RegionSpec("northern_extratropics", lat=(20.0, 90.0)),
        RegionSpec("southern_extratropics", lat=(-90.0, -20.0)),
        RegionSpec("arctic", lat=(66.5, 90.0)),
        RegionSpec("antarctic", lat=(-90.0, -66.5)),
        RegionSpec("land", surface="land"),
        RegionSpec("sea", surface="sea"),
    )
}
FORMS = "a name of " + ", ".join(REGIONS) + ", name=lat_min:lat_max:lon_min:lon_max or file:PATH"


def parse_regions(text: str) -> tuple[RegionSpec, ...]:
    """The regions of ``text``: comma-separated names of `REGIONS`, boxes
    ``name=lat_min:lat_max:lon_min:lon_max`` and files ``file:PATH``.

    Raises:
      ValueError: naming ``regions``, for an item of none of these forms, a
        box with bad bounds, or a name given twice.
    """
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"regions: {text!r} has an empty item: give {FORMS}")
    specs = tuple(parse_region(item) for item in items)
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"regions: {', '.join(twice)} given twice: give each region once")
    return specs


def parse_region(item: str) -> RegionSpec:
    """One item of `parse_regions`."""
    if item.startswith("file:"):
        if not item[len("file:") :]:
            raise ValueError(f"regions: {item!r} names no file: give file:PATH")
        return RegionSpec(item, path=item[len("file:") :])
    if "=" not in item:
        if item not in REGIONS:
            raise ValueError(f"regions: unknown region {item!r}: give {FORMS}")
        return REGIONS[item]
    name, _, bounds = item.partition("=")
    name = name.strip()
    try:
        lat_min, lat_max, lon_min, lon_max = (float(bound) for bound in bounds.split(":"))
    except ValueError:
        raise ValueError(
            f"regions: box {item!r} is not name=lat_min:lat_max:lon_min:lon_max (degrees)"
        ) from None
    if not name or ":" in name:
        raise ValueError(f"regions: box {item!r} needs a name (without ':') before '='")
    if not -90 <= lat_min <= lat_max <= 90:
        raise ValueError(f"regions: box {item!r} needs -90 <= lat_min <= lat_max <= 90")
    if not all(-360 <= bound <= 360 for bound in (lon_min, lon_max)):
        raise ValueError(f"regions: box {item!r} needs longitudes within -360..360")
    return RegionSpec(name, lat=(lat_min, lat_max), lon=(lon_min, lon_max))


def region_masks(
    specs: tuple[RegionSpec, ...],
    lat: np.ndarray,
    lon: np.ndarray,
    land: np.ndarray | None = None,
    scored: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each region's cells of the grid ``lat`` x ``lon`` (degrees, latitudes
    either way), ``(lat, lon)`` True inside, in the order of ``specs`` (a
    file's regions in the file's order).

    Args:
      specs: the regions (`parse_regions`).
      lat, lon: the grid's coordinates.
      land: ``(lat, lon)`` True (or a land fraction above 0.5) on land, for
        ``land`` and ``sea``; None: that of ``scored`` (`land_of`), or none.
      scored: ``(lat, lon)`` True where a run scores the cell (its data
        mask); None: every cell.

    Raises:
      ValueError: naming the region, for ``land`` or ``sea`` without a land
        mask, a region with no cell of the grid or no scored cell (``sea``
        where the land mask is the data's), or a name given twice.
      DataError: naming the file, for a region file that is missing,
        unreadable, has no region, or is on another grid.
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if land is None and scored is not None:
        land = land_of(scored)
    land = None if land is None else land_cells(land, (len(lat), len(lon)))
    masks: dict[str, np.ndarray] = {}
    for spec in specs:
        found = file_regions(spec.path, lat, lon) if spec.path else {spec.name: None}
        for name, mask in found.items():
            if mask is None:
                mask = spec_mask(spec, lat, lon, land)
            if name in masks:
                raise ValueError(f"regions: region {name!r} is given twice: name each once")
            if not mask.any():
                raise ValueError(f"regions: region {name!r} has no cell of the grid")
            if scored is not None and not (mask & scored).any():
                raise ValueError(
                    f"regions: region {name!r} has no scored cell: the data's mask "
                    "(data.mask_file, or the cells missing throughout the training split) "
                    "leaves out all of its cells"
                )
            masks[name] = mask
    return masks


def land_of(valid: np.ndarray) -> np.ndarray | None:
    """The data's ``(lat, lon)`` mask of valid cells as the land mask of
    ``land`` and ``sea`` (a land mask file's, or CHIRPS's cells without
    rainfall over the oceans); None where it holds every cell: it tells no
    land from sea."""
    return None if np.all(valid) else valid


def land_cells(land: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The land mask as bool: True, or a land fraction above 0.5."""
    land = np.asarray(land)
    if land.shape != shape:
        raise ValueError(f"land: shape {land.shape} is not the grid's (lat, lon) {shape}")
    if land.dtype == bool:
        return land
    if not np.isfinite(land).all():
        raise ValueError("land: the land mask has NaN or infinite values: give 0..1 values")
    return land > 0.5


def spec_mask(
    spec: RegionSpec, lat: np.ndarray, lon: np.ndarray, land: np.ndarray | None
) -> np.ndarray:
    """The cells of a region that is not a file: its band, box and surface."""
    rows = np.ones(len(lat), bool)
    if spec.lat is not None:
        rows = (lat >= spec.lat[0] - TOLERANCE) & (lat <= spec.lat[1] + TOLERANCE)
    columns = np.ones(len(lon), bool) if spec.lon is None else in_longitudes(lon, *spec.lon)
    mask = rows[:, None] & columns[None, :]
    if spec.surface is None:
        return mask
    if land is None:
        raise ValueError(
            f"regions: region {spec.name!r} needs a land mask, and the data's mask holds every "
            "cell: give data.mask_file, or leave the region out"
        )
    return mask & (land if spec.surface == "land" else ~land)


def in_longitudes(lon: np.ndarray, lon_min: float, lon_max: float) -> np.ndarray:
    """Whether each of ``lon`` lies east of ``lon_min`` and west of
    ``lon_max`` (inclusive), all modulo 360 (module docstring)."""
    if lon_max - lon_min >= 360 - TOLERANCE:
        return np.ones(len(lon), bool)
    east = np.mod(lon - lon_min + TOLERANCE, 360)  # degrees east of lon_min
    return east <= np.mod(lon_max - lon_min, 360) + 2 * TOLERANCE


def file_regions(path: str, lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    """The regions of the netCDF file ``path`` (module docstring) on the grid."""
    if not os.path.isfile(path):
        found = "is a folder: give a netCDF file" if os.path.isdir(path) else "does not exist"
        raise DataError(f"region file {path!r} {found}")
    try:
        with xr.open_dataset(path) as dataset:
            dataset = dataset.load()
    except (OSError, ValueError) as error:
        raise DataError(f"region file {path!r} cannot be read: {error}") from None
    masks = {}
    for name, variable in dataset.data_vars.items():
        dims = grid_dims(variable)
        if dims is None:
            continue
        variable = on_grid(variable.transpose(*dims), dims, lat, lon, path)
        values = variable.values
        if values.dtype != bool and not np.isin(values, (0, 1)).all():
            raise DataError(
                f"region file {path!r}: variable {name!r} is not boolean or 0/1: a region is "
                "True (1) inside, False (0) outside"
            )
        masks[str(name)] = values.astype(bool)
    if not masks:
        raise DataError(f"region file {path!r} has no variable on (lat, lon): no region")
    return masks


def grid_dims(variable: xr.DataArray) -> tuple[str, str] | None:
    """The names of ``variable``'s latitude and longitude dims, if it has only those."""
    lat = [dim for dim in variable.dims if dim in LAT_NAMES]
    lon = [dim for dim in variable.dims if dim in LON_NAMES]
    if variable.ndim != 2 or len(lat) != 1 or len(lon) != 1:
        return None
    return lat[0], lon[0]


def on_grid(
    variable: xr.DataArray, dims: tuple[str, str], lat: np.ndarray, lon: np.ndarray, path: str
) -> xr.DataArray:
    """``variable`` ``(lat, lon)`` on the grid: its cells taken by latitude and
    longitude (the file's may run the other way, in the other longitude
    convention, or over a wider grid); DataError where it lacks some."""
    if all(dim in variable.coords for dim in dims):
        cells = cells_of(variable[dims[0]].values, variable[dims[1]].values, lat, lon)
        if cells is not None:
            return variable.isel({dims[0]: cells[0], dims[1]: cells[1]})
    raise DataError(
        f"region file {path!r} is on another grid: its {dims} coordinates must hold the grid's "
        f"{len(lat)} latitudes {lat[0]:g}..{lat[-1]:g} and {len(lon)} longitudes "
        f"{lon[0]:g}..{lon[-1]:g}"
    )


def region_sums(
    sums: xr.Dataset, masks: dict[str, np.ndarray], weights: np.ndarray | None
) -> dict[str, xr.DataArray]:
    """The cell sums summed over each region's cells, ``(forecast, region,
    variable, lead_time)``: unweighted, and weighted by their row's weight."""
    rows = sums.sizes["lat"]
    weights = np.ones(rows) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (rows,):
        raise ValueError(f"weights: shape {weights.shape} is not one per latitude row ({rows},)")
    for name, mask in masks.items():
        if np.shape(mask) != (rows, sums.sizes["lon"]):
            raise ValueError(f"regions: region {name!r} has shape {np.shape(mask)}, not the grid's")
    cells = xr.DataArray(
        np.stack([np.asarray(mask, np.float64) for mask in masks.values()]),
        dims=("region", "lat", "lon"),
        coords={"region": list(masks)},
    )
    weighted = cells * xr.DataArray(weights, dims="lat")
    order = ("forecast", "region", "variable", "lead_time")
    total = {
        name: xr.dot(sums[name], cells, dim=("lat", "lon")).transpose(*order)
        for name in ("count", "error", "squared", "absolute")
    }
    for name in ("count", "squared", "absolute"):
        total[f"weighted_{name}"] = xr.dot(sums[name], weighted, dim=("lat", "lon"))
        total[f"weighted_{name}"] = total[f"weighted_{name}"].transpose(*order)
    return total


def scores_of(total: dict[str, xr.DataArray]) -> xr.DataArray:
    """Every metric of `METRICS` from region sums, over a new last dim ``metric``;
    NaN where a region has no valid cell."""
    count = total["count"].where(total["count"] > 0)
    weight = total["weighted_count"].where(total["count"] > 0)
    values = [
        np.sqrt(total["squared"] / count),
        np.sqrt(total["weighted_squared"] / weight),
        total["absolute"] / count,
        total["weighted_absolute"] / weight,
        total["error"] / count,
    ]
    return xr.concat(values, dim=xr.DataArray(list(METRICS), dims="metric"), coords="minimal")


def regional_scores(
    sums: xr.Dataset, masks: dict[str, np.ndarray], weights: np.ndarray | None = None
) -> xr.Dataset:
    """Each region's scores (module docstring), in the layout of
    `stconv.evaluation.scores`.

    Args:
      sums: per-cell sums, `stconv.evaluation.cells.CellAccumulator.cell_sums`.
      masks: ``{region: (lat, lon) bool}``, `region_masks`.
      weights: ``(lat,)`` area weights per row
        (`stconv.evaluation.metrics.area_weights`); None weighs every cell
        alike (the weighted scores are then the unweighted ones).

    Returns:
      A Dataset with dims ``forecast``, ``region``, ``variable``, ``metric``
      (`METRICS`) and ``lead_time``: ``per_lead`` ``(forecast, region,
      variable, metric, lead_time)`` per lead time; ``overall`` ``(forecast,
      region, variable, metric)`` over every lead (from the sums over leads,
      not a mean of ``per_lead``); ``cells`` ``(forecast, region, variable)``
      the valid (window, lead, cell) values scored; the ``units`` coordinate
      of ``sums``; attribute ``area_weighted`` 1 or 0.

    Raises:
      ValueError: naming ``weights`` or the region, for shapes not of the grid.
    """
    total = region_sums(sums, masks, weights)
    per_lead = scores_of(total).transpose("forecast", "region", "variable", "metric", "lead_time")
    over_leads = {name: value.sum("lead_time") for name, value in total.items()}
    overall = scores_of(over_leads).transpose("forecast", "region", "variable", "metric")
    scores = xr.Dataset(
        {
            "per_lead": per_lead,
            "overall": overall,
            "cells": over_leads["count"].astype(np.int64),
        }
    )
    scores.attrs["area_weighted"] = int(weights is not None)
    return scores
