"""Seeded synthetic fields that move, advect and diffuse (for tests and benchmarks),
and files of them in the conventions of ERA5 and CMIP6 downloads (`era5_like`,
`cmip6_like`).

Each channel is a stationary advection-diffusion process on a periodic grid,
stepped exactly in Fourier space: every mode is advected by a constant
velocity, damped by diffusion and re-excited by smooth random forcing, so
patterns drift across the grid and blur while the field keeps its variance.
A seasonal cycle and a north-south gradient make it look like temperature.
Values are labelled synthetic in the attributes; they are not observations.
"""

import os
from collections.abc import Iterator

import cftime
import netCDF4
import numpy as np
import pandas as pd
import xarray as xr


def synthetic_frames(
    num_steps: int,
    lat: int,
    lon: int,
    channels: int = 1,
    *,
    seed: int = 0,
    velocity: tuple[float, float] = (0.6, 0.9),
    diffusion: float = 0.5,
    chunk: int = 256,
) -> Iterator[np.ndarray]:
    """Yields float32 chunks ``(<= chunk, lat, lon, channels)`` of the field, in time order."""
    rng = np.random.default_rng(seed)
    ky = 2 * np.pi * np.fft.fftfreq(lat)[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(lon)[None, :]
    k2 = ky**2 + kx**2
    speeds = velocity[0] * (1 + 0.3 * np.arange(channels)), velocity[1] * np.ones(channels)
    propagators = np.stack(
        [np.exp(-1j * (ky * vy + kx * vx) - diffusion * k2) for vy, vx in zip(*speeds, strict=True)]
    )
    # Stationary variance per mode: a smooth spectrum, forcing fills what diffusion removes.
    spectrum = np.exp(-k2 / (2 * 0.3**2))
    forcing = np.sqrt(np.maximum(1 - np.abs(propagators) ** 2, 1e-6)) * spectrum
    modes = spectrum * (
        rng.standard_normal(forcing.shape) + 1j * rng.standard_normal(forcing.shape)
    )
    scale = 3.0 / np.sqrt(np.mean(np.fft.irfft2(modes, s=(lat, lon)) ** 2) + 1e-12)
    gradient = np.linspace(15.0, -15.0, lat)[:, None, None]
    for first in range(0, num_steps, chunk):
        frames = []
        for t in range(first, min(first + chunk, num_steps)):
            noise = rng.standard_normal(forcing.shape) + 1j * rng.standard_normal(forcing.shape)
            modes = propagators * modes + forcing * noise
            anomaly = np.moveaxis(np.fft.irfft2(modes, s=(lat, lon)), 0, -1) * scale
            seasonal = 8.0 * np.sin(2 * np.pi * t / 365.25)
            frames.append(280.0 + gradient + seasonal + anomaly)
        yield np.asarray(frames, np.float32)


def coordinates(num_steps: int, lat: int, lon: int, channels: int) -> dict:
    """Daily times from 2000-01-01 and a regular 1-degree grid."""
    return {
        "time": pd.date_range("2000-01-01", periods=num_steps, freq="D"),
        "lat": np.arange(lat, dtype=np.float32) - lat / 2,
        "lon": np.arange(lon, dtype=np.float32),
        "channel": [f"synthetic_{c}" for c in range(channels)],
    }


ATTRS = {"units": "K", "long_name": "synthetic advected-diffused field", "synthetic": "yes"}


def synthetic_field(
    num_steps: int, lat: int, lon: int, channels: int = 1, *, seed: int = 0, **kwargs
) -> xr.DataArray:
    """The synthetic field in memory, as ``(time, lat, lon, channel)``."""
    values = np.concatenate(
        list(synthetic_frames(num_steps, lat, lon, channels, seed=seed, **kwargs))
    )
    per_channel = {name: ("channel", [ATTRS[name]] * channels) for name in ("units", "long_name")}
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon", "channel"),
        coords={**coordinates(num_steps, lat, lon, channels), **per_channel},
        attrs=dict(ATTRS, source=f"synthetic(seed={seed})"),
        name="synthetic",
    )


def write_synthetic_netcdf(
    path: str | os.PathLike,
    num_steps: int,
    lat: int,
    lon: int,
    *,
    seed: int = 0,
    variable: str = "temperature",
    chunk: int = 256,
) -> None:
    """Streams the synthetic field to a CF netCDF file, ``chunk`` steps at a time,
    so files larger than memory can be written."""
    coords = coordinates(num_steps, lat, lon, 1)
    with netCDF4.Dataset(path, "w") as dataset:
        dataset.createDimension("time", None)
        dataset.createDimension("lat", lat)
        dataset.createDimension("lon", lon)
        time = dataset.createVariable("time", "f8", ("time",))
        time.units, time.calendar, time.axis = "days since 2000-01-01", "standard", "T"
        for name, units in (("lat", "degrees_north"), ("lon", "degrees_east")):
            variable_ = dataset.createVariable(name, "f4", (name,))
            variable_.units = units
            variable_[:] = coords[name]
        values = dataset.createVariable(
            variable, "f4", ("time", "lat", "lon"), chunksizes=(1, lat, lon)
        )
        values.setncatts(ATTRS)
        written = 0
        for frames in synthetic_frames(num_steps, lat, lon, 1, seed=seed, chunk=chunk):
            values[written : written + len(frames)] = frames[..., 0]
            time[written : written + len(frames)] = np.arange(written, written + len(frames))
            written += len(frames)


# Files in the conventions of real downloads, their values synthetic.
SYNTHETIC = {"title": "synthetic values in the layout of a real download", "synthetic": "yes"}


