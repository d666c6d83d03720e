"""Forecast scores over a whole dataset, per lead time, in physical units, masked.

Every score is one `Metric` of the table `METRICS`: the sums it needs from
each batch, and its value from those sums. `ErrorAccumulator` adds the sums up
over all batches; `stconv.evaluation.scores` makes them a Dataset, from which
``results.json``, the printed tables, the multi-seed summary and the skill
plot are derived, so a new score is one entry (how it is shown, its label
and columns, is `stconv.runs.presentation.PRESENTATION`, keyed by its name).

For every lead time, over all windows and valid cells (``e`` the error
forecast - truth in physical units, ``w`` the area weight of the cell's
row, `area_weights`):

- RMSE ``sqrt(sum e^2 / n)`` and MAE ``sum |e| / n``, unweighted, as the paper reports;
- area-weighted RMSE ``sqrt(sum w e^2 / sum w)`` and MAE ``sum w |e| / sum w``
  (WeatherBench 2);
- mean bias ``sum e / n``;
- the anomaly correlation coefficient against the training climatology ``c``:
  per window, ``ACC = sum w f' o' / sqrt(sum w f'^2 * sum w o'^2)`` with
  ``f' = forecast - c`` and ``o' = truth - c`` over the window's valid cells,
  then the mean over windows (WeatherBench 2's uncentred ACC). A forecast
  without anomaly (climatology itself) scores 0.

Errors are accumulated as sums per lead time over all batches, so the RMSE is
that of the whole set, not a mean of per-batch RMSEs (which the reference
reports).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stconv.data.errors import DataError


def area_weights(lat: np.ndarray, source: str = "the data") -> np.ndarray | None:
    """The area of each row's cells, normalised to mean 1: the band of the
    sphere from halfway to the row before to halfway to the next, half a
    step beyond the first and last rows, within -90..90 (WeatherBench-X's
    grid-area weights); ``cos(latitude)`` on a regular grid without the
    poles, and a pole's row keeps the sliver of area up to the pole. None for
    a single row (nothing to weight).

    Raises:
      DataError: naming ``source``, for latitudes outside [-90, 90] or not monotonic.
    """
    lat = np.asarray(lat, np.float64)
    if len(lat) < 2:
        return None
    if not np.all(np.abs(lat) <= 90):
        raise DataError(
            f"{source}: latitudes {lat.min():g}..{lat.max():g} are outside [-90, 90]: area "
            "weights need geographic latitudes (pass evaluation.area_weights=False for another "
            "grid)"
        )
    steps = np.diff(lat)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise DataError(
            f"{source}: latitudes are not monotonic: area weights need a regular "
            "latitude-longitude grid (pass evaluation.area_weights=False for another grid)"
        )
    middles = (lat[1:] + lat[:-1]) / 2
    edges = lat[0] - steps[0] / 2, lat[-1] + steps[-1] / 2
    bounds = np.clip(np.concatenate([[edges[0]], middles, [edges[1]]]), -90, 90)
    weights = np.abs(np.diff(np.sin(np.deg2rad(bounds))))
    return (weights / weights.mean()).astype(np.float32)


def grid_weights(
    latitudes: np.ndarray | None, enabled: bool = True, source: str = "the data"
) -> np.ndarray | None:
    """The one rule for area weights: `area_weights` of a grid's
    ``latitudes`` (`stconv.data.grid.Grid.latitudes`: None where its rows are
    not latitudes), None when not ``enabled`` (``evaluation.area_weights``) or
    there are none.

    Raises:
      DataError: naming ``source``, for latitudes that cannot be weighted.
    """
    if not enabled or latitudes is None:
        return None
    return area_weights(latitudes, source)


class Terms(NamedTuple):
    """What a metric sums over one batch ``(batch, lead, lat, lon, channels)``, in
    physical units, each 0 outside the valid cells."""

    error: jax.Array  # forecast - truth
    weight: jax.Array  # the cell's area weight
    mask: jax.Array  # valid cells
    forecast_anomaly: jax.Array  # forecast - climatology
    truth_anomaly: jax.Array  # truth - climatology


def over_cells(x: jax.Array) -> jax.Array:
    """Per lead time and channel (variable): the sum over windows and cells."""
    return jnp.sum(x, axis=(0, 2, 3))


def in_window(x: jax.Array) -> jax.Array:
    """Per window, lead time and channel: the sum over the window's cells."""
    return jnp.sum(x, axis=(2, 3))


@dataclasses.dataclass(frozen=True)
class Metric:
    """A score: per-lead sums over each batch, and the score from summed sums
    (the mathematics only: how a score is shown is
    `stconv.runs.presentation.PRESENTATION`).

    Attributes:
      sums: `Terms` of one batch -> ``{name: (window, lead, channel) sums}``,
        each window's sums over its cells (traced by JAX; metrics that need
        the same sum give it the same name). Summed over windows they give
        the score of the whole set; resampled windows give its bootstrap
        (`stconv.evaluation.significance`).
      value: the summed sums -> the score, elementwise: called per lead time
        and channel (arrays ``(lead, channel)``), per channel over the whole
        set (the sums over leads), and per bootstrap replicate.
      in_units: in the data's units (an error), or a pure number (ACC).
      needs_climatology: scored only where a training climatology is known.
      weighted: area-weighted (equal to its unweighted twin where the grid
        has no latitudes).
    """

    sums: Callable[[Terms], dict[str, jax.Array]]
    value: Callable[[dict[str, np.ndarray]], np.ndarray]
    in_units: bool = True
    needs_climatology: bool = False
    weighted: bool = False


