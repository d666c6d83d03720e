"""The simple forecasts a model is scored beside, each with one meaning
whatever the run's flags (`stconv.evaluation.scores.BASELINES`):

- ``persistence``: the last input frame, for every lead time;
- ``climatology``: the training split's climatology of the target frame's
  time (each cell's mean for annual data, `stconv.data.climatology`);
- ``input_mean``: each cell's mean over the input window;
- where the climatology is by time of year (month, day of year, hour), the
  seasonal forecaster's first two references: ``anomaly_persistence``, the
  last input frame's anomaly from the climatology added to the climatology
  of each lead time, ``c(t + l) + a(t)``; and ``damped_anomaly_persistence``,
  ``c(t + l) + r_l a(t)`` with ``r_l`` per lead time and variable fitted on
  the training split (`fit_damping`).

All are computed on normalized values and scored in physical units. The
forecasts that need only the inputs are functions of them (`baselines`);
those that need the windows' times are carried by the windows
(`WithTimedBaselines`) under their names. Where the normalization subtracts
a climatology (its mean moves with the time of year), persistence and the
input mean are carried too, made in physical units: the last frame's value,
not its anomaly.
"""

from collections.abc import Callable, Iterable

import numpy as np

from stconv.data.climatology import Climatology, member_frames
from stconv.data.normalization import Normalizer

Predictor = Callable[[np.ndarray], np.ndarray]
ANOMALY_PERSISTENCE = "anomaly_persistence"
DAMPED_ANOMALY_PERSISTENCE = "damped_anomaly_persistence"
CLIMATOLOGICAL_ENSEMBLE = "climatological_ensemble"


def persistence(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """The last input frame, repeated ``horizon`` times."""
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def input_mean(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """Each cell's mean over the input window, for every lead time."""
    return np.repeat(inputs.mean(axis=1, keepdims=True), horizon, axis=1)


def climatology_forecast(climatology: np.ndarray, inputs: np.ndarray, horizon: int) -> np.ndarray:
    """The training-period mean of every cell, for every lead time."""
    return np.broadcast_to(climatology, (len(inputs), horizon, *climatology.shape))


def baselines(
    climatology: np.ndarray | str | None,
    horizon: int,
    outputs: int | None = None,
    carried: tuple[str, ...] = (),
) -> dict[str, Predictor | None]:
    """Persistence, climatology, the input mean and the ``carried`` forecasts
    as forecasters of the first ``outputs`` channels (the target variables;
    default all); a carried one is None (`evaluate` reads it from the batches).

    ``climatology``: ``(lat, lon, channels)`` normalized, the same for every
    window; ``"carried"`` where the windows carry it (`WithTimedBaselines`);
    None where it is not known.
    """
    forecasters: dict[str, Predictor | None] = {
        "persistence": lambda inputs: persistence(inputs[..., :outputs], horizon)
    }
    if isinstance(climatology, str):
        forecasters["climatology"] = None
    elif climatology is not None:
        climatology = climatology[..., :outputs]
        forecasters["climatology"] = lambda x: climatology_forecast(climatology, x, horizon)
    forecasters["input_mean"] = lambda inputs: input_mean(inputs[..., :outputs], horizon)
    forecasters.update({name: None for name in carried})
    return forecasters


def fit_damping(
    series: np.ndarray, times: np.ndarray, climatology: Climatology, horizon: int
) -> np.ndarray:
    """The damping factor of the anomaly per lead time and variable: the
    least-squares slope through the origin of the anomaly ``l`` steps later
    on the anomaly now, ``sum a(t) a(t+l) / sum a(t)^2`` over every pair of
    training frames and cell where both are known (0 where no anomaly is).

    Args:
      series: ``(time, lat, lon, channel)`` the training split's frames of
        the targets, physical units, in time order.
      times: their times.
      climatology: the targets' climatology.
      horizon: the lead times.

    Returns:
      ``(horizon, channel)`` factors.
    """
    return fit_damping_blocks([(series, times)], climatology, horizon)


def fit_damping_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], climatology: Climatology, horizon: int
) -> np.ndarray:
    """`fit_damping` of a series read a block at a time, in time order: the
    same sums, with the last ``horizon`` anomalies of a block carried into the
    next, so memory holds one block whatever the series' length (one block:
    `fit_damping` itself).

    Args:
      blocks: ``(frames, times)`` consecutive blocks of the series
        (`stconv.data.sources.FieldWindows.series_blocks`).
      climatology: the targets' climatology.
      horizon: the lead times.

    Returns:
      ``(horizon, channel)`` factors, equal to those of the series at once up
      to rounding.
    """
    products = power = 0.0
    carried = None
    for frames, times in blocks:
        anomalies = np.asarray(frames, np.float64) - climatology.at(times)
        joined = anomalies if carried is None else np.concatenate([carried, anomalies])
        block_products, block_power = lagged_sums(joined, len(joined) - len(anomalies), horizon)
        products, power = products + block_products, power + block_power
        carried = joined[-horizon:]
    if carried is None:
        raise ValueError("blocks is empty: fit_damping_blocks needs at least one frame")
    return np.where(power > 0, products / np.maximum(power, 1e-300), 0.0)


def lagged_sums(anomalies: np.ndarray, carried: int, horizon: int) -> tuple[np.ndarray, ...]:
    """``sum a(t) a(t+l)`` and ``sum a(t)^2`` per lead ``l`` and channel, over the
    pairs of ``anomalies`` whose later frame is past the first ``carried``
    (those were summed with the previous block): ``(horizon, channel)`` each."""
    channels = anomalies.shape[-1]
    products, power = np.zeros((horizon, channels)), np.zeros((horizon, channels))
    for lead in range(1, horizon + 1):
        first = max(carried - lead, 0)
        stop = max(len(anomalies) - lead, first)
        now, later = anomalies[first:stop], anomalies[first + lead :]
        both = np.isfinite(now) & np.isfinite(later)
        products[lead - 1] = np.where(both, now * later, 0.0).sum(axis=(0, 1, 2))
        power[lead - 1] = np.where(both, now * now, 0.0).sum(axis=(0, 1, 2))
    return products, power


