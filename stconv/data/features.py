"""Inputs that are read but never forecast: static fields and calendar features.

They are appended after the variables' channels of every input window, in
training and in forecasts alike (`stconv.data.sources.model_inputs`):

- static fields without time (orography, land-sea mask, soil type), from
  ``static=FILE[:var,var]`` (`stconv.config.DataConfig`), normalized per
  field over the grid's cells;
- with ``time_features``, the sine and cosine of the fraction of the year
  (calendar-aware: 360, 365 or 366 days) and, for sub-daily data, of the
  hour of day, at each input frame's time.

The targets stay the first channels, so a model's outputs never include them
and no score sees them.
"""

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import xarray as xr

from stconv.data.checks import (
    EXTREME_ADVICE,
    EXTREME_CAUSES,
    check_numeric,
    plausible_range,
    range_name,
)
from stconv.data.climatology import is_dates, time_kind
from stconv.data.dims import dim_role, named_dims
from stconv.data.errors import DataError
from stconv.data.files import open_dataset, resolve_paths
from stconv.data.grid import cells_of, positions

YEAR_FEATURES = ("sin_day_of_year", "cos_day_of_year")
DAY_FEATURES = ("sin_hour_of_day", "cos_hour_of_day")


@dataclasses.dataclass(frozen=True)
class ExtraInputs:
    """The inputs appended to the variables' channels.

    Attributes:
      static: ``(lat, lon, k)`` normalized static fields (``k`` may be 0).
      static_names: their names.
      calendar: the calendar features' names (`YEAR_FEATURES`, and
        `DAY_FEATURES` for sub-daily data); empty without ``time_features``.
    """

    static: np.ndarray
    static_names: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    @classmethod
    def none(cls, lat: int, lon: int) -> "ExtraInputs":
        return cls(np.zeros((lat, lon, 0), np.float32))

    @property
    def names(self) -> list[str]:
        """The channels appended, in order."""
        return [*self.static_names, *self.calendar]

    @property
    def count(self) -> int:
        return len(self.names)

    def add(self, inputs: np.ndarray, times=None) -> np.ndarray:
        """``inputs`` ``(..., time, lat, lon, channels)`` with the extra channels
        appended; ``times`` ``(..., time)`` of the frames, for the calendar
        features. Without extra inputs, ``inputs`` itself."""
        if not self.count:
            return inputs
        frames = inputs.shape[:-1]
        pieces = [inputs, np.broadcast_to(self.static, (*frames, len(self.static_names)))]
        if self.calendar:
            features = calendar_features(np.asarray(times), len(self.calendar) > 2)
            pieces.append(
                np.broadcast_to(features[..., None, None, :], (*frames, len(self.calendar)))
            )
        return np.concatenate(pieces, axis=-1).astype(np.float32)

    def to_dict(self) -> dict:
        """Their description for ``data.json`` (the static values are saved apart)."""
        return {"static": list(self.static_names), "calendar": list(self.calendar)}

    @classmethod
    def from_dict(cls, description: dict, static: np.ndarray | None, shape: tuple) -> "ExtraInputs":
        """The extra inputs a run recorded (`to_dict`), ``static`` its saved fields;
        none for runs made before they existed."""
        names = tuple(description.get("static", ()))
        values = static if names else np.zeros((*shape, 0), np.float32)
        return cls(values, names, tuple(description.get("calendar", ())))


def calendar_features(times: np.ndarray, hours: bool) -> np.ndarray:
    """``times.shape + (2 or 4,)``: sine and cosine of the fraction of the year
    and, with ``hours``, of the hour of day."""
    day, days_in_year, hour = year_and_day(times.ravel())
    angles = [2 * np.pi * (day + hour / 24) / days_in_year]
    if hours:
        angles.append(2 * np.pi * hour / 24)
    columns = [f(a) for a in angles for f in (np.sin, np.cos)]
    return np.stack(columns, axis=-1).reshape(*times.shape, len(columns)).astype(np.float32)


