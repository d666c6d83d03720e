"""Predictors, and wrappers that make one predictor of others (after GraphCast's
``predictor_base`` and ``normalization``).

A predictor (`Predictor`) is a callable on **normalized** windows: the
``(n, input_length, lat, lon, channel)`` inputs a network sees (the run's
variables normalized with its training statistics, then its extra inputs)
to normalized ``(n, horizon, lat, lon, target)`` forecasts. That is what a
trained network, a fitted ARIMA and the baselines compute, and what
validation and the test score (`stconv.evaluation.scoring.evaluate`). An
ensemble predictor gives ``(member, n, horizon, lat, lon, target)`` and names
its members in ``members`` (`members_of`: () for a single forecast).

Wrappers take a predictor and are one:

- `Ensemble`: several predictors (runs of several seeds) stacked as members;
- `Perturbed`: members of one predictor from inputs with Gaussian noise;
- `Normalized`: a predictor on **physical** windows (raw data in, forecasts
  in physical units out, NaN outside a mask); `field_forecasts` streams a
  whole field through it batch by batch.

``Normalized(Perturbed(predict, 4, 0.1, 1), normalizer, 1)`` forecasts raw
windows as four members. `check_members` is the one check of the ensemble
parameters (``members``, ``perturbation``, ``mean``), in errors that name them.
"""

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import dask
import dask.array
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from stconv.checks import ParameterError
from stconv.data.features import ExtraInputs
from stconv.data.footprint import physical_memory
from stconv.data.normalization import Normalizer
from stconv.data.sources import model_inputs
from stconv.evaluation.inference import field_batches, predicted_batches, to_physical, unpadded
from stconv.evaluation.netcdf import valid_times

# The largest noise of perturbed members, in training standard deviations: ten
# times the largest that `stconv.runs.forecaster.Forecaster.choose_perturbation`
# tries; beyond it the inputs are noise.
MAX_PERTURBATION = 100.0
# A batch of perturbed members holds about this many copies of each member's
# windows at once: the noise, the perturbed inputs, the forecasts and their
# sorted copy for the CRPS.
MEMBER_COPIES = 4


class Predictor(Protocol):
    """Normalized ``(n, input_length, lat, lon, channel)`` windows to normalized
    forecasts ``(n, horizon, lat, lon, target)``; an ensemble's with a leading
    ``member`` axis, its members named in an attribute ``members``."""

    def __call__(self, inputs: np.ndarray) -> jax.Array: ...


def members_of(predictor: Predictor) -> tuple[str, ...]:
    """The names of ``predictor``'s members; () for a single forecast."""
    return tuple(getattr(predictor, "members", ()))


class Ensemble:
    """The ensemble of ``predictors`` (runs of one configuration but the seed),
    one member each, named ``names``.

    Raises:
      ValueError: for fewer than two members, or a member that is an ensemble.
    """

    def __init__(self, predictors: Sequence[Predictor], names: Sequence[str]):
        if len(predictors) < 2:
            raise ValueError(f"an ensemble needs two members or more, not {len(predictors)}")
        for predictor, name in zip(predictors, names, strict=True):
            if members_of(predictor):
                raise ValueError(f"member {name!r} is an ensemble itself: give single forecasts")
        self.predictors, self.members = tuple(predictors), tuple(names)

    def __call__(self, inputs: np.ndarray) -> jax.Array:
        return jnp.stack([predictor(inputs) for predictor in self.predictors])


class Perturbed:
    """An ensemble of ``members`` forecasts of ``predictor`` from its inputs
    with Gaussian noise of ``scale`` (normalized: training standard
    deviations) added to the first ``variables`` channels (not to static or
    calendar inputs), drawn anew on every call from one generator of ``seed``
    (`stconv.evaluation.ensemble` scores them).

    Raises:
      ParameterError: as `check_members`.
    """

    def __init__(
        self, predictor: Predictor, members: int, scale: float, variables: int, seed: int = 0
    ):
        check_members(predictor, members, scale)
        self.predictor, self.scale, self.variables = predictor, scale, variables
        self.members = tuple(f"perturbation {k}" for k in range(members))
        self.rng = np.random.default_rng(seed)

    def __call__(self, inputs: np.ndarray) -> jax.Array:
        inputs = np.asarray(inputs)
        noise = np.zeros((len(self.members), *inputs.shape), np.float32)
        noise[..., : self.variables] = self.rng.normal(
            0.0, self.scale, (len(self.members), *inputs.shape[:-1], self.variables)
        )
        return jnp.stack([self.predictor(inputs + n) for n in noise])