def squared_sums(t: Terms) -> dict[str, jax.Array]:
    return {"squared": in_window(jnp.square(t.error)), "count": in_window(t.mask)}


def absolute_sums(t: Terms) -> dict[str, jax.Array]:
    return {"absolute": in_window(jnp.abs(t.error)), "count": in_window(t.mask)}


def signed_sums(t: Terms) -> dict[str, jax.Array]:
    return {"signed": in_window(t.error), "count": in_window(t.mask)}


def weighted_squared_sums(t: Terms) -> dict[str, jax.Array]:
    squared = in_window(t.weight * jnp.square(t.error))
    return {"weighted_squared": squared, "weight": in_window(t.weight)}


def weighted_absolute_sums(t: Terms) -> dict[str, jax.Array]:
    absolute = in_window(t.weight * jnp.abs(t.error))
    return {"weighted_absolute": absolute, "weight": in_window(t.weight)}


def anomaly_correlation_sums(t: Terms) -> dict[str, jax.Array]:
    """Each window's ACC per variable (0 where the window has no valid anomaly), and
    whether it has one: summed over windows, the mean ACC of the scored windows."""
    space = (2, 3)
    covariance = jnp.sum(t.weight * t.forecast_anomaly * t.truth_anomaly, axis=space)
    forecast_power = jnp.sum(t.weight * jnp.square(t.forecast_anomaly), axis=space)
    truth_power = jnp.sum(t.weight * jnp.square(t.truth_anomaly), axis=space)
    scored = truth_power > 0  # windows (and padding) with no valid anomaly are not scored
    acc = covariance / jnp.sqrt(jnp.where(scored, forecast_power * truth_power, 1.0) + 1e-30)
    return {"acc": jnp.where(scored, acc, 0.0), "acc_windows": scored.astype(acc.dtype)}


def per_cell(name: str) -> Callable[[dict], np.ndarray]:
    """The mean of sum ``name`` over the valid cells."""
    return lambda sums: sums[name] / np.maximum(sums["count"], 1)


def per_weight(name: str) -> Callable[[dict], np.ndarray]:
    """The area-weighted mean of sum ``name``."""
    return lambda sums: sums[name] / np.maximum(sums["weight"], 1e-30)


METRICS: dict[str, Metric] = {
    "rmse": Metric(squared_sums, lambda s: np.sqrt(per_cell("squared")(s))),
    "weighted_rmse": Metric(
        weighted_squared_sums, lambda s: np.sqrt(per_weight("weighted_squared")(s)),
        weighted=True,
    ),
    "mae": Metric(absolute_sums, per_cell("absolute")),
    "weighted_mae": Metric(weighted_absolute_sums, per_weight("weighted_absolute"), weighted=True),
    "bias": Metric(signed_sums, per_cell("signed")),
    "acc": Metric(
        anomaly_correlation_sums, lambda s: s["acc"] / np.maximum(s["acc_windows"], 1),
        in_units=False, needs_climatology=True,
    ),
}  # fmt: skip


def applicable(with_climatology: bool) -> tuple[tuple[str, Metric], ...]:
    """The metrics of `METRICS` that can be scored, as JAX's static argument."""
    return tuple(
        (name, metric)
        for name, metric in METRICS.items()
        if with_climatology or not metric.needs_climatology
    )


@functools.partial(jax.jit, static_argnames="metrics")
def batch_sums(
    predictions: jax.Array,
    targets: jax.Array,
    mask: jax.Array,
    std: jax.Array,
    climatology: jax.Array,
    weights: jax.Array,
    metrics: tuple[tuple[str, Metric], ...],
) -> dict[str, jax.Array]:
    """Every sum of ``metrics`` over one batch ``(batch, lead, lat, lon, channels)``.

    ``std`` (per channel) turns normalized values into physical units;
    ``climatology`` ``(lat, lon, channels)`` (normalized) is the ACC's reference;
    ``weights`` ``(lat,)`` the area weights.
    """
    terms = Terms(
        error=jnp.where(mask, (predictions - targets) * std, 0.0),
        weight=jnp.where(mask, weights[:, None, None], 0.0),
        mask=mask,
        forecast_anomaly=jnp.where(mask, (predictions - climatology) * std, 0.0),
        truth_anomaly=jnp.where(mask, (targets - climatology) * std, 0.0),
    )
    sums = {}
    for _, metric in metrics:
        sums.update(metric.sums(terms))
    return sums


