"""Masks of valid grid cells.

Cells that are NaN throughout the training split (CHIRPS has no ocean data)
are masked out, or a land-mask file (netCDF or ``.npy``, nonzero = valid, or
at least 0.5 where it holds fractions) is given instead. Losses and metrics
average over valid cells only; a target value that is NaN at one time is
masked for that window as well.
"""

import os

import numpy as np
import xarray as xr

from stconv.data.dims import GRID_DIMS, dim_role, other_dims
from stconv.data.errors import DataError
from stconv.data.files import open_dataset, resolve_paths
from stconv.data.grid import Grid, cells_of


def nan_mask(field: xr.DataArray) -> np.ndarray:
    """``(lat, lon, channel)`` True where ``field`` (the training split) has any finite
    value over its other dims (time, and sample for the paper's files)."""
    return field.notnull().any(other_dims(field)).transpose(*GRID_DIMS).values


def load_mask_file(path: str | os.PathLike, grid: Grid, channels: int) -> np.ndarray:
    """The ``(lat, lon, channels)`` mask of ``grid`` in a mask file (nonzero
    means valid; where it holds fractions, as ERA5's ``lsm`` does, at least
    0.5 does: the cells mostly land): a ``.npy`` array of the grid's
    ``(lat, lon)`` or ``(lat, lon, channels)`` shape, or a netCDF file of one
    gridded variable (dimensions of length 1, such as ERA5's single time step,
    left out), whose cells are taken by latitude and longitude where it has
    them: a mask of a wider grid, in another latitude order or longitude
    convention, fits.

    Raises:
      DataError: naming the file, for several variables, missing cells or another shape.
    """
    (path,) = resolve_paths(path)
    if path.endswith(".npy"):
        values = np.load(path)
        shape, values = values.shape, np.squeeze(values)
    else:
        with open_dataset(path) as dataset:  # a file xarray cannot open is named
            values = netcdf_mask(dataset, path, grid)
        shape = values.shape
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[:2] != grid.shape or values.shape[2] not in (1, channels):
        raise DataError(
            f"mask file {path!r} has shape {shape}: it must be (lat, lon) = {grid.shape} "
            f"or (lat, lon, {channels})"
        )
    values = np.nan_to_num(values)
    fractions = np.any((values > 0) & (values < 1))  # ERA5's lsm: the land's share of a cell
    valid = values >= 0.5 if fractions else values != 0
    return np.broadcast_to(valid, (*grid.shape, channels)).copy()


def netcdf_mask(dataset: xr.Dataset, path: str, grid: Grid) -> np.ndarray:
    """The values of the one gridded variable of ``dataset``, ``(lat, lon)``
    first, the cells of ``grid`` taken by coordinates where both have them."""
    roles = {dim_role(dataset, str(dim)): str(dim) for dim in dataset.dims}
    lat, lon = roles.get("lat"), roles.get("lon")
    gridded = [str(v) for v, a in dataset.data_vars.items() if {lat, lon} <= set(a.dims)]
    if lat is None or lon is None or not dataset.data_vars:
        gridded = [str(v) for v in dataset.data_vars][:1]
    if len(gridded) != 1:
        raise DataError(
            f"mask file {path!r} holds {len(gridded)} gridded variables {gridded}: give a "
            "file of the mask's variable alone"
        )
    array = dataset[gridded[0]]
    if lat is None or lon is None:
        return np.squeeze(array.values)
    single = [d for d in array.dims if array.sizes[d] == 1 and d not in (lat, lon)]
    array = array.squeeze(single, drop=True).transpose(lat, lon, ...)
    if not grid.geographic or lat not in dataset.coords or lon not in dataset.coords:
        return array.values
    theirs = array[lat].values, array[lon].values
    cells = cells_of(*theirs, grid.lat, grid.lon)
    if cells is None:
        raise DataError(
            f"mask file {path!r} does not hold every cell of the data's grid "
            f"(lat {grid.lat[0]:g}..{grid.lat[-1]:g}, lon {grid.lon[0]:g}..{grid.lon[-1]:g}; "
            f"the file's lat {theirs[0][0]:g}..{theirs[0][-1]:g}, lon {theirs[1][0]:g}.."
            f"{theirs[1][-1]:g}): regrid it to the data's grid"
        )
    return array.isel({lat: cells[0], lon: cells[1]}).values