class Normalized:
    """``predictor`` on physical windows: raw ``(n, input_length, lat, lon,
    variable)`` windows are normalized with ``normalizer`` as in training (NaN
    set to the training mean, then the ``extra`` inputs), forecast, and turned
    back into the physical units of the first ``outputs`` channels."""

    def __init__(
        self,
        predictor: Predictor,
        normalizer: Normalizer,
        outputs: int,
        extra: ExtraInputs | None = None,
    ):
        self.predictor, self.normalizer, self.outputs = predictor, normalizer, outputs
        self.extra = extra
        self.members = members_of(predictor)

    def inputs(self, windows: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        """Raw windows as the predictor sees them; ``times`` ``(n, input_length)``."""
        return model_inputs(windows, self.normalizer, times, self.extra)

    def physical(
        self,
        predictions,
        mask: np.ndarray,
        valid: np.ndarray | None = None,
        rows: int | None = None,
    ) -> np.ndarray:
        """The predictor's forecasts (its first ``rows``) in physical units, NaN
        outside ``mask``; ``valid`` ``(n, horizon)`` their valid times. An
        ensemble's are ``(n, member, horizon, lat, lon, target)``."""
        rows = len(predictions[0] if self.members else predictions) if rows is None else rows
        predictions = predictions[:, :rows] if self.members else unpadded(predictions, rows)
        normalizer = self.normalizer.first(self.outputs)
        physical = to_physical(predictions, normalizer, mask[..., : self.outputs], valid)
        return np.moveaxis(physical, 0, 1) if self.members else physical

    def __call__(
        self,
        windows: np.ndarray,
        mask: np.ndarray,
        times: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> np.ndarray:
        """Physical forecasts of raw ``windows``, NaN outside ``mask``."""
        return self.physical(self.predictor(self.inputs(windows, times)), mask, valid)


def field_forecasts(
    normalized: Normalized,
    field: xr.DataArray,
    mask: np.ndarray,
    input_length: int,
    horizon: int,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Physical forecasts (`Normalized.physical`) of the windows ``start ..
    stop - 1`` of a raw ``(time, lat, lon, channel)`` field (default all),
    NaN outside ``mask``, one batch of ``batch_size`` windows at a time, each
    padded to that size so a jitted predictor compiles once, the next sent to
    the device while the previous is turned back (`stconv.evaluation.inference`)."""
    count = field.sizes["time"] - input_length + 1
    stop = count if stop is None else stop
    batch_size = min(batch_size, count)
    batches = field_batches(
        field, input_length, normalized.normalizer, batch_size, start, stop, normalized.extra
    )
    times, first = field["time"].values, start
    model = {"model": normalized.predictor}
    for batch, _, predictions in predicted_batches(model, batches, batch_size):
        rows = len(batch["inputs"])
        valid = valid_times(times, input_length, horizon, first, first + rows)
        first += rows
        yield normalized.physical(predictions["model"], mask, valid, rows)


def lazy_forecasts(
    normalized: Normalized,
    field: xr.DataArray,
    mask: np.ndarray,
    input_length: int,
    horizon: int,
    batch_size: int,
) -> dask.array.Array:
    """`field_forecasts` of every window of ``field`` as a dask array
    ``(n, [member,] horizon, lat, lon, target)``: each block of ``batch_size``
    windows is forecast when it is read."""
    count = field.sizes["time"] - input_length + 1
    size, members = min(batch_size, count), normalized.members
    shape = (len(members),) * bool(members) + (horizon, *field.shape[1:3], normalized.outputs)

    def block(start: int, stop: int) -> np.ndarray:
        args = (input_length, horizon, batch_size, start, stop)
        return next(field_forecasts(normalized, field, mask, *args))

    blocks = [
        dask.array.from_delayed(
            dask.delayed(block)(start, min(start + size, count)),
            (min(start + size, count) - start, *shape),
            np.float32,
        )
        for start in range(0, count, size)
    ]
    return dask.array.concatenate(blocks)


def check_members(
    predictor: Predictor,
    members: int | None = None,
    perturbation: float | None = None,
    mean: bool = False,
    fitted: str | None = None,
    where: str = "this forecaster",
    batch_bytes: int | None = None,
) -> None:
    """Raises `stconv.checks.ParameterError`, naming the parameter, unless the
    ensemble options fit ``predictor`` (of ``where``, for the message): a
    ``perturbation`` needs ``members``; perturbed ``members`` (2 or more, and
    at most `max_members` of ``batch_bytes``, the float32 inputs and forecasts
    of one batch) of a predictor that is no ensemble yet nor a model
    ``fitted`` per cell (ARIMA), with a finite ``perturbation`` in (0,
    `MAX_PERTURBATION`] (None: to be chosen); ``mean`` of an ensemble only."""
    ensemble = members_of(predictor)
    if perturbation is not None and members is None:
        raise ParameterError(
            "{perturbation} needs {members} K: the number of perturbed forecasts",
            perturbation=None,
            members=None,
        )
    if mean and not ensemble:
        raise ParameterError(
            f"{{mean}}: {where} has one member: ensemble options need a run of several "
            "seeds ({iterations} N) or {members} K",
            mean=None,
            iterations=None,
            members=None,
        )
    if members is None:
        return
    if ensemble:
        raise ParameterError(
            f"{{members}}: {where} is an ensemble of {len(ensemble)} seeds already: give "
            "the folder of one seed (seed-N) to perturb its inputs",
            members=None,
        )
    if fitted:
        raise ParameterError(
            f"{{members}}: a {fitted} run fits each cell's own series: input "
            "perturbations apply to networks only",
            members=None,
        )
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ParameterError("{members} is invalid: must be an integer >= 1", members=members)
    if members < 2:
        raise ParameterError("{members} is invalid: an ensemble needs 2 or more", members=members)
    most = max_members(batch_bytes) if batch_bytes else members
    if members > most:
        raise ParameterError(
            f"{{members}} is invalid: at most {most} members fit in half of this machine's "
            f"{physical_memory() / 2**30:.0f} GiB of memory ({batch_bytes / 2**20:.2g} MiB "
            "per member and batch, about four copies each)",
            members=members,
        )
    if perturbation is not None and not (
        isinstance(perturbation, int | float) and math.isfinite(perturbation)
        and 0 < perturbation <= MAX_PERTURBATION
    ):  # fmt: skip
        raise ParameterError(
            f"{{perturbation}} is invalid: must be a finite number in (0, {MAX_PERTURBATION:g}] "
            "training standard deviations",
            perturbation=perturbation,
        )


def max_members(batch_bytes: int) -> int:
    """The most perturbed members whose batches, of ``batch_bytes`` per member
    (its float32 inputs and forecasts), fit in half of this machine's memory
    in `MEMBER_COPIES` copies; at least 2."""
    return max(2, physical_memory() // 2 // (MEMBER_COPIES * batch_bytes))
