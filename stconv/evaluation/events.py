"""Event scores of rainfall-like variables: categorical scores at thresholds,
the fractions skill score over neighbourhoods and, for ensembles, the Brier
score, accumulated batch by batch in physical units, kept per window.

An *event* is ``value >= threshold``. A threshold is a number in the
variable's units or a percentile ``qNN`` of the training frames, taken per
cell and channel (`threshold_fields`). A cell is *valid* for a threshold when
its mask is True, its truth and every forecast (member) value are finite and
its threshold is finite (a cell without training data has a NaN percentile);
invalid cells are never events and are not counted.

Contingency counts over the valid cells (for an ensemble, of the events of the
ensemble mean): ``a`` hits (forecast and observed), ``b`` false alarms
(forecast, not observed), ``c`` misses (observed, not forecast), ``d`` correct
negatives, ``n = a + b + c + d``. From the counts summed over windows (and
cells, and leads for the overall score):

- hit rate (probability of detection) ``H = a / (a + c)``;
- false alarm ratio ``FAR = b / (a + b)``;
- critical success index (threat score) ``CSI = a / (a + b + c)``;
- equitable threat score (Gilbert skill score)
  ``ETS = (a - a_r) / (a + b + c - a_r)`` with the hits of a random forecast
  of the same frequency ``a_r = (a + c)(a + b) / n``;
- frequency bias ``B = (a + b) / (a + c)``;
- the symmetric extremal dependence index (Ferro & Stephenson 2011) with the
  false alarm rate ``F = b / (b + d)``:
  ``SEDI = (ln F - ln H + ln(1 - H) - ln(1 - F)) / (ln F + ln H + ln(1 - H) + ln(1 - F))``,
  NaN unless ``0 < H < 1`` and ``0 < F < 1`` (no clipping: `scores`
  computes the same logarithms and gets NaN there too).

A score whose denominator is 0 is undefined and NaN (never 0): e.g. the hit
rate with no observed event, and the frequency bias with no observed event
even where events were forecast (`scores` gives ``inf`` there).

The fractions skill score (Roberts & Lean 2008) at a neighbourhood of
``s x s`` cells (``s`` odd, the window centred on its cell): the event fields
with every invalid cell 0 are averaged over the window, zero-padded outside
the grid, ``P = (events in the window) / s^2`` (`scipy.ndimage.uniform_filter`
in ``constant`` mode), for the forecast ``P_f`` and the truth ``P_o``; over the
valid centres ``FSS = 1 - sum (P_f - P_o)^2 / sum (P_f^2 + P_o^2)``, NaN where
neither has an event. `scores.spatial.fss_2d` with ``zero_padding=True``
pads the same way but, for an odd window, also slides it to one more row and
column of centres past the bottom and right edges; the two agree on a grid
extended by a row and a column of non-events (tested), and `scores` gives 0
where we give NaN. At ``s = 1`` the FSS compares the events cell by cell.

The Brier score of an ensemble, with ``p`` the share of members that have an
event and ``o`` the observed event (0 or 1): ``BS = sum (p - o)^2 / n`` over the
valid cells.

`EventAccumulator` keeps every sum per window (``window_sums``, windows first,
in the order the batches came), so scores can be bootstrapped over windows:
sum the windows, then apply `EVENT_SCORES`.
"""

import dataclasses
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from scipy.ndimage import uniform_filter

CONTINGENCY = ("hits", "misses", "false_alarms", "correct_negatives")
FSS_SUMS = ("fss_squared", "fss_reference")
BRIER_SUMS = ("brier", "brier_count")
THRESHOLDS_ALLOWED = (
    "a comma-separated list of numbers in the variable's units and percentiles qNN "
    "(0 < NN < 100) of the training data, e.g. '1,10,q90'"
)


@dataclasses.dataclass(frozen=True)
class Threshold:
    """An event threshold: a number ``value`` in the variable's units, or a
    ``quantile`` (a fraction in (0, 1): ``q90`` is 0.9) of the training data."""

    name: str
    value: float | None = None
    quantile: float | None = None


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    """The thresholds of ``text`` such as ``"1,10,q90"`` (``q99.5`` allowed).

    Raises:
      ValueError: naming ``thresholds``, for an empty list, an item that is not
        a finite number or a percentile in (0, 100), or a duplicate.
    """
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"thresholds {text!r}: empty item; expected {THRESHOLDS_ALLOWED}")
    thresholds = tuple(parse_threshold(item) for item in items)
    names = [t.name for t in thresholds]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"thresholds {text!r}: {', '.join(duplicates)} given twice; expected "
            f"{THRESHOLDS_ALLOWED}, each once"
        )
    return thresholds


