"""Forecast scores per grid cell: maps of each score per lead time and variable.

`CellAccumulator` adds, per forecast and per ``(lead, lat, lon, channel)``,
sums over the windows (forecasts, one per initialisation time) in float64,
from batches of physical values ``(batch, lead, lat, lon, channel)`` and
their mask of valid cells. With ``n`` the valid windows at a cell, ``e =
forecast - truth``, and, where a climatology ``c`` at the target frames is
given, the anomalies ``f' = forecast - c`` and ``o' = truth - c``, the sums
(`cell_sums`, one variable each) are:

- ``count`` ``n``, ``error`` ``sum e``, ``squared`` ``sum e^2``,
  ``absolute`` ``sum |e|``;
- with a climatology: ``anomaly_product`` ``sum f'o'``,
  ``forecast_anomaly_squared`` ``sum f'^2``, ``truth_anomaly_squared``
  ``sum o'^2``, ``forecast_anomaly`` ``sum f'``, ``truth_anomaly`` ``sum o'``
  (NaN for a forecast given without one).

Sums add up over batches, cells and regions (`stconv.evaluation.regions`),
so the scores of a region follow from the same sums. Per cell
(`cell_scores`):

- ``rmse`` ``sqrt(sum e^2 / n)``, ``mae`` ``sum |e| / n``, ``bias`` ``sum e / n``
  (forecast - truth, mean over the windows);
- ``acc``: the centred anomaly correlation over time, the Pearson correlation
  of the ``n`` pairs ``(f', o')`` at the cell::

      ACC = S_fo / sqrt(S_ff * S_oo),   S_fo = sum f'o' - (sum f')(sum o') / n,
      S_ff = sum f'^2 - (sum f')^2 / n, S_oo = sum o'^2 - (sum o')^2 / n,

  i.e. each anomaly less its mean over the windows at that cell (unlike the
  whole-grid ACC of `stconv.evaluation.metrics`, an uncentred correlation
  over the cells of each window). NaN where ``n < 2`` or either anomaly does
  not vary (``S <= 1e-12 sum a^2``: the rounding of a constant anomaly), such
  as the climatology forecast's, and where no climatology was given.

Every score is NaN at a cell with no valid window. The one-pass sums in
float64 lose nothing that matters for anomalies (values near 0); a field far
from its climatology would want a two-pass variance instead.
"""

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from stconv.outputs import (
    link_or_rename,
    remove_stale_temporaries,
    remove_temporary,
    temporary_path,
)

SUMS = ("count", "error", "squared", "absolute")
ANOMALY_SUMS = (
    "anomaly_product",
    "forecast_anomaly_squared",
    "truth_anomaly_squared",
    "forecast_anomaly",
    "truth_anomaly",
)
DIMS = ("forecast", "lead_time", "lat", "lon", "variable")
# Below this fraction of the sum of squares, an anomaly's variance is rounding.
NO_VARIANCE = 1e-12


