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
  and, for quantities whose CF standard name says what they are, outside
  `PHYSICAL_RANGES` (an air temperature of 0 K), unless the user accepts them;
- `check_values`: no infinite value, and no frame in which a variable is
  missing in every valid cell (a whole input or target that would otherwise
  be filled with the training mean and scored as data).

Both passes over the data (and `stconv.data.files.open_field`'s read) run
inside `named_decoding_errors`: a chunk of a zarr store that cannot be
decoded is named (`stconv.data.stores`), with its variable and time steps.
"""

import contextlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from stconv.data import stores
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
# The values, in K, of absolute quantities named by their CF standard name:
# those measured on Earth, with a margin. Anomalies are written in K too, but
# are no air_temperature (CF names them air_temperature_anomaly).
PHYSICAL_RANGES = {
    # The coldest air is the summer polar mesopause's (about 85 km, near the
    # top of ERA5 and of most climate models), down to about 110 K; the
    # hottest near the surface, 330 K (Death Valley, 1913); the air between
    # is colder. (The thermosphere above, up to 2,000 K, is beyond the 400 K
    # of `PLAUSIBLE_RANGES` anyway.)
    "air_temperature": (100.0, 350.0),
    # Skin temperatures: -98 degC (175 K) on the East Antarctic plateau, 80.8
    # degC (354 K) in the Lut desert, both measured from satellites.
    "surface_temperature": (150.0, 380.0),
    # Sea water freezes at about -2 degC (271 K); the warmest seas, the Persian
    # Gulf's, reach about 37 degC (310 K).
    "sea_surface_temperature": (260.0, 320.0),
}
# What values outside these ranges are, most often.
EXTREME_CAUSES = "a fill value without _FillValue, corrupt data or other units"
# What to do about them.
EXTREME_ADVICE = (
    "mark missing values with _FillValue, or accept them with data.allow_extreme_values=True"
)
# Units of `PHYSICAL_RANGES`' quantities, and what to add to a value in K to
# have it in them.
KELVIN_OFFSETS = {"K": 0.0, "degC": -273.15}
UNIT_SPELLINGS = {
    "kelvin": "K",
    "Kelvin": "K",
    "degK": "K",
    "Celsius": "degC",
    "celsius": "degC",
    "degree_Celsius": "degC",
    "degrees_Celsius": "degC",
    "deg_C": "degC",
    "degree_C": "degC",
    "degrees_C": "degC",
    "degrees C": "degC",
    "deg C": "degC",
    "°C": "degC",
    "m/s": "m s-1",
    "kg/m2/s": "kg m-2 s-1",
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
            "those before it): fill the gap, or select a regular period with "
            "data.time_range=START,END"
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
    finite value outside what its units allow (`plausible_range`), else at the
    first where one holds a value its quantity cannot take (`physical_range`),
    unless ``allowed`` (``data.allow_extreme_values``). One pass (a dask-backed
    field is streamed)."""
    if allowed:
        return
    units = channel_attribute(field, "units")
    plausible = [plausible_range(u) for u in units]
    names = channel_attribute(field, "standard_name")
    physical = [physical_range(name, u) for name, u in zip(names, units, strict=True)]
    counts = {"plausible": outside_counts(field, plausible)}
    if any(bounds is not None for bounds in physical):
        counts["physical"] = outside_counts(field, physical)
    with named_decoding_errors(source, channel_names(field), field_time_dim(field)):
        counts = xr.Dataset(counts).compute()
    unit_reasons = [f"{range_name(u)}, {EXTREME_CAUSES}" for u in units]
    raise_outside(field, source, counts["plausible"], plausible, unit_reasons)
    if "physical" in counts:
        reasons = [physical_range_name(n, u) for n, u in zip(names, units, strict=True)]
        raise_outside(field, source, counts["physical"], physical, reasons)


def outside_counts(field: xr.DataArray, ranges: list[tuple[float, float] | None]) -> xr.DataArray:
    """Per frame and channel, the finite values of ``field`` outside the
    channel's range (none where its range is None)."""
    bounds = [r if r is not None else (-np.inf, np.inf) for r in ranges]
    low = xr.DataArray([r[0] for r in bounds], dims="channel")
    high = xr.DataArray([r[1] for r in bounds], dims="channel")
    return (np.isfinite(field) & ((field < low) | (field > high))).sum(FRAME_REDUCED)


def raise_outside(
    field: xr.DataArray,
    source: str,
    counts: xr.DataArray,
    ranges: list[tuple[float, float] | None],
    reasons: list[str],
) -> None:
    """Raises DataError at the first frame that ``counts`` (`outside_counts`)
    finds values outside ``ranges`` in, naming its farthest value and, of the
    channel, the ``reasons`` for such values."""
    counts = counts.transpose(..., "channel").values
    if not counts.any():
        return
    index = tuple(np.argwhere(counts)[0])
    channel = index[-1]
    low, high = ranges[channel]
    value = field[index[:-1]].isel(channel=channel).values
    distance = np.maximum(value - high, low - value)
    worst = value.flat[int(np.nanargmax(np.where(np.isfinite(value), distance, -np.inf)))]
    raise DataError(
        f"file {source!r}: variable {channel_name(field, channel)!r} reaches "
        f"{worst:.3g} at {frame_name(field, index[:-1])} (in {int(counts[index])} of its "
        f"cells): {reasons[channel]}; {EXTREME_ADVICE}"
    )


def channel_attribute(field: xr.DataArray, attribute: str) -> list[str]:
    """An attribute of every channel of ``field`` (``units``, ``standard_name``):
    ``""`` where none is given."""
    if attribute in field.coords:
        return [str(value) for value in field[attribute].values]
    return [""] * field.sizes["channel"]


def plausible_range(units: str) -> tuple[float, float]:
    """The values a quantity in ``units`` can take on Earth, differences
    (anomalies) included; ``(-EXTREME, EXTREME)`` for units not in
    `PLAUSIBLE_RANGES`."""
    return PLAUSIBLE_RANGES.get(canonical_units(units), (-EXTREME, EXTREME))


def physical_range(standard_name: str, units: str) -> tuple[float, float] | None:
    """The values the quantity of CF ``standard_name`` can take, in ``units``
    (`PHYSICAL_RANGES`); None where neither is known."""
    bounds = PHYSICAL_RANGES.get(standard_name.strip())
    offset = KELVIN_OFFSETS.get(canonical_units(units))
    if bounds is None or offset is None:
        return None
    return bounds[0] + offset, bounds[1] + offset


def canonical_units(units: str) -> str:
    """``units`` as `PLAUSIBLE_RANGES` spells them: ``K`` for ``kelvin``, and
    powers as CF writes them (``m2 s-2`` for ERA5's ``m**2 s**-2`` or ``m^2 s^-2``)."""
    powers = re.sub(r"\*\*|\^", "", units.strip())
    return UNIT_SPELLINGS.get(powers, powers)


def same_units(first: str, second: str) -> bool:
    """Whether two units attributes are one, spelled either way (`canonical_units`)."""
    return canonical_units(first) == canonical_units(second)


def physical_range_name(standard_name: str, units: str) -> str:
    """What values outside `physical_range` are, for the error."""
    bounds = physical_range(standard_name, units)
    if bounds is None:
        return ""
    return (
        f"outside {bounds[0]:g}..{bounds[1]:g}, the values {standard_name} ({units}) can "
        f"take: {EXTREME_CAUSES}, or anomalies named {standard_name}"
    )


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
    )
    with named_decoding_errors(source, channel_names(field), field_time_dim(field)):
        counts = counts.compute()
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