def parse_threshold(item: str) -> Threshold:
    """One item of `parse_thresholds`."""
    percentile = item[1:] if item[:1] in ("q", "Q") else None
    try:
        number = float(item if percentile is None else percentile)
    except ValueError:
        number = math.nan
    if percentile is not None and 0 < number < 100:
        return Threshold(f"q{format_number(number)}", quantile=number / 100)
    if percentile is None and math.isfinite(number):
        return Threshold(format_number(number), value=number)
    raise ValueError(f"thresholds: {item!r} is not allowed; expected {THRESHOLDS_ALLOWED}")


def format_number(number: float) -> str:
    """``number`` as short as it reads: 1, 0.5, 99.5."""
    return np.format_float_positional(number, trim="-")


PRECIPITATION_NAMES = {
    "tp", "tprate", "mtpr", "pr", "prcp", "prate", "precip", "precipitation", "apcp", "ppt",
    "rain", "rainfall", "chirps", "imerg", "gpcp", "mswep",
}  # fmt: skip
OTHER_WATER_NAMES = {
    "e", "evap", "evaporation", "evspsbl", "pev", "ro", "mrro", "mrros", "runoff", "sro", "ssro",
    "sd", "snd", "tcw", "tcwv", "pwat",
}  # fmt: skip
OTHER_WATER_STANDARD_NAMES = ("evapo", "runoff", "water_vapor")
TIME_UNITS = {
    "s", "sec", "second", "seconds", "min", "minute", "minutes", "h", "hr", "hrs", "hour",
    "hours", "d", "day", "days", "pentad", "dekad", "week", "weeks", "mon", "month", "months",
    "yr", "year", "years",
}  # fmt: skip
DAY_UNITS = {"d", "day", "days"}
UNIT_ALIASES = {"millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm"}


def unit_powers(units: str) -> dict[str, int] | None:
    """The symbols of ``units`` and their powers (``"kg m-2 s-1"``,
    ``"kg m**-2 s**-1"``, ``"mm/day"``, ``"mm/3h"``), None where unreadable."""
    text = units.strip().lower().replace("**", "").replace("^", "").replace(" per ", "/")
    powers: dict[str, int] = {}
    for part_index, part in enumerate(text.split("/")):
        for token in part.replace("*", " ").replace(".", " ").split():
            match = re.fullmatch(r"\d*([a-z]+)(-?\d+)?", token)
            if match is None:
                return None
            symbol = UNIT_ALIASES.get(match.group(1), match.group(1))
            power = int(match.group(2) or 1) * (1 if part_index == 0 else -1)
            powers[symbol] = powers.get(symbol, 0) + power
    return {symbol: power for symbol, power in powers.items() if power} or None


def per_time(powers: dict[str, int], rest: dict[str, int]) -> bool:
    """Whether ``powers`` are ``rest`` over one unit of time."""
    times = [symbol for symbol, power in powers.items() if symbol in TIME_UNITS and power == -1]
    return len(times) == 1 and {s: p for s, p in powers.items() if s != times[0]} == rest


def is_water_units(units: str | None, named: bool) -> bool:
    """Whether ``units`` are a depth or rate of water: mm, mm per time or kg m-2
    per time; for a variable ``named`` as precipitation also m, cm, m or cm per
    time, and kg m-2."""
    powers = unit_powers(units) if units else None
    if powers is None:
        return False
    mass = {"kg": 1, "m": -2}
    depths = [{"mm": 1}, {"m": 1}, {"cm": 1}] if named else [{"mm": 1}]
    if powers in depths or (named and powers == mass):
        return True
    return any(per_time(powers, rest) for rest in [*depths, mass])


