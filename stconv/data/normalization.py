"""Normalization fitted on the training split only: per channel, per cell, or
as anomalies from the climatology by time of year.

Statistics are saved with a run, so every metric can be reported in the
field's physical units by `Normalizer.denormalize`.
"""

import dataclasses
import json
import os

import numpy as np
import xarray as xr

from stconv.data.climatology import Climatology
from stconv.data.errors import DataError
from stconv.data.files import GRID_DIMS, other_dims


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """``(x - mean) / std`` per channel (the last axis), and back.

    Attributes:
      mean: per-channel mean ``(channels,)``, or per-cell ``(lat, lon, channels)``.
      std: per-channel standard deviation, shape ``(channels,)``.
      climatology: for ``climatology`` normalization, the climatology by time
        of year (physical units) that replaces ``mean``: the mean of a frame is
        the climatology at its time, so `normalize` and `denormalize` need the
        frames' ``times``. None otherwise.
    """

    mean: np.ndarray
    std: np.ndarray
    climatology: Climatology | None = None

    @classmethod
    def identity(cls, channels: int) -> "Normalizer":
        """No normalization: train on raw values, as the paper did."""
        return cls(np.zeros(channels, np.float32), np.ones(channels, np.float32))

    @classmethod
    def fit(cls, field: xr.DataArray, per_cell: bool = False) -> "Normalizer":
        """Statistics of ``field`` (``(..., lat, lon, channel)``; pass the training split only).

        Args:
          field: the training split.
          per_cell: subtract every cell's own mean (``mean`` is then
            ``(lat, lon, channels)``: the model sees anomalies), and divide by
            the per-channel std of those anomalies.

        NaNs are skipped; a channel with no finite value raises DataError.
        """
        reduce = [d for d in field.dims if d != "channel"]
        count = field.notnull().sum(reduce).values
        empty = [str(c) for c, n in zip(field["channel"].values, count, strict=True) if n == 0]
        if empty:
            raise DataError(
                f"variable {empty[0]!r} has no finite value in the training split; "
                "drop it or choose another time range"
            )
        if per_cell:
            mean = field.mean(other_dims(field), skipna=True)
            std = (field - mean).std(reduce, skipna=True).values.astype(np.float32)
            mean = np.nan_to_num(mean.transpose(*GRID_DIMS).values).astype(np.float32)
        else:
            mean = field.mean(reduce, skipna=True).values.astype(np.float32)
            std = field.std(reduce, skipna=True).values.astype(np.float32)
        return cls(mean, np.where(std > 0, std, 1.0).astype(np.float32))

    @classmethod
    def fit_anomalies(cls, field: xr.DataArray, climatology: Climatology) -> "Normalizer":
        """Anomalies from ``climatology`` at each frame's time of year, divided by
        their per-channel std over the training split ``field`` (``(time, lat,
        lon, channel)``)."""
        anomalies = field.values - climatology.at(field["time"].values)
        reduce = tuple(range(anomalies.ndim - 1))
        with np.errstate(invalid="ignore"):
            std = np.nanstd(anomalies, axis=reduce).astype(np.float32)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0).astype(np.float32)
        return cls(np.zeros_like(std), std, climatology)

    def first(self, channels: int) -> "Normalizer":
        """The statistics of the first ``channels`` channels (the targets)."""
        climatology = None if self.climatology is None else self.climatology.first(channels)
        return Normalizer(self.mean[..., :channels], self.std[:channels], climatology)

    def mean_at(self, times=None) -> np.ndarray:
        """The mean to subtract from frames at ``times`` (``(..., time)``): ``mean``,
        or the climatology at each time (``(..., time, lat, lon, channels)``; 0
        where it has no value)."""
        if self.climatology is None:
            return self.mean
        return np.nan_to_num(self.climatology.at(times), nan=0.0)

    def normalize(self, x, times=None):
        """``(x - mean) / std``; ``times`` of the frames for ``climatology``."""
        return (x - self.mean_at(times)) / self.std

    def denormalize(self, x, times=None):
        """``x * std + mean``; ``times`` of the frames for ``climatology``."""
        return x * self.std + self.mean_at(times)

    def scale(self, error):
        """An error (RMSE, MAE) in normalized units -> physical units."""
        return error * self.std

    def to_dict(self) -> dict:
        """The statistics as JSON; a climatology is marked, its values are saved apart."""
        values = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        return values if self.climatology is None else {**values, "climatology": True}

    @classmethod
    def from_dict(cls, values: dict, climatology: Climatology | None = None) -> "Normalizer":
        """The statistics of `to_dict`, with the run's ``climatology`` where they use one."""
        mean, std = (np.asarray(values[k], np.float32) for k in ("mean", "std"))
        return cls(mean, std, climatology if values.get("climatology") else None)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the statistics as JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        with open(path) as f:
            return cls.from_dict(json.load(f))
