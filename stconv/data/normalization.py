"""Normalization fitted on the training split only: per channel, or per cell.

Statistics are saved with a run, so every metric can be reported in the
field's physical units by `Normalizer.denormalize`.
"""

import dataclasses
import json
import os

import numpy as np
import xarray as xr

from stconv.data.errors import DataError
from stconv.data.files import GRID_DIMS, other_dims


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """``(x - mean) / std`` per channel (the last axis), and back.

    Attributes:
      mean: per-channel mean ``(channels,)``, or per-cell ``(lat, lon, channels)``.
      std: per-channel standard deviation, shape ``(channels,)``.
    """

    mean: np.ndarray
    std: np.ndarray

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

    def first(self, channels: int) -> "Normalizer":
        """The statistics of the first ``channels`` channels (the targets)."""
        return Normalizer(self.mean[..., :channels], self.std[:channels])

    def normalize(self, x):
        return (x - self.mean) / self.std

    def denormalize(self, x):
        return x * self.std + self.mean

    def scale(self, error):
        """An error (RMSE, MAE) in normalized units -> physical units."""
        return error * self.std

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalizer":
        return cls(np.asarray(values["mean"], np.float32), np.asarray(values["std"], np.float32))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the statistics as JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        with open(path) as f:
            return cls.from_dict(json.load(f))