def is_precipitation(name: str, units: str | None, standard_name: str | None) -> bool:
    """Whether a variable is rainfall-like, to be scored by events.

    By its CF standard name (containing ``precipitation`` or ``rainfall``), by
    units of a depth or rate of water (`is_water_units`: ``m`` only for a name
    like ``tp``), or by a common name (``tp``, ``pr``, ``precip``, ``rain``,
    ``chirps``...) whose units, if given, are not of another quantity.
    Evaporation, runoff, snow depth and water vapour are not.
    """
    standard = (standard_name or "").lower()
    if "precipitation" in standard or "rainfall" in standard:
        return True
    lowered = name.lower()
    tokens = set(re.split(r"[^a-z0-9]+", lowered))
    if tokens & OTHER_WATER_NAMES or any(word in standard for word in OTHER_WATER_STANDARD_NAMES):
        return False
    named = bool(tokens & PRECIPITATION_NAMES) or "precip" in lowered or "rainfall" in lowered
    if is_water_units(units, named):
        return True
    return named and (not units or not units.strip() or unit_powers(units) is None)


def default_thresholds(units: str | None) -> tuple[Threshold, ...]:
    """1, 10 and 20 where ``units`` are millimetres per day, else the 75th, 90th
    and 99th percentiles."""
    powers = unit_powers(units) if units else None
    if powers is not None and any(powers == {"mm": 1, day: -1} for day in DAY_UNITS):
        return parse_thresholds("1,10,20")
    return parse_thresholds("q75,q90,q99")


