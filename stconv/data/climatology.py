"""Climatologies by time of year, fitted on the training split only.

The climatology is the reference of the anomaly correlation and a forecast of
its own. As in WeatherBench 2 (Rasp et al., 2024), whose climatology is the
mean by day of year and hour of day smoothed with a 61-day running window,
the kind follows the data's time step:

- daily data: by day of year, smoothed over ``window`` days (61 by default);
- sub-daily data: by day of year and hour of day, every hour smoothed over days;
- monthly data: by calendar month, not smoothed;
- annual data, or a time axis of numbers: every cell's training mean.

Day-of-year slots are calendar-aware. The standard calendar has 366 slots in
which 29 February is slot 59 (0-based), so 1 March is slot 60 and 31 December
slot 365 in every year; noleap has 365 slots, 360_day 360 and all_leap 366.
The smoothing is a centred running mean over days, circular around the year,
of the slot means that exist (a slot without training data, such as 29
February in a short training split, takes its value from its neighbours).

Every refusal raises `stconv.data.errors.DataError` with one line naming the
data and what is needed.
"""

import dataclasses
import datetime
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from stconv.data.blocks import row_blocks
from stconv.data.errors import DataError
from stconv.data.times import floor_dates

KINDS = ("annual", "monthly", "daily", "subdaily")
DIMS = ("time", "lat", "lon", "channel")
GRID = ("lat", "lon", "channel")

# Calendar names (CF conventions, cftime) -> the slot layout they use.
CALENDARS = {
    "standard": "standard",
    "gregorian": "standard",
    "proleptic_gregorian": "standard",
    "julian": "standard",
    "noleap": "noleap",
    "365_day": "noleap",
    "360_day": "360_day",
    "all_leap": "all_leap",
    "366_day": "all_leap",
}
SUPPORTED = "standard (gregorian, proleptic_gregorian, julian), noleap (365_day), 360_day, all_leap"
MONTH_DAYS = {
    "standard": (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31),
    "noleap": (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31),
    "360_day": (30,) * 12,
    "all_leap": (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31),
}
# The 0-based day slot of the first of every month, and the slots of a year.
MONTH_STARTS = {c: np.cumsum((0, *days[:-1])) for c, days in MONTH_DAYS.items()}
DAY_SLOTS = {c: sum(days) for c, days in MONTH_DAYS.items()}
# Days from first to last time (plus one step) that make one full year of data.
YEAR_DAYS = {"standard": 365, "noleap": 365, "360_day": 360, "all_leap": 366}
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
DESCRIPTIONS = {
    "annual": "the training mean of every cell",
    "monthly": "by calendar month",
    "daily": "by day of year, smoothed over {window} days",
    "subdaily": "by day of year and hour of day, smoothed over {window} days",
}

Times = np.ndarray | xr.DataArray | pd.Index | None


