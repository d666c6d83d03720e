"""Forecast files: ``(init_time, lead_time, lat, lon)`` per target variable, in
its units, as netCDF (`ForecastWriter`) or zarr (`ZarrForecastWriter`).

Both stream batches of forecasts to one file, so a long series of forecasts
over a large grid is written without holding them all in memory, and both
write the same layout (`forecast_writer` picks one by the path):

- one float32 variable per target, named as in the input, with its
  ``units``, ``long_name`` and ``standard_name``; NaN outside the mask;
- the input's own names and order of the latitude and longitude coordinates
  (``latitude`` stays so, north to south stays north to south); on a rotated
  pole's grid (CORDEX's ``rlat`` and ``rlon``) also each cell's ``lat`` and
  ``lon`` and the grid mapping ``rotated_pole``, as CF has them;
- ``init_time``: the time of each forecast's last input frame;
- ``lead_time``: a time span (days, hours) where the time axis holds dates
  one fixed step apart, else the number of steps after ``init_time``;
- ``valid_time`` ``(init_time, lead_time)``: the time each forecast is for,
  where the inputs have times;
- an ensemble's ``member`` dimension after ``init_time`` (numbered 0..M-1),
  the members' names in ``member_name``.
"""

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterable, Iterator

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

from stconv.data.grid import Grid
from stconv.outputs import (
    disk_full,
    move_into_place,
    move_store_into_place,
    remove_stale_temporaries,
    remove_temporary,
    temporary_path,
)


