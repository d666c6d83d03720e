"""`Forecaster`: a trained run, loaded from its directory, forecasting new data.

    forecaster = Forecaster.load("runs/hadcm3-a1b")
    forecast = forecaster.forecast("new.nc")  # or an xarray Dataset or DataArray
    forecast.sel(lead_time=1).isel(init_time=0).plot()
    results = forecaster.evaluate("new.nc")  # the model, persistence, climatology

Every forecast goes one way from raw data to the model and back: the run's
variables are read as a ``(time, lat, lon, channel)`` field, each window of
``input_length`` frames is normalized with the run's statistics
(`stconv.data.sources.model_inputs`, as in training), forecast in batches of
``eval_batch_size`` windows, and turned back into physical units, NaN outside
the run's mask. `stconv predict` and `stconv evaluate` use it.
"""

import os
from collections.abc import Callable, Iterator

import dask
import dask.array
import numpy as np
import xarray as xr

from stconv import models, provenance
from stconv.config import Config
from stconv.data.errors import DataError
from stconv.data.files import dataset_field, open_field
from stconv.data.masks import nan_mask
from stconv.data.normalization import Normalizer
from stconv.data.sources import FieldWindows
from stconv.data.validation import check_values
from stconv.data.windows import WindowSpec
from stconv.evaluation.metrics import area_weights
from stconv.evaluation.netcdf import field_windows, forecast_field, predict_windows
from stconv.evaluation.scoring import baselines, evaluate, name_and_score
from stconv.run import RunDirectory
from stconv.training.checkpoints import CheckpointError

Data = str | os.PathLike | xr.Dataset | xr.DataArray


def restore_predict(run: RunDirectory, config: Config, input_shape: tuple) -> Callable:
    """The eval-mode forecast of the run's best epoch on every device present
    (or its fitted ARIMA models): normalized inputs to normalized forecasts."""
    if models.is_fitted(config.model):
        return models.fitted(config.model).load_run(run)
    from stconv.experiment import build
    from stconv.training import distributed
    from stconv.training.step import make_predict, make_train_step

    distributed.maybe_initialize()
    mesh = distributed.data_mesh()
    model, optimizer = build(config, input_shape)
    _, state = make_train_step(model, optimizer, mesh=mesh, fsdp=config.fsdp)
    checkpoints = run.checkpoints()
    if not checkpoints.exists("best"):
        raise ValueError(f"workdir {run.path!r} has no best checkpoint: train the run first")
    try:
        checkpoints.restore("best", state)
    except CheckpointError as error:
        if error.corrupt:
            error.add_note("the run's best epoch is lost: train it again into a new workdir")
        raise
    predict = make_predict(model, config.horizon, config.compute_dtype, mesh)
    return lambda inputs: predict(state[0], inputs)