def channel_names(field: xr.DataArray) -> list[str]:
    """The variable of every channel of ``field`` (``z500``)."""
    return [channel_name(field, channel) for channel in range(field.sizes["channel"])]


def field_time_dim(field: xr.DataArray) -> str | None:
    """The source's own name of the time dimension of ``field``, if it has one."""
    dims = field.attrs.get("dims")
    return dims.get("time") if isinstance(dims, dict) else None


@contextlib.contextmanager
def named_decoding_errors(
    source: str, names: Sequence[str] | None = None, time_dim: str | None = None
) -> Iterator[None]:
    """Around a read of variables ``names`` (all where None) of ``source``: if
    the read fails and ``source`` is a zarr store, raises DataError naming the
    first chunk of these variables that cannot be decoded (a truncated file),
    its variable and the time steps it holds along ``time_dim``.

    The store's chunks are read one by one, with zarr, only after the read
    failed. Errors of stconv, errors of other sources and errors that no
    chunk explains pass unchanged.
    """
    try:
        yield
    except Exception as error:
        if type(error).__module__.partition(".")[0] == "stconv" or not stores.is_store(source):
            raise
        for name, array in stores.store_arrays(source, names).items():
            found = stores.undecodable_chunk(array)
            if found is not None:
                chunk, failure = found
                reason = ": ".join([type(failure).__name__, *str(failure).splitlines()[:1]])
                raise DataError(
                    f"zarr store {source!r}: variable {name!r}: chunk {chunk.key!r}"
                    f"{chunk_steps(source, array, chunk, time_dim)} cannot be decoded "
                    f"({reason}): the store is damaged (a copy cut short?); copy or write "
                    "it again"
                ) from error
        raise


def chunk_steps(source: str, array: zarr.Array, chunk: stores.Chunk, time_dim: str | None) -> str:
    """`` (time index 16 to 23, 2001-01-17 to 2001-01-24)``: the time steps
    that ``chunk`` of ``array`` holds, dated by the store's time coordinate;
    ``""`` where the array has no ``time_dim``."""
    dims = stores.array_dims(array)
    if time_dim is None or time_dim not in dims:
        return ""
    steps = chunk.region[dims.index(time_dim)]
    first, last = steps.start, steps.stop - 1
    if array.path == time_dim:  # the time coordinate itself
        return f" (time index {first} to {last})"
    with xr.open_zarr(source, chunks=None, consolidated=False) as dataset:
        times = dataset[time_dim].values
    return f" (time index {first} to {last}, {time_name(times[first])} to {time_name(times[last])})"
