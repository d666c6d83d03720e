"""Normalization fitted on the training split only: per channel, per cell, or
as anomalies from the climatology by time of year.

Statistics are saved with a run, so every metric can be reported in the
field's physical units by `Normalizer.denormalize`.
"""

import dataclasses
import json
import os
from collections.abc import Iterator

import numpy as np
import xarray as xr

from stconv.data.blocks import row_blocks
from stconv.data.climatology import Climatology
from stconv.data.dims import GRID_DIMS
from stconv.data.errors import DataError


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
        Sums are float64 whatever the field's dtype (`cell_sums`).
        """
        sums, counts = cell_sums(field)
        count = counts.sum((0, 1))
        empty = [str(c) for c, n in zip(field["channel"].values, count, strict=True) if n == 0]
        if empty:
            raise DataError(
                f"variable {empty[0]!r} has no finite value in the training split; "
                "drop it or choose another time range"
            )
        mean = sums.sum((0, 1)) / count
        with np.errstate(invalid="ignore", divide="ignore"):
            cell_mean = sums / counts  # NaN in cells without data
        deviations = squared_deviations(field, cell_mean if per_cell else mean)
        std = np.sqrt(deviations.sum((0, 1)) / count).astype(np.float32)
        mean = np.nan_to_num(cell_mean) if per_cell else mean
        return cls(mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    @classmethod
    def fit_anomalies(cls, field: xr.DataArray, climatology: Climatology) -> "Normalizer":
        """Anomalies from ``climatology`` at each frame's time of year, divided by
        their per-channel std over the training split ``field`` (``(time, lat,
        lon, channel)``)."""
        if getattr(field.data, "chunks", None) is None:  # in memory: at once
            anomalies = field.values - climatology.at(field["time"].values)
            reduce = tuple(range(anomalies.ndim - 1))
            with np.errstate(invalid="ignore"):
                std = np.nanstd(anomalies, axis=reduce, dtype=np.float64).astype(np.float32)
        else:
            std = streamed_anomaly_std(field, climatology).astype(np.float32)
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
        """The statistics of `to_dict`, with the run's ``climatology`` where they use one.

        Raises:
          ValueError: naming the statistic, unless they are as `fit` makes
            them (`check_statistics`).
        """
        mean, std = (np.asarray(values[k], np.float32) for k in ("mean", "std"))
        check_statistics(mean, std)
        return cls(mean, std, climatology if values.get("climatology") else None)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the statistics as JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        with open(path) as f:
            return cls.from_dict(json.load(f))


def check_statistics(mean: np.ndarray, std: np.ndarray) -> None:
    """Raises ValueError, naming the statistic, unless ``std`` holds one
    positive finite standard deviation per channel and ``mean`` finite values
    of as many channels (per channel or per cell): as `Normalizer.fit` makes
    them, and as forecasts need (a zero or negative ``std`` gives none)."""
    if std.ndim != 1 or not len(std) or mean.ndim not in (1, 3) or mean.shape[-1] != len(std):
        raise ValueError(
            f"mean of shape {mean.shape} and std of shape {std.shape} do not fit: std holds "
            "one value per channel, mean one per channel (or per cell and channel)"
        )
    bad = np.flatnonzero(~(np.isfinite(std) & (std > 0)))
    if bad.size:
        raise ValueError(
            f"std[{bad[0]}] = {std[bad[0]]:g} is invalid: a standard deviation must be a "
            "positive finite number"
        )
    if not np.isfinite(mean).all():
        raise ValueError("mean holds values that are not finite: every mean must be a number")


def frames(field: xr.DataArray) -> Iterator[np.ndarray]:
    """The frames of ``field`` (``(..., lat, lon, channel)``) as float64 blocks
    ``(frames, lat, lon, channel)``, a few leading rows at a time: a dask-backed
    field is streamed, and no frame is summed in a narrower float (float16
    overflows beyond 65504)."""
    data = field.transpose(..., *GRID_DIMS).data
    for rows in row_blocks(data):
        block = np.asarray(data[rows], dtype=np.float64)
        yield block.reshape(-1, *block.shape[-3:])


def cell_sums(field: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Every cell's sum of values (NaN skipped), in float64, and their count,
    ``(lat, lon, channel)`` each."""
    sums, counts = 0.0, 0
    for block in frames(field):
        valid = ~np.isnan(block)
        sums = sums + np.where(valid, block, 0.0).sum(axis=0)
        counts = counts + valid.sum(axis=0)
    return sums, counts


def squared_deviations(field: xr.DataArray, center: np.ndarray) -> np.ndarray:
    """Every cell's sum of ``(x - center) ** 2`` over its values (NaN skipped),
    in float64, ``(lat, lon, channel)``; ``center`` broadcasts to a frame."""
    total = 0.0
    for block in frames(field):
        deviations = block - center
        total = total + np.where(np.isnan(deviations), 0.0, deviations**2).sum(axis=0)
    return total


def anomaly_blocks(field: xr.DataArray, climatology: Climatology) -> Iterator[np.ndarray]:
    """The anomalies of a ``(time, lat, lon, channel)`` field from ``climatology``,
    float64, a dask chunk of times at a time."""
    times = field["time"].values
    for rows in row_blocks(field.data):
        yield np.asarray(field.data[rows], np.float64) - climatology.at(times[rows])


def streamed_anomaly_std(field: xr.DataArray, climatology: Climatology) -> np.ndarray:
    """Per channel, the standard deviation of the finite anomalies of ``field``
    (`anomaly_blocks`), in two passes as ``np.nanstd`` computes it, holding one
    block at a time; NaN for a channel without finite anomalies."""
    sums, counts = 0.0, 0
    for block in anomaly_blocks(field, climatology):
        finite = np.isfinite(block)
        sums = sums + np.where(finite, block, 0.0).sum(axis=(0, 1, 2))
        counts = counts + finite.sum(axis=(0, 1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    squares = 0.0
    for block in anomaly_blocks(field, climatology):
        deviations = block - mean
        squares = squares + np.where(np.isfinite(deviations), deviations**2, 0.0).sum(
            axis=(0, 1, 2)
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(squares / counts)
