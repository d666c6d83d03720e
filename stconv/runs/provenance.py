"""What made a run: data, code, software, machine and time, in ``provenance.json``.

    with Session("train") as session:  # command line, versions, devices
        with session.clock.phase("data_loading"):
            dataset = load_dataset(...)
        record = new_record(config, seeds, describe_inputs(files), describe_data(dataset))
        session.attach(run, record)  # written now, unfinished
        ...
    # written again, finished, with the phases and the peak memory

A run's record (`stconv.runs.directory.RunDirectory.provenance`) holds the resolved
configuration, its seeds, every input file (resolved path, size, modification
time, SHA-256) with the variables, units, grid and time range read, and one
*session* per command that wrote the run (``train``, ``resume``, ``evaluate``,
``classify``): its command line, stconv's version and git commit, the
versions of the libraries that compute, the devices and XLA flags, the
wall-clock seconds per phase and the process's peak memory.
`software_changes` and `input_changes` compare a record with the present
software and files before a run is reused; `format_record` is what
``stconv info RUN`` prints.
"""

import contextlib
import contextvars
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

import stconv
from stconv import __version__
from stconv.config.run import flattened
from stconv.runs import directory as run

# The distributions whose versions decide a run's numbers (import name differs for some).
SOFTWARE = (
    "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "xarray", "netCDF4",
    "numpy", "dask",
)  # fmt: skip
CHUNK_BYTES = 1 << 20  # files are hashed in 1 MiB reads
# The command line being run, when it is not the process's (`stconv.cli.main` in-process).
COMMAND: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("command", default=None)


class ProvenanceWarning(UserWarning):
    """A run is reused with other software or other input files than it was made with."""


class UnfinishedRunWarning(UserWarning):
    """A run whose training has not ended is used, as asked (``unfinished``)."""


class UnitsWarning(UserWarning):
    """A run whose data gave no units forecasts: neither its inputs nor its
    forecasts can be checked or labelled in physical units."""