def training_damping(train, outputs: int, climatology: Climatology, horizon: int) -> np.ndarray:
    """`fit_damping` of the first ``outputs`` channels of the training split
    ``train`` (`stconv.data.sources.FieldWindows`): its series at once in
    memory, a time chunk at a time where it is read in blocks (dask-backed),
    so that memory does not grow with its length (`fit_damping_blocks`)."""
    return fit_damping_blocks(train.series_blocks(outputs), climatology, horizon)


class WithTimedBaselines:
    """The windows of ``source`` with the baselines that need their times,
    normalized, ``(horizon, lat, lon, outputs)``: the climatology at the
    target frames (``"climatology"``: its forecast and the ACC's reference),
    the anomaly persistence and, given ``damping``, the damped one; and where
    ``normalizer`` subtracts a climatology, persistence and the input mean.

    Args:
      source: windows with their times (`stconv.data.sources.FieldWindows`).
      climatology: the targets' climatology, physical units.
      normalizer: the targets' normalizer.
      damping: ``(horizon, outputs)`` factors of `fit_damping`, or None.
    """

    def __init__(
        self,
        source,
        climatology: Climatology,
        normalizer: Normalizer,
        damping: np.ndarray | None = None,
    ):
        self.source = source
        self.mask = source.mask  # the static mask of every channel
        self.climatology = climatology
        self.normalizer = normalizer
        self.damping = damping
        self.valid = source.valid_times()
        self.init = source.init_times()
        seasonal = climatology.kind != "annual"
        self.timed_mean = seasonal and normalizer.climatology is not None
        self.input_at = source.input_times() if self.timed_mean else None
        self.carried = (
            *(("persistence", "input_mean") if self.timed_mean else ()),
            *((ANOMALY_PERSISTENCE,) if seasonal else ()),
            *((DAMPED_ANOMALY_PERSISTENCE,) if seasonal and damping is not None else ()),
        )

    def __len__(self) -> int:
        return len(self.source)

    def valid_times(self) -> np.ndarray:
        return self.valid

    def init_times(self) -> np.ndarray:
        return self.init

    def input_times(self) -> np.ndarray:
        return self.source.input_times()

    def normalized_climatology(self, times: np.ndarray) -> np.ndarray:
        values = self.normalizer.normalize(self.climatology.at(times), times)
        return np.nan_to_num(values, nan=0.0).astype(np.float32)

    def __getitem__(self, index: int) -> dict:
        example = self.source[index]
        valid = self.valid[index]
        reference = self.normalized_climatology(valid)
        carried = {"climatology": reference}
        inputs = example["inputs"][..., : reference.shape[-1]]
        if ANOMALY_PERSISTENCE in self.carried:
            start = self.normalized_climatology(self.init[index : index + 1])
            anomaly = inputs[-1:] - start
            carried[ANOMALY_PERSISTENCE] = reference + anomaly
            if self.damping is not None:
                damped = self.damping[:, None, None, :] * anomaly
                carried[DAMPED_ANOMALY_PERSISTENCE] = (reference + damped).astype(np.float32)
        if self.timed_mean:  # the physical last frame and input mean, normalized at each lead
            physical = self.normalizer.denormalize(inputs, self.input_at[index])
            last, mean = physical[-1:], physical.mean(axis=0, keepdims=True)
            for name, values in (("persistence", last), ("input_mean", mean)):
                normalized = self.normalizer.normalize(values, valid).astype(np.float32)
                carried[name] = normalized
        return {**example, **carried}


class WithClimatologicalEnsemble:
    """The windows of ``source`` with the climatological ensemble of their
    target frames, normalized, under ``"climatological_ensemble"``
    (``(members, horizon, lat, lon, outputs)``): the training split's values
    at the same time of year, one member per training year
    (`stconv.data.climatology.member_frames`; every training frame for annual data).

    Args:
      source: windows with their valid times (`stconv.data.sources.FieldWindows`).
      train: ``(time, lat, lon, outputs)`` the training split's frames of the
        targets, physical units: an array, or frames indexed like one and read
        on demand (`stconv.data.sources.FieldWindows.series_frames`, which reads
        a dask-backed split a time chunk at a time).
      train_times: their times.
      climatology: the targets' climatology (its slots pair the times of year).
      normalizer: the targets' normalizer.
      what: the data, for errors.
    """

    def __init__(
        self,
        source,
        train: np.ndarray,
        train_times: np.ndarray,
        climatology: Climatology,
        normalizer: Normalizer,
        what: str = "the training split",
    ):
        self.source = source
        self.mask = source.mask  # the static mask of every channel
        self.valid = source.valid_times()
        self.train = train
        self.frames = member_frames(climatology, train_times, what)
        self.climatology = climatology
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.source)

    def valid_times(self) -> np.ndarray:
        return self.valid

    def init_times(self) -> np.ndarray:
        return self.source.init_times()

    def input_times(self) -> np.ndarray:
        return self.source.input_times()

    def __getitem__(self, index: int) -> dict:
        times = self.valid[index]
        frames = self.frames[self.climatology.index(times)].T  # (members, horizon)
        values = self.normalizer.normalize(self.train[frames], np.broadcast_to(times, frames.shape))
        members = np.nan_to_num(values, nan=0.0).astype(np.float32)
        return {**self.source[index], CLIMATOLOGICAL_ENSEMBLE: members}