class Forecaster:
    """A trained run: its configuration, data description and forecast function.

    Args:
      config: the run's configuration.
      variables: the variables it forecasts, in channel order.
      units: their units.
      normalizer: the training statistics.
      mask: ``(lat, lon, channel)`` cells it forecasts.
      climatology: the normalized training climatology, or None (not recorded).
      predict: normalized ``(n, input_length, lat, lon, channel)`` windows to
        normalized ``(n, horizon, lat, lon, channel)`` forecasts.
      grid: the ``lat`` and ``lon`` coordinates it was trained on; None for
        runs that did not record them (then only the grid's shape is checked).
      origin: the run's provenance record (`stconv.provenance`); None for runs
        made before records were kept.
    """

    def __init__(
        self,
        config: Config,
        variables: list[str],
        units: str,
        normalizer: Normalizer,
        mask: np.ndarray,
        climatology: np.ndarray | None,
        predict: Callable[[np.ndarray], np.ndarray],
        grid: dict | None = None,
        origin: dict | None = None,
    ):
        self.config = config
        self.variables = list(variables)
        self.units = units
        self.normalizer = normalizer
        self.mask = mask
        self.climatology = climatology
        self.predict = predict
        self.grid = grid
        self.origin = origin

    @classmethod
    def load(cls, workdir: str | os.PathLike) -> "Forecaster":
        """The best epoch of the finished run in ``workdir`` (or its ARIMA fit),
        on the devices present. A `stconv.provenance.ProvenanceWarning` per
        library whose version differs from the one that made the run.

        Raises:
          ValueError: naming ``workdir`` and what it lacks, if it is not a
            finished run.
        """
        run = RunDirectory(workdir)
        config = run.config()
        description = run.data_description()
        predict = restore_predict(run, config, tuple(description["input_shape"]))
        origin = run.provenance()
        if origin is not None:
            provenance.warn(run.path, provenance.software_changes(origin))
        return cls(
            config,
            description["variables"],
            description["units"],
            run.normalizer(),
            run.mask(),
            run.climatology(),
            predict,
            {k: description[k] for k in ("lat", "lon")} if "lat" in description else None,
            origin,
        )

    @property
    def input_length(self) -> int:
        return self.config.input_length

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def field(self, data: Data, chunks: dict | None = None, other_grid: bool = False):
        """The run's variables in ``data`` as a ``(time, lat, lon, channel)`` field,
        checked against the run (`check_field`).

        Args:
          data: a netCDF path (read lazily, ``chunks`` or one batch of frames
            per chunk), an ``xarray.Dataset`` holding the run's variables, or a
            DataArray of the run's (single) variable.
          chunks: dask chunks for a path.
          other_grid: accept a grid other than the run's (see `check_field`).

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
        if isinstance(data, xr.Dataset):
            field = dataset_field(data, self.variables, source="the Dataset")
            source = "the Dataset"
        else:
            source = os.fspath(data)
            batch_frames = self.config.eval_batch_size + self.input_length - 1
            chunks = chunks if chunks is not None else {"time": batch_frames}
            field = open_field(source, self.variables, chunks=chunks)
        self.check_field(field, source, other_grid)
        return field

    def check_field(self, field: xr.DataArray, source: str, other_grid: bool = False) -> None:
        """Raises DataError unless the run can forecast ``field``: the run's units,
        at least ``input_length`` steps, the run's grid (or ``other_grid``, for a
        network: its mask is then the cells of ``field`` that are not all
        missing), and values `stconv.data.validation.check_values` accepts.
        """
        units = field.attrs.get("units", "")
        if units and self.units and units != self.units:
            raise DataError(
                f"{source!r}: variables {self.variables} are in {units}, the run was trained "
                f"in {self.units}: convert them first"
            )
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
        if difference and models.is_fitted(self.config.model):
            raise DataError(
                f"{source!r} is not on the run's grid ({difference}): a {self.config.model} "
                "run forecasts only the cells it was fitted on"
            )
        check_values(field, self.field_mask(field), source)

    def grid_difference(self, field: xr.DataArray) -> str:
        """How the grid of ``field`` differs from the run's, or ``""``."""
        shape, trained = field.shape[1:3], self.mask.shape[:2]
        if shape != trained:
            return f"lat x lon {shape[0]} x {shape[1]}, the run's {trained[0]} x {trained[1]}"
        for dim in ("lat", "lon") if self.grid is not None else ():
            values, run_values = field[dim].values, np.asarray(self.grid[dim])
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

    def batches(self, field: xr.DataArray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Physical-unit forecasts of every window of ``field``, one batch at a
        time: ``(predictions, init_times)`` (see `stconv.evaluation.netcdf.forecast_field`)."""
        return forecast_field(
            self.predict, field, self.input_length, self.normalizer, self.config.eval_batch_size
        )

    def forecast(self, data: Data, other_grid: bool = False) -> xr.DataArray:
        """Forecasts from every window of ``input_length`` steps of ``data``.

        Args:
          data: a path, Dataset or DataArray (see `field`).
          other_grid: accept a grid other than the run's (see `check_field`).

        Returns:
          A dask-backed DataArray ``(init_time, lead_time, lat, lon)``, with a
          ``channel`` dimension last when the run has several variables:
          physical units, NaN outside the mask, computed batch by batch when
          read. ``init_time`` is the time of each window's last input step,
          ``lead_time`` counts steps after it, ``valid_time`` is the time
          forecast (extrapolated with the last time step beyond the data).
        """
        field = self.field(data, other_grid=other_grid)
        count = field.sizes["time"] - self.input_length + 1
        batch_size = min(self.config.eval_batch_size, count)
        mask = self.field_mask(field)
        shape = (self.horizon, *field.shape[1:])

        def forecast_batch(start: int, stop: int) -> np.ndarray:
            windows = field_windows(field, self.input_length, start, stop)
            predictions = predict_windows(self.predict, windows, self.normalizer, batch_size)
            predictions = self.normalizer.denormalize(np.asarray(predictions))
            return np.where(mask, predictions, np.nan).astype(np.float32)

        blocks = [
            dask.array.from_delayed(
                dask.delayed(forecast_batch)(start, min(start + batch_size, count)),
                (min(start + batch_size, count) - start, *shape),
                np.float32,
            )
            for start in range(0, count, batch_size)
        ]
        times = field["time"].values
        coords = {
            "init_time": times[self.input_length - 1 :],
            "lead_time": ("lead_time", np.arange(1, self.horizon + 1), {"units": "steps"}),
            "lat": field["lat"].values,
            "lon": field["lon"].values,
            "valid_time": (("init_time", "lead_time"), self.valid_times(times)),
            "channel": self.variables,
        }
        forecast = xr.DataArray(
            dask.array.concatenate(blocks),
            dims=("init_time", "lead_time", "lat", "lon", "channel"),
            coords=coords,
            name=self.variables[0] if len(self.variables) == 1 else "forecast",
            attrs={"units": self.units},
        )
        return forecast.squeeze("channel", drop=True) if len(self.variables) == 1 else forecast

    def valid_times(self, times: np.ndarray) -> np.ndarray:
        """``(init_time, lead_time)``: the time each forecast is for."""
        step = times[-1] - times[-2] if len(times) > 1 else 1
        extended = np.concatenate(
            [times, [times[-1] + step * k for k in range(1, self.horizon + 1)]]
        )
        starts = np.arange(len(times) - self.input_length + 1) + self.input_length
        return extended[starts[:, None] + np.arange(self.horizon)]

    def evaluate(self, data: Data, other_grid: bool = False) -> dict[str, dict]:
        """Scores of the forecasts of every complete window of ``data``
        (``input_length`` inputs and ``horizon`` targets) against the truth in
        it, beside the baselines (persistence, the input mean and, on the run's
        grid, the training climatology): the scores of `stconv.evaluation.metrics`
        over the whole set and per lead time, in physical units, masked, with
        their skill (`stconv.evaluation.scoring.add_skill`), as `stconv evaluate`
        prints them (`stconv.evaluation.scoring.format_table`).
        """
        field = self.field(data, other_grid=other_grid)
        spec = WindowSpec(self.input_length, self.horizon)
        count = field.sizes["time"] - spec.length + 1
        if count < 1:
            raise DataError(
                f"the data has {field.sizes['time']} time steps: evaluating needs at least "
                f"input_length + horizon = {spec.length}"
            )
        source = FieldWindows(field, range(count), spec, self.normalizer, self.field_mask(field))
        # The training climatology (the climatology forecast and the ACC's reference)
        # exists on the run's grid only.
        climatology = None if self.grid_difference(field) else self.climatology
        forecasters = {"model": self.predict, **baselines(climatology, self.horizon)}
        weights = area_weights(field["lat"].values) if self.config.area_weights else None
        std, batch_size = self.normalizer.std, self.config.eval_batch_size
        results = evaluate(
            forecasters, source, std, batch_size, what="the data to evaluate",
            climatology=climatology, weights=weights,
        )  # fmt: skip
        return name_and_score(results, self.config.model)