class CellAccumulator:
    """Adds up, per forecast, the per-cell sums of the module docstring over
    batches of windows.

    Args:
      forecasts: the names of the forecasts scored (``"model"``,
        ``"persistence"``, ...), in the order of `cell_sums`.
    """

    def __init__(self, forecasts: Sequence[str]):
        self.forecasts = tuple(forecasts)
        if not self.forecasts or len(set(self.forecasts)) != len(self.forecasts):
            raise ValueError(f"forecasts: {self.forecasts} must be distinct names, at least one")
        self.sums: dict[str, dict[str, np.ndarray]] = {}
        self.shape: tuple[int, ...] | None = None  # (lead, lat, lon, channel)

    def add(
        self,
        name: str,
        forecast: np.ndarray,
        truth: np.ndarray,
        mask: np.ndarray,
        climatology: np.ndarray | None = None,
    ) -> None:
        """Adds one batch of forecast ``name``: ``forecast``, ``truth``,
        ``mask`` (True = valid) and ``climatology`` (at the target frames, or
        None) all ``(batch, lead, lat, lon, channel)``, physical values.

        Raises:
          ValueError: naming the parameter, for an unknown ``name``, shapes
            that differ, or a climatology given for some batches of a forecast
            and not for others.
        """
        if name not in self.forecasts:
            raise ValueError(f"name: {name!r} is not one of the forecasts {self.forecasts}")
        arrays = {"forecast": forecast, "truth": truth, "mask": mask, "climatology": climatology}
        self.check_shapes({key: value for key, value in arrays.items() if value is not None})
        batch = batch_sums(
            np.asarray(forecast, np.float64),
            np.asarray(truth, np.float64),
            np.asarray(mask, bool),
            None if climatology is None else np.asarray(climatology, np.float64),
        )
        if name not in self.sums:
            self.sums[name] = batch
            return
        if batch.keys() != self.sums[name].keys():
            raise ValueError(
                f"climatology: forecast {name!r} was added with and without a climatology: "
                "give one for every batch or for none"
            )
        for key, value in batch.items():
            self.sums[name][key] += value

    def check_shapes(self, arrays: dict[str, np.ndarray]) -> None:
        """Every array ``(batch, lead, lat, lon, channel)`` alike, and like earlier batches."""
        shapes = {key: np.shape(value) for key, value in arrays.items()}
        first = shapes["forecast"]
        if len(first) != 5 or any(shape != first for shape in shapes.values()):
            raise ValueError(
                f"forecast: shapes {shapes} must all be one (batch, lead, lat, lon, channel)"
            )
        if self.shape is not None and first[1:] != self.shape:
            raise ValueError(
                f"forecast: shape {first} differs from earlier batches' (batch, *{self.shape})"
            )
        self.shape = first[1:]

    def cell_sums(
        self,
        lat: np.ndarray | None = None,
        lon: np.ndarray | None = None,
        variables: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
    ) -> xr.Dataset:
        """The sums as a Dataset ``(forecast, lead_time, lat, lon, variable)``.

        Args:
          lat, lon: the coordinates of the rows and columns (default their indices).
          variables: each channel's name (default ``"0"``, ``"1"``, ...).
          units: each variable's units, the coordinate ``units`` of ``variable``
            (default ``""``).

        Returns:
          The sums of the module docstring, zero (NaN for the anomaly sums) for
          a forecast never added; the anomaly sums only where some forecast
          had a climatology. Coordinate ``lead_time``: 1..lead (steps).

        Raises:
          ValueError: before any batch, or naming a coordinate of the wrong length.
        """
        if self.shape is None:
            raise ValueError("cell_sums: no batch was added: there is nothing to score")
        leads, rows, columns, channels = self.shape
        coords = {
            "forecast": list(self.forecasts),
            "lead_time": np.arange(1, leads + 1),
            "lat": coordinate("lat", lat, np.arange(rows), rows),
            "lon": coordinate("lon", lon, np.arange(columns), columns),
            "variable": coordinate("variables", variables, np.arange(channels), channels, str),
        }
        units = coordinate("units", units, np.full(channels, ""), channels, str)
        coords["units"] = ("variable", units)
        with_anomalies = any(ANOMALY_SUMS[0] in sums for sums in self.sums.values())
        names = SUMS + ANOMALY_SUMS * with_anomalies
        data = {name: (DIMS, self.stacked(name)) for name in names}
        return xr.Dataset(data, coords=coords)

    def stacked(self, name: str) -> np.ndarray:
        """Sum ``name`` of every forecast, stacked ``(forecast, lead, lat, lon, channel)``."""
        empty = np.full(self.shape, 0.0 if name in SUMS else np.nan)
        return np.stack([self.sums.get(f, {}).get(name, empty) for f in self.forecasts])


def coordinate(
    parameter: str, values, default: np.ndarray, size: int, kind: type | None = None
) -> np.ndarray:
    """``values`` (``default`` where None) as an array of ``size``; ValueError naming
    ``parameter`` otherwise."""
    values = default if values is None else np.asarray(values)
    if values.shape != (size,):
        raise ValueError(f"{parameter}: {values.shape[0] if values.ndim else 0} values for {size}")
    return values.astype(kind) if kind is not None else values


