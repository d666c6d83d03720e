"""Masks of valid grid cells.

Cells that are NaN throughout the training split (CHIRPS has no ocean data)
are masked out, or a land-mask file (netCDF or ``.npy``, nonzero = valid) is
given instead. Losses and metrics average over valid cells only; a target
value that is NaN at one time is masked for that window as well.
"""

import os

import numpy as np
import xarray as xr

from stconv.data.errors import DataError
from stconv.data.files import GRID_DIMS, other_dims, resolve_paths


def nan_mask(field: xr.DataArray) -> np.ndarray:
    """``(lat, lon, channel)`` True where ``field`` (the training split) has any finite
    value over its other dims (time, and sample for the paper's files)."""
    return field.notnull().any(other_dims(field)).transpose(*GRID_DIMS).values


def load_mask_file(path: str | os.PathLike, grid: tuple[int, int], channels: int) -> np.ndarray:
    """A ``(lat, lon)`` or ``(lat, lon, channel)`` mask from ``.npy`` or netCDF (its
    first variable), broadcast to ``(lat, lon, channels)``; nonzero means valid."""
    (path,) = resolve_paths(path)
    if path.endswith(".npy"):
        values = np.load(path)
    else:
        with xr.open_dataset(path) as dataset:
            if not dataset.data_vars:
                raise DataError(f"mask file {path!r} has no variables")
            values = next(iter(dataset.data_vars.values())).values
    shape = values.shape
    values = np.squeeze(values)
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[:2] != tuple(grid) or values.shape[2] not in (1, channels):
        raise DataError(
            f"mask file {path!r} has shape {shape}: it must be (lat, lon) = {tuple(grid)} "
            f"or (lat, lon, {channels})"
        )
    return np.broadcast_to(np.nan_to_num(values) != 0, (*grid, channels)).copy()
