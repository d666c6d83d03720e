"""Time axes whose stamps jitter within a step.

Means over a period are often stamped inside it at differing hours or days:
annual means at 00:00 or 12:00 of 1 or 2 July, CF monthly means in the middle
of the month (the 15th at 00:00, the 16th at 12:00). Such a time axis has no
frequency as it is, but has one once every stamp is floored to the start of
its day, month or year (`FLOOR_UNITS`): it is regular
(`stconv.data.checks.check_times`), and where no two stamps fall on one day
its step is that of the stamps floored to the day
(`stconv.data.climatology.day_steps`), so that 12:00 stamps make no
sub-daily series.
"""

import numpy as np
import xarray as xr

# The units stamps are floored to, finest first: day, month, year.
FLOOR_UNITS = ("D", "M", "Y")
# The fields of a date reset to their first value when flooring to each unit.
RESET = {
    "D": {"hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    "M": {"day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    "Y": {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0},
}


def floor_dates(values: np.ndarray, unit: str) -> np.ndarray:
    """``values`` (numpy datetime64, or cftime or datetime objects) floored to
    the start of their day (``"D"``), month (``"M"``) or year (``"Y"``), in
    their own type and calendar."""
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype(f"M8[{unit}]").astype(values.dtype)
    floored = [value.replace(**RESET[unit]) for value in values.ravel()]
    return np.array(floored, dtype=object).reshape(values.shape)


def first_without_frequency(times: xr.DataArray) -> int | None:
    """The index of the first date of ``times`` (3 or more) that leaves the
    dates up to it without a frequency (`xarray.infer_freq`), or None."""
    if xr.infer_freq(times) is not None:
        return None
    # A prefix that has no frequency stays so when extended: search the shortest.
    low, high = 3, len(times)  # times[:high] has none; times[:low - 1] has one
    while low < high:
        middle = (low + high) // 2
        if xr.infer_freq(times[:middle]) is None:
            high = middle
        else:
            low = middle + 1
    return high - 1


def first_irregular_date(times: xr.DataArray) -> int | None:
    """The index of the first date that breaks the frequency of those before
    it, as they are or floored to any of `FLOOR_UNITS`, or None if ``times``
    have a frequency so. Of these, the one that keeps a frequency the longest
    names the date at fault (a gap in a jittering monthly series, not its
    first jitter)."""
    if len(times) < 3:
        return None
    firsts = []
    for unit in (None, *FLOOR_UNITS):
        floored = times if unit is None else times.copy(data=floor_dates(times.values, unit))
        first = first_without_frequency(floored)
        if first is None:
            return None
        firsts.append(first)
    return max(firsts)
