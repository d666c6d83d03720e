"""Which dimensions of a file are its time, latitude and longitude.

    names = find_dims(dataset, "era5.nc")  # {"time": "valid_time", "lat": "latitude", ...}

By CF attribute (``axis``, ``standard_name``, ``units``), else by common
name. A grid stconv does not read, curvilinear (2-D latitudes over dims of
their own) or projected (coordinates in metres), is refused with one line.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from stconv.data.errors import DataError

DIMS = ("time", "lat", "lon")
GRID_DIMS = ("lat", "lon", "channel")


def other_dims(field: xr.DataArray) -> list[str]:
    """The dimensions of ``field`` besides `GRID_DIMS`: time, or the paper's sample and time."""
    return [d for d in field.dims if d not in GRID_DIMS]


# Recognised in this order: CF ``axis``, CF ``standard_name``, CF units, name.
CF_AXIS = {"T": "time", "Y": "lat", "X": "lon"}
CF_STANDARD_NAMES = {
    "time": "time",
    "latitude": "lat",
    "grid_latitude": "lat",
    "longitude": "lon",
    "grid_longitude": "lon",
}
CF_UNITS = {
    "degrees_north": "lat",
    "degree_north": "lat",
    "degrees_east": "lon",
    "degree_east": "lon",
}
COMMON_NAMES = {
    "time": "time",
    "t": "time",
    "lat": "lat",
    "latitude": "lat",
    "y": "lat",
    "lon": "lon",
    "longitude": "lon",
    "x": "lon",
}


def time_dimension(dataset: xr.Dataset, dims: Mapping[str, str] | None = None) -> str | None:
    """The time dimension of ``dataset`` (`dim_role`, or ``dims["time"]``), or None."""
    if dims and "time" in dims:
        return dims["time"]
    return next((str(d) for d in dataset.dims if dim_role(dataset, str(d)) == "time"), None)


def named_dims(dataset: xr.Dataset, renames: Mapping[str, str]) -> xr.Dataset:
    """``dataset`` with its dimensions renamed by ``renames`` (``rlat`` to
    ``lat``); the coordinates that already bear a new name are dropped: the
    two-dimensional ``lat`` and ``lon`` of a rotated grid (CORDEX's) beside
    its ``rlat`` and ``rlon``, whose rows and columns are then the grid's."""
    taken = [new for old, new in renames.items() if new in dataset.variables and new not in renames]
    return dataset.drop_vars(taken).rename(renames)


def dim_role(dataset: xr.Dataset, dim: str) -> str | None:
    """``"time"``, ``"lat"``, ``"lon"`` or None for one dimension of ``dataset``."""
    if dim in dataset.coords:
        attrs = dataset[dim].attrs
        if attrs.get("axis") in CF_AXIS:
            return CF_AXIS[attrs["axis"]]
        if attrs.get("standard_name") in CF_STANDARD_NAMES:
            return CF_STANDARD_NAMES[attrs["standard_name"]]
        if attrs.get("units") in CF_UNITS:
            return CF_UNITS[attrs["units"]]
        if np.issubdtype(dataset[dim].dtype, np.datetime64) or dataset[dim].dtype == object:
            return "time"
    return COMMON_NAMES.get(dim.lower())


def find_dims(dataset: xr.Dataset, source: str, dims: Mapping[str, str] | None = None) -> dict:
    """Maps ``time``, ``lat`` and ``lon`` to the dataset's own dimension names.

    Args:
      dataset: the opened dataset.
      source: the file name, for error messages.
      dims: overrides, e.g. ``{"time": "valid_time"}``.
    """
    found = {}
    for dim in dataset.dims:
        role = dim_role(dataset, str(dim))
        if role is not None and role not in found:
            found[role] = str(dim)
    found.update(dims or {})
    for role in DIMS:
        if role not in found or found[role] not in dataset.dims:
            check_not_curvilinear(dataset, source)
            axis = {v: k for k, v in CF_AXIS.items()}[role]
            raise DataError(
                f"file {source!r} has no {role} dimension among {sorted(map(str, dataset.dims))}: "
                f"give its coordinate the CF attribute axis={axis} (ncatted -a axis,NAME,o,c,"
                f"{axis} FILE), or pass dims={{'{role}': NAME}} in Python"
            )
    check_not_projected(dataset, [found["lat"], found["lon"]], source)
    return found


def check_not_curvilinear(dataset: xr.Dataset, source: str) -> None:
    """Raises DataError where ``dataset``'s latitudes are 2-D over dims of
    their own (an ocean model's ``j`` x ``i``), or over time as well (WRF's
    ``XLAT`` over ``Time`` x ``south_north`` x ``west_east``): no regular or
    rotated grid."""
    for name, variable in dataset.variables.items():
        dims = tuple(map(str, variable.dims))
        latitude = dim_role(dataset, str(name)) == "lat" or (
            variable.attrs.get("standard_name") == "latitude"
        )
        spatial = {dim for dim in dims if dim_role(dataset, dim) != "time"}
        if latitude and len(spatial) == 2 and not spatial & set(COMMON_NAMES):
            raise DataError(
                f"file {source!r} is on a curvilinear grid ({name!r} is {variable.ndim}-D over "
                f"{dims}): " + REGRID
            )


def check_not_projected(dataset: xr.Dataset, grid_dims: Sequence[str], source: str) -> None:
    """Raises DataError where the rows or columns of ``dataset`` (its
    ``grid_dims``) are a map projection's coordinates (Daymet's ``x`` and
    ``y`` in metres), which would be read as degrees."""
    for dim in grid_dims:
        attrs = dataset[dim].attrs if dim in dataset.coords else {}
        projected = str(attrs.get("standard_name", "")).startswith("projection_")
        if projected or attrs.get("units") in LENGTH_UNITS:
            raise DataError(
                f"file {source!r} is on a projected grid ({dim!r} in "
                f"{attrs.get('units', 'metres')}, not degrees): " + REGRID
            )


# What a grid that is not one stconv reads should become.
REGRID = (
    "stconv reads regular latitude-longitude grids and rotated poles' grids; "
    "regrid it first (cdo remapbil,r360x180 IN OUT, or xESMF)"
)
LENGTH_UNITS = ("m", "km", "metre", "metres", "meter", "meters", "kilometres", "kilometers")