@dataclasses.dataclass(frozen=True)
class Climatology:
    """A training climatology by time of year, in physical units.

    Attributes:
      kind: one of `KINDS`.
      values: ``(period, lat, lon, channel)`` float32; NaN where a cell never
        has data. ``period`` is 1 (annual), 12 (monthly), the day slots of the
        calendar (daily) or day slots times ``len(hours)`` (subdaily, slot
        ``day * len(hours) + hour position``).
      calendar: "standard", "noleap", "360_day" or "all_leap"; "" for annual.
      window: days smoothed over (daily, subdaily); 1 otherwise.
      hours: subdaily: the hours of day, in slot order; () otherwise.
    """

    kind: str
    values: np.ndarray
    calendar: str = ""
    window: int = 1
    hours: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"climatology kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind in ("daily", "subdaily") and self.calendar not in DAY_SLOTS:
            raise DataError(f"climatology calendar {self.calendar!r} is not one of {SUPPORTED}")
        period = slot_count(self.kind, self.calendar, self.hours)
        if np.ndim(self.values) != 4 or np.shape(self.values)[0] != period:
            raise DataError(
                f"a climatology {self.describe()} has values of shape (period={period}, lat, "
                f"lon, channel), not {np.shape(self.values)}"
            )

    def index(self, times: Times) -> np.ndarray:
        """The slot of every time in `values`.

        Args:
          times: dates of any shape (numpy datetime64 or cftime objects, or a
            DataArray of them); for an annual climatology also numbers or None.

        Returns:
          int slots, of the shape of ``times`` (``()`` for None).
        """
        values = None if times is None else as_array(times)
        if self.kind == "annual":
            return np.zeros(np.shape(values), np.int64)
        if values is None or not is_dates(values):
            raise DataError(f"a climatology {self.describe()} needs dates, not {values!r}")
        dates = date_fields(values)
        if self.kind == "monthly":
            return (dates.month - 1).reshape(values.shape)
        calendar = normalize_calendar(dates.calendar, "the times")
        if calendar != self.calendar:
            raise DataError(
                f"times on the {calendar} calendar for a climatology fitted on the "
                f"{self.calendar} calendar: use data on the same calendar"
            )
        slots = day_slots(dates, calendar)
        if self.kind == "subdaily":
            slots = slots * len(self.hours) + hour_positions(dates, self.hours)
        return slots.reshape(values.shape)

    def at(self, times: Times) -> np.ndarray:
        """The climatology at every time.

        Args:
          times: as in `index`.

        Returns:
          ``times.shape + (lat, lon, channel)``; ``values[0]`` for an annual
          climatology and ``times`` None.
        """
        if times is None and self.kind == "annual":
            return self.values[0]
        return self.values[self.index(times)]

    def first(self, channels: int) -> "Climatology":
        """The climatology of the first ``channels`` channels (the targets)."""
        return dataclasses.replace(self, values=self.values[..., :channels])

    def describe(self) -> str:
        """One short phrase for tables, e.g. "by calendar month"."""
        return DESCRIPTIONS[self.kind].format(window=self.window)

    def slot_name(self, slot: int) -> str:
        """The time of year of ``slot``, e.g. "29 February at 06:00"."""
        if self.kind == "annual":
            return "the whole year"
        if self.kind == "monthly":
            return MONTHS[slot]
        per_day = max(len(self.hours), 1)
        name = day_name(self.calendar, slot // per_day)
        return f"{name} at {self.hours[slot % per_day]:02d}:00" if self.hours else name

    def to_dict(self) -> dict:
        """Everything but `values`, JSON-able (with a description for readers)."""
        return {
            "kind": self.kind,
            "calendar": self.calendar,
            "window": int(self.window),
            "hours": [int(h) for h in self.hours],
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, meta: dict, values: np.ndarray) -> "Climatology":
        """The climatology `to_dict` wrote, with its ``values``.

        Args:
          meta: what `to_dict` returned.
          values: the `values` saved with it.

        Returns:
          the climatology; DataError if ``meta`` and ``values`` disagree.
        """
        return cls(
            kind=str(meta.get("kind", "")),
            values=np.asarray(values, np.float32),
            calendar=str(meta.get("calendar", "")),
            window=int(meta.get("window", 1)),
            hours=tuple(int(h) for h in meta.get("hours", ())),
        )


@dataclasses.dataclass(frozen=True)
class DateFields:
    """Calendar fields of flattened dates."""

    calendar: str  # as the dates name it
    year: np.ndarray
    month: np.ndarray
    day: np.ndarray
    hour: np.ndarray
    on_hour: np.ndarray  # no minutes, seconds or smaller


def as_array(times: Times) -> np.ndarray:
    """``times`` as a numpy array (the values of a DataArray)."""
    return np.asarray(times.values if isinstance(times, xr.DataArray) else times)


def is_dates(values: np.ndarray) -> bool:
    """Whether ``values`` holds numpy datetime64 or cftime (or datetime) objects."""
    if np.issubdtype(values.dtype, np.datetime64):
        return True
    first = values.flat[0] if values.dtype == object and values.size else None
    return hasattr(first, "month") and hasattr(first, "hour")


def date_fields(values: np.ndarray) -> DateFields:
    """The calendar fields of ``values`` (dates of any shape), flattened."""
    flat = values.ravel()
    if np.issubdtype(values.dtype, np.datetime64):
        if np.isnat(flat).any():
            raise DataError("the times include NaT (not a time): drop or fill them")
        return DateFields("standard", *datetime64_fields(flat))
    fields = [[getattr(t, name) for t in flat] for name in ("year", "month", "day", "hour")]
    on_hour = [t.minute == 0 and t.second == 0 and t.microsecond == 0 for t in flat]
    calendar = getattr(flat[0], "calendar", "standard")
    return DateFields(calendar, *(np.array(f, np.int64) for f in fields), np.array(on_hour, bool))


def datetime64_fields(flat: np.ndarray) -> tuple[np.ndarray, ...]:
    """Year, month, day, hour and whether on the hour, of numpy datetimes, in
    numpy alone: called for every example's few frames, where pandas' fields
    cost a millisecond."""
    years, months, days = (flat.astype(f"M8[{unit}]") for unit in ("Y", "M", "D"))
    year = years.astype(np.int64) + 1970
    month = (months - years).astype(np.int64) + 1
    day = (days - months).astype(np.int64) + 1
    within = (flat - days).astype("m8[ns]").astype(np.int64)
    hour_ns = 3_600_000_000_000
    return year, month, day, within // hour_ns, within % hour_ns == 0


def normalize_calendar(calendar: str, source: str) -> str:
    """The slot layout ("standard", "noleap", "360_day", "all_leap") of ``calendar``."""
    name = CALENDARS.get(str(calendar).lower())
    if name is None:
        raise DataError(
            f"{source}: time is on the {calendar!r} calendar: a climatology by time of year "
            f"supports the {SUPPORTED} calendars"
        )
    return name


def slot_count(kind: str, calendar: str, hours: tuple[int, ...]) -> int:
    """The number of slots of a climatology of ``kind``."""
    if kind == "annual":
        return 1
    if kind == "monthly":
        return 12
    return DAY_SLOTS[calendar] * max(len(hours), 1)


def day_slots(dates: DateFields, calendar: str) -> np.ndarray:
    """The 0-based day-of-year slot of every date (29 February is its own slot)."""
    return MONTH_STARTS[calendar][dates.month - 1] + dates.day - 1


def day_name(calendar: str, day: int) -> str:
    """The date of day slot ``day``, e.g. "1 March"."""
    month = int(np.searchsorted(MONTH_STARTS[calendar], day, side="right")) - 1
    return f"{day - MONTH_STARTS[calendar][month] + 1} {MONTHS[month]}"


def hour_positions(dates: DateFields, hours: tuple[int, ...]) -> np.ndarray:
    """The position in ``hours`` of every date's hour; DataError for another hour."""
    lookup = np.full(24, -1)
    lookup[list(hours)] = np.arange(len(hours))
    positions = lookup[dates.hour]
    wrong = (positions < 0) | ~dates.on_hour
    if wrong.any():
        first = int(np.argmax(wrong))
        raise DataError(
            f"a time at hour {dates.hour[first]} of the day (or not on the hour): the "
            f"climatology has the hours {tuple(hours)} only"
        )
    return positions


def steps_in_days(values: np.ndarray) -> np.ndarray:
    """The steps between successive dates of a 1-D array, in days."""
    steps = values[1:] - values[:-1]
    if np.issubdtype(values.dtype, np.datetime64):
        return steps / np.timedelta64(1, "D")
    day = datetime.timedelta(days=1)
    return np.array([step / day for step in steps], np.float64)


def day_steps(values: np.ndarray) -> np.ndarray:
    """The steps between successive dates of a 1-D array, in days; between
    the dates floored to their day where no two fall on one day (a daily or
    coarser series whose hours jitter, `stconv.data.times`)."""
    floored = steps_in_days(floor_dates(values, "D"))
    return floored if np.all(floored >= 1) else steps_in_days(values)


def time_kind(times: Times, source: str = "the data") -> str:
    """The kind of climatology for a time axis, by its median step (`day_steps`).

    Args:
      times: a 1-D time axis: numpy datetime64, cftime objects, or numbers.
      source: the data, named in errors.

    Returns:
      "annual" for numbers, fewer than 2 times or a step of 300 days or more;
      "monthly" for 27 days or more; "daily" for about a day or more;
      "subdaily" below.
    """
    values = None if times is None else as_array(times).ravel()
    if values is None or values.size < 2 or not is_dates(values):
        return "annual"
    if values.dtype == object:  # cftime: unsupported calendars cannot even subtract dates
        normalize_calendar(getattr(values[0], "calendar", "standard"), source)
    step = float(np.median(day_steps(values)))
    if step <= 0:
        raise DataError(f"{source}: time does not increase: sort the file by time")
    if step >= 300:
        return "annual"
    if step >= 27:
        return "monthly"
    return "daily" if step >= 0.99 else "subdaily"


def check_window(window: int) -> None:
    """Raises DataError unless ``window`` is a positive odd integer."""
    integer = isinstance(window, int | np.integer) and not isinstance(window, bool)
    if not integer or window < 1 or window % 2 == 0:
        raise DataError(
            f"climatology_window is {window!r}: it must be a positive odd number of days "
            "(1 for no smoothing; WeatherBench 2 uses 61)"
        )


def fit_climatology(train: xr.DataArray, window: int = 61, source: str = "the data") -> Climatology:
    """The climatology of the training split, of the kind its time step calls for.

    Args:
      train: the training split, dims ``("time", "lat", "lon", "channel")``
        with a ``time`` coordinate (may be dask-backed).
      window: days of the centred running mean over days of year (daily and
        sub-daily data): a positive odd integer, 61 as in WeatherBench 2.
      source: the data, named in errors.

    Returns:
      the climatology (see `time_kind` for its kind). DataError for a bad
      window, a seasonal climatology with less than a year of training data,
      an unsupported calendar, irregular hours of day, or a slot left without
      a value in a cell that has data.
    """
    check_window(window)
    if tuple(train.dims) != DIMS:
        raise DataError(f"{source}: a climatology needs dims {DIMS}, not {tuple(train.dims)}")
    times = train["time"].values
    kind = time_kind(times, source)
    if kind == "annual":
        return Climatology("annual", annual_mean(train))
    dates = date_fields(times)
    calendar = normalize_calendar(dates.calendar, source)
    if kind == "monthly":
        climatology, raw = fit_monthly(train, dates, calendar, source)
    else:
        climatology, raw = fit_days(train, dates, calendar, kind, window, source)
    check_filled(climatology, raw, train, source)
    return climatology


def annual_mean(train: xr.DataArray) -> np.ndarray:
    """Every cell's training mean, ``(1, lat, lon, channel)`` float32."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        mean = train.mean("time", skipna=True, dtype=np.float64).transpose(*GRID).values[None]
    return mean.astype(np.float32, copy=False)


def slot_means(train: xr.DataArray, slots: np.ndarray, count: int) -> np.ndarray:
    """The NaN-skipping mean of every slot, ``(count, lat, lon, channel)`` float32;
    NaN where a slot has no data.

    Read a dask chunk of times at a time (a dask-backed split is streamed),
    or a block of times in memory (`stconv.data.blocks.row_blocks`), summed
    in float64: every slot adds its values in time order, so the sums do not
    depend on the blocks.
    """
    shape = (count, *train.shape[1:])
    sums, counts = np.zeros(shape, np.float64), np.zeros(shape, np.int64)
    for rows in row_blocks(train.data):
        accumulate(sums, counts, np.asarray(train.data[rows]), slots[rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return means.astype(np.float32)


def accumulate(sums: np.ndarray, counts: np.ndarray, block: np.ndarray, slots: np.ndarray) -> None:
    """Adds the finite values of ``block`` (and their number) to their ``slots``,
    in passes over which no slot repeats (one a year, for a regular series)."""
    finite = np.isfinite(block)
    values = np.where(finite, block, 0)
    occurrence = occurrences(slots)
    for k in range(int(occurrence.max()) + 1):
        pick = occurrence == k
        sums[slots[pick]] += values[pick]
        counts[slots[pick]] += finite[pick]


def occurrences(slots: np.ndarray) -> np.ndarray:
    """How many times every slot appeared before, e.g. ``[0, 0, 1, 0, 1, 2]`` for
    ``[5, 6, 5, 7, 6, 5]``."""
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    positions = np.arange(len(slots))
    firsts = np.r_[True, ordered[1:] != ordered[:-1]]
    run_starts = np.maximum.accumulate(np.where(firsts, positions, 0))
    result = np.empty_like(positions)
    result[order] = positions - run_starts
    return result


def fit_monthly(
    train: xr.DataArray, dates: DateFields, calendar: str, source: str
) -> tuple[Climatology, np.ndarray]:
    """The climatology by calendar month, and its month means."""
    months = (dates.year[-1] - dates.year[0]) * 12 + dates.month[-1] - dates.month[0] + 1
    if months < 12:
        raise DataError(
            f"{source}: the training split covers {months} months: a climatology by calendar "
            "month needs at least one full year (12 months) of training data (use a longer "
            "file or a larger training fraction)"
        )
    raw = slot_means(train, dates.month - 1, 12)
    return Climatology("monthly", raw, calendar), raw


def fit_days(
    train: xr.DataArray, dates: DateFields, calendar: str, kind: str, window: int, source: str
) -> tuple[Climatology, np.ndarray]:
    """The climatology by day of year (and hour of day), smoothed, and its raw slot means."""
    check_year(train["time"].values, calendar, source)
    if window > DAY_SLOTS[calendar]:
        raise DataError(
            f"{source}: climatology_window is {window}: it must be at most the "
            f"{DAY_SLOTS[calendar]} days of a {calendar} year"
        )
    hours = regular_hours(dates, source) if kind == "subdaily" else ()
    slots = day_slots(dates, calendar)
    if hours:
        slots = slots * len(hours) + hour_positions(dates, hours)
    raw = slot_means(train, slots, slot_count(kind, calendar, hours))
    days = raw.reshape(DAY_SLOTS[calendar], max(len(hours), 1), *raw.shape[1:])
    values = smooth(days, window).reshape(raw.shape)
    return Climatology(kind, values, calendar, window, hours), raw


def check_year(times: np.ndarray, calendar: str, source: str) -> None:
    """Raises DataError unless ``times`` cover at least one full year of ``calendar``."""
    steps = day_steps(times)
    covered = float(steps.sum() + np.median(steps))  # first to last time, plus one step
    if covered < YEAR_DAYS[calendar] - 1e-6:
        raise DataError(
            f"{source}: the training split covers {covered:g} days: a climatology by day of "
            f"year needs at least one full year ({YEAR_DAYS[calendar]} days) of training data "
            "(use a longer file or a larger training fraction)"
        )


def regular_hours(dates: DateFields, source: str) -> tuple[int, ...]:
    """The hours of day of sub-daily ``dates``; DataError unless on the hour and evenly spaced."""
    if not dates.on_hour.all():
        raise DataError(
            f"{source}: a sub-daily time is not on the hour: a climatology by hour of day "
            "needs times on whole hours"
        )
    hours = np.unique(dates.hour)
    gaps = np.diff(np.append(hours, hours[0] + 24))
    if not np.all(gaps == gaps[0]):
        raise DataError(
            f"{source}: the hours of day {tuple(int(h) for h in hours)} are not regular: a "
            "climatology by hour of day needs evenly spaced hours, the same every day"
        )
    return tuple(int(h) for h in hours)


def smooth(days: np.ndarray, window: int) -> np.ndarray:
    """The centred running mean over ``window`` days (axis 0), circular, of the
    non-NaN values (NaN where a window has none), float32."""
    if window == 1:
        return days
    finite = np.isfinite(days)
    sums = circular_sums(np.where(finite, days, 0.0).astype(np.float64), window // 2)
    counts = circular_sums(finite.astype(np.float64), window // 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return means.astype(np.float32)


def circular_sums(values: np.ndarray, half: int) -> np.ndarray:
    """The sums of ``values[i - half : i + half + 1]`` along axis 0, wrapping around."""
    padded = np.concatenate([values[len(values) - half :], values, values[:half]])
    total = np.cumsum(padded, axis=0)
    total = np.concatenate([np.zeros_like(total[:1]), total])
    return total[2 * half + 1 :] - total[: -2 * half - 1]


def check_filled(
    climatology: Climatology, raw: np.ndarray, train: xr.DataArray, source: str
) -> None:
    """Raises DataError where a cell with training data has no climatology value."""
    missing = np.isnan(climatology.values) & np.isfinite(raw).any(axis=0)
    if not missing.any():
        return
    slot, lat, lon, channel = (int(i) for i in np.argwhere(missing)[0])
    if "channel" in train.coords:
        channel = train["channel"].values[channel]
    hint = " or a larger climatology_window" if climatology.kind != "monthly" else ""
    raise DataError(
        f"{source}: the climatology {climatology.describe()} has no value for "
        f"{climatology.slot_name(slot)} in cell (lat {lat}, lon {lon}) of {channel!r}: no "
        f"training data on or near that time of year (use a longer training split{hint})"
    )


def member_frames(climatology: Climatology, times: Times, source: str = "the data") -> np.ndarray:
    """The climatological ensemble: for every slot of ``climatology``, the
    frames of ``times`` (the training split's) at that time of year, one per
    training year, as ``(period, members)`` indices into ``times``.

    Annual data: every training frame is a member. Otherwise the years are
    counted from the split's first time (a split from July holds years from
    July to June), and the members are the years that hold every slot (but
    29 February, which a year without it takes from 28 February); a partial
    year at the end of the split is left out.

    Raises:
      DataError: naming ``source``, when no training year is complete.
    """
    values = as_array(times)
    if climatology.kind == "annual":
        return np.arange(len(values))[None, :]
    slots = climatology.index(values)
    period = slot_count(climatology.kind, climatology.calendar, climatology.hours)
    since_start = (slots - slots[0]) % period  # a new year where this falls back
    years = np.concatenate([[0], np.cumsum(np.diff(since_start) < 0)])
    per_day = max(len(climatology.hours), 1)
    leap_day = MONTH_STARTS["standard"][2] - 1  # day slot of 29 February
    may_miss = set()
    if climatology.kind in ("daily", "subdaily") and climatology.calendar == "standard":
        may_miss = set(range(leap_day * per_day, (leap_day + 1) * per_day))
    columns = []
    for year in np.unique(years):
        frames = np.full(period, -1)
        in_year = np.flatnonzero(years == year)
        frames[slots[in_year]] = in_year
        missing = set(np.flatnonzero(frames < 0).tolist())
        if not missing <= may_miss:
            continue
        for slot in sorted(missing):
            frames[slot] = frames[slot - per_day]
        columns.append(frames)
    if not columns:
        raise DataError(
            f"{source}: the training split holds no complete year: the climatological "
            "ensemble needs one member per complete training year"
        )
    return np.stack(columns, axis=1)
