"""Zonal power spectra of forecasts and truth per lead time: is a forecast blurred?

A forecast that is right on average but smooth (the mean of the possible
futures, which an RMSE-trained model learns to forecast) loses power at small
scales. WeatherBench 2 shows it by comparing the power spectra of forecasts
and truth per lead time; this module does so along longitude.

For one latitude row ``x_0 .. x_{N-1}`` (``N`` longitudes) with discrete
Fourier transform ``X_k = sum_n x_n exp(-2 pi i k n / N)``, the power at zonal
wavenumber ``k = 0 .. N // 2`` (``k`` cycles around the row) is the one-sided

    P_k = c_k |X_k|^2 / N^2,   c_k = 2 for 0 < k < N / 2, else 1,

doubled for the wavenumbers whose negative twin ``N - k`` is folded onto them:
not the mean (``k = 0``), nor, for even ``N``, the Nyquist wavenumber
``k = N / 2``, which is its own twin. Parseval's theorem then reads

    sum_k P_k = mean_n x_n^2,

the row's mean square (``P_0`` is its squared mean), and a cosine
``A cos(2 pi k0 n / N)`` puts ``A^2 / 2`` at ``k0`` (``A^2`` at
``k0 = N / 2``, where it is ``A (-1)^n``). This is scipy's
``periodogram(x, scaling="spectrum", detrend=False)``.

The spectrum of a field ``(lat, lon)`` is the plain mean of its rows' spectra.
A row with a non-finite cell (NaN: masked or missing) is skipped: its
transform would mix the gap into every wavenumber, and no filling rule is
neutral. A field without a complete row has no spectrum (NaN).

`SpectrumAccumulator` adds the spectra of every window per source (the
forecasts by name and the truth), lead time and variable over all batches,
and `SpectrumAccumulator.result` gives their mean per window;
`spectral_ratio` divides each forecast's by the truth's: 1 where the
forecast has the truth's variability at that scale, below 1 where it is
blurred (typically at high ``k``, more so at longer leads).
"""

import numpy as np
import xarray as xr

TRUTH = "truth"


