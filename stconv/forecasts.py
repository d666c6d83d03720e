"""Forecasts as netCDF: ``(init_time, lead_time, lat, lon)`` per variable, physical units."""

import os
from collections.abc import Callable

import numpy as np
import xarray as xr

from stconv.normalization import Normalizer


def forecast_dataset(
    predictions: np.ndarray, init_times: np.ndarray, grid: dict, mask: np.ndarray
) -> xr.Dataset:
    """Wraps physical-unit predictions ``(n, lead, lat, lon, channel)`` as a Dataset.

    Cells outside ``mask`` are NaN; ``lead_time`` counts steps after ``init_time``
    (the time of the last input frame).
    """
    predictions = np.where(mask, predictions, np.nan).astype(np.float32)
    coords = {
        "init_time": init_times,
        "lead_time": ("lead_time", np.arange(1, predictions.shape[1] + 1), {"units": "steps"}),
        "lat": ("lat", grid["lat"], {"units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", grid["lon"], {"units": "degrees_east", "axis": "X"}),
    }
    data_vars = {
        name: (
            ("init_time", "lead_time", "lat", "lon"),
            predictions[..., c],
            {"units": grid["units"]},
        )
        for c, name in enumerate(grid["channel"])
    }
    return xr.Dataset(data_vars, coords, attrs={"title": "stconv forecast"})


def write_forecasts(path: str | os.PathLike, dataset: xr.Dataset) -> None:
    """Writes atomically: a failed write leaves any earlier file intact."""
    temporary = f"{path}.tmp"
    dataset.to_netcdf(temporary)
    os.replace(temporary, path)


def predict_windows(
    predict: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    normalizer: Normalizer,
    batch_size: int,
) -> np.ndarray:
    """Physical-unit forecasts of raw (physical) input windows ``(n, time, lat, lon, c)``."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        batch = np.nan_to_num(normalizer.normalize(inputs[start : start + batch_size]), nan=0.0)
        outputs.append(normalizer.denormalize(np.asarray(predict(batch.astype(np.float32)))))
    return np.concatenate(outputs)
