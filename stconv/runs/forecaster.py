"""`Forecaster`: a trained run, forecasting, writing and scoring data.

    forecaster = Forecaster.load("runs/hadcm3-a1b")
    forecast = forecaster.forecast("new.nc")  # or an xarray Dataset or DataArray
    forecast.sel(lead_time=1).isel(init_time=0).plot()
    forecaster.write("new.nc", "forecast.nc")  # what `stconv predict` does
    results = forecaster.evaluate("new.nc")  # the model, persistence, climatology

Every forecast of a run goes one way from raw data to the model and back
(`stconv.evaluation.inference`): the run's variables are read as a
``(time, lat, lon, channel)`` field, each window of ``input_length`` frames
is normalized with the run's statistics (as in training), forecast in batches
of ``eval_batch_size`` windows, and turned back into physical units, NaN
outside the run's mask. Every score of a run goes one way too: `score`, with
one rule for area weights. The test at the end of training, ``stconv
evaluate``, ``stconv predict`` and this class's methods all use them.
"""

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import dask
import dask.array
import jax.numpy as jnp
import numpy as np
import xarray as xr

from stconv import models
from stconv.checks import check_positive
from stconv.config import PERTURBATION_SCALES, Config
from stconv.data.checks import check_extremes, check_values
from stconv.data.climatology import Climatology
from stconv.data.errors import DataError
from stconv.data.features import ExtraInputs, calendar_names
from stconv.data.files import CHANNEL_ATTRIBUTES, dataset_field, open_field
from stconv.data.masks import nan_mask
from stconv.data.normalization import Normalizer
from stconv.data.registry import Dataset, grid_of, targets_first
from stconv.data.sources import FieldWindows
from stconv.data.windows import WindowSpec
from stconv.evaluation.inference import (
    field_batches,
    predicted_batches,
    to_physical,
    unpadded,
)
from stconv.evaluation.metrics import grid_weights
from stconv.evaluation.netcdf import forecast_dims, forecast_writer, lead_times, variable_attrs
from stconv.evaluation.scoring import (
    CLIMATOLOGICAL_ENSEMBLE,
    WithClimatologicalEnsemble,
    WithClimatology,
    baselines,
    check_finite,
    evaluate,
    name_and_score,
)
from stconv.runs import provenance
from stconv.runs.assembly import restore_predict
from stconv.runs.directory import RunDirectory, check_new_file, complete_description, describe_data
from stconv.training.distributed import is_primary

Data = str | os.PathLike | xr.Dataset | xr.DataArray
# Data whose mean lies further from the training data's, in their spreads,
# are in other units than they say (`Forecaster.check_magnitude`).
TYPICAL_SPREADS = 10
# The units of the data's variables that give none: one for all, or per variable.
Units = str | Mapping[str, str] | None