class ErrorAccumulator:
    """Adds up the sums of `METRICS` batch by batch (in float64 on the host),
    keeping each window's sums (`window_sums`).

    Args:
      climatology: ``(lat, lon, channels)`` normalized reference of the ACC;
        None leaves the metrics that need it out, unless ``batch_climatology``.
      weights: ``(lat,)`` area weights (`area_weights`); None weighs every
        cell alike (then the weighted scores equal the unweighted ones).
      batch_climatology: every batch comes with its own reference (a
        climatology by time of year, `add`).
    """

    def __init__(
        self,
        climatology: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        batch_climatology: bool = False,
    ):
        self.climatology = climatology
        self.weights = weights
        self.metrics = applicable(climatology is not None or batch_climatology)
        self.batches: list[dict[str, np.ndarray]] = []
        self.cells_per_frame = 0

    def add(self, predictions, targets, mask, std, climatology=None, rows=None) -> None:
        """Adds one batch ``(batch, lead, lat, lon, channels)``, normalized;
        ``climatology`` the batch's own ACC reference, of the same shape;
        ``rows`` the batch's windows (the rest is padding), default all."""
        lat, lon = targets.shape[2:4]
        if climatology is None:
            climatology = 0.0 if self.climatology is None else self.climatology
        weights = np.ones(lat, np.float32) if self.weights is None else self.weights
        sums = batch_sums(predictions, targets, mask, std, climatology, weights, self.metrics)
        self.batches.append({k: np.asarray(v, np.float64)[:rows] for k, v in sums.items()})
        self.cells_per_frame = lat * lon

    def window_sums(self) -> dict[str, np.ndarray]:
        """Every sum of every window added, in order: ``{name: (window, lead, channel)}``."""
        return {k: np.concatenate([b[k] for b in self.batches]) for k in self.batches[0]}

    def result(self) -> list[dict]:
        """Per channel (target variable): every metric over everything and
        ``..._per_lead``, the number of ``cells`` scored and whether they were
        ``area_weighted``.

        Raises:
          ValueError: naming the channel, if one has no valid cell to score.
        """
        windows = self.window_sums()
        sums = {name: values.sum(axis=0) for name, values in windows.items()}
        count = sums["count"].sum(axis=0)
        empty = np.flatnonzero(count == 0)
        if len(empty):
            where = f" of channel {empty[0]}" if len(count) > 1 else ""
            raise ValueError(
                f"no valid target{where} to score: every target cell is missing (NaN) or masked"
            )
        totals = {name: values.sum(axis=0) for name, values in sums.items()}
        overall = {name: np.asarray(metric.value(totals)) for name, metric in self.metrics}
        per_lead = {name: np.asarray(metric.value(sums)) for name, metric in self.metrics}
        reference = reference_rmse(windows["squared"], self.cells_per_frame)
        results = []
        for channel in range(len(count)):
            result = {}
            for name, _ in self.metrics:
                result[name] = float(overall[name][channel])
                result[f"{name}_per_lead"] = per_lead[name][:, channel].tolist()
            result[REFERENCE_RMSE] = float(reference["overall"][channel])
            result[f"{REFERENCE_RMSE}_per_lead"] = reference["per_lead"][:, channel].tolist()
            result.update(cells=int(count[channel]), area_weighted=self.weights is not None)
            results.append(result)
        return results


REFERENCE_RMSE = "rmse_reference"  # the reference implementation's test score
REFERENCE_BATCH = 15  # the reference's test batch size


def reference_rmse(
    squared: np.ndarray, cells_per_frame: int, batch_size: int = REFERENCE_BATCH
) -> dict[str, np.ndarray]:
    """The test score of the reference implementation: the mean over batches
    of ``batch_size`` windows, in order (the last one may be smaller), of
    ``sqrt(MSE + 1e-6)``, the MSE over every cell of the batch: a masked or
    missing cell counts with error 0, as the reference's output multiplied by
    the land mask does, and the mean still covers it.

    Args:
      squared: ``(window, lead, channel)`` each window's sum of squared errors
        over its valid cells (physical units).
      cells_per_frame: the cells of one frame (lat * lon), valid or not.

    Returns:
      ``{"overall": (channel,), "per_lead": (lead, channel)}``: over all lead
      times (as the reference reports), and of each lead time alone.
    """
    starts = np.arange(0, len(squared), batch_size)
    batch_sums = np.add.reduceat(squared, starts, axis=0)  # (batch, lead, channel)
    windows = np.diff(np.append(starts, len(squared)))[:, None]
    leads = squared.shape[1]
    overall = np.sqrt(batch_sums.sum(axis=1) / (windows * leads * cells_per_frame) + 1e-6)
    per_lead = np.sqrt(batch_sums / (windows[:, None] * cells_per_frame) + 1e-6)
    return {"overall": overall.mean(axis=0), "per_lead": per_lead.mean(axis=0)}


def skill(mse: float | np.ndarray, reference_mse: float | np.ndarray) -> float | np.ndarray:
    """``1 - MSE / MSE_reference``: 1 is perfect, 0 no better than the reference."""
    return 1.0 - np.asarray(mse) / np.maximum(np.asarray(reference_mse), 1e-30)
