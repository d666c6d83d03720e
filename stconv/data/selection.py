"""What a run reads of a dataset: one level of a variable, one period, one box,
and ERA5's releases merged into one series.

    merged_releases(array)  # without the old CDS's expver dimension
    select_level(array, "pressure_level", "500", source)  # z:500
    select_times(field, ("1979", "2015"), source)  # --time-range 1979,2015
    select_box(field, (30, 60, -20, 40), source)  # --bbox 30,60,-20,40

The selections raise `stconv.data.errors.DataError` naming the file and what
it holds where they cannot be made.
"""

import numpy as np
import xarray as xr

from stconv.data.checks import time_name
from stconv.data.errors import DataError

# ERA5's release of each value, a dimension of files of the old CDS spanning
# the last months: 1 the final ERA5, 5 the preliminary ERA5T (NaN where the
# other holds the value).
RELEASE_DIM = "expver"


def select_times(field: xr.DataArray, time_range: tuple, source: str) -> xr.DataArray:
    """The steps of ``field`` from ``time_range[0]`` to ``time_range[1]``,
    inclusive: dates (or their beginnings, ``1979``) for a time axis of dates,
    numbers for one of numbers.

    Raises:
      DataError: naming the file and ``data.time_range``, for values the time
        axis cannot be selected by.
    """
    start, stop = time_range
    try:
        if np.issubdtype(field["time"].dtype, np.number):
            start, stop = float(start), float(stop)
        return field.sel(time=slice(start, stop))
    except (KeyError, TypeError, ValueError):
        first, last = (time_name(field["time"].values[i]) for i in (0, -1))
        raise DataError(
            f"file {source!r}: data.time_range={tuple(time_range)!r} is invalid: its time axis "
            f"runs {first} to {last}: give two of its dates, or numbers for a time axis of numbers"
        ) from None


def select_level(array: xr.DataArray, dim: str, level: str, source: str) -> xr.DataArray:
    """The level ``level`` of ``array`` on ``dim``: a number, in the units of
    ``dim``, or a name where ``dim`` holds names (a CMIP6 ``member_id``)."""
    values = array[dim].values
    if np.issubdtype(values.dtype, np.number):
        try:
            found = np.flatnonzero(np.isclose(values.astype(float), float(level)))
        except ValueError:
            found = []
    else:
        found = [i for i, value in enumerate(values) if str(value) == level]
    if len(found) == 0:
        raise DataError(
            f"file {source!r}: variable {array.name!r} has no level {level!r} on {dim!r}: "
            f"choose from {', '.join(level_names(values))}"
        )
    return array.isel({dim: int(found[0])})


def level_names(values: np.ndarray) -> list[str]:
    """The levels ``values`` of a dimension as a user writes them in ``NAME:LEVEL``."""
    if np.issubdtype(np.asarray(values).dtype, np.number):
        return [f"{value:g}" for value in np.asarray(values, float)]
    return [str(value) for value in values]


def select_box(field: xr.DataArray, bbox: tuple[float, float, float, float], source: str):
    """Selects the cells of ``bbox`` (`box_cells`) of ``field``."""
    rows, columns = box_cells(field["lat"].values, field["lon"].values, bbox, source)
    return field.isel(lat=rows, lon=columns)


def box_cells(
    lat: np.ndarray, lon: np.ndarray, bbox: tuple[float, float, float, float], source: str
) -> tuple[np.ndarray, np.ndarray]:
    """The rows with ``lat_min <= lat <= lat_max`` and the columns with
    ``lon_min <= lon <= lon_max``, the box's longitudes taken in either
    convention (-180..180 or 0..360) and allowed to cross the grid's seam
    (longitude 0 or 180): the columns then run eastwards from ``lon_min``,
    across the seam.

    Raises:
      DataError: naming ``source``, where the box holds no cell.
    """
    lat_min, lat_max, lon_min, lon_max = bbox
    rows = np.flatnonzero((lat >= lat_min) & (lat <= lat_max))
    if lon_max - lon_min >= 360:
        columns = np.arange(len(lon))
    else:
        eastern = lon.max() > 180  # the grid's convention: 0..360, else -180..180

        def wrap(x):
            return np.mod(x, 360.0) if eastern else np.mod(np.add(x, 180.0), 360.0) - 180.0

        west, east, grid = wrap(lon_min), wrap(lon_max), wrap(lon)
        if west <= east:
            columns = np.flatnonzero((grid >= west) & (grid <= east))
        else:  # across the seam
            columns = np.concatenate([np.flatnonzero(grid >= west), np.flatnonzero(grid <= east)])
    if len(rows) == 0 or len(columns) == 0:
        raise DataError(
            f"file {source!r}: bbox={bbox!r} selects no grid cells (lat "
            f"{lat.min():g}..{lat.max():g}, lon {lon.min():g}..{lon.max():g})"
        )
    return rows, columns


def merged_releases(array: xr.DataArray) -> xr.DataArray:
    """``array`` without its `RELEASE_DIM`: at every point the value of the
    lowest-numbered release that has one (the final ERA5 before ERA5T)."""
    releases = array[RELEASE_DIM].values
    order = sorted(range(len(releases)), key=lambda i: float(releases[i]))
    merged = array.isel({RELEASE_DIM: order[0]}, drop=True)
    for index in order[1:]:
        merged = merged.fillna(array.isel({RELEASE_DIM: index}, drop=True))
    merged.encoding = dict(array.encoding)  # its fill values, as the file has them
    return merged
