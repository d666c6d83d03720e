"""`Forecaster`: a trained run, forecasting, writing and scoring data.

    forecaster = Forecaster.load("runs/hadcm3-a1b")
    forecast = forecaster.forecast("new.nc")  # or an xarray Dataset or DataArray
    forecast.sel(lead_time=1).isel(init_time=0).plot()
    forecaster.write("new.nc", "forecast.nc")  # what `stconv predict` does
    results = forecaster.evaluate("new.nc")  # the model, persistence, climatology

A forecaster is a run (`stconv.runs.trained.TrainedRun`, a frozen value)
and a predictor of normalized windows (`stconv.evaluation.predictors`;
ensembles, perturbed members and the `Normalized` forecasts of raw data are
wrappers). New data are checked against the run by `stconv.data.field_checks`,
forecasts written by `stconv.evaluation.netcdf` and scored by
`stconv.evaluation.scoring.score_run`, one rule for every score, which the
test at the end of training, ``stconv evaluate`` and ``predict`` all use.
"""

import dataclasses
import os

import numpy as np
import xarray as xr

from stconv.config import PERTURBATION_SCALES, Config
from stconv.data.field_checks import Data, Units, field_mask, read_field, scored_windows
from stconv.data.registry import Dataset
from stconv.evaluation import predictors
from stconv.evaluation.netcdf import forecast_dataset, target_grid, write_forecasts
from stconv.evaluation.predictors import Predictor, members_of
from stconv.evaluation.scoring import score_run
from stconv.runs import provenance
from stconv.runs.assembly import restore_predict
from stconv.runs.directory import RunDirectory
from stconv.runs.trained import TrainedRun
from stconv.training.distributed import is_primary


def of_run(name: str, doc: str | None = None) -> property:
    """A read-only property of the forecaster's `TrainedRun`."""
    return property(lambda self: getattr(self.run, name), doc=doc or f"The run's ``{name}``.")