def one_sided_factors(length: int) -> np.ndarray:
    """``c_k`` for ``k = 0 .. length // 2``: 2 where the negative wavenumber
    ``length - k`` is folded onto ``k``, 1 for the mean and the Nyquist
    wavenumber of an even ``length``."""
    factors = np.full(length // 2 + 1, 2.0)
    factors[0] = 1.0
    if length % 2 == 0:
        factors[-1] = 1.0
    return factors


def row_power_spectra(rows: np.ndarray) -> np.ndarray:
    """``P_k`` of every row ``(..., lon)`` -> ``(..., lon // 2 + 1)`` (NaN rows give NaN)."""
    length = rows.shape[-1]
    transform = np.fft.rfft(np.asarray(rows, np.float64), axis=-1)
    return one_sided_factors(length) * np.abs(transform) ** 2 / length**2


def zonal_power_spectrum(field: np.ndarray) -> np.ndarray:
    """The power per zonal wavenumber of ``field`` ``(..., lat, lon)``, the
    mean over its complete latitude rows (see the module).

    Returns:
      ``(..., lon // 2 + 1)`` float64: ``P_k`` for ``k = 0 .. lon // 2``,
      summing to the mean square of the complete rows; NaN where no row is complete.

    Raises:
      ValueError: for fewer than 2 dimensions or no longitude.
    """
    field = np.asarray(field, np.float64)
    if field.ndim < 2 or field.shape[-1] == 0:
        raise ValueError(
            f"field: shape {field.shape} is not (..., lat, lon) with at least one longitude"
        )
    complete = np.all(np.isfinite(field), axis=-1)  # (..., lat)
    spectra = row_power_spectra(np.where(complete[..., None], field, 0.0))
    rows = np.sum(complete, axis=-1)[..., None]
    total = np.sum(np.where(complete[..., None], spectra, 0.0), axis=-2)
    return np.divide(total, rows, out=np.full(total.shape, np.nan), where=rows > 0)


class SpectrumAccumulator:
    """The sum of the zonal spectra of every window, per source, lead time,
    variable (channel) and wavenumber, over all batches, and the number of
    windows summed (those with a complete row).

    Args:
      names: the sources: the forecasts' names and `TRUTH` (``"truth"``),
        which `spectral_ratio` divides by.
    """

    def __init__(self, names: tuple[str, ...]):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"names: {names!r} must be distinct and at least one")
        self.names = tuple(names)
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.shape: tuple[int, ...] | None = None  # (lead, lat, lon, channel) of every batch

    def add(self, name: str, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Adds the spectra of one batch of ``values`` ``(batch, lead, lat, lon,
        channel)`` of the source ``name``; cells where ``mask`` (same shape,
        True = valid) is False count as missing (their rows are skipped).

        Raises:
          ValueError: for a name not among the sources, or a shape that is not
            5-dimensional or differs from the earlier batches' (but the batch).
        """
        if name not in self.names:
            raise ValueError(f"name: {name!r} is not a source; allowed: {', '.join(self.names)}")
        values = np.asarray(values, np.float64)
        if values.ndim != 5:
            raise ValueError(
                f"values of {name!r}: shape {values.shape} is not (batch, lead, lat, lon, channel)"
            )
        if self.shape is not None and values.shape[1:] != self.shape:
            raise ValueError(
                f"values of {name!r}: shape {values.shape} differs from the earlier batches' "
                f"(batch, {', '.join(map(str, self.shape))})"
            )
        if mask is not None:
            if np.shape(mask) != values.shape:
                raise ValueError(f"mask of {name!r}: shape {np.shape(mask)} is not {values.shape}")
            values = np.where(mask, values, np.nan)
        self.shape = values.shape[1:]
        spectra = zonal_power_spectrum(np.moveaxis(values, -1, 2))  # (batch, lead, channel, k)
        summed = np.isfinite(spectra)
        self.sums[name] = self.sums.get(name, 0.0) + np.sum(np.where(summed, spectra, 0.0), axis=0)
        self.counts[name] = self.counts.get(name, 0) + np.sum(summed, axis=0)

    def result(self, variables: list[str], units: list[str]) -> xr.Dataset:
        """The mean spectra per window.

        Args:
          variables: the channels' names, in channel order.
          units: their units (``""``: none), in channel order.

        Returns:
          ``power`` ``(source, variable, lead_time, wavenumber)`` (the mean
          ``P_k``, in units squared; NaN where no window was summed) and
          ``windows`` ``(source, variable, lead_time)`` (the windows summed),
          with ``lead_time`` 1 .. lead, ``wavenumber`` 0 .. lon // 2 and the
          coordinate ``units`` of ``variable``. Only the sources added appear.

        Raises:
          ValueError: when nothing was added, or for as many variables or
            units as there are not channels.
        """
        if self.shape is None:
            raise ValueError("SpectrumAccumulator.result: no values were added")
        leads, _, lon, channels = self.shape
        for argument, given in (("variables", variables), ("units", units)):
            if len(given) != channels:
                raise ValueError(f"{argument}: {len(given)} given for {channels} channels")
        sources = [name for name in self.names if name in self.sums]
        sums = np.stack([self.sums[name] for name in sources])  # (source, lead, channel, k)
        counts = np.stack([self.counts[name] for name in sources])
        power = np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
        dims = ("source", "variable", "lead_time")
        return xr.Dataset(
            {
                "power": ((*dims, "wavenumber"), power.transpose(0, 2, 1, 3)),
                "windows": (dims, counts[..., 0].transpose(0, 2, 1)),
            },
            coords={
                "source": sources,
                "variable": list(variables),
                "lead_time": np.arange(1, leads + 1),
                "wavenumber": np.arange(lon // 2 + 1),
                "units": ("variable", list(units)),
            },
        )


def spectral_ratio(spectra: xr.Dataset) -> xr.Dataset:
    """Each forecast's power over the truth's, per variable, lead time and
    wavenumber (`SpectrumAccumulator.result`): below 1 where the forecast is
    smoother than the truth. NaN where the truth has no power.

    Returns:
      ``ratio`` ``(source, variable, lead_time, wavenumber)`` over the sources but the truth.

    Raises:
      ValueError: when ``spectra`` has no truth or no forecast.
    """
    sources = [str(source) for source in spectra["source"].values]
    if TRUTH not in sources or len(sources) < 2:
        raise ValueError(
            f"spectra: sources {', '.join(sources)} need {TRUTH!r} and at least one forecast"
        )
    truth = spectra["power"].sel(source=TRUTH)
    forecasts = spectra["power"].sel(source=[s for s in sources if s != TRUTH])
    ratio = (forecasts / truth.where(truth > 0)).transpose(*spectra["power"].dims)
    return xr.Dataset({"ratio": ratio})
