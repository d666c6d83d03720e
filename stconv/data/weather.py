"""A seeded, synthetic, weather-like dataset in physical units, in which the inputs
matter: near-surface temperature ``t2m`` (K) carried by the wind ``u10``, ``v10``
(m s-1) over static ``orography`` (m), daily over a mid-latitude band.

The model, stepped in time with a fixed sub-step and vectorised in numpy:

- the temperature relaxes (in `RELAXATION_DAYS`) toward an equilibrium of the
  latitude, the day of the year and the orography (`equilibrium_temperature`:
  a seasonal cycle growing toward the pole, a north-south gradient, a lapse
  rate), and is warmed or cooled by a small, smooth random heating;
- it is advected by the wind (`advect`: semi-Lagrangian, bilinear, periodic in
  longitude, clamped at the edges of the band);
- the wind is a seasonal westerly jet (`jet`), stronger in winter, plus
  random weather: a non-divergent wind (`random_wind`) from a smooth random
  streamfunction with a memory of `WIND_MEMORY_DAYS` days (AR(1) in time);
- the orography is a few smooth Gaussian mountains (`orography`).

So the day-to-day change of the temperature at a cell is mostly the wind
carrying the north-south gradient and the anomalies, which the temperature
alone cannot tell beyond a few days; orography and the time of year set the
equilibrium. The values are synthetic (labelled so in the attributes), not
observations; the parameters are plausible, not fitted to any climate.
"""

import os

import numpy as np
import pandas as pd
import xarray as xr

from stconv.outputs import replaced_whole

# The grid: cell centres over a mid-latitude band and the full circle of longitude.
LAT_BAND = (20.0, 70.0)  # degrees_north, south edge to north edge
METRES_PER_DEGREE = 111e3  # along a meridian (and along the equator)
EARTH_RADIUS = METRES_PER_DEGREE * 180 / np.pi  # m
SECONDS_PER_DAY = 86400.0

# Temperature.
MEAN_TEMPERATURE = 283.0  # K, annual equilibrium at 45N and sea level
MERIDIONAL_CONTRAST = 30.0  # K, warmer at the south edge than at the north edge
SEASONAL_AMPLITUDE = (5.0, 15.0)  # K, at the south and the north edge
LAPSE_RATE = 6.5e-3  # K m-1
RELAXATION_DAYS = 8.0
COLDEST_DAY = 15  # days after 1 January of the coldest equilibrium and strongest jet
HEATING = 0.3  # K day-1, root mean square of the random heating (new each day)
HEATING_SCALE = 500e3  # m, smoothness of the heating

# Wind.
JET_WINTER, JET_SUMMER = 10.0, 4.0  # m s-1, westerly jet at its core
JET_LATITUDE, JET_WIDTH = 45.0, 12.0  # degrees_north, core and e-folding half width
RANDOM_WIND = 5.0  # m s-1, root mean square of each component of the random wind at 45N
EDDY_SCALE = 1000e3  # m, smoothness of the streamfunction (eddies of about 5000 km)
WIND_MEMORY_DAYS = 3.0

# Orography.
MOUNTAINS = (3, 6)  # how many, at least and at most
MOUNTAIN_HEIGHT = (1000.0, 3000.0)  # m
MOUNTAIN_WIDTH = (400e3, 1000e3)  # m, standard deviation of the Gaussian

# Stepping.
SUBSTEPS_PER_DAY = 4
SPINUP_DAYS = 60

DEFAULT_SIZES = {"years": 20, "lat": 16, "lon": 32}