class Forecaster:
    """A trained run: its configuration, data description and forecast function.

    Args:
      config: the run's configuration.
      description: what the run was trained on, as its ``data.json``
        (`stconv.runs.directory.describe_data`): ``variables`` in channel order, their
        ``units``, ``input_shape``, and, for runs that recorded them, the
        ``lat`` and ``lon`` coordinates (else only the grid's shape is
        checked) and whether they are latitudes (``geographic``).
      normalizer: the training statistics.
      mask: ``(lat, lon, channel)`` cells it forecasts.
      climatology: the training climatology (physical units), or None (not recorded).
      predict: normalized ``(n, input_length, lat, lon, channel)`` windows to
        normalized ``(n, horizon, lat, lon, channel)`` forecasts.
      origin: the run's provenance record (`stconv.runs.provenance`); None for runs
        made before records were kept, and for runs not loaded from a folder.
      path: the run's folder, if it was loaded from one.
      extra: the static fields and calendar features the run reads beside
        its variables (`stconv.data.features`); None: none.
      members: the names of an ensemble's members (``seed 1000``, ...):
        ``predict`` then gives ``(members, n, horizon, lat, lon, channel)``;
        () for a single forecast.
      perturbation: the noise of `perturbed` members; None for others.
    """

    def __init__(
        self,
        config: Config,
        description: dict,
        normalizer: Normalizer,
        mask: np.ndarray,
        climatology: Climatology | None,
        predict: Callable[[np.ndarray], np.ndarray],
        origin: dict | None = None,
        path: str | None = None,
        extra: ExtraInputs | None = None,
        members: tuple[str, ...] = (),
        perturbation: float | None = None,
    ):
        self.config = config
        self.description = complete_description(description)
        self.normalizer = normalizer
        self.mask = mask
        self.climatology = climatology
        self.predict = predict
        self.origin = origin
        self.path = path
        self.extra = extra
        self.members = tuple(members)
        self.perturbation = perturbation

    @classmethod
    def load(cls, workdir: str | os.PathLike, unfinished: bool = False) -> "Forecaster":
        """The best epoch of the finished run in ``workdir`` (or its ARIMA fit),
        on the devices present. A `stconv.runs.provenance.ProvenanceWarning` per
        library whose version differs from the one that made the run.

        A run of several seeds (``--iterations N``) loads as their ensemble
        (`ensemble`): its forecasts have a ``member`` dimension.

        Args:
          workdir: the run's folder.
          unfinished: load a run whose training did not end (killed or still
            running) from its best checkpoint so far, with a warning.

        Raises:
          ValueError: naming ``workdir`` and what it lacks, if it is not a
            trained run (unless ``unfinished``).
        """
        run = RunDirectory(workdir)
        member_runs = run.member_runs()
        if member_runs:
            if not run.has(run.SUMMARY) and not unfinished:
                raise ValueError(
                    f"workdir {run.path!r} holds runs of several seeds whose training has not "
                    "ended: finish them with `stconv train --resume`, or pass --unfinished"
                )
            members = [cls.load(member.path, unfinished) for member in member_runs]
            return cls.ensemble(members, [f"seed {m.config.seed}" for m in members], run)
        config = run.config()
        description = run.data_description()
        if not run.is_trained():
            if not unfinished:
                raise ValueError(
                    f"workdir {run.path!r} holds a run whose training has not ended (killed or "
                    "still running): finish it with `stconv train --resume`, or pass "
                    "--unfinished to use its best checkpoint so far"
                )
            message = (
                f"workdir {run.path!r}: its training has not ended: using its best epoch so far"
            )
            warnings.warn(message, provenance.UnfinishedRunWarning, stacklevel=2)
        outputs = len(description["targets"])
        predict = restore_predict(run, config, tuple(description["input_shape"]), outputs)
        origin = run.provenance()
        if origin is not None:
            provenance.warn(run.path, provenance.software_changes(origin))
        normalizer, mask, climatology = run.normalizer(), run.mask(), run.climatology()
        return cls(
            config, description, normalizer, mask, climatology, predict, origin, run.path,
            run.extra_inputs(),
        )  # fmt: skip

    @classmethod
    def ensemble(
        cls, forecasters: list["Forecaster"], names: list[str], run: RunDirectory | None = None
    ) -> "Forecaster":
        """The ensemble of ``forecasters`` (runs of one config but the seed, on
        the same data): its ``predict`` stacks theirs, one member each.

        Raises:
          ValueError: for fewer than two members, or members trained otherwise.
        """
        first = forecasters[0]
        if len(forecasters) < 2:
            raise ValueError(f"an ensemble needs two members or more, not {len(forecasters)}")
        for other, name in zip(forecasters[1:], names[1:], strict=True):
            if other.config.replace(seed=first.config.seed) != first.config:
                raise ValueError(
                    f"member {name!r} was trained with another config than {names[0]!r}"
                )
        predicts = [forecaster.predict for forecaster in forecasters]

        def predict(inputs):
            return jnp.stack([member(inputs) for member in predicts])

        origin = run.provenance() if run is not None else None
        return cls(
            first.config.replace(iterations=len(forecasters)), first.description,
            first.normalizer, first.mask, first.climatology, predict, origin,
            run.path if run is not None else None, first.extra, tuple(names),
        )  # fmt: skip

    def perturbed(self, members: int, scale: float, seed: int = 0) -> "Forecaster":
        """An ensemble of ``members`` forecasts of this run from inputs with
        Gaussian noise of ``scale`` training standard deviations added to
        every variable (not to static or calendar inputs): members without
        training more networks (`stconv.evaluation.ensemble`).

        Raises:
          ValueError: as `check_perturbable`.
        """
        self.check_perturbable(members, scale)
        variables, rng = len(self.variables), np.random.default_rng(seed)
        deterministic = self.predict

        def predict(inputs):
            inputs = np.asarray(inputs)
            noise = np.zeros((members, *inputs.shape), np.float32)
            noise[..., :variables] = rng.normal(
                0.0, scale, (members, *inputs.shape[:-1], variables)
            )
            return jnp.stack([deterministic(inputs + n) for n in noise])

        names = tuple(f"perturbation {k}" for k in range(members))
        return Forecaster(
            self.config, self.description, self.normalizer, self.mask, self.climatology,
            predict, self.origin, self.path, self.extra, names, scale,
        )  # fmt: skip

    def check_perturbable(self, members: int, scale: float | None = None) -> None:
        """Raises ValueError, in one line naming the flag, unless `perturbed`
        can make ``members`` members with noise ``scale`` (None: to be chosen):
        not of an ensemble already, nor of a fitted model (ARIMA), nor fewer
        than two members, nor a scale that is not > 0."""
        if self.members:
            raise ValueError(
                f"--members: the run {self.path!r} is an ensemble of {len(self.members)} seeds "
                "already: give the folder of one seed (seed-N) to perturb its inputs"
            )
        if models.is_fitted(self.config.model):
            raise ValueError(
                f"--members: a {self.config.model} run fits each cell's own series: input "
                "perturbations apply to networks only"
            )
        check_positive("--members", members)
        if members < 2:
            raise ValueError(f"--members {members} is invalid: an ensemble needs 2 or more")
        if scale is not None and not scale > 0:
            raise ValueError(f"--perturbation {scale!r} is invalid: must be > 0")

    def choose_perturbation(
        self, source, lat: np.ndarray, members: int, scales: tuple[float, ...] = PERTURBATION_SCALES
    ) -> tuple[float, dict[float, float]]:
        """The noise of `perturbed` whose ensemble of ``members`` has the lowest
        CRPS on ``source`` (the validation split: never the test), with the CRPS
        of every noise tried; with several targets, the mean of their CRPS
        divided by their training standard deviations."""
        std = self.normalizer.std[: self.outputs]
        scores = {}
        for scale in scales:
            results = self.perturbed(members, scale).score(source, lat, "the validation split")
            crps = [
                forecasts[self.config.model]["ensemble"]["crps"] for forecasts in results.values()
            ]
            scores[scale] = float(np.mean(np.asarray(crps) / std))
        return min(scores, key=scores.get), scores

    @classmethod
    def from_dataset(
        cls, config: Config, dataset: Dataset, predict: Callable[[np.ndarray], np.ndarray]
    ) -> "Forecaster":
        """The run of ``config`` trained on ``dataset``, forecasting with ``predict``,
        as `load` would give it once its files are written."""
        return cls(
            config,
            describe_data(dataset),
            dataset.normalizer,
            dataset.mask,
            dataset.climatology,
            predict,
            extra=dataset.extra,
        )

    @property
    def variables(self) -> list[str]:
        """The input variables, as channels: the targets first."""
        return list(self.description["variables"])

    @property
    def targets(self) -> list[str]:
        """The variables forecast: the first `outputs` channels."""
        return list(self.description["targets"])

    @property
    def outputs(self) -> int:
        return len(self.targets)

    @property
    def units(self) -> list[str]:
        """The units of every input variable (``""``: none given)."""
        return list(self.description["units"])

    def target_grid(self, field: xr.DataArray) -> dict:
        """`grid_of` ``field`` for the targets only: what a forecast file holds."""
        grid = grid_of(field)
        for key in ("channel", *CHANNEL_ATTRIBUTES):
            grid[key] = grid[key][: self.outputs]
        grid["units"] = self.units[: self.outputs]  # the units the run was trained in
        return grid

    @property
    def grid(self) -> dict | None:
        """The ``lat`` and ``lon`` the run was trained on; None if not recorded."""
        if "lat" not in self.description:
            return None
        return {dim: self.description[dim] for dim in ("lat", "lon")}

    @property
    def input_length(self) -> int:
        return self.config.input_length

    @property
    def horizon(self) -> int:
        return self.config.horizon

    # Data in.

    def field(
        self,
        data: Data,
        chunks: dict | None = None,
        other_grid: bool = False,
        units: Units = None,
    ) -> xr.DataArray:
        """The run's variables in ``data`` as a ``(time, lat, lon, channel)`` field,
        checked against the run (`check_field`).

        Args:
          data: a netCDF path or glob (read lazily, ``chunks`` or one batch of
            frames per chunk), an ``xarray.Dataset`` holding the run's
            variables, or a DataArray of the run's (single) variable.
          chunks: dask chunks for a path.
          other_grid: accept a grid other than the run's (see `check_field`).
          units: the units of variables the data give none for (see `stated_units`).

        Raises:
          DataError: naming the data and what it lacks or what differs from the run.
        """
        if isinstance(data, xr.DataArray):
            name = data.name if data.name is not None else self.variables[0]
            if len(self.variables) > 1 or name != self.variables[0]:
                raise DataError(
                    f"DataArray {name!r} is not the run's data: pass a Dataset holding "
                    f"the variables {self.variables}"
                )
            data = data.to_dataset(name=name)
        # The variables as the run asked for them (``z:500``), then the targets first.
        specs = self.config.variables or self.variables
        if isinstance(data, xr.Dataset):
            source = "the Dataset"
            field = dataset_field(data, specs, source=source, bbox=self.config.bbox)
        else:
            source = os.fspath(data)
            batch_frames = self.config.eval_batch_size + self.input_length - 1
            chunks = chunks if chunks is not None else {"time": batch_frames}
            field = open_field(source, specs, chunks=chunks, bbox=self.config.bbox)
        field, _ = targets_first(field, self.targets, repr(source))
        self.check_field(field, source, other_grid, units)
        if self.extra is not None and self.extra.calendar:
            calendar_names(field["time"], repr(source))  # the run reads the calendar: dates
        return field

    def check_field(
        self,
        field: xr.DataArray,
        source: str,
        other_grid: bool = False,
        units: Units = None,
    ) -> None:
        """Raises DataError unless the run can forecast ``field``: the run's units
        (`check_units`), at least ``input_length`` steps, the run's grid (or
        ``other_grid``, for a network: its mask is then the cells of ``field``
        that are not all missing), and values `stconv.data.checks` accepts.
        """
        names = grid_of(field)["channel"]
        if names != self.variables:
            raise DataError(
                f"{source!r} holds the variables {names}, the run {self.variables}: "
                "give the run's variables"
            )
        self.check_units(grid_of(field)["units"], stated_units(units, names), source)
        if field.sizes["time"] < self.input_length:
            raise DataError(
                f"{source!r} has {field.sizes['time']} time steps: at least "
                f"input_length={self.input_length} are needed"
            )
        difference = self.grid_difference(field)
        if difference and not other_grid:
            raise DataError(
                f"{source!r} is not on the run's grid ({difference}): pass --other-grid "
                "(other_grid=True) to forecast it anyway, masked where it has no data"
            )
        if difference and self.extra is not None and self.extra.static_names:
            raise DataError(
                f"{source!r} is not on the run's grid ({difference}): the run reads static "
                f"fields {list(self.extra.static_names)} of its own grid"
            )
        if difference and models.is_fitted(self.config.model):
            raise DataError(
                f"{source!r} is not on the run's grid ({difference}): a {self.config.model} "
                "run forecasts only the cells it was fitted on"
            )
        check_extremes(field, source, self.config.allow_extreme_values)
        mask = self.field_mask(field)  # another grid's is a pass over the data: once
        check_values(field, mask, source)
        if not self.config.allow_extreme_values:
            self.check_magnitude(field, mask, source)

    def check_magnitude(self, field: xr.DataArray, mask: np.ndarray, source: str) -> None:
        """Raises DataError where a variable's mean over ``field`` (its cells in
        ``mask``) lies more than `TYPICAL_SPREADS` spreads of the training data
        from their mean: data whose units attribute does not say what they are
        in (Celsius still labelled K after ``ds.t2m - 273.15``, which keeps the
        attribute in xarray since 2025). The spread is that of the training climatology over
        time of year and cells, or the training std if larger; runs that
        recorded no climatology are not checked."""
        if self.climatology is None:
            return
        trained = self.climatology.values
        train_mean = np.nanmean(trained, axis=(0, 1, 2))
        spread = np.nanstd(trained, axis=(0, 1, 2))
        if self.config.normalization != "none":
            spread = np.maximum(spread, self.normalizer.std)
        inside = xr.DataArray(mask, dims=("lat", "lon", "channel"))
        given = field.where(inside).mean(("time", "lat", "lon")).compute().values
        distance = np.abs(given - train_mean) / np.where(spread > 0, spread, np.inf)
        if np.any(distance > TYPICAL_SPREADS):
            channel = int(np.argmax(distance))
            units = self.units[channel]
            raise DataError(
                f"{source!r}: variable {self.variables[channel]!r} averages "
                f"{given[channel]:.4g} {units}, {distance[channel]:.0f} spreads from the "
                f"{train_mean[channel]:.4g} {units} of the run's training data: is it in "
                "other units than its attribute says? Convert it first"
            )

    def check_units(self, given: list[str], stated: dict[str, str], source: str) -> None:
        """Raises DataError unless every variable is in the run's units: as the
        data give them, or, where they give none, as ``stated`` (``--units``).
        A run trained without units accepts any (`warn_without_units`)."""
        for name, found, trained in zip(self.variables, given, self.units, strict=True):
            said = stated.get(name, "")
            if found and said and found != said:
                raise DataError(
                    f"{source!r}: variable {name!r} is in {found}, not in {said} as --units "
                    "says: state units only for variables that have none"
                )
            units = found or said
            if trained and not units:
                raise DataError(
                    f"{source!r}: variable {name!r} has no units and the run was trained in "
                    f"{trained}: pass --units {trained} (units= in Python) if it is in "
                    f"{trained}, or convert it"
                )
            if units and trained and units != trained:
                raise DataError(
                    f"{source!r}: variable {name!r} is in {units}, the run was trained in "
                    f"{trained}: convert it first"
                )

    def warn_without_units(self) -> None:
        """Warns, on every forecast, of targets the run's data gave no units for."""
        missing = [
            name
            for name, units in zip(self.targets, self.units[: self.outputs], strict=True)
            if not units
        ]
        if missing:
            warnings.warn(
                f"the run's data gave no units for {missing}: its inputs cannot be checked "
                "and its forecasts carry none; they are in the units of the data it was "
                "trained on",
                provenance.UnitsWarning,
                stacklevel=3,
            )

    def grid_difference(self, field: xr.DataArray) -> str:
        """How the grid of ``field`` differs from the run's, or ``""``."""
        shape, trained = field.shape[1:3], self.mask.shape[:2]
        if shape != trained:
            return f"lat x lon {shape[0]} x {shape[1]}, the run's {trained[0]} x {trained[1]}"
        grid = grid_of(field)
        for dim in ("lat", "lon") if self.grid is not None else ():
            values, run_values = grid[dim], np.asarray(self.grid[dim])
            if not np.allclose(values, run_values):
                return (
                    f"{dim} {values[0]:g}..{values[-1]:g}, the run's "
                    f"{run_values[0]:g}..{run_values[-1]:g}"
                )
        return ""

    def field_mask(self, field: xr.DataArray) -> np.ndarray:
        """The run's mask, or the cells of ``field`` that are not all NaN when
        its grid differs from the run's."""
        return nan_mask(field) if self.grid_difference(field) else self.mask

    # Forecasts out.

    def forecast_batches(
        self,
        field: xr.DataArray,
        mask: np.ndarray,
        start: int = 0,
        stop: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Physical-unit forecasts ``(n, lead, lat, lon, target)`` (an
        ensemble's ``(n, member, lead, lat, lon, target)``) of the windows
        ``start .. stop - 1`` of ``field`` (default all), NaN outside ``mask``
        (`field_mask`), one batch of ``batch_size`` (default ``eval_batch_size``)
        at a time."""
        count = field.sizes["time"] - self.input_length + 1
        stop = count if stop is None else stop
        batch_size = min(batch_size or self.config.eval_batch_size, count)
        batches = field_batches(
            field, self.input_length, self.normalizer, batch_size, start, stop, self.extra
        )
        normalizer, mask = self.normalizer.first(self.outputs), mask[..., : self.outputs]
        times, first = field["time"].values, start
        for batch, _, predictions in predicted_batches(
            {"model": self.predict}, batches, batch_size
        ):
            rows = len(batch["inputs"])
            model = predictions["model"]
            model = model[:, :rows] if self.members else unpadded(model, rows)
            valid = self.valid_times(times, first, first + rows)
            first += rows
            physical = to_physical(model, normalizer, mask, valid)
            yield np.moveaxis(physical, 0, 1) if self.members else physical

    def forecast(
        self, data: Data, other_grid: bool = False, mean: bool = False, units: Units = None
    ) -> xr.Dataset:
        """Forecasts of the targets from every window of ``input_length`` steps of ``data``.

        Args:
          data: a path, Dataset or DataArray (see `field`).
          other_grid: accept a grid other than the run's (see `check_field`).
          mean: an ensemble's mean over its members, instead of the members.
          units: the units of variables the data give none for (see `stated_units`).

        Returns:
          A dask-backed Dataset: one variable ``(init_time, lead_time, lat,
          lon)`` per target, with its units, in physical units, NaN outside
          the mask, computed batch by batch when read; the coordinates as in
          a forecast file (`stconv.evaluation.netcdf`): ``init_time`` (the time
          of each window's last input step), ``lead_time``, ``valid_time``
          (extrapolated with the last time step beyond the data), and the
          input's own latitude and longitude. An ensemble's variables have a
          ``member`` dimension after ``init_time`` (its members named in
          ``member_name``), unless ``mean``.

        Raises:
          ValueError: for ``mean`` of a forecaster that is not an ensemble.
        """
        self.check_ensemble("mean", mean)
        field = self.field(data, other_grid=other_grid, units=units)
        self.warn_without_units()
        count = field.sizes["time"] - self.input_length + 1
        batch_size = min(self.config.eval_batch_size, count)
        mask = self.field_mask(field)
        grid = self.target_grid(field)
        shape = (len(self.members),) * bool(self.members) + (
            self.horizon, *field.shape[1:3], self.outputs,
        )  # fmt: skip

        def block(start: int, stop: int) -> np.ndarray:
            return next(self.forecast_batches(field, mask, start, stop))

        blocks = [
            dask.array.from_delayed(
                dask.delayed(block)(start, min(start + batch_size, count)),
                (min(start + batch_size, count) - start, *shape),
                np.float32,
            )
            for start in range(0, count, batch_size)
        ]
        forecasts = dask.array.concatenate(blocks)
        times = field["time"].values
        dims = forecast_dims(grid, bool(self.members))
        lat_name, lon_name = dims[-2:]
        coords = {
            "init_time": times[self.input_length - 1 :],
            "lead_time": lead_times(times, self.horizon),
            lat_name: (lat_name, field["lat"].values, {"units": "degrees_north"}),
            lon_name: (lon_name, field["lon"].values, {"units": "degrees_east"}),
            "valid_time": (("init_time", "lead_time"), self.valid_times(times)),
        }
        if self.members:
            coords["member"] = np.arange(len(self.members))
            coords["member_name"] = ("member", list(self.members))
        data_vars = {
            name: (dims, forecasts[..., c], variable_attrs(grid, c))
            for c, name in enumerate(grid["channel"])
        }
        forecast = xr.Dataset(data_vars, coords)
        return forecast.mean("member", keep_attrs=True) if mean else forecast

    def check_ensemble(self, flag: str, given: bool) -> None:
        """Raises ValueError for an ensemble option (``flag``) ``given`` to a
        forecaster that is not an ensemble."""
        if given and not self.members:
            where = f"the run {self.path!r}" if self.path else "this forecaster"
            raise ValueError(
                f"--{flag}: {where} has one member: ensemble options need a run of several "
                "seeds (--iterations N) or --members K"
            )

    def valid_times(self, times: np.ndarray, start: int = 0, stop: int | None = None):
        """``(init_time, lead_time)`` of the windows ``start .. stop - 1`` of a
        time axis: the time each forecast is for (extrapolated with the last
        time step beyond the data)."""
        step = times[-1] - times[-2] if len(times) > 1 else 1
        extended = np.concatenate(
            [times, [times[-1] + step * k for k in range(1, self.horizon + 1)]]
        )
        stop = len(times) - self.input_length + 1 if stop is None else stop
        starts = np.arange(start, stop) + self.input_length
        return extended[starts[:, None] + np.arange(self.horizon)]

    def write(
        self,
        data: str | os.PathLike,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        batch_size: int | None = None,
        other_grid: bool = False,
        mean: bool = False,
        units: Units = None,
    ) -> int | None:
        """Forecasts every window of the netCDF file ``data`` into ``path``
        (``stconv predict``): netCDF, or zarr for a path ending ``.zarr``, one
        variable per target in the layout of `stconv.evaluation.netcdf`,
        streamed batch by batch: the input is read lazily and no more than one
        batch of forecasts is held in memory.

        Args:
          data: the input file (or glob).
          path: the forecast file: a new file outside any run, or, with
            ``overwrite``, an existing one that is not the input.
          overwrite: replace ``path`` if it exists.
          batch_size: windows per batch; default the run's ``eval_batch_size``.
          other_grid: accept a grid other than the run's (see `check_field`).
          mean: write an ensemble's mean instead of its members (``member``
            dimension, as `forecast` gives them).
          units: the units of variables the data give none for (see `stated_units`).

        Returns:
          The number of forecasts written. With several processes, all compute
          and process 0 writes: the others return None.
        """
        self.check_ensemble("mean", mean)
        runs = (self.path,) if self.path is not None else ()
        check_new_file(path, flag="--output", overwrite=overwrite, inputs=(data,), runs=runs)
        if batch_size is not None:
            check_positive("--batch-size", batch_size)
        batch_size = batch_size or self.config.eval_batch_size
        # Lazy: each batch reads only its frames.
        chunks = {"time": batch_size + self.input_length - 1}
        field = self.field(data, chunks, other_grid, units)
        self.warn_without_units()
        mask = self.field_mask(field)
        batches = self.forecast_batches(field, mask, batch_size=batch_size)
        if not is_primary():  # the others compute with process 0, which writes
            for _ in batches:
                pass
            return None
        times = field["time"].values
        init_times = times[self.input_length - 1 :]
        lead_time = lead_times(times, self.horizon)
        mask = mask[..., : self.outputs]
        members = () if mean else self.members
        writer = forecast_writer(
            path, self.target_grid(field), mask, self.horizon, lead_time, members,
            overwrite=overwrite,
        )  # fmt: skip
        with writer:
            for predictions in batches:
                predictions = predictions.mean(axis=1) if mean else predictions
                if np.isinf(predictions).any() or np.isnan(predictions[..., mask]).any():
                    raise RuntimeError(
                        f"the forecasts of {os.fspath(data)!r} from {writer.count} on are not "
                        f"finite inside the run's mask: nothing was written to {os.fspath(path)}"
                    )
                start, stop = writer.count, writer.count + len(predictions)
                valid = self.valid_times(times, start, stop)
                writer.write(predictions, init_times[start:stop], valid)
        return writer.count

    # Scores.

    def score(
        self,
        source,
        lat: np.ndarray,
        what: str,
        on_batch: Callable[[dict, dict], None] | None = None,
        on_run_grid: bool = True,
        train=None,
    ) -> dict[str, dict]:
        """The scores of the forecasts of every window of ``source`` beside the
        baselines (persistence, the input mean and, ``on_run_grid``, the
        training climatology, which is also the ACC's reference): the scores
        of `stconv.evaluation.metrics` of every target variable in its own
        units, over the whole set and per lead time, masked, with their skill
        (`stconv.evaluation.scoring.add_skill`), in the layout of
        `stconv.evaluation.scoring.name_and_score`. Area-weighted at the rows'
        latitudes ``lat`` by the one rule of
        `stconv.evaluation.metrics.grid_weights`.

        Args:
          source: windows as `stconv.data.sources` gives them (normalized).
          lat: the latitude of each row of the windows' grid.
          what: the windows, for errors (``"the test split of 'x.nc'"``).
          on_batch: sees every batch and the forecasts of it
            (`stconv.evaluation.scoring.evaluate`).
          on_run_grid: the windows are on the run's grid.
          train: the training split (a source with ``series`` and
            ``series_times``): an ensemble is then scored beside the
            climatological ensemble of its frames, where they have times.

        An ensemble (`members`) is scored by its mean, and every forecast gets
        the ensemble scores of `stconv.evaluation.ensemble` under ``"ensemble"``.
        """
        outputs = self.outputs
        ensembles = ("model",) if self.members else ()
        train_times = None if train is None else train.series_times()
        known = self.climatology is not None and on_run_grid
        if ensembles and known and train_times is not None:
            source = WithClimatologicalEnsemble(
                source, train.series()[..., :outputs], train_times,
                self.climatology.first(outputs), self.normalizer.first(outputs),
                f"{what}: the training split",
            )  # fmt: skip
            ensembles += (CLIMATOLOGICAL_ENSEMBLE,)
        climatology, source = self.reference(source, on_run_grid)
        forecasters = {"model": self.predict, **baselines(climatology, self.horizon, outputs)}
        forecasters.update({name: None for name in ensembles[1:]})  # carried by the windows
        grid = {"lat": lat, "geographic": self.description.get("geographic", True)}
        weights = grid_weights(grid, self.config.area_weights, what)
        std, batch_size = self.normalizer.std[:outputs], self.config.eval_batch_size
        constant = climatology if isinstance(climatology, np.ndarray) else None
        results = evaluate(
            forecasters, source, std, batch_size, on_batch, what=what, climatology=constant,
            weights=weights, ensembles=ensembles,
        )  # fmt: skip
        described = self.climatology.describe() if climatology is not None else None
        named = name_and_score(
            results, self.config.model, self.targets, self.units[:outputs], described
        )
        check_finite(named, what)
        return named

    def reference(self, source, on_run_grid: bool = True):
        """The climatology forecast of ``source``'s windows and the ACC's
        reference: ``(climatology, source)``, with ``climatology`` the
        normalized ``(lat, lon, targets)`` mean of every cell for annual data,
        ``"carried"`` for a climatology by time of year (then ``source``'s
        windows carry it, `stconv.evaluation.scoring.WithClimatology`), or
        None where it is not known (another grid, runs of old versions)."""
        if self.climatology is None or not on_run_grid:
            return None, source
        outputs = self.outputs
        normalizer, climatology = self.normalizer.first(outputs), self.climatology.first(outputs)
        if climatology.kind == "annual":
            values = normalizer.normalize(climatology.values[0])
            return np.nan_to_num(values, nan=0.0).astype(np.float32), source
        return "carried", WithClimatology(source, climatology, normalizer)

    def evaluate(
        self, data: Data, other_grid: bool = False, units: Units = None
    ) -> dict[str, dict]:
        """`score` of every complete window of ``data`` (``input_length`` inputs
        and ``horizon`` targets) against the truth in it, as ``stconv
        evaluate`` prints them (`stconv.runs.reporting.format_table`); ``other_grid``
        and ``units`` as for `field`.
        """
        field = self.field(data, other_grid=other_grid, units=units)
        spec = WindowSpec(self.input_length, self.horizon)
        count = field.sizes["time"] - spec.length + 1
        if count < 1:
            raise DataError(
                f"the data has {field.sizes['time']} time steps: evaluating needs at least "
                f"input_length + horizon = {spec.length}"
            )
        mask = self.field_mask(field)
        source = FieldWindows(
            field, range(count), spec, self.normalizer, mask, self.outputs, self.extra
        )
        on_run_grid = not self.grid_difference(field)
        lat = grid_of(field)["lat"]
        return self.score(source, lat, "the data to evaluate", on_run_grid=on_run_grid)


def stated_units(units: Units, names: Sequence[str]) -> dict[str, str]:
    """The units ``--units`` states per variable: ``"K"`` for every variable of
    ``names``, ``"t2m=K,u10=m s-1"`` or a mapping per variable; none for None.

    Raises:
      ValueError: for a variable that is not among ``names``.
    """
    if units is None:
        return {}
    if isinstance(units, str) and "=" not in units:
        return dict.fromkeys(names, units.strip())
    if isinstance(units, str):
        pairs = [item.split("=", 1) for item in units.split(",")]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(
                f"--units {units!r} is invalid: write UNITS for all variables, or "
                "NAME=UNITS,NAME=UNITS"
            )
        units = {name.strip(): unit.strip() for name, unit in pairs}
    unknown = sorted(set(units) - set(names))
    if unknown:
        raise ValueError(
            f"--units names {unknown}, which are not the run's variables {list(names)}: "
            "write UNITS for all, or NAME=UNITS,..."
        )
    return dict(units)
