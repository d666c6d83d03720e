"""The table ``stconv check`` prints of a `stconv.data.inspection.Report`."""

from stconv.data.inspection import Report
from stconv.data.projection import RotatedPole


def size_name(count: float) -> str:
    """Bytes in the unit that keeps 1-3 digits before the point: ``"1.2 GB"``."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB"


def grid_line(grid: dict) -> str:
    spacing = "regular" if grid["regular"] else "irregular"
    if grid["regular"] and None not in grid["spacing"]:
        spacing += f", {grid['spacing'][0]:g} x {grid['spacing'][1]:g} degrees"
    lat, lon = grid["lat_range"], grid["lon_range"]
    line = (
        f"{grid['lat']} x {grid['lon']} (lat x lon), latitudes {grid['latitudes']} "
        f"({lat[0]:g}..{lat[1]:g}), longitudes {grid['longitudes']} ({lon[0]:g}..{lon[1]:g}), "
        f"{spacing}"
    )
    if grid.get("rotated"):
        pole = grid.get("pole")
        kind = f"a grid {RotatedPole.from_attrs(pole)}" if pole else "a rotated pole's grid"
        line += (
            f"; {kind}: its rows are rotated latitudes (area weights hold), "
            "and --bbox, latitude bands and boxes are in its rotated coordinates"
        )
    if "selected" in grid:  # the bbox's cells, its longitudes from west to east
        box = grid["selected"]
        (south, north), (west, east) = box["lat_range"], box["lon_range"]
        line += (
            f"; the bbox selects {box['lat']} x {box['lon']} "
            f"(lat {south:g}..{north:g}, lon {west:g}..{east:g})"
        )
    return line


def step_name(days: float) -> str:
    """A time step in words: ``"hour"``, ``"6 hours"``, ``"day"``, ``"month"``."""
    if days < 1:
        hours = 24 * days
        return "hour" if round(hours, 3) == 1 else f"{hours:.3g} hours"
    for name, length in (("year", 365), ("month", 30), ("day", 1)):
        if days >= 0.9 * length:
            count = days / length
            return name if round(count, 1) == 1 else f"{count:.3g} {name}s"
    return f"{days:.3g} days"


def time_line(time: dict) -> str:
    every = step_name(time["step_days"]) if time["step_days"] else "no regular step"
    if time["frequency"]:
        every += f" ({time['frequency']})"
    problems = [
        f"{time[key]} {name}{'s' * (time[key] != 1)}"
        for key, name in (("gaps", "gap"), ("duplicates", "duplicated time"),
                          ("not_increasing", "time going back"))
        if time[key]
    ]  # fmt: skip
    if time["first_irregular"] and not problems:
        problems.append(f"irregular from {time['first_irregular']}")
    calendar = f", calendar {time['calendar']}" if time["calendar"] else ""
    return (
        f"{time['steps']} steps, {time['first']} to {time['last']}, every {every}{calendar}, "
        f"{', '.join(problems) or 'no gaps, no duplicates'}"
    )


def storage_line(storage: dict) -> str:
    chunks = sorted({chunk for chunk in storage.get("time_chunks", {}).values()}, key=str)
    chunking = ", ".join(
        "contiguous" if c is None else f"chunks of {c} step{'s' * (c != 1)}" for c in chunks
    )
    parts = [f"{size_name(storage['disk_bytes'])} on disk" if "disk_bytes" in storage else ""]
    if "memory_bytes" in storage:
        selection = " (the part selected)" * bool(storage.get("selected"))
        parts.append(f"{size_name(storage['memory_bytes'])} in memory as float32{selection}")
    return ", ".join(p for p in [*parts, chunking] if p)


def memory_line(memory: dict) -> str:
    streamed = ""
    if "streamed_bytes" in memory:
        blocks = f"blocks of {memory['time_chunk']} steps"
        streamed = f", {size_name(memory['streamed_bytes'])} streamed in {blocks}"
    return (
        f"about {size_name(memory['in_memory_bytes'])} in memory{streamed}; this machine lends "
        f"a run {size_name(memory['budget_bytes'])} (half of {size_name(memory['machine_bytes'])})"
    )


def variable_rows(variables: list[dict]) -> list[str]:
    header = ("variable", "units", "standard name", "fill value", "missing", "min", "max",
              "allowed")  # fmt: skip
    rows = [header]
    for v in variables:
        allowed = f"{v['allowed'][0]:g}..{v['allowed'][1]:g}"
        verdict = "" if v["within"] else "  OUTSIDE" if v["min"] is not None else "  NO VALUES"
        rows.append((
            v["name"], v["units"] or "(none)", v["standard_name"] or "-",
            ",".join(f"{f:g}" for f in v["fill_values"]) or "-",
            f"{100 * v['missing_share']:.3g}%" + (f", {v['infinite']} inf" * bool(v["infinite"])),
            "-" if v["min"] is None else f"{v['min']:.6g}",
            "-" if v["max"] is None else f"{v['max']:.6g}",
            allowed + verdict,
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def format_report(report: Report, refusal: str | None, command: str) -> str:
    """The report as lines of text: ``refusal`` and ``command`` as the
    command line spells them (its flags)."""
    verdict = "train accepts these data" if refusal is None else "train refuses these data"
    lines = [f"{report.data}: {verdict}", ""]
    facts = {
        "layout": {"paper": "the paper's pre-windowed samples (x, y)",
                   "generated": "generated by stconv"}.get(report.layout),
        "grid": report.grid and grid_line(report.grid),
        "time": report.time and time_line(report.time),
        "storage": report.storage and storage_line(report.storage),
        "climatology": report.climatology,
        "windows": report.windows and ", ".join(f"{s} {n}" for s, n in report.windows.items()),
        "memory": report.memory and memory_line(report.memory),
    }  # fmt: skip
    lines += [f"{name:<12}{text}" for name, text in facts.items() if text]
    if report.variables:
        lines += ["", *variable_rows(report.variables)]
    lines += [""] + [f"warning: {w}" for w in report.warnings]
    lines.append(f"refused: {refusal}" if refusal else f"suggested: {command}")
    return "\n".join(lines)