def grid(lat: int, lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres, evenly spaced: latitudes over `LAT_BAND` from south to north,
    longitudes over the full circle from 0.

    Args:
        lat: Number of rows (at least 2).
        lon: Number of columns.

    Returns:
        ``(lats, lons)`` in degrees_north and degrees_east.
    """
    south, north = LAT_BAND
    lats = south + (np.arange(lat) + 0.5) * (north - south) / lat
    return lats, np.arange(lon) * 360.0 / lon


def orography(lats: np.ndarray, lons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few smooth Gaussian mountains at random places, with random heights and widths.

    Args:
        lats: Latitudes of the rows (degrees_north).
        lons: Longitudes of the columns (degrees_east).
        rng: Draws the mountains.

    Returns:
        Surface altitude ``(lat, lon)`` in m.
    """
    height = np.zeros((len(lats), len(lons)))
    for _ in range(rng.integers(MOUNTAINS[0], MOUNTAINS[1] + 1)):
        centre_lat = rng.uniform(LAT_BAND[0] + 5, LAT_BAND[1] - 5)
        centre_lon = rng.uniform(0, 360)
        peak, width = rng.uniform(*MOUNTAIN_HEIGHT), rng.uniform(*MOUNTAIN_WIDTH)
        east = (lons[None, :] - centre_lon + 180) % 360 - 180
        dx = east * METRES_PER_DEGREE * np.cos(np.deg2rad(lats[:, None]))
        dy = (lats[:, None] - centre_lat) * METRES_PER_DEGREE
        height += peak * np.exp(-(dx**2 + dy**2) / (2 * width**2))
    return height


def winterness(days: float, first_day_of_year: int) -> float:
    """The seasonal cycle: 1 at `COLDEST_DAY` (mid-January), -1 half a year later.

    Args:
        days: Time in days since the start.
        first_day_of_year: Days from 1 January to the start.

    Returns:
        A number in [-1, 1].
    """
    return float(np.cos(2 * np.pi * (first_day_of_year + days - COLDEST_DAY) / 365.25))


def equilibrium_temperature(lats: np.ndarray, altitude: np.ndarray, winter: float) -> np.ndarray:
    """The temperature that the relaxation pulls toward.

    Args:
        lats: Latitudes of the rows (degrees_north).
        altitude: Orography ``(lat, lon)`` in m.
        winter: `winterness` of the time.

    Returns:
        ``(lat, lon)`` in K: a north-south gradient, a seasonal cycle whose
        amplitude grows toward the pole, minus the lapse rate times the altitude.
    """
    south, north = LAT_BAND
    northward = ((lats - south) / (north - south))[:, None]  # 0 at the south edge, 1 north
    gradient = MERIDIONAL_CONTRAST * (0.5 - northward)
    amplitude = SEASONAL_AMPLITUDE[0] + (SEASONAL_AMPLITUDE[1] - SEASONAL_AMPLITUDE[0]) * northward
    return MEAN_TEMPERATURE + gradient - amplitude * winter - LAPSE_RATE * altitude


def jet(lats: np.ndarray, winter: float) -> np.ndarray:
    """The seasonal westerly jet.

    Args:
        lats: Latitudes of the rows (degrees_north).
        winter: `winterness` of the time.

    Returns:
        Eastward wind ``(lat, 1)`` in m s-1: `JET_WINTER` at the core in
        mid-January, `JET_SUMMER` in mid-July.
    """
    core = (JET_WINTER + JET_SUMMER) / 2 + (JET_WINTER - JET_SUMMER) / 2 * winter
    return (core * np.exp(-(((lats - JET_LATITUDE) / JET_WIDTH) ** 2)))[:, None]


def wavenumbers(lat: int, lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumbers of the `rfft2` modes on the spectral grid: ``2 * lat`` rows (twice
    the band, so that the fields need not be periodic in latitude) by ``lon``.

    Args:
        lat: Number of rows of the band.
        lon: Number of columns.

    Returns:
        ``(northward, zonal)``: rad m-1 ``(2 * lat, 1)`` and waves around the
        circle ``(1, lon // 2 + 1)``.
    """
    spacing = (LAT_BAND[1] - LAT_BAND[0]) / lat * METRES_PER_DEGREE
    northward = 2 * np.pi * np.fft.fftfreq(2 * lat, spacing)[:, None]
    return northward, np.fft.rfftfreq(lon, 1 / lon)[None, :]


def smooth_spectrum(lat: int, lon: int, scale: float, rms: float, derivative: bool) -> np.ndarray:
    """Amplitudes of the `rfft2` modes of a smooth random field, a Gaussian spectrum
    isotropic at 45N, without the Nyquist modes.

    Args:
        lat: Number of rows of the band.
        lon: Number of columns.
        scale: Smoothness in m: mode variance ``exp(-(k * scale)**2)``.
        rms: Root mean square that the field has (``derivative=False``) or that
            its northward derivative has (``derivative=True``: a streamfunction
            whose eastward wind has that root mean square).
        derivative: Whether ``rms`` is that of the northward derivative.

    Returns:
        ``(2 * lat, lon // 2 + 1)`` amplitudes.
    """
    northward, zonal = wavenumbers(lat, lon)
    eastward = zonal / (EARTH_RADIUS * np.cos(np.deg2rad(45.0)))
    amplitude = np.exp(-((northward**2 + eastward**2) * scale**2) / 2)
    amplitude[lat] = 0.0
    if lon % 2 == 0:
        amplitude[:, -1] = 0.0
    # Variance of irfft2 of amplitude * (normal + 1j normal): the columns other
    # than the first stand for themselves and their conjugates.
    weights = np.where(zonal == 0, 1.0, 4.0)
    measured = amplitude * np.abs(northward) if derivative else amplitude
    variance = np.sum(weights * measured**2) / (2 * lat * lon) ** 2
    return amplitude * rms / np.sqrt(variance)


def random_wind(
    streamfunction: np.ndarray, lats: np.ndarray, lon: int
) -> tuple[np.ndarray, np.ndarray]:
    """The non-divergent wind of a streamfunction on the sphere,
    ``ψ = s cos φ / cos 45°`` (tapered so that the wind is about as strong at
    every latitude): ``u = -dψ/dy``, ``v = dψ/dλ / (R cos φ)``.

    Args:
        streamfunction: `rfft2` modes of ``s`` (m2 s-1) on the spectral grid.
        lats: Latitudes of the rows of the band (degrees_north).
        lon: Number of columns.

    Returns:
        ``(u, v)``, each ``(lat, lon)`` in m s-1.
    """
    lat = len(lats)
    northward, zonal = wavenumbers(lat, lon)
    modes = np.stack([streamfunction, 1j * northward * streamfunction, 1j * zonal * streamfunction])
    s, ds_dy, ds_dlambda = np.fft.irfft2(modes, s=(2 * lat, lon))[:, :lat]
    phi = np.deg2rad(lats)[:, None]
    taper = np.cos(phi) / np.cos(np.deg2rad(45.0))
    u = -taper * ds_dy + s * np.sin(phi) / (np.cos(np.deg2rad(45.0)) * EARTH_RADIUS)
    return u, ds_dlambda / (EARTH_RADIUS * np.cos(np.deg2rad(45.0)))


def advect(field: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """One semi-Lagrangian step: the field at the departure points, interpolated
    bilinearly, periodic in longitude and clamped at the first and last rows.

    Args:
        field: ``(lat, lon)``, at least two rows.
        rows: ``(lat, lon)`` northward displacement over the step, in cells.
        columns: ``(lat, lon)`` eastward displacement over the step, in cells.

    Returns:
        The advected field ``(lat, lon)``.
    """
    lat, lon = field.shape
    y = np.clip(np.arange(lat)[:, None] - rows, 0, lat - 1)
    x = np.arange(lon)[None, :] - columns
    south = np.minimum(y.astype(np.intp), lat - 2)
    west = np.floor(x).astype(np.intp)
    fy, fx = y - south, x - west
    west %= lon
    east = (west + 1) % lon
    lower = field[south, west] * (1 - fx) + field[south, east] * fx
    upper = field[south + 1, west] * (1 - fx) + field[south + 1, east] * fx
    return lower * (1 - fy) + upper * fy


def weather_dataset(
    years: int = 20, lat: int = 16, lon: int = 32, *, seed: int = 0, start: str = "1990-01-01"
) -> xr.Dataset:
    """The synthetic weather, daily from ``start`` for ``years`` calendar years.

    Args:
        years: Calendar years of daily values (365 or 366 days each).
        lat: Rows of the grid over `LAT_BAND`, from south to north (at least 2).
        lon: Columns of the grid over the full circle of longitude.
        seed: Seeds the orography, the random wind and the heating.
        start: First day.

    Returns:
        A Dataset with ``t2m`` (K), ``u10``, ``v10`` (m s-1) on
        ``(time, lat, lon)`` and ``orography`` (m) on ``(lat, lon)``, float32,
        with CF units and standard names; labelled synthetic.
    """
    if lat < 2:
        raise ValueError(f"weather_dataset needs at least 2 rows, got lat={lat}")
    first = pd.Timestamp(start)
    times = pd.date_range(first, first + pd.DateOffset(years=years), freq="D", inclusive="left")
    rng = np.random.default_rng(seed)
    lats, lons = grid(lat, lon)
    altitude = orography(lats, lons, rng)
    t2m, u10, v10 = simulate(len(times), lats, lon, altitude, first.day_of_year - 1, rng)
    return as_dataset(times, lats, lons, t2m, u10, v10, altitude, years=years, seed=seed)


def simulate(
    days: int,
    lats: np.ndarray,
    lon: int,
    altitude: np.ndarray,
    first_day_of_year: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps the model from `SPINUP_DAYS` before the start, and records each day.

    Args:
        days: Days to record.
        lats: Latitudes of the rows (degrees_north).
        lon: Number of columns.
        altitude: Orography ``(lat, lon)`` in m.
        first_day_of_year: Days from 1 January to the start.
        rng: Draws the random wind and heating.

    Returns:
        ``(t2m, u10, v10)``, float32 ``(days, lat, lon)``: the temperature at
        the start of each day and the wind then.
    """
    lat = len(lats)
    memory = np.exp(-1 / WIND_MEMORY_DAYS)
    eddies = smooth_spectrum(lat, lon, EDDY_SCALE, RANDOM_WIND, derivative=True)
    heating = smooth_spectrum(lat, lon, HEATING_SCALE, HEATING, derivative=False)

    def draw(amplitude: np.ndarray) -> np.ndarray:
        normal = rng.standard_normal((2, *amplitude.shape))
        return amplitude * (normal[0] + 1j * normal[1])

    def wind(day: int, streamfunction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = random_wind(streamfunction, lats, lon)
        return u + jet(lats, winterness(day, first_day_of_year)), v

    streamfunction = draw(eddies)
    now = wind(-SPINUP_DAYS, streamfunction)
    winter = winterness(-SPINUP_DAYS, first_day_of_year)
    temperature = equilibrium_temperature(lats, altitude, winter)
    records = np.empty((3, days, lat, lon), np.float32)
    for day in range(-SPINUP_DAYS, days):
        if day >= 0:
            records[:, day] = temperature, *now
        streamfunction = memory * streamfunction + np.sqrt(1 - memory**2) * draw(eddies)
        later = wind(day + 1, streamfunction)
        warming = np.fft.irfft2(draw(heating), s=(2 * lat, lon))[:lat]
        temperature = step_day(
            temperature, now, later, warming, day + first_day_of_year, lats, altitude
        )
        now = later
    return records[0], records[1], records[2]


def step_day(
    temperature: np.ndarray,
    now: tuple[np.ndarray, np.ndarray],
    later: tuple[np.ndarray, np.ndarray],
    warming: np.ndarray,
    day_of_year: float,
    lats: np.ndarray,
    altitude: np.ndarray,
) -> np.ndarray:
    """One day of the temperature, in `SUBSTEPS_PER_DAY` sub-steps of advection,
    relaxation and heating.

    Args:
        temperature: ``(lat, lon)`` in K at the start of the day.
        now: Wind ``(u, v)`` in m s-1 at the start of the day.
        later: Wind ``(u, v)`` at the end of the day (linear in between).
        warming: Heating ``(lat, lon)`` in K day-1 over the day.
        day_of_year: Days from 1 January to the start of the day.
        lats: Latitudes of the rows (degrees_north).
        altitude: Orography ``(lat, lon)`` in m.

    Returns:
        The temperature ``(lat, lon)`` in K at the end of the day.
    """
    lat, lon = temperature.shape
    dt = 1 / SUBSTEPS_PER_DAY
    # Cells that a wind of 1 m s-1 crosses in a sub-step.
    per_row = SECONDS_PER_DAY * dt / ((LAT_BAND[1] - LAT_BAND[0]) / lat * METRES_PER_DEGREE)
    per_column = SECONDS_PER_DAY * dt / (360 / lon * METRES_PER_DEGREE * np.cos(np.deg2rad(lats)))
    for substep in range(SUBSTEPS_PER_DAY):
        weight = (substep + 0.5) * dt  # the wind at the middle of the sub-step
        u, v = ((1 - weight) * a + weight * b for a, b in zip(now, later, strict=True))
        temperature = advect(temperature, v * per_row, u * per_column[:, None])
        target = equilibrium_temperature(lats, altitude, winterness(day_of_year + weight, 0))
        temperature = target + (temperature - target) * np.exp(-dt / RELAXATION_DAYS)
        temperature = temperature + warming * dt
    return temperature


def as_dataset(
    times: pd.DatetimeIndex,
    lats: np.ndarray,
    lons: np.ndarray,
    t2m: np.ndarray,
    u10: np.ndarray,
    v10: np.ndarray,
    altitude: np.ndarray,
    *,
    years: int,
    seed: int,
) -> xr.Dataset:
    """The fields as a CF-labelled Dataset (see `weather_dataset`)."""
    field = ("time", "lat", "lon")
    variables = {
        "t2m": (field, t2m, "K", "air_temperature", "2 metre temperature"),
        "u10": (field, u10, "m s-1", "eastward_wind", "10 metre U wind component"),
        "v10": (field, v10, "m s-1", "northward_wind", "10 metre V wind component"),
        "orography": (("lat", "lon"), altitude, "m", "surface_altitude", "Surface altitude"),
    }
    data_vars = {
        name: (dims, np.asarray(values, np.float32),
               {"units": units, "standard_name": standard, "long_name": long_name})
        for name, (dims, values, units, standard, long_name) in variables.items()
    }  # fmt: skip
    coords = {
        "time": ("time", times.values, {"standard_name": "time", "axis": "T"}),
        "lat": ("lat", lats, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", lons, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    }
    attrs = {
        "title": "Synthetic weather: temperature carried by the wind over orography",
        "synthetic": "yes",
        "source": (
            f"stconv.data.weather.weather_dataset(years={years}, lat={len(lats)}, "
            f"lon={len(lons)}, seed={seed})"
        ),
        "comment": (
            "Synthetic values, not observations. Temperature relaxes in "
            f"{RELAXATION_DAYS:g} days toward an equilibrium of latitude, season and "
            "orography (lapse rate 6.5 K/km), is advected semi-Lagrangian by the wind "
            "and perturbed by a small smooth random heating. The wind is a seasonal "
            "westerly jet (stronger in winter) plus a non-divergent random wind from a "
            f"smooth streamfunction with a {WIND_MEMORY_DAYS:g}-day memory."
        ),
    }
    dataset = xr.Dataset(data_vars, coords, attrs)
    dataset["time"].encoding = {
        "units": f"days since {times[0]:%Y-%m-%d}",
        "calendar": "standard",
        "dtype": "float64",
    }
    return dataset


def weather_file(seed: int = 0, directory: str | os.PathLike | None = None, **sizes: int) -> str:
    """The synthetic weather as a netCDF file, generated once.

    Args:
        seed: Seed of `weather_dataset`.
        directory: Where the file lies; by default ``$STCONV_DATA_DIR``, else
            ``~/.cache/stconv``. Created if missing.
        **sizes: ``years``, ``lat``, ``lon`` of `weather_dataset` (by default
            20, 16, 32).

    Returns:
        The path ``{directory}/weather-seed{seed}-years{years}-lat{lat}-lon{lon}.nc``
        (the sizes named, so that a file of other sizes is never taken for
        it); an existing file is returned as it is.
    """
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise TypeError(
            f"weather_file takes the sizes {sorted(DEFAULT_SIZES)}, not {sorted(unknown)}"
        )
    if directory is None:
        directory = os.environ.get("STCONV_DATA_DIR") or os.path.join("~", ".cache", "stconv")
    directory = os.path.expanduser(os.fspath(directory))
    chosen = {**DEFAULT_SIZES, **sizes}
    suffix = "".join(f"-{k}{v}" for k, v in chosen.items())
    path = os.path.join(directory, f"weather-seed{seed}{suffix}.nc")
    if os.path.exists(path):
        return path
    os.makedirs(directory, exist_ok=True)
    print(f"generating the weather dataset (seed {seed}) into {path}, once", flush=True)
    dataset = weather_dataset(**chosen, seed=seed)
    encoding = {name: {"zlib": True, "complevel": 4} for name in dataset.data_vars}
    with replaced_whole(path) as temporary:  # killed or failed: no half file, under any name
        dataset.to_netcdf(temporary, encoding=encoding, format="NETCDF4")
    return path