def threshold_fields(
    thresholds: Sequence[Threshold],
    train: np.ndarray | Iterable[np.ndarray] | None,
    shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """The thresholds in physical units per cell, ``(k, lat, lon, channel)``
    float64: a number everywhere, a percentile per cell and channel of the
    training frames ``train`` ``(time, lat, lon, channel)`` (masked cells NaN;
    a cell without data gets NaN: never an event, not scored).

    Args:
      train: the training frames, or bands of their latitude rows in order
        (every time step of each: `stconv.data.sources.FieldWindows.series_rows`).
      shape: ``(lat, lon, channel)``, needed without ``train``.

    Raises:
      ValueError: naming the threshold, for a percentile without ``train``;
        for a ``shape`` that is not ``train``'s.
    """
    quantiles = [t.quantile for t in thresholds if t.quantile is not None]
    if quantiles and train is None:
        names = ", ".join(t.name for t in thresholds if t.quantile is not None)
        raise ValueError(f"thresholds {names}: percentiles need the training data (none given)")
    percentiles = None
    if train is not None:
        bands = [train] if isinstance(train, np.ndarray) else train
        # The bands of rows side by side: (quantile, lat, lon, channel).
        percentiles = np.concatenate([cell_quantiles(band, quantiles) for band in bands], axis=1)
        if shape is not None and tuple(shape) != percentiles.shape[1:]:
            raise ValueError(
                f"shape {tuple(shape)} differs from the training data's {percentiles.shape[1:]}"
            )
        shape = percentiles.shape[1:]
    if shape is None:
        raise ValueError("threshold_fields: shape (lat, lon, channel) is needed without train")
    percentiles = iter(() if percentiles is None else percentiles)
    fields = [
        np.full(shape, t.value, np.float64) if t.quantile is None else next(percentiles)
        for t in thresholds
    ]
    return np.stack(fields) if fields else np.zeros((0, *shape))


def cell_quantiles(train: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """``quantiles`` of ``train`` over time per cell in float64, ignoring NaN
    (a cell of NaN alone: NaN): ``(quantile, lat, lon, channel)``."""
    train = np.asarray(train, np.float64)
    if not np.isnan(train).any():
        return np.quantile(train, quantiles, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        return np.nanquantile(train, quantiles, axis=0)


def to_events_layout(x: np.ndarray) -> np.ndarray:
    """``(..., lat, lon, channel)`` -> ``(..., channel, 1, lat, lon)``, against
    thresholds ``(channel, k, lat, lon)``."""
    return np.moveaxis(x, -1, -3)[..., None, :, :]


def over_cells(x: np.ndarray) -> np.ndarray:
    return np.sum(x, axis=(-2, -1), dtype=np.float64)


def contingency_sums(forecast: np.ndarray, observed: np.ndarray, valid: np.ndarray) -> dict:
    """The contingency counts over the cells of event fields that are False
    wherever not ``valid``."""
    return {
        "hits": over_cells(forecast & observed),
        "misses": over_cells(~forecast & observed),
        "false_alarms": over_cells(forecast & ~observed),
        "correct_negatives": over_cells(valid & ~forecast & ~observed),
    }


def fractions(events: np.ndarray, scale: int) -> np.ndarray:
    """The share of events in the ``scale x scale`` window centred on each cell,
    zero-padded outside the grid (the last two axes)."""
    return uniform_filter(
        events.astype(np.float64), size=scale, mode="constant", cval=0.0, axes=(-2, -1)
    )


def fss_sums(
    forecast: np.ndarray, observed: np.ndarray, valid: np.ndarray, scales: tuple[int, ...]
) -> dict:
    """``fss_squared`` and ``fss_reference`` over the valid centres, the scales last."""
    squared, reference = [], []
    for scale in scales:
        pf, po = fractions(forecast, scale), fractions(observed, scale)
        squared.append(over_cells(np.where(valid, np.square(pf - po), 0.0)))
        reference.append(over_cells(np.where(valid, np.square(pf) + np.square(po), 0.0)))
    return {"fss_squared": np.stack(squared, -1), "fss_reference": np.stack(reference, -1)}


def brier_sums(
    members: np.ndarray, thresholds: np.ndarray, observed: np.ndarray, valid: np.ndarray
) -> dict:
    """The Brier sums of ``members`` ``(M, ..., channel, 1, lat, lon)``: the
    share of members with an event against the observed events."""
    share = sum(member >= thresholds for member in members) / len(members)
    return {
        "brier": over_cells(np.where(valid, np.square(share - observed), 0.0)),
        "brier_count": over_cells(valid),
    }


class EventAccumulator:
    """Event sums per window, batch by batch, in physical units.

    Args:
      thresholds: ``(k, lat, lon, channel)`` physical thresholds (`threshold_fields`).
      names: the thresholds' names (`Threshold.name`), ``k`` of them.
      scales: the FSS neighbourhoods, odd numbers of cells (1: cell by cell).
      ensemble: forecasts are ensembles ``(members, batch, lead, lat, lon,
        channel)``: their contingency counts and FSS are of the ensemble mean,
        and the Brier sums are kept.

    Raises:
      ValueError: for ``names`` not one per threshold, or scales that are not
        odd positive integers.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        names: Sequence[str],
        scales: tuple[int, ...] = (1, 3, 5),
        ensemble: bool = False,
    ):
        thresholds = np.asarray(thresholds, np.float64)
        if thresholds.ndim != 4 or len(names) != thresholds.shape[0]:
            raise ValueError(
                f"thresholds {thresholds.shape} must be (k, lat, lon, channel) with one of "
                f"the {len(names)} names per threshold"
            )
        if not scales or any(int(s) != s or s < 1 or s % 2 == 0 for s in scales):
            raise ValueError(f"scales {tuple(scales)}: FSS scales must be odd positive integers")
        self.thresholds = np.transpose(thresholds, (3, 0, 1, 2))  # (channel, k, lat, lon)
        self.names = tuple(names)
        self.scales = tuple(int(s) for s in scales)
        self.ensemble = ensemble
        self.batches: list[dict[str, np.ndarray]] = []

    def add(self, forecast: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Adds one batch: ``forecast`` ``(batch, lead, lat, lon, channel)`` (an
        ensemble: ``(members, batch, ...)``), ``truth`` ``(batch, ...)``, in
        physical units; ``mask`` the valid cells (None: all). Padding rows must
        be dropped first: each row is a window."""
        truth = np.asarray(truth)
        members = np.asarray(forecast)
        members = members if self.ensemble else members[None]
        if members.shape[1:] != truth.shape or truth.ndim != 5:
            kind = "(members, batch, lead, lat, lon, channel)" if self.ensemble else "(batch, ...)"
            raise ValueError(f"forecast {np.shape(forecast)} must be {kind} of truth {truth.shape}")
        if truth.shape[2:] != self.thresholds.shape[2:] + self.thresholds.shape[:1]:
            raise ValueError(f"truth {truth.shape} is not on the thresholds' grid")
        mask = np.ones(truth.shape, bool) if mask is None else np.asarray(mask, bool)
        members, truth = to_events_layout(members), to_events_layout(truth)
        valid = (
            to_events_layout(mask)
            & np.isfinite(truth)
            & np.all(np.isfinite(members), axis=0)
            & np.isfinite(self.thresholds)
        )
        observed = (truth >= self.thresholds) & valid
        predicted = (np.mean(members, axis=0) >= self.thresholds) & valid
        sums = contingency_sums(predicted, observed, valid)
        sums.update(fss_sums(predicted, observed, valid, self.scales))
        if self.ensemble:
            sums.update(brier_sums(members, self.thresholds, observed, valid))
        self.batches.append(sums)

    def window_sums(self) -> dict[str, np.ndarray]:
        """Every sum per window, in order: ``(windows, lead, channel, k)``, the
        FSS sums ``(windows, lead, channel, k, scale)``."""
        if not self.batches:
            return {}
        return {name: np.concatenate([b[name] for b in self.batches]) for name in self.batches[0]}

    def result(self) -> list[dict]:
        """`event_results` of the sums of every window."""
        totals = {name: sums.sum(axis=0) for name, sums in self.window_sums().items()}
        return event_results(totals, self.names, self.scales)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    numerator, denominator = np.broadcast_arrays(
        np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    )
    out = np.full(numerator.shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def equitable_threat_score(s: dict[str, np.ndarray]) -> np.ndarray:
    hits, misses, false_alarms = s["hits"], s["misses"], s["false_alarms"]
    total = hits + misses + false_alarms + s["correct_negatives"]
    random_hits = ratio((hits + misses) * (hits + false_alarms), total)
    return ratio(hits - random_hits, hits + misses + false_alarms - random_hits)


def extremal_dependence_index(s: dict[str, np.ndarray]) -> np.ndarray:
    hit_rate = ratio(s["hits"], s["hits"] + s["misses"])
    false_rate = ratio(s["false_alarms"], s["false_alarms"] + s["correct_negatives"])
    defined = (hit_rate > 0) & (hit_rate < 1) & (false_rate > 0) & (false_rate < 1)
    h, f = np.where(defined, hit_rate, 0.5), np.where(defined, false_rate, 0.5)
    logs = np.log(f), np.log(h), np.log1p(-h), np.log1p(-f)
    sedi = (logs[0] - logs[1] + logs[2] - logs[3]) / (logs[0] + logs[1] + logs[2] + logs[3])
    return np.where(defined, sedi, np.nan)


EVENT_SCORES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "hit_rate": lambda s: ratio(s["hits"], s["hits"] + s["misses"]),
    "false_alarm_ratio": lambda s: ratio(s["false_alarms"], s["hits"] + s["false_alarms"]),
    "csi": lambda s: ratio(s["hits"], s["hits"] + s["misses"] + s["false_alarms"]),
    "ets": equitable_threat_score,
    "frequency_bias": lambda s: ratio(s["hits"] + s["false_alarms"], s["hits"] + s["misses"]),
    "sedi": extremal_dependence_index,
    "fss": lambda s: 1.0 - ratio(s["fss_squared"], s["fss_reference"]),
    "brier": lambda s: ratio(s["brier"], s["brier_count"]),
}
"""Each score from summed sums, elementwise over any leading axes (``fss``
keeps the scale axis last); ``brier`` needs an ensemble's sums."""


def event_results(
    sums: dict[str, np.ndarray], names: Sequence[str], scales: Sequence[int]
) -> list[dict]:
    """Per channel, the event scores for ``results.json``.

    Args:
      sums: the sums summed over windows: ``(lead, channel, k)``, the FSS sums
        ``(lead, channel, k, scale)``.
      names: the thresholds' names; scales: the FSS scales.

    Returns:
      One dict per channel: ``thresholds`` (the names), ``scales``, every
      applicable score of `EVENT_SCORES` over all leads, a list per threshold
      (``fss``: per threshold a list per scale), and ``{score}_per_lead``: per
      lead the same. Floats, NaN where undefined.
    """
    overall = {name: value.sum(axis=0) for name, value in sums.items()}
    applicable = [name for name in EVENT_SCORES if name != "brier" or "brier" in sums]
    totals = {score: EVENT_SCORES[score](overall) for score in applicable}
    per_lead = {score: EVENT_SCORES[score](sums) for score in applicable}
    results = []
    for channel in range(sums["hits"].shape[1]):
        result: dict = {"thresholds": list(names), "scales": [int(s) for s in scales]}
        for score in applicable:
            result[score] = totals[score][channel].tolist()
            result[f"{score}_per_lead"] = per_lead[score][:, channel].tolist()
        results.append(result)
    return results
