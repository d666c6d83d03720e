"""Forecasts as netCDF: ``(init_time, lead_time, lat, lon)`` per variable, physical units.

`ForecastWriter` streams batches of forecasts to one file, so a long series of
forecasts over a large grid is written without holding them all in memory.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import netCDF4
import numpy as np
import xarray as xr
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK


class ForecastWriter:
    """Writes physical-unit forecasts to ``path``, one batch at a time.

    Each variable of ``grid["channel"]`` becomes a float32 ``(init_time,
    lead_time, lat, lon)`` variable, NaN outside ``mask``; ``init_time``
    (unlimited) is the time of the last input frame and ``lead_time`` counts
    steps after it. ``xr.open_dataset`` reads the file back as the Dataset of
    all the batches. The file is written under a temporary name of its own
    (hidden, beside ``path``) and moved to
    ``path`` when the ``with`` block ends without an exception; otherwise the
    temporary is removed and an earlier file at ``path`` stays intact::

        with ForecastWriter(path, grid, mask, horizon) as writer:
            for predictions, init_times in batches:
                writer.write(predictions, init_times)

    Args:
      path: the netCDF file to write.
      grid: ``lat`` and ``lon`` coordinates, ``channel`` (variable) names, ``units``.
      mask: ``(lat, lon, channel)`` True where forecasts are valid.
      horizon: the lead times of every forecast.
    """

    def __init__(self, path: str | os.PathLike, grid: dict, mask: np.ndarray, horizon: int):
        self.path = os.fspath(path)
        self.grid = grid
        self.mask = np.asarray(mask, bool)
        self.horizon = horizon
        self.count = 0  # forecasts written so far
        self.init_times = []
        self.file = None
        self.temporary = None

    def __enter__(self) -> "ForecastWriter":
        # A name of its own beside the output, so that writers never share one.
        folder, name = os.path.split(os.path.abspath(self.path))
        handle, self.temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        os.close(handle)
        # xarray's lock: a lazily read input may be read by other threads meanwhile.
        with NETCDF4_PYTHON_LOCK:
            try:
                self.file = netCDF4.Dataset(self.temporary, "w")
            except BaseException:
                os.remove(self.temporary)
                raise
            try:
                self.define()
            except BaseException:
                self.file.close()
                os.remove(self.temporary)
                raise
        return self

    def define(self) -> None:
        """Dimensions, coordinates (but ``init_time``'s values) and empty variables."""
        lat, lon = np.asarray(self.grid["lat"]), np.asarray(self.grid["lon"])
        self.file.setncattr("title", "stconv forecast")
        for name, size in (("init_time", None), ("lead_time", self.horizon)):
            self.file.createDimension(name, size)
        self.file.createDimension("lat", len(lat))
        self.file.createDimension("lon", len(lon))
        self.coordinate("lead_time", np.arange(1, self.horizon + 1), {"units": "steps"})
        self.coordinate("lat", lat, {"units": "degrees_north", "axis": "Y"})
        self.coordinate("lon", lon, {"units": "degrees_east", "axis": "X"})
        for name in self.grid["channel"]:
            variable = self.file.createVariable(
                str(name),
                "f4",
                ("init_time", "lead_time", "lat", "lon"),
                fill_value=np.float32(np.nan),
                chunksizes=(1, self.horizon, len(lat), len(lon)),  # one forecast per chunk
            )
            variable.setncattr("units", str(self.grid["units"]))

    def coordinate(self, name: str, values: np.ndarray, attrs: dict) -> None:
        """A 1-D coordinate variable; floats get a NaN ``_FillValue``, as xarray writes them."""
        floating = np.issubdtype(values.dtype, np.floating)
        fill = values.dtype.type(np.nan) if floating else None
        variable = self.file.createVariable(name, values.dtype, (name,), fill_value=fill)
        variable.setncatts(attrs)
        variable[:] = values

    def write(self, predictions: np.ndarray, init_times: np.ndarray) -> None:
        """Appends physical-unit ``predictions`` ``(n, lead, lat, lon, channel)`` initialised
        at ``init_times`` ``(n,)``: datetime64, cftime dates or sample indices."""
        shape = (self.horizon, *self.mask.shape)
        if predictions.shape[1:] != shape or len(init_times) != len(predictions):
            raise ValueError(
                f"forecasts of shape {predictions.shape} with {len(init_times)} init times do "
                f"not fit the file: expected (n, {', '.join(map(str, shape))}) and n times"
            )
        predictions = np.where(self.mask, predictions, np.nan).astype(np.float32)
        stop = self.count + len(predictions)
        with NETCDF4_PYTHON_LOCK, self.failures_named():
            for c, name in enumerate(self.grid["channel"]):
                self.file[str(name)][self.count : stop] = predictions[..., c]
        self.init_times.append(np.asarray(init_times))
        self.count = stop

    @contextlib.contextmanager
    def failures_named(self) -> Iterator[None]:
        """Turns the netCDF library's write errors ("NetCDF: HDF error") into an
        OSError naming the output and, when it is so, the full disk."""
        try:
            yield
        except RuntimeError as error:
            folder = os.path.dirname(os.path.abspath(self.path))
            full = shutil.disk_usage(folder).free < 2**20
            raise OSError(
                f"could not write {self.path}: {error}{' (the disk is full)' * full}; "
                "nothing was written there"
            ) from None

    def __exit__(self, exc_type, exc, traceback) -> None:
        done = exc_type is None
        try:
            if done:
                self.write_init_times()
            with NETCDF4_PYTHON_LOCK, self.failures_named():
                self.file.close()
        except BaseException:
            done = False
            raise
        finally:
            if done:
                os.replace(self.temporary, self.path)
            elif os.path.exists(self.temporary):
                os.remove(self.temporary)

    def write_init_times(self) -> None:
        """The ``init_time`` coordinate, encoded once over all times, as xarray encodes one."""
        times = np.concatenate(self.init_times) if self.init_times else np.array([])
        encoded = xr.conventions.encode_cf_variable(
            xr.Variable(("init_time",), times), name="init_time"
        )
        with NETCDF4_PYTHON_LOCK, self.failures_named():
            variable = self.file.createVariable("init_time", encoded.dtype, ("init_time",))
            variable.setncatts(encoded.attrs)
            variable[:] = encoded.values
