"""Checks of data against what the computation needs, made once where it is opened.

Every check raises `stconv.data.errors.DataError` with one line naming the
file, the variable and the time at fault:

- `check_numeric`: a variable holds numbers;
- `check_times`: the time axis increases by a regular step (no duplicate,
  no gap), checked calendar-aware for dates;
- `check_extremes`: no value outside what its units allow: beyond
  `EXTREME` in magnitude in any units (netCDF's default fill value 9.97e36
  written without ``_FillValue``, or corrupt bytes), and outside
  `PLAUSIBLE_RANGES` for the units listed there (a temperature of 4,900 K),
  unless the user accepts them;
- `check_values`: no infinite value, and no frame in which a variable is
  missing in every valid cell (a whole input or target that would otherwise
  be filled with the training mean and scored as data).
"""

import numpy as np
import pandas as pd
import xarray as xr

from stconv.data.errors import DataError
from stconv.data.times import first_irregular_date

FRAME_REDUCED = ("lat", "lon")
# No quantity of a weather or climate field reaches this in any units of it:
# beyond it a value is a fill value or corrupt data.
EXTREME = 1e15
# Where the units are known, tighter bounds: those of the quantity on Earth,
# symmetric where anomalies (differences) are written in the same units.
PLAUSIBLE_RANGES = {
    "K": (-400.0, 400.0),
    "degC": (-273.15, 200.0),
    "Pa": (-2e5, 2e5),
    "hPa": (-2e3, 2e3),
    "m s-1": (-300.0, 300.0),
    "kg m-2 s-1": (-0.1, 0.1),
    "mm day-1": (-3e3, 3e3),
}
UNIT_SPELLINGS = {
    "kelvin": "K",
    "degK": "K",
    "Celsius": "degC",
    "celsius": "degC",
    "degrees_Celsius": "degC",
    "deg_C": "degC",
    "°C": "degC",
    "m s**-1": "m s-1",
    "m/s": "m s-1",
    "m s^-1": "m s-1",
    "kg m**-2 s**-1": "kg m-2 s-1",
    "mm/day": "mm day-1",
    "mm d-1": "mm day-1",
    "mm/d": "mm day-1",
}