def batch_sums(
    forecast: np.ndarray, truth: np.ndarray, mask: np.ndarray, climatology: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The sums of the module docstring over one batch's windows, per
    ``(lead, lat, lon, channel)``; cells outside ``mask`` add nothing (their
    values may be NaN)."""
    error = np.where(mask, forecast - truth, 0.0)
    sums = {
        "count": mask.sum(axis=0, dtype=np.float64),
        "error": error.sum(axis=0),
        "squared": np.square(error).sum(axis=0),
        "absolute": np.abs(error).sum(axis=0),
    }
    if climatology is None:
        return sums
    forecast_anomaly = np.where(mask, forecast - climatology, 0.0)
    truth_anomaly = np.where(mask, truth - climatology, 0.0)
    sums.update(
        anomaly_product=(forecast_anomaly * truth_anomaly).sum(axis=0),
        forecast_anomaly_squared=np.square(forecast_anomaly).sum(axis=0),
        truth_anomaly_squared=np.square(truth_anomaly).sum(axis=0),
        forecast_anomaly=forecast_anomaly.sum(axis=0),
        truth_anomaly=truth_anomaly.sum(axis=0),
    )
    return sums


def cell_scores(sums: xr.Dataset) -> xr.Dataset:
    """Per cell, from `CellAccumulator.cell_sums`: ``rmse``, ``mae``, ``bias``
    and, where ``sums`` has the anomaly sums, the centred ``acc`` (module
    docstring), each with the dims of ``sums``, NaN where there is no valid
    value; ``windows``: the valid windows of each cell. The coordinates
    (``units`` of ``variable`` included) are those of ``sums``: the errors
    are in those units, ``acc`` a pure number."""
    count = sums["count"]
    valid = count > 0
    per_window = count.where(valid)
    scores = xr.Dataset(
        {
            "rmse": np.sqrt(sums["squared"] / per_window),
            "mae": sums["absolute"] / per_window,
            "bias": sums["error"] / per_window,
        }
    )
    if ANOMALY_SUMS[0] in sums:
        scores["acc"] = centred_correlation(sums)
        scores["acc"].attrs["units"] = "1"
    scores["windows"] = count.astype(np.int64)
    for name, text in DESCRIPTIONS.items():
        if name in scores:
            scores[name].attrs["long_name"] = text
    return scores


DESCRIPTIONS = {
    "rmse": "root mean square error over the windows, in the variable's units",
    "mae": "mean absolute error over the windows, in the variable's units",
    "bias": "mean of forecast - truth over the windows, in the variable's units",
    "acc": "centred anomaly correlation over the windows",
    "windows": "valid windows (forecasts) scored",
}


def centred_correlation(sums: xr.Dataset) -> xr.DataArray:
    """The per-cell Pearson correlation of the anomalies over the windows
    (module docstring); NaN for fewer than 2 windows or no variance."""
    count = sums["count"].where(sums["count"] >= 2)
    forecast_sum, truth_sum = sums["forecast_anomaly"], sums["truth_anomaly"]
    covariance = sums["anomaly_product"] - forecast_sum * truth_sum / count
    forecast_variance = variance(sums["forecast_anomaly_squared"], forecast_sum, count)
    truth_variance = variance(sums["truth_anomaly_squared"], truth_sum, count)
    return covariance / np.sqrt(forecast_variance * truth_variance)


def variance(squares: xr.DataArray, total: xr.DataArray, count: xr.DataArray) -> xr.DataArray:
    """``n`` times the variance from sums of squares and values; NaN where it is rounding."""
    centred = squares - np.square(total) / count
    return centred.where(centred > NO_VARIANCE * squares)


def write_cell_scores(scores: xr.Dataset, path: str | os.PathLike) -> None:
    """Writes ``scores`` (`cell_scores`) to the netCDF file ``path``, never
    over an existing file.

    Raises:
      FileExistsError: naming ``path``, where something is there.
    """
    path = os.fspath(path)
    if os.path.lexists(path):
        raise exists(path)
    remove_stale_temporaries(path)
    temporary = temporary_path(path)
    try:
        scores.to_netcdf(temporary)
        link_or_rename(temporary, os.path.abspath(path))  # never over a file that appeared
    except FileExistsError:
        raise exists(path) from None
    finally:
        remove_temporary(temporary)


def exists(path: str) -> FileExistsError:
    return FileExistsError(f"{path} exists: choose another path for the cell scores")