class Forecaster:
    """A trained run (`TrainedRun`) and its ``predict``: normalized ``(n,
    input_length, lat, lon, channel)`` windows to normalized ``(n, horizon,
    lat, lon, target)`` forecasts, an ensemble's with a leading member axis
    (`stconv.evaluation.predictors`)."""

    config, description = of_run("config"), of_run("description")
    normalizer, mask, climatology = of_run("normalizer"), of_run("mask"), of_run("climatology")
    origin, path, extra = of_run("origin"), of_run("path"), of_run("extra")
    variables = of_run("variables", "The input variables, as channels: the targets first.")
    targets = of_run("targets", "The variables forecast: the first `outputs` channels.")
    outputs, units = of_run("outputs"), of_run("units", "Every input variable's units.")
    grid = of_run("grid", "The `Grid` the run was trained on; None if not recorded.")
    input_length, horizon = of_run("input_length"), of_run("horizon")

    def __init__(self, run: TrainedRun, predict: Predictor):
        self.run, self.predict = run, predict

    @property
    def members(self) -> tuple[str, ...]:
        """The names of an ensemble's members (``seed 1000``, ...); () for one forecast."""
        return members_of(self.predict)

    @property
    def perturbation(self) -> float | None:
        """The noise of `perturbed` members; None for others."""
        return getattr(self.predict, "scale", None)

    @classmethod
    def load(cls, workdir: str | os.PathLike, unfinished: bool = False) -> "Forecaster":
        """The best epoch of the finished run in ``workdir`` (or its ARIMA fit),
        on the devices present; with ``unfinished``, of a run whose training did
        not end, with a warning (`TrainedRun.check_trained`). A
        `stconv.runs.provenance.ProvenanceWarning` per library whose version
        differs from the one that made the run. A run of several seeds loads as
        their ensemble (`ensemble`): its forecasts have a ``member`` dimension.

        Raises:
          ValueError: naming ``workdir`` and what it lacks, if it is not a trained run.
        """
        run = RunDirectory(workdir)
        if run.member_runs():
            TrainedRun.check_trained(run, unfinished)
            members = [cls.load(member.path, unfinished) for member in run.member_runs()]
            return cls.ensemble(members, [f"seed {m.run.seed}" for m in members], run)
        trained = TrainedRun.load(run, unfinished)
        shape = tuple(trained.description["input_shape"])
        predict = restore_predict(run, trained.config, shape, trained.outputs)
        if trained.origin is not None:
            provenance.warn(run.path, provenance.software_changes(trained.origin))
        return cls(trained, predict)

    @classmethod
    def ensemble(
        cls, forecasters: list["Forecaster"], names: list[str], run: RunDirectory | None = None
    ) -> "Forecaster":
        """The ensemble of ``forecasters`` (runs of one config but the seed, on the
        same data; ValueError for fewer than two or members trained otherwise): its
        ``predict`` stacks theirs, one member each (`stconv.evaluation.predictors.Ensemble`)."""
        predict = predictors.Ensemble([f.predict for f in forecasters], names)
        origin, path = (run.provenance(), run.path) if run is not None else (None, None)
        return cls(TrainedRun.ensemble([f.run for f in forecasters], names, origin, path), predict)

    def perturbed(self, members: int, scale: float, seed: int = 0) -> "Forecaster":
        """An ensemble of ``members`` forecasts of this run from inputs with Gaussian
        noise of ``scale`` training standard deviations added to every variable (not
        to static or calendar inputs): members without training more networks
        (`stconv.evaluation.predictors.Perturbed`); ParameterError as `check_members`."""
        self.check_members(members, scale)
        perturbed = predictors.Perturbed(self.predict, members, scale, len(self.variables), seed)
        return Forecaster(self.run, perturbed)

    def evaluated_with(self, **fields) -> "Forecaster":
        """This run scored with other fields of `stconv.config.EvaluationConfig`
        (``regions``, ``thresholds``, ...); ValueError naming an invalid one."""
        config = self.config.replace(evaluation=self.config.evaluation.replace(**fields))
        return Forecaster(dataclasses.replace(self.run, config=config), self.predict)

    def check_members(
        self, members: int | None = None, perturbation: float | None = None, mean: bool = False
    ) -> None:
        """Raises `stconv.checks.ParameterError`, naming the parameter, unless the
        ensemble options fit this run (`stconv.evaluation.predictors.check_members`)."""
        run = self.run
        predictors.check_members(
            self.predict, members, perturbation, mean, run.fitted, run.where, run.batch_bytes
        )

    def choose_perturbation(
        self, source, lat: np.ndarray, members: int, scales: tuple[float, ...] = PERTURBATION_SCALES
    ) -> tuple[float, dict[float, float]]:
        """The noise of `perturbed` whose ensemble of ``members`` has the lowest CRPS
        on ``source`` (the validation split, never the test), and the CRPS of every
        noise tried (several targets: the mean of their CRPS over their training std)."""
        std, scores = self.normalizer.std[: self.outputs], {}
        for scale in scales:
            results = self.perturbed(members, scale).score(source, lat, "the validation split")
            crps = [forecasts[self.run.model]["ensemble"]["crps"] for forecasts in results.values()]
            scores[scale] = float(np.mean(np.asarray(crps) / std))
        return min(scores, key=scores.get), scores

    @classmethod
    def from_dataset(cls, config: Config, dataset: Dataset, predict: Predictor) -> "Forecaster":
        """The run of ``config`` trained on ``dataset``, forecasting with ``predict``,
        as `load` would give it once its files are written."""
        return cls(TrainedRun.from_dataset(config, dataset), predict)

    def field(
        self, data: Data, chunks: dict | None = None, other_grid: bool = False, units: Units = None
    ) -> xr.DataArray:
        """The run's variables in ``data`` (a path or glob, read lazily in
        ``chunks``; a Dataset; a DataArray of the run's single variable) as a
        ``(time, lat, lon, channel)`` field, checked against the run: its
        variables and units (``units`` those of variables the data give none
        for), its grid unless ``other_grid`` (`stconv.data.field_checks`): a
        DataError names the data and what differs."""
        return read_field(data, self.run.inputs(), chunks, other_grid, units)

    def normalized(self) -> predictors.Normalized:
        """``predict`` on physical windows (`stconv.evaluation.predictors.Normalized`)."""
        return predictors.Normalized(self.predict, self.normalizer, self.outputs, self.extra)

    def forecast_batches(self, field, mask, start=0, stop=None, batch_size=None):
        """Physical-unit forecasts ``(n, [member,] lead, lat, lon, target)`` of the
        windows ``start .. stop - 1`` of ``field``, NaN outside ``mask``, one
        batch at a time (`stconv.evaluation.predictors.field_forecasts`)."""
        size, args = batch_size or self.run.batch_size, (self.input_length, self.horizon)
        return predictors.field_forecasts(self.normalized(), field, mask, *args, size, start, stop)

    def forecast(
        self, data: Data, other_grid: bool = False, mean: bool = False, units: Units = None
    ) -> xr.Dataset:
        """Forecasts of the targets from every window of ``input_length`` steps of
        ``data`` (a path, Dataset or DataArray; ``other_grid`` and ``units`` as
        for `field`): a dask-backed Dataset, one ``(init_time, lead_time, lat,
        lon)`` variable per target in physical units, NaN outside the mask,
        computed batch by batch when read, in the layout of a forecast file
        (`stconv.evaluation.netcdf.forecast_dataset`). An ensemble's variables
        have a ``member`` dimension after ``init_time``, unless ``mean`` (their
        mean; a ParameterError for a forecaster that is not an ensemble)."""
        self.check_members(mean=mean)
        field = self.field(data, other_grid=other_grid, units=units)
        self.run.warn_without_units()
        length, horizon = self.input_length, self.horizon
        mask = field_mask(field, self.run.inputs())
        forecasts = predictors.lazy_forecasts(
            self.normalized(), field, mask, length, horizon, self.run.batch_size
        )
        grid = target_grid(field, self.outputs, self.units)
        forecast = forecast_dataset(field, grid, forecasts, length, horizon, self.members)
        return forecast.mean("member", keep_attrs=True) if mean else forecast

    def write(
        self, data: str | os.PathLike, path: str | os.PathLike, *, overwrite: bool = False,
        batch_size: int | None = None, other_grid: bool = False, mean: bool = False,
        units: Units = None,
    ) -> int | None:  # fmt: skip
        """Forecasts every window of the netCDF file (or glob) ``data`` into ``path``
        (``stconv predict``): netCDF, or zarr for a path ending ``.zarr``, in the
        layout of `stconv.evaluation.netcdf`, streamed in batches of
        ``batch_size`` windows (default ``eval_batch_size``). ``path`` is a new
        file outside any run or, ``overwrite``, one that is not the input
        (`TrainedRun.check_output`); ``mean`` writes an ensemble's mean;
        ``other_grid`` and ``units`` as for `field`. Returns the number written
        (None on processes other than 0, which compute with it)."""
        self.check_members(mean=mean)
        self.run.check_output(path, data, overwrite, batch_size)
        batch_size = batch_size or self.run.batch_size
        chunks = {"time": batch_size + self.input_length - 1}  # lazy: a batch reads its frames
        field = self.field(data, chunks, other_grid, units)
        self.run.warn_without_units()
        mask = field_mask(field, self.run.inputs())
        batches = self.forecast_batches(field, mask, batch_size=batch_size)
        if not is_primary():  # the others compute with process 0, which writes
            for _ in batches:
                pass
            return None
        return write_forecasts(
            path, field, batches, mask, self.units[: self.outputs], self.input_length,
            self.horizon, self.members, data=data, mean=mean, overwrite=overwrite,
        )  # fmt: skip

    def score(
        self, source, lat: np.ndarray, what: str, on_batch=None, on_run_grid=True, train=None
    ):
        """The scores of the forecasts of every window of ``source`` (normalized,
        `stconv.data.sources`) beside the baselines (persistence, input mean and,
        ``on_run_grid``, the training climatology, the ACC's reference), per target
        in its units, overall and per lead, with their skill, area-weighted at the
        rows' latitudes ``lat`` (`stconv.evaluation.scoring.score_run`); ``what``
        names the windows in errors, ``on_batch(batch, predictions)`` sees each
        batch. An ensemble is scored by its mean, with ensemble scores under
        ``"ensemble"``, beside the climatological ensemble of ``train``'s frames."""
        return score_run(
            self.predict, self.run.scoring(), source, lat, what, on_batch, on_run_grid, train
        )

    def evaluate(self, data: Data, other_grid: bool = False, units: Units = None) -> dict:
        """`score` of every complete window of ``data`` (``input_length`` inputs
        and ``horizon`` targets) against the truth in it, as ``stconv
        evaluate`` prints them (`stconv.runs.reporting.format_table`); ``other_grid``
        and ``units`` as for `field`."""
        field = self.field(data, other_grid=other_grid, units=units)
        inputs, horizon = self.run.inputs(), self.horizon
        source, lat, on_run_grid = scored_windows(
            field, inputs, horizon, self.normalizer, self.extra
        )
        return self.score(source, lat, "the data to evaluate", on_run_grid=on_run_grid)