class PhaseClock:
    """Wall-clock seconds per named phase, summed over the phase's spans. A
    phase entered inside another pauses it: each second counts once, for the
    innermost phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._active: list[str] = []
        self._since = 0.0

    def _lap(self) -> float:
        """Charges the time since the last change to the innermost phase."""
        now = time.perf_counter()
        if self._active:
            name = self._active[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now
        return now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._lap()
        self._active.append(name)
        try:
            yield
        finally:
            self._lap()
            self._active.pop()

    def first_call(self, fn: Callable, name: str = "compile") -> Callable:
        """``fn`` whose first call's seconds go to phase ``name``: for a jitted
        function, tracing and compiling (dispatch is asynchronous)."""
        called = False

        def wrapped(*args, **kwargs):
            nonlocal called
            if called:
                return fn(*args, **kwargs)
            called = True
            with self.phase(name):
                return fn(*args, **kwargs)

        return wrapped


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def file_record(path: str | os.PathLike) -> dict:
    """The resolved path, size, modification time and SHA-256 of a file, read
    in chunks so that a large file costs no memory. A folder (a zarr store)
    is hashed over its files' relative paths and contents, in sorted order."""
    path = os.path.realpath(path)
    digest = hashlib.sha256()
    files = [path]
    if os.path.isdir(path):
        files = sorted(
            os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
        )
    for name in files:
        if name != path:
            digest.update(os.path.relpath(name, path).encode() + b"\0")
        with open(name, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
    stat = os.stat(path)
    return {
        "path": path,
        "bytes": sum(os.path.getsize(name) for name in files),
        "modified": datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "sha256": digest.hexdigest(),
    }


def describe_inputs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """`file_record` of every input file (none for generated data)."""
    return [file_record(path) for path in paths]


def describe_data(dataset) -> dict:
    """What was read from a `stconv.data.registry.Dataset`: its ``data.json``
    entries (`stconv.runs.directory.describe_data`) but the grid's extent for its
    coordinates, and each split's first and last forecast initialisation
    (sample indices for the paper's files)."""
    described = run.describe_data(dataset)
    lat, lon = np.asarray(described.pop("lat")), np.asarray(described.pop("lon"))
    times = {}
    for name, split in dataset.splits.items():
        init_times = split.init_times()
        if len(init_times):
            times[name] = [str(init_times[0]), str(init_times[-1])]
    return {
        "name": dataset.name,
        "variables": described["variables"],
        "units": described["units"],
        "targets": described["targets"],
        "grid": {
            "shape": [len(lat), len(lon)],
            "lat": [float(lat.min()), float(lat.max())],
            "lon": [float(lon.min()), float(lon.max())],
            "geographic": described["geographic"],
        },
        "init_times": times,
    }


def software_versions() -> dict[str, str | None]:
    """Python's version and each of `SOFTWARE`'s (None: not installed)."""
    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_version(source: str | None = None) -> dict:
    """stconv's version, where pip installed it from (``installed_from``) and,
    when it runs from a git checkout (``source``, by default the folder above
    the package: an editable install), the commit and whether the tree had
    uncommitted changes (``dirty``). A copy installed with ``pip install .``
    runs from site-packages and records no commit."""
    record = {"version": __version__, "installed_from": installed_from()}
    record.update(commit=None, dirty=None)
    source = source or checkout_folder()
    try:
        top = git(source, "rev-parse", "--show-toplevel")
        commit = git(source, "rev-parse", "HEAD")
        status = git(source, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return record  # no git
    if os.path.realpath(top) != os.path.realpath(source):
        return record  # an installed copy, inside some other repository's folder
    return {**record, "commit": commit, "dirty": bool(status)}


def checkout_folder() -> str:
    """The folder above the ``stconv`` package: a checkout's top for an editable install."""
    return os.path.dirname(os.path.dirname(os.path.abspath(stconv.__file__)))


def installed_from() -> str | None:
    """The URL pip installed stconv from (PEP 610 ``direct_url.json``), if any."""
    for distribution in importlib.metadata.distributions(name="stconv"):
        text = distribution.read_text("direct_url.json")
        if text:
            return json.loads(text).get("url")
    return None


def git(folder: str, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", folder, *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def machine() -> dict:
    """The host, the JAX devices and the flags that change how XLA computes."""
    import jax

    devices = jax.devices()
    return {
        "host": platform.node(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "device_kind": devices[0].device_kind,
        "backend": devices[0].platform,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "environment": {
            key: value
            for key, value in sorted(os.environ.items())
            if key.startswith(("XLA_", "JAX_", "TF_CPP")) or key in ("OMP_NUM_THREADS",)
        },
    }


def peak_memory_bytes() -> int:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def start_session(kind: str) -> dict:
    """One command's part of a record, as it starts: what runs and where
    (``finished`` stays None if it never finishes)."""
    return {
        "kind": kind,
        "command": shlex.join(COMMAND.get() or [os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "started": now(),
        "finished": None,
        "stconv": code_version(),
        "software": software_versions(),
        "machine": machine(),
        "phases_s": {},
        "peak_memory_bytes": None,
        "changes": [],  # differences from the run's record that this command went on with
    }


def finish_session(session: dict, clock: PhaseClock) -> dict:
    """``session`` finished now, with ``clock``'s phases and the peak memory."""
    return {
        **session,
        "finished": now(),
        "phases_s": {name: round(s, 3) for name, s in clock.seconds.items()},
        "peak_memory_bytes": peak_memory_bytes(),
    }


class Session:
    """One command's session of a run's record, as a context manager.

    ``clock`` times the command's phases. `attach` puts the session into a
    run's record (and writes it, unless ``save=False``: then at `save`);
    leaving the ``with`` block without an exception writes it again,
    finished, with the phases and the peak memory. A command that fails or
    is killed leaves its session in the record unfinished (or, if not saved
    yet, out of it).
    """

    def __init__(self, kind: str):
        self.clock = PhaseClock()
        self.entry = start_session(kind)
        self.run = None
        self.record = None
        self.saved = False

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None and self.run is not None:
            self.run.save_session(self.record, finish_session(self.entry, self.clock))

    def attach(
        self,
        run,
        record: dict,
        *,
        kind: str | None = None,
        changes: Sequence[str] = (),
        save: bool = True,
    ) -> None:
        """Makes this the session of ``record``, a `stconv.runs.directory.RunDirectory`'s:
        of ``kind`` if given, going on despite ``changes`` (`software_changes`,
        `input_changes`); written now if ``save``. Call it in the process that
        writes the run's files only."""
        if kind is not None:
            self.entry["kind"] = kind
        self.entry["changes"] = list(changes)
        self.run, self.record = run, record
        if save:
            self.save()

    def save(self) -> None:
        """Writes the attached session into its run's record, unfinished, once."""
        if self.run is not None and not self.saved:
            self.run.save_session(self.record, self.entry)
            self.saved = True


def new_record(config: dict, seeds: list[int], inputs: list[dict], data: dict | None) -> dict:
    """A run's record before its first session."""
    return {"config": config, "seeds": seeds, "inputs": inputs, "data": data, "sessions": []}


# Reuse checks.


def software_changes(record: dict) -> list[str]:
    """One line per library (or stconv version) that differs between the
    session that made a run and the present."""
    if not record["sessions"]:
        return []
    session = record["sessions"][0]
    recorded = {**session["software"], "stconv": session["stconv"]["version"]}
    present = {**software_versions(), "stconv": __version__}
    return [
        f"{name} {recorded[name]} made the run, {present.get(name)} is installed now"
        for name in recorded
        if recorded[name] != present.get(name)
    ]


def input_changes(
    recorded: list[dict], paths: Sequence[str | os.PathLike], newer: Sequence[str] = ()
) -> list[str]:
    """One line per input file that is not the one the run read: another file,
    or the same path with other contents (by SHA-256). The files of ``newer``,
    which runs made before stconv listed them lack, are compared only where recorded."""
    changes = []
    listed = {r["path"] for r in recorded}
    present = [p for p in describe_inputs(paths) if p["path"] in listed or p["path"] not in newer]
    if [r["path"] for r in recorded] != [p["path"] for p in present]:
        return [
            f"the run read {[r['path'] for r in recorded]}, now the data are "
            f"{[p['path'] for p in present]}"
        ]
    for before, after in zip(recorded, present, strict=True):
        if before["sha256"] != after["sha256"]:
            changes.append(
                f"{after['path']!r} changed since the run read it (SHA-256 "
                f"{before['sha256'][:12]}... then, {after['sha256'][:12]}... now, "
                f"modified {after['modified']})"
            )
    return changes


def warn(workdir: str | os.PathLike, changes: list[str]) -> None:
    """One `ProvenanceWarning` per line of ``changes`` of the run in ``workdir``."""
    for change in changes:
        warnings.warn(f"run {os.fspath(workdir)!r}: {change}", ProvenanceWarning, stacklevel=3)


# Reading.


def run_info(workdir: str | os.PathLike) -> str:
    """What ``stconv info`` prints: the record of the run in ``workdir`` (`format_record`).

    Raises:
      ValueError: naming ``workdir``, if it holds no run, or a run made before
        records were kept.
    """
    folder = run.RunDirectory(workdir)
    if not folder.is_run():
        raise ValueError(f"workdir {os.fspath(workdir)!r} holds no stconv run")
    record = folder.provenance()
    if record is None:
        raise ValueError(
            f"run {os.fspath(workdir)!r} has no {folder.PROVENANCE}: it was made before stconv "
            "kept records (its config.json and data.json say what they can)"
        )
    return format_record(record)


def short_time(text: str) -> str:
    """A recorded time without its zero seconds, or zero hours too:
    ``2000-01-05T00:00:00.000000`` -> ``2000-01-05``, ``2000-01-05T06:00:00``
    -> ``2000-01-05T06:00``; sample indices as they are."""
    return ZERO_TIME.sub("", ZERO_SECONDS.sub("", text))


ZERO_SECONDS = re.compile(r"(?<=\d\d:\d\d):00(\.0+)?$")
ZERO_TIME = re.compile(r"[T ]00:00$")


def format_record(record: dict) -> str:
    """The record as ``stconv info`` prints it: data, code, software, machine, time."""
    settings = flattened(record.get("config") or {})  # nested, or flat in older records
    lines = [f"configuration: {', '.join(f'{k}={v!r}' for k, v in settings.items())}"]
    lines.append(f"seeds: {record.get('seeds')}")
    data = record.get("data")
    if data:
        grid, units = data["grid"], data["units"]
        if isinstance(units, str):  # one unit for all, in records of older versions
            units = [units] * len(data["variables"])
        listed = ", ".join(
            f"{name} ({unit or 'no units'})"
            for name, unit in zip(data["variables"], units, strict=True)
        )
        targets = f", forecasting {data['targets']}" if "targets" in data else ""
        lines.append(
            f"data: {data['name']}, variables {listed}{targets}, grid "
            f"{grid['shape'][0]}x{grid['shape'][1]} (lat {grid['lat'][0]:g} to {grid['lat'][1]:g},"
            f" lon {grid['lon'][0]:g} to {grid['lon'][1]:g})"
        )
        for split, (first, last) in data["init_times"].items():
            lines.append(
                f"  {split}: forecasts initialised {short_time(first)} to {short_time(last)}"
            )
    for item in record.get("inputs", []):
        lines.append(
            f"input: {item['path']} ({item['bytes']:,} bytes, modified {item['modified']}, "
            f"SHA-256 {item['sha256']})"
        )
    if not record.get("inputs"):
        lines.append("input: generated in memory (no file)")
    for session in record.get("sessions", []):
        code = session["stconv"]
        commit = (
            f", commit {code['commit']}{' (uncommitted changes)' * bool(code['dirty'])}"
            if code["commit"]
            else ""
        )
        host = session["machine"]
        software = ", ".join(f"{k} {v}" for k, v in session["software"].items() if v)
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in session["phases_s"].items())
        lines += [
            f"{session['kind']} {session['started']} to "
            f"{session['finished'] or '(did not finish)'}: "
            f"`{session['command']}`",
            f"  code: stconv {code['version']}{commit}"
            + (f", installed from {code['installed_from']}" if code.get("installed_from") else ""),
            f"  software: {software}",
            f"  machine: {host['host']} ({host['platform']}, {host['cpu_count']} CPU cores), "
            f"{host['device_count']} {host['backend']} device(s) ({host['device_kind']}), "
            f"{host['process_count']} process(es); environment {host['environment'] or 'none'}",
            f"  time: {phases or 'none recorded'}; peak memory "
            + (f"{memory / 2**30:.2f} GiB" if (memory := session["peak_memory_bytes"]) else "-"),
        ]
        lines += [f"  went on despite: {change}" for change in session.get("changes", [])]
    return "\n".join(lines)