def check_numeric(array: xr.DataArray, name: str, source: str) -> None:
    """Raises DataError unless variable ``name`` of ``source`` holds integers or floats."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(
            f"file {source!r}: variable {name!r} holds {array.dtype} values: only numeric "
            "(integer or float) variables can be forecast"
        )


def check_times(times: xr.DataArray, source: str, regular: bool = True) -> None:
    """Raises DataError unless ``times`` strictly increase (by a regular step, if
    ``regular``).

    Dates are regular when they have a frequency (`xarray.infer_freq`, so
    monthly and calendar-aware steps count as regular), as they are or once
    floored to their day, month or year (annual means stamped at 00:00 and
    12:00, monthly means on the 15th and 16th; but not a gap, nor two stamps
    on one day of a daily series); numbers when their differences are equal.
    The error names the first step at fault.
    """
    values = times.values
    if len(values) < 2:
        return
    later = values[1:] > values[:-1]
    if not np.all(later):
        first = int(np.argmin(later)) + 1
        kind = "duplicated" if values[first] == values[first - 1] else "not increasing"
        raise DataError(
            f"file {source!r}: time is {kind} at index {first} ({time_name(values[first])}); "
            "sort the file by time and drop duplicates"
        )
    first = first_irregular_step(times) if regular else None
    if first is not None:
        step = f"{time_name(values[first - 1])} to {time_name(values[first])}"
        raise DataError(
            f"file {source!r}: time is not regular at index {first} ({step}, a step unlike "
            "those before it): fill the gap, or select a regular period with time_range"
        )


def first_irregular_step(times: xr.DataArray) -> int | None:
    """The index of the first time that breaks the regular step of those before it, or None.

    Dates count as regular when floored to their day, month or year too
    (`stconv.data.times.first_irregular_date`): stamps may jitter within a step.
    """
    values = times.values
    if np.issubdtype(values.dtype, np.number):
        steps = np.diff(values)
        irregular = ~np.isclose(steps, steps[0])
        return int(np.argmax(irregular)) + 1 if irregular.any() else None
    return first_irregular_date(times)


def check_extremes(field: xr.DataArray, source: str, allowed: bool = False) -> None:
    """Raises DataError at the first frame where a variable of ``field`` holds a
    finite value outside what its units allow (`plausible_range`), unless
    ``allowed`` (``data.allow_extreme_values``). One pass (a dask-backed field is
    streamed)."""
    if allowed:
        return
    ranges = [plausible_range(units) for units in channel_units(field)]
    low = xr.DataArray([r[0] for r in ranges], dims="channel")
    high = xr.DataArray([r[1] for r in ranges], dims="channel")
    outside = np.isfinite(field) & ((field < low) | (field > high))
    counts = outside.sum(FRAME_REDUCED).compute().transpose(..., "channel").values
    if counts.any():
        index = tuple(np.argwhere(counts)[0])
        channel = index[-1]
        value = field[index[:-1]].isel(channel=channel).values
        distance = np.maximum(value - ranges[channel][1], ranges[channel][0] - value)
        worst = value.flat[int(np.nanargmax(np.where(np.isfinite(value), distance, -np.inf)))]
        raise DataError(
            f"file {source!r}: variable {channel_name(field, channel)!r} reaches "
            f"{worst:.3g} at {frame_name(field, index[:-1])} (in {int(counts[index])} of its "
            f"cells): {range_name(channel_units(field)[channel])}, a fill value without "
            "_FillValue, corrupt data or other units; mark missing values with _FillValue, "
            "or accept them with data.allow_extreme_values=True"
        )


def channel_units(field: xr.DataArray) -> list[str]:
    """The units of every channel of ``field`` (``""`` where none are given)."""
    if "units" in field.coords:
        return [str(units) for units in field["units"].values]
    return [""] * field.sizes["channel"]


def plausible_range(units: str) -> tuple[float, float]:
    """The values a quantity in ``units`` can take on Earth, differences
    (anomalies) included; ``(-EXTREME, EXTREME)`` for units not in
    `PLAUSIBLE_RANGES`."""
    canonical = UNIT_SPELLINGS.get(units.strip(), units.strip())
    return PLAUSIBLE_RANGES.get(canonical, (-EXTREME, EXTREME))


def range_name(units: str) -> str:
    low, high = plausible_range(units)
    if (low, high) == (-EXTREME, EXTREME):
        return f"beyond {EXTREME:g} in any units"
    return f"outside {low:g}..{high:g}, the values {units} can take"


def check_values(field: xr.DataArray, mask: np.ndarray, source: str) -> None:
    """Raises DataError at the first infinite value of ``field``, or the first frame
    in which a variable has no finite value in the ``mask``'s valid cells.

    One pass over the data (a dask-backed field is streamed).

    Args:
      field: ``(..., lat, lon, channel)``: dims before the grid (time, or the
        paper's sample and time) index the frames.
      mask: ``(lat, lon, channel)`` valid cells.
      source: the file, for the message.
    """
    inside = xr.DataArray(np.asarray(mask, bool), dims=("lat", "lon", "channel"))
    counts = xr.Dataset(
        {
            "infinite": np.isinf(field).sum(FRAME_REDUCED),
            "valid": (np.isfinite(field) & inside).sum(FRAME_REDUCED),
        }
    ).compute()
    infinite = counts["infinite"].transpose(..., "channel").values
    if infinite.any():
        index = tuple(np.argwhere(infinite)[0])
        cells = int(infinite[index])
        raise DataError(
            f"file {source!r}: variable {channel_name(field, index[-1])!r} is infinite at "
            f"{frame_name(field, index[:-1])} (in {cells} of its cells): mark missing values "
            "as NaN (or _FillValue), never as infinity"
        )
    missing = counts["valid"].transpose(..., "channel").values == 0
    if missing.any():
        index = tuple(np.argwhere(missing)[0])
        raise DataError(
            f"file {source!r}: variable {channel_name(field, index[-1])!r} is missing in every "
            f"valid cell at {frame_name(field, index[:-1])} ({int(missing.sum())} frames are): "
            "a whole missing frame cannot be forecast or scored; drop it or choose another "
            "time range"
        )


def time_name(value) -> str:
    """A time as people write it: ``2001-01-31 00:00:00`` (no nanoseconds)."""
    return str(pd.Timestamp(value)) if isinstance(value, np.datetime64) else str(value)


def channel_name(field: xr.DataArray, channel: int) -> str:
    if "channel" in field.coords:
        return str(field["channel"].values[channel])
    return f"channel {channel}"


def frame_name(field: xr.DataArray, index: tuple) -> str:
    """``time 2001-01-05 (index 4)``, or ``sample 3, time index 2`` for the paper's files."""
    dims = [d for d in field.dims if d not in (*FRAME_REDUCED, "channel")]
    parts = []
    for dim, i in zip(dims, index, strict=True):
        if dim in field.coords and field[dim].ndim == 1:
            parts.append(f"{dim} {time_name(field[dim].values[i])} (index {int(i)})")
        else:
            parts.append(f"{dim} index {int(i)}")
    return ", ".join(parts)
