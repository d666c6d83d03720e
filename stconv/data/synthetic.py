"""Seeded synthetic fields that move, advect and diffuse (for tests and benchmarks).

Each channel is a stationary advection-diffusion process on a periodic grid,
stepped exactly in Fourier space: every mode is advected by a constant
velocity, damped by diffusion and re-excited by smooth random forcing, so
patterns drift across the grid and blur while the field keeps its variance.
A seasonal cycle and a north-south gradient make it look like temperature.
Values are labelled synthetic in the attributes; they are not observations.
"""

import os
from collections.abc import Iterator

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
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon", "channel"),
        coords=coordinates(num_steps, lat, lon, channels),
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