class ForecastWriter:
    """Writes physical-unit forecasts to the netCDF file ``path``, one batch at a time.

    The file is written under a temporary name of its own (`temporary_path`:
    hidden, beside ``path``) and moved to ``path`` when the ``with`` block
    ends without an exception; on any other exit the temporary is removed and
    an earlier file at ``path`` stays intact. Without ``overwrite``, a file
    that appeared at ``path`` meanwhile is never replaced: FileExistsError.
    Temporaries of ``path`` left by killed processes are removed first
    (`remove_stale_temporaries`)::

        with ForecastWriter(path, grid, mask, horizon) as writer:
            for predictions, init_times, valid_times in batches:
                writer.write(predictions, init_times, valid_times)

    ``xr.open_dataset`` reads the file back as the Dataset of all the batches.

    Args:
      path: the file to write.
      grid: the `stconv.data.grid.Grid` of the forecast variables: ``lat``,
        ``lon``, ``dims`` (the input's names of them), and per variable its
        name (``channels``), ``units``, ``long_names``, ``standard_names``.
      mask: ``(lat, lon, channel)`` True where forecasts are valid.
      horizon: the lead times of every forecast.
      lead_time: the ``lead_time`` coordinate (`lead_times`); default steps 1..horizon.
      members: an ensemble's member names: forecasts are then ``(n, member,
        lead, lat, lon, channel)``; () for single forecasts.
      overwrite: replace a file at ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        grid: Grid,
        mask: np.ndarray,
        horizon: int,
        lead_time: xr.Variable | None = None,
        members: tuple[str, ...] = (),
        overwrite: bool = False,
    ):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.members = tuple(members)
        self.grid = grid
        self.placement = grid.map_variables()  # a rotated grid's cells on the globe, once
        self.mask = np.asarray(mask, bool)
        self.horizon = horizon
        self.lead_time = lead_time if lead_time is not None else lead_steps(horizon)
        self.count = 0  # forecasts written so far
        self.init_times, self.valid_times = [], []
        self.file = None
        self.temporary = None

    @property
    def dims(self) -> tuple[str, ...]:
        return forecast_dims(self.grid, bool(self.members))

    @property
    def forecast_shape(self) -> tuple[int, ...]:
        """One forecast's shape: ``(lead, lat, lon, channel)``, after ``(member,)``
        for an ensemble."""
        return (len(self.members),) * bool(self.members) + (self.horizon, *self.mask.shape)

    def __enter__(self) -> "ForecastWriter":
        remove_stale_temporaries(self.path)
        self.temporary = temporary_path(self.path)
        with self.failures_named():
            # Mode 0o666 less the umask, as a new file gets; netCDF4 keeps it.
            os.close(os.open(self.temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        # xarray's lock: a lazily read input may be read by other threads meanwhile.
        try:
            with NETCDF4_PYTHON_LOCK, self.failures_named():
                self.file = netCDF4.Dataset(self.temporary, "w")
                self.define()
        except BaseException:
            self.close()
            remove_temporary(self.temporary)
            raise
        return self

    def define(self) -> None:
        """Dimensions, coordinates (but ``init_time``'s values) and empty variables."""
        lat_name, lon_name = self.dims[-2:]
        lat, lon = self.grid.lat, self.grid.lon
        self.file.setncattr("title", "stconv forecast")
        for name, size in (("init_time", None), ("lead_time", self.horizon)):
            self.file.createDimension(name, size)
        if self.members:
            self.file.createDimension("member", len(self.members))
            self.coordinate("member", np.arange(len(self.members)), {})
            names = self.file.createVariable("member_name", str, ("member",))
            names[:] = np.array(self.members, object)
        self.file.createDimension(lat_name, len(lat))
        self.file.createDimension(lon_name, len(lon))
        self.encoded("lead_time", self.lead_time)
        lat_attrs, lon_attrs = self.grid.axis_attrs()
        self.coordinate(lat_name, lat, lat_attrs)
        self.coordinate(lon_name, lon, lon_attrs)
        for name, variable in self.placement.items():
            self.encoded(name, variable)
        for c, name in enumerate(self.grid.channels):
            variable = self.file.createVariable(
                str(name),
                "f4",
                self.dims,
                fill_value=np.float32(np.nan),
                chunksizes=(1, *self.forecast_shape[:-1]),  # one forecast per chunk
            )
            variable.setncatts(self.grid.attrs(c))
            self.set_coordinates(variable)

    def coordinate(self, name: str, values: np.ndarray, attrs: dict) -> None:
        """A 1-D coordinate variable; floats get a NaN ``_FillValue``, as xarray writes them."""
        values = values.astype(values.dtype.newbyteorder("="))  # zarr's come back as ``<f8``
        floating = np.issubdtype(values.dtype, np.floating)
        fill = values.dtype.type(np.nan) if floating else None
        variable = self.file.createVariable(name, values.dtype, (name,), fill_value=fill)
        variable.setncatts(attrs)
        variable[:] = values

    def set_coordinates(self, variable: netCDF4.Variable, *names: str) -> None:
        """The ``coordinates`` attribute of a forecast variable: ``names`` and
        the 2-D latitude and longitude of a rotated grid (`Grid.map_variables`)."""
        names = (*names, *(n for n, v in self.placement.items() if v.ndim == 2))
        if names:
            variable.setncattr("coordinates", " ".join(names))

    def encoded(self, name: str, variable: xr.Variable) -> None:
        """``variable`` written as xarray encodes it (times and spans as numbers with units)."""
        encoded = xr.conventions.encode_cf_variable(variable, name=name)
        file_variable = self.file.createVariable(name, encoded.dtype, variable.dims)
        file_variable.setncatts(encoded.attrs)
        file_variable[:] = encoded.values

    def write(
        self, predictions: np.ndarray, init_times: np.ndarray, valid_times: np.ndarray | None = None
    ) -> None:
        """Appends physical-unit ``predictions`` ``(n, lead, lat, lon, channel)``
        initialised at ``init_times`` ``(n,)`` (datetime64, cftime dates or
        sample indices), for ``valid_times`` ``(n, lead)`` if known."""
        predictions = self.checked(predictions, init_times)
        stop = self.count + len(predictions)
        with NETCDF4_PYTHON_LOCK, self.failures_named():
            for c, name in enumerate(self.grid.channels):
                self.file[str(name)][self.count : stop] = predictions[..., c]
        self.init_times.append(np.asarray(init_times))
        if valid_times is not None:
            self.valid_times.append(np.asarray(valid_times))
        self.count = stop

    def checked(self, predictions: np.ndarray, init_times: np.ndarray) -> np.ndarray:
        """``predictions`` as written: float32, NaN outside the mask; ValueError
        if they do not fit the file."""
        shape = self.forecast_shape
        if predictions.shape[1:] != shape or len(init_times) != len(predictions):
            raise ValueError(
                f"forecasts of shape {predictions.shape} with {len(init_times)} init times do "
                f"not fit the file: expected (n, {', '.join(map(str, shape))}) and n times"
            )
        return np.where(self.mask, predictions, np.nan).astype(np.float32)

    @contextlib.contextmanager
    def failures_named(self) -> Iterator[None]:
        """Turns the netCDF library's write errors ("NetCDF: HDF error") and
        those of the temporary into an OSError naming the output (never the
        temporary) and, when it is so, the full disk."""
        try:
            yield
        except (RuntimeError, OSError) as error:
            full = disk_full(error, os.path.dirname(os.path.abspath(self.path)))
            if isinstance(error, OSError):
                error = error.strerror or error
            raise OSError(
                f"could not write {self.path}: {error}{' (the disk is full)' * full}; "
                "nothing was written there"
            ) from None

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            try:
                if exc_type is None:
                    self.write_times()
            finally:
                self.close()
            if exc_type is None:
                move_into_place(self.temporary, self.path, self.overwrite)
        finally:  # every exit: an exception, KeyboardInterrupt, SystemExit
            remove_temporary(self.temporary)

    def close(self) -> None:
        """Closes the temporary if it is open."""
        if self.file is not None and self.file.isopen():
            with NETCDF4_PYTHON_LOCK, self.failures_named():
                self.file.close()

    def write_times(self) -> None:
        """``init_time`` and ``valid_time``, each encoded once over all times, as
        xarray encodes them."""
        times = np.concatenate(self.init_times) if self.init_times else np.array([])
        with NETCDF4_PYTHON_LOCK, self.failures_named():
            self.encoded("init_time", xr.Variable(("init_time",), times))
            if self.valid_times and len(self.valid_times) == len(self.init_times):
                valid = np.concatenate(self.valid_times)
                self.encoded("valid_time", xr.Variable(("init_time", "lead_time"), valid))
                for name in self.grid.channels:  # read back as their coordinate
                    self.set_coordinates(self.file[str(name)], "valid_time")


class ZarrForecastWriter(ForecastWriter):
    """`ForecastWriter`'s layout as a zarr store (a path ending ``.zarr``),
    appended batch by batch along ``init_time``; written under a temporary
    name beside ``path`` and moved into place when complete."""

    def __enter__(self) -> "ZarrForecastWriter":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise ImportError(
                f"writing the zarr store {self.path} needs zarr: pip install 'stconv[zarr]'"
            ) from None
        remove_stale_temporaries(self.path, folders=True)
        self.temporary = temporary_path(self.path)  # a folder, made by the first `write`
        return self

    def write(
        self, predictions: np.ndarray, init_times: np.ndarray, valid_times: np.ndarray | None = None
    ) -> None:
        predictions = self.checked(predictions, init_times)
        lat_name, lon_name = self.dims[-2:]
        data = {
            str(name): (self.dims, predictions[..., c], self.grid.attrs(c))
            for c, name in enumerate(self.grid.channels)
        }
        coords = {"init_time": np.asarray(init_times)}
        if valid_times is not None:
            coords["valid_time"] = (("init_time", "lead_time"), np.asarray(valid_times))
        if self.count == 0:
            coords.update(
                lead_time=self.lead_time,
                **{lat_name: (lat_name, self.grid.lat, self.grid.axis_attrs()[0])},
                **{lon_name: (lon_name, self.grid.lon, self.grid.axis_attrs()[1])},
                **self.placement,
            )
            if self.members:
                coords.update(
                    member=np.arange(len(self.members)), member_name=("member", list(self.members))
                )
        batch = xr.Dataset(data, coords, attrs={"title": "stconv forecast"})
        with self.failures_named(), warnings.catch_warnings():
            # zarr's note that consolidated metadata is not in its v3 specification
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            if self.count == 0:
                batch.to_zarr(self.temporary, mode="w-", consolidated=True)
            else:
                batch.to_zarr(self.temporary, append_dim="init_time", consolidated=True)
        self.count += len(predictions)

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None and self.count:
                move_store_into_place(self.temporary, self.path, self.overwrite)
        finally:  # every exit: an exception, KeyboardInterrupt, SystemExit
            remove_temporary(self.temporary)


def forecast_writer(path: str | os.PathLike, *args, **kwargs) -> ForecastWriter:
    """A `ZarrForecastWriter` for a path ending ``.zarr``, else a `ForecastWriter`."""
    zarr_store = os.fspath(path).rstrip("/").endswith(".zarr")
    return (ZarrForecastWriter if zarr_store else ForecastWriter)(path, *args, **kwargs)


def forecast_dims(grid: Grid, members: bool = False) -> tuple[str, ...]:
    """A forecast variable's dimensions: ``init_time``, ``member`` for an
    ensemble, ``lead_time`` and the input's own names of the latitude and
    longitude (``grid.dims``)."""
    member = ("member",) if members else ()
    return ("init_time", *member, "lead_time", grid.dim("lat"), grid.dim("lon"))


def lead_steps(horizon: int) -> xr.Variable:
    """``lead_time`` as the steps 1..horizon after ``init_time``."""
    return xr.Variable(("lead_time",), np.arange(1, horizon + 1), {"units": "steps"})


def lead_times(times: np.ndarray, horizon: int) -> xr.Variable:
    """``lead_time`` of forecasts of a time axis ``times``: time spans
    (``timedelta64``) where the times are dates one fixed step apart, else
    `lead_steps`."""
    if len(times) < 2 or np.issubdtype(np.asarray(times).dtype, np.number):
        return lead_steps(horizon)
    steps = {pd.Timedelta(later - earlier) for earlier, later in itertools.pairwise(times)}
    if len(steps) != 1:  # months, years: steps of different lengths
        return lead_steps(horizon)
    (step,) = steps
    spans = np.array([(step * k).to_timedelta64() for k in range(1, horizon + 1)])
    return xr.Variable(("lead_time",), spans)


def valid_times(
    times: np.ndarray, input_length: int, horizon: int, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """``(init_time, lead_time)`` of the windows ``start .. stop - 1`` of a
    time axis: the time each forecast is for (extrapolated with the last
    time step beyond the data)."""
    step = times[-1] - times[-2] if len(times) > 1 else 1
    extended = np.concatenate([times, [times[-1] + step * k for k in range(1, horizon + 1)]])
    stop = len(times) - input_length + 1 if stop is None else stop
    starts = np.arange(start, stop) + input_length
    return extended[starts[:, None] + np.arange(horizon)]


def target_grid(field: xr.DataArray, outputs: int, units: list[str]) -> Grid:
    """The grid of a forecast file of ``field``'s first ``outputs`` channels:
    the `Grid` of ``field`` for the targets only, in the ``units`` a run was trained in."""
    return Grid.of(field).first(outputs).in_units(units)


def forecast_dataset(
    field: xr.DataArray,
    grid: Grid,
    forecasts,
    input_length: int,
    horizon: int,
    members: tuple[str, ...] = (),
) -> xr.Dataset:
    """The forecasts ``(init_time, [member,] lead_time, lat, lon, target)`` of
    every window of ``field`` as a Dataset in the layout of a forecast file:
    one variable per target of ``grid`` (`target_grid`), ``init_time``,
    ``lead_time``, ``valid_time``, the input's own latitude and longitude,
    and an ensemble's ``member`` and ``member_name``. ``forecasts`` may be
    dask-backed: the Dataset then is too."""
    times = field["time"].values
    dims = forecast_dims(grid, bool(members))
    lat_name, lon_name = dims[-2:]
    coords = {
        "init_time": times[input_length - 1 :],
        "lead_time": lead_times(times, horizon),
        lat_name: (lat_name, field["lat"].values, grid.axis_attrs()[0]),
        lon_name: (lon_name, field["lon"].values, grid.axis_attrs()[1]),
        "valid_time": (("init_time", "lead_time"), valid_times(times, input_length, horizon)),
        **grid.map_variables(),
    }
    if members:
        coords["member"] = np.arange(len(members))
        coords["member_name"] = ("member", list(members))
    data_vars = {
        name: (dims, forecasts[..., c], grid.attrs(c)) for c, name in enumerate(grid.channels)
    }
    return xr.Dataset(data_vars, coords)


def write_forecasts(
    path: str | os.PathLike,
    field: xr.DataArray,
    batches: Iterable[np.ndarray],
    mask: np.ndarray,
    units: list[str],
    input_length: int,
    horizon: int,
    members: tuple[str, ...] = (),
    *,
    data: str | os.PathLike,
    mean: bool = False,
    overwrite: bool = False,
) -> int:
    """Writes the physical forecast ``batches`` of every window of ``field``
    (read from ``data``) to ``path`` (`forecast_writer`): its targets, the
    first ``len(units)`` channels, in ``units``, NaN outside ``mask``; an
    ensemble's ``members``, or their ``mean``. Returns the number written.

    Raises:
      RuntimeError: naming ``data``, for a forecast that is not finite inside
        ``mask``; the file is then not written.
    """
    times, outputs = field["time"].values, len(units)
    writer = forecast_writer(
        path, target_grid(field, outputs, units), mask[..., :outputs], horizon,
        lead_times(times, horizon), () if mean else members, overwrite=overwrite,
    )  # fmt: skip
    init_times = times[input_length - 1 :]
    with writer:
        for predictions in batches:
            predictions = predictions.mean(axis=1) if mean else predictions
            if np.isinf(predictions).any() or np.isnan(predictions[..., writer.mask]).any():
                raise RuntimeError(
                    f"the forecasts of {os.fspath(data)!r} from {writer.count} on are not "
                    f"finite inside the run's mask: nothing was written to {writer.path}"
                )
            start, stop = writer.count, writer.count + len(predictions)
            valid = valid_times(times, input_length, horizon, start, stop)
            writer.write(predictions, init_times[start:stop], valid)
    return writer.count