def structured_values(num_steps: int, lat: int, lon: int, seed: int = 0) -> np.ndarray:
    """``(time, lat, lon)`` values in [-1, 1] of `synthetic_field`: patterns that
    move over the grid, so that a model can learn them."""
    values = synthetic_field(num_steps, lat, lon, seed=seed).values[..., 0]
    return (values - values.mean()) / (np.abs(values - values.mean()).max() + 1e-6)


def era5_like(
    num_steps: int = 40,
    lat: int = 7,
    lon: int = 12,
    levels: tuple | None = None,
    start: str = "2001-01-01",
) -> xr.Dataset:
    """An ERA5 file as the Copernicus store gives it, with synthetic values (labelled
    so in its attributes), for tests and examples: dimension
    ``valid_time``, ``latitude`` from north to south, ``longitude`` 0 to 330 (every
    30 degrees: a box across longitude 0 selects columns from both ends), int16
    packing with ``scale_factor``/``add_offset``, scalar ``number`` and ``expver``
    coordinates, and several variables in their own units: ``t2m`` (K), ``u10``
    (m s**-1), ``msl`` (Pa); with ``levels``, a pressure-level file of ``z``
    (m**2 s**-2) and ``t`` (K) on ``pressure_level`` (hPa) instead."""
    coords = {
        "valid_time": pd.date_range(start, periods=num_steps, freq="6h"),
        "latitude": ("latitude", np.linspace(60, -60, lat), {"units": "degrees_north"}),
        "longitude": ("longitude", np.arange(lon) * 360.0 / lon, {"units": "degrees_east"}),
        "number": 0,
        "expver": "0001",
    }
    dims = ("valid_time", "latitude", "longitude")
    if levels is None:
        specs = {
            "t2m": ("K", "2 metre temperature", 280.0, 10.0, 0),
            "u10": ("m s**-1", "10 metre U wind component", 0.0, 8.0, 1),
            "msl": ("Pa", "Mean sea level pressure", 101300.0, 800.0, 2),
        }
    else:
        coords["pressure_level"] = ("pressure_level", np.asarray(levels, float), {"units": "hPa"})
        dims = ("valid_time", "pressure_level", "latitude", "longitude")
        specs = {
            "z": ("m**2 s**-2", "Geopotential", 50000.0, 500.0, 3),
            "t": ("K", "Temperature", 250.0, 10.0, 4),
        }
    data_vars = {}
    for name, (units, long_name, offset, scale, seed) in specs.items():
        values = offset + scale * structured_values(num_steps, lat, lon, seed)
        if levels is not None:
            values = np.stack([values + 100.0 * k for k in range(len(levels))], axis=1)
        data_vars[name] = (
            dims,
            values.astype(np.float32),
            {"units": units, "long_name": long_name},
        )
    dataset = xr.Dataset(data_vars, coords, attrs=SYNTHETIC)
    for name in dataset.data_vars:  # packed as the store packs them
        low, high = float(dataset[name].min()), float(dataset[name].max())
        dataset[name].encoding = {
            "dtype": "int16", "scale_factor": (high - low) / 60000, "add_offset": (high + low) / 2,
            "_FillValue": np.int16(-32767),
        }  # fmt: skip
    return dataset


def cmip6_like(
    num_steps: int = 48,
    lat: int = 6,
    lon: int = 8,
    calendar: str = "noleap",
    variables: tuple[str, ...] = ("tas", "uas"),
) -> dict[str, xr.Dataset]:
    """CMIP6 files, one variable per file, with synthetic values (labelled so in
    their attributes), for tests and examples: ``lat``/``lon`` with
    ``lat_bnds``/``lon_bnds``, ``time`` on ``calendar`` with ``time_bnds``, a scalar
    ``height`` coordinate; ``tas`` in K, ``uas`` in m s-1, ``pr`` in kg m-2 s-1."""
    date = {"noleap": cftime.DatetimeNoLeap, "360_day": cftime.Datetime360Day}[calendar]
    times = [date(2000, 1, 1) + i * pd.Timedelta(days=1).to_pytimedelta() for i in range(num_steps)]
    lats = np.linspace(-50, 50, lat)
    lons = (np.arange(lon) + 0.5) * 360.0 / lon
    specs = {
        "tas": ("K", "air_temperature", "Near-Surface Air Temperature", 285.0, 8.0, 2.0),
        "uas": ("m s-1", "eastward_wind", "Eastward Near-Surface Wind", 0.0, 5.0, 10.0),
        "pr": ("kg m-2 s-1", "precipitation_flux", "Precipitation", 3e-5, 2e-5, None),
    }
    datasets = {}
    for seed, name in enumerate(variables):
        units, standard_name, long_name, offset, scale, height = specs[name]
        values = offset + scale * structured_values(num_steps, lat, lon, seed + 5)
        coords = {
            "time": ("time", times, {"axis": "T"}),
            "lat": ("lat", lats, {"units": "degrees_north", "bounds": "lat_bnds"}),
            "lon": ("lon", lons, {"units": "degrees_east", "bounds": "lon_bnds"}),
        }
        if height is not None:
            coords["height"] = ((), height, {"units": "m"})
        step = 360.0 / lon
        datasets[name] = xr.Dataset(
            {
                name: (("time", "lat", "lon"), values.astype(np.float32),
                       {"units": units, "standard_name": standard_name, "long_name": long_name}),
                "lat_bnds": (("lat", "bnds"), np.stack([lats - 10, lats + 10], axis=1)),
                "lon_bnds": (("lon", "bnds"), np.stack([lons - step / 2, lons + step / 2], 1)),
                "time_bnds": (("time", "bnds"), np.stack([times, [*times[1:], times[-1]]], 1)),
            },
            coords,
            SYNTHETIC,
        )  # fmt: skip
        datasets[name]["time"].encoding = {"units": "days since 2000-01-01", "calendar": calendar}
    return datasets