def year_and_day(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 0-based day of the year, the days in the year and the hour of the
    day (with its fraction) of 1-D dates: numpy datetimes in numpy alone (this
    runs for every example), cftime dates through xarray."""
    if np.issubdtype(flat.dtype, np.datetime64):
        years, days = flat.astype("M8[Y]"), flat.astype("M8[D]")
        day = (days - years).astype(np.int64)
        days_in_year = ((years + 1).astype("M8[D]") - years).astype(np.int64)
        hour = (flat - days).astype("m8[ns]").astype(np.int64) / 3.6e12
        return day, days_in_year, hour
    fields = xr.DataArray(flat).dt
    hour = fields.hour.values + fields.minute.values / 60
    return fields.dayofyear.values - 1, fields.days_in_year.values, hour


def calendar_names(times: xr.DataArray, source: str) -> tuple[str, ...]:
    """The calendar features of a field's time axis: the year's, and the day's
    for sub-daily steps.

    Raises:
      DataError: naming ``source`` when the times are not dates.
    """
    values = times.values
    if not is_dates(values) or len(values) < 2:
        raise DataError(
            f"{source}: data.time_features=True needs a time axis of dates, and its times are "
            f"{values.dtype} numbers: set data.time_features=False or give a file with CF dates"
        )
    sub_daily = time_kind(values, source) == "subdaily"
    return YEAR_FEATURES + (DAY_FEATURES if sub_daily else ())


def split_static(spec: str, exists: Callable[[str], bool] = os.path.exists) -> tuple[str, str]:
    """``static`` (``FILE[:var,var]``) as ``(FILE, "var,var")`` (``""``: every static
    variable); a colon belongs to FILE unless what precedes it ``exists``."""
    path, colon, names = spec.rpartition(":")
    return (path, names) if colon and exists(path) else (spec, "")


def static_fields(spec: str, field: xr.DataArray, resolve=lambda name: name) -> xr.DataArray:
    """The static fields of ``spec`` (``FILE`` or ``FILE:var,var``; default
    every variable with latitude and longitude and no other dimension longer
    than 1, such as ERA5's invariants of one time step) on the grid of
    ``field``, as ``(lat, lon, channel)`` in physical units.

    Args:
      spec: the ``static`` value.
      field: the ``(time, lat, lon, channel)`` field they go with: its cells
        are taken from them by latitude and longitude (a wider grid, either
        latitude order or longitude convention, fits).
      resolve: a dataset name to its file (``weather``), else the name.

    Raises:
      DataError: naming the file, for a missing variable, one with time, or
        another grid.
    """
    path, names = split_static(spec, lambda path: os.path.exists(resolve(path)))
    path = resolve(path)
    dataset = open_dataset(resolve_paths(path), None)
    roles = {dim_role(dataset, str(dim)): str(dim) for dim in dataset.dims}
    if "lat" not in roles or "lon" not in roles:
        raise DataError(f"data.static={path!r} has no latitude and longitude dimensions")
    dataset = named_dims(dataset, {roles[r]: r for r in ("lat", "lon") if roles[r] != r})
    single = [dim for dim, size in dataset.sizes.items() if size == 1 and dim not in ("lat", "lon")]
    dataset = dataset.squeeze(single, drop=True)  # ERA5's invariants: one time step
    static = [str(v) for v, a in dataset.data_vars.items() if set(a.dims) == {"lat", "lon"}]
    wanted = names.split(",") if names else static
    missing = [name for name in wanted if name not in static]
    if missing or not wanted:
        raise DataError(
            f"data.static={path!r} has no static variable {missing[0] if missing else ''!r} "
            f"(latitude and longitude, and dimensions of length 1, only): available are "
            f"{static}{without_static(dataset)}"
        )
    arrays = [dataset[name].transpose("lat", "lon") for name in wanted]
    fields = xr.concat(arrays, dim="channel", coords="minimal", compat="override")
    units = [str(dataset[name].attrs.get("units", "")) for name in wanted]
    fields = fields.transpose("lat", "lon", "channel").assign_coords(
        channel=wanted, units=("channel", units)
    )
    return on_grid_of(fields, field, path).load()


def without_static(dataset: xr.Dataset) -> str:
    """``"; not static: z (time: 2, lat, lon)"`` for the gridded variables of
    ``dataset`` with other dimensions, or ``""``."""

    def dims(array: xr.DataArray) -> str:
        return ", ".join(d if d in ("lat", "lon") else f"{d}: {array.sizes[d]}" for d in array.dims)

    others = [
        f"{name} ({dims(a)})"
        for name, a in dataset.data_vars.items()
        if {"lat", "lon"} < set(a.dims)
    ]
    return f"; not static: {', '.join(others)}" if others else ""


def on_grid_of(static: xr.DataArray, field: xr.DataArray, path: str) -> xr.DataArray:
    """The cells of ``field``'s grid in ``static``, by latitude and longitude.

    Raises:
      DataError: naming ``path`` where ``static`` lacks some of them.
    """
    cells = cells_of(
        static["lat"].values, static["lon"].values, field["lat"].values, field["lon"].values
    )
    if cells is None:
        rows = positions(static["lat"].values, field["lat"].values)  # which one lacks cells
        dim = "lat" if rows is None else "lon"
        ours, theirs = static[dim].values, field[dim].values
        raise DataError(
            f"data.static={path!r} is on another grid ({dim} {ours[0]:g}..{ours[-1]:g}, "
            f"{len(ours)} points; the data's {theirs[0]:g}..{theirs[-1]:g}, {len(theirs)}): "
            "regrid it to the data's grid first"
        )
    static = static.isel(lat=cells[0], lon=cells[1])
    return static.assign_coords(lat=field["lat"].values, lon=field["lon"].values)


def check_static(fields: xr.DataArray, spec: str, allow_extreme_values: bool = False) -> None:
    """Raises DataError naming ``data.static`` (``spec``) and the field, for a
    static field of ``fields`` (`static_fields`) that is not numeric, has an
    infinite value, is missing (NaN) in every cell, or, unless
    ``allow_extreme_values``, holds a value outside what its units allow
    (`stconv.data.checks.plausible_range`): the checks of the data."""
    for name in fields["channel"].values:
        field = fields.sel(channel=name)
        check_numeric(field, str(name), f"data.static={spec}")
        values = np.asarray(field.values, np.float64)
        problem = static_problem(values, str(field["units"].values), allow_extreme_values)
        if problem:
            raise DataError(f"data.static={spec!r}: static field {str(name)!r} {problem}")


def static_problem(values: np.ndarray, units: str, allow_extreme_values: bool) -> str:
    """What is wrong with the ``(lat, lon)`` ``values`` of a static field in
    ``units``, or ``""``."""
    if np.isinf(values).any():
        lat, lon = np.argwhere(np.isinf(values))[0]
        return (
            f"is infinite at lat index {lat}, lon index {lon} (in {int(np.isinf(values).sum())} "
            "of its cells): mark missing values as NaN (or _FillValue), never as infinity"
        )
    if np.isnan(values).all():
        return "is missing (NaN) in every cell: give a field with values, or leave it out"
    low, high = plausible_range(units)
    outside = (values < low) | (values > high)
    if outside.any() and not allow_extreme_values:
        lat, lon = np.argwhere(outside)[0]
        return (
            f"reaches {values[lat, lon]:.3g} at lat index {lat}, lon index {lon}: "
            f"{range_name(units)}, {EXTREME_CAUSES}; {EXTREME_ADVICE}"
        )
    return ""


def normalized_static(fields: xr.DataArray) -> np.ndarray:
    """``(lat, lon, k)``: each field minus its mean over the cells, divided by
    its std (1 for a constant field), NaN set to 0."""
    values = fields.values.astype(np.float64)
    mean = np.nanmean(values, axis=(0, 1))
    std = np.nanstd(values, axis=(0, 1))
    normalized = (values - mean) / np.where(std > 0, std, 1.0)
    return np.nan_to_num(normalized, nan=0.0).astype(np.float32)
