"""Checks of data against what the computation needs, made once where it is opened.

Every check raises `stconv.data.errors.DataError` with one line naming the
file, the variable and the time at fault:

- `check_numeric`: a variable holds numbers;
- `check_times`: the time axis increases by a regular step (no duplicate,
  no gap), checked calendar-aware for dates;
- `check_extremes`: no value beyond `EXTREME` in magnitude, in any units
  (netCDF's default fill value 9.97e36 written without ``_FillValue``, or
  corrupt bytes), unless the user accepts them;
- `check_values`: no infinite value, and no frame in which a variable is
  missing in every valid cell (a whole input or target that would otherwise
  be filled with the training mean and scored as data).
"""

import numpy as np
import pandas as pd
import xarray as xr

from stconv.data.errors import DataError

FRAME_REDUCED = ("lat", "lon")
# No quantity of a weather or climate field reaches this in any units of it:
# beyond it a value is a fill value or corrupt data.
EXTREME = 1e15


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
    monthly and calendar-aware steps count as regular); numbers when their
    differences are equal. The error names the first step at fault.
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
    """The index of the first time that breaks the regular step of those before it, or None."""
    values = times.values
    if np.issubdtype(values.dtype, np.number):
        steps = np.diff(values)
        irregular = ~np.isclose(steps, steps[0])
        return int(np.argmax(irregular)) + 1 if irregular.any() else None
    if len(values) < 3 or xr.infer_freq(times) is not None:
        return None
    # A prefix that has no frequency stays so when extended: search the shortest.
    low, high = 3, len(values)  # times[:high] has none; times[:low - 1] has one
    while low < high:
        middle = (low + high) // 2
        if xr.infer_freq(times[:middle]) is None:
            high = middle
        else:
            low = middle + 1
    return high - 1


def check_extremes(field: xr.DataArray, source: str, allowed: bool = False) -> None:
    """Raises DataError at the first frame where a variable of ``field`` holds
    a finite value beyond `EXTREME` in magnitude, unless ``allowed``
    (``--allow-extreme-values``). One pass (a dask-backed field is streamed)."""
    if allowed:
        return
    extreme = (np.isfinite(field) & (np.abs(field) > EXTREME)).sum(FRAME_REDUCED).compute()
    counts = extreme.transpose(..., "channel").values
    if counts.any():
        index = tuple(np.argwhere(counts)[0])
        value = field[index[:-1]].isel(channel=index[-1]).values
        largest = float(np.nanmax(np.where(np.isfinite(value), np.abs(value), 0.0)))
        raise DataError(
            f"file {source!r}: variable {channel_name(field, index[-1])!r} reaches "
            f"{largest:.3g} at {frame_name(field, index[:-1])} (in {int(counts[index])} of its "
            f"cells): beyond {EXTREME:g} in any units, a fill value without _FillValue or "
            "corrupt data; mark missing values with _FillValue, or pass "
            "--allow-extreme-values to use them"
        )


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
