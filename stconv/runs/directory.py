"""A run directory: the one place that names, writes and reads a run's files.

    run = RunDirectory("runs/hadcm3-a1b")
    run.config(), run.normalizer(), run.mask(), run.results()

A forecasting run holds ``stconv-run.json`` (the mark of a run),
``config.json``, ``data.json`` (variables, units,
input shape, grid coordinates, extra inputs), ``normalization.json``, ``mask.npy``,
``climatology.npy`` and ``climatology.json`` (the training climatology by time of
year, in physical units, and its kind), ``static.npy`` (with ``data.static``),
``provenance.json`` (data, code, software, machine and time of every command
that wrote the run), ``metrics.jsonl`` (one line per epoch), ``learning_curve.png``,
``checkpoints/{latest,best}``, ``results.json``, ``test_forecasts.nc``,
``forecast_maps.png``, ``skill_by_lead.png`` and ``tensorboard/`` (with the
tensorboard extra); an ``arima`` run holds ``arima.npz`` instead of the
log, curve and checkpoints. A run of several iterations holds one run per
seed in ``seed-N``, their ``summary.json`` and ``skill_by_lead.png`` (their
means) and a ``provenance.json`` of them all. A classification run holds
``results.json``, ``provenance.json`` and, per model, a folder with ``metrics.jsonl``,
``checkpoints/latest`` and ``confusion_matrix.png``.
"""

import glob
import json
import os
from typing import Any

import numpy as np

from stconv import __version__
from stconv.checks import ParameterError
from stconv.config import Config
from stconv.data.climatology import Climatology
from stconv.data.features import ExtraInputs
from stconv.data.grid import Grid
from stconv.data.normalization import Normalizer
from stconv.outputs import (
    holder_alive,
    lock_owner,
    remove_temporary,
    temporary_path,
    write_text,
)
from stconv.training.checkpoints import Checkpoints


class RunDirectory:
    """The files of the run in ``path``.

    Readers raise ValueError naming the path and what is missing.
    """

    MARKER = "stconv-run.json"  # marks the folder as a run of stconv's
    CONFIG = "config.json"
    PROVENANCE = "provenance.json"  # what made the run (`stconv.runs.provenance`)
    DATA = "data.json"
    NORMALIZATION = "normalization.json"
    MASK = "mask.npy"
    CLIMATOLOGY = "climatology.npy"
    CLIMATOLOGY_KIND = "climatology.json"
    STATIC = "static.npy"
    METRICS = "metrics.jsonl"
    RESULTS = "results.json"
    TRAINED = "trained.json"  # written when training ends: the run can be tested and used
    SUMMARY = "summary.json"
    ARIMA = "arima.npz"
    TEST_FORECASTS = "test_forecasts.nc"
    LEARNING_CURVE = "learning_curve.png"
    FORECAST_MAPS = "forecast_maps.png"
    SKILL_BY_LEAD = "skill_by_lead.png"
    CELL_SCORES = "cell_scores.nc"  # RMSE, MAE, bias, ACC per cell and lead time
    CELL_MAPS = "cell_maps.png"  # the model's per-cell RMSE, bias and ACC
    REGIONAL_SCORES = "regional_scores.json"
    SPECTRA = "spectra.nc"  # mean zonal power spectra of the truth and every forecast
    SPECTRA_PLOT = "spectra.png"
    FORECAST_ERRORS = "forecast_errors.png"  # truth, forecast and error of one window
    ENSEMBLE_PLOT = "ensemble.png"  # CRPS, spread-skill and rank histograms of an ensemble
    PERTURBED_RESULTS = "perturbed_results.json"  # an ensemble of one run's perturbed inputs
    PERTURBED_ENSEMBLE_PLOT = "perturbed_ensemble.png"
    TENSORBOARD = "tensorboard"  # event files, with the tensorboard extra
    CONFUSION_MATRIX = "confusion_matrix.png"  # each model of a classification run
    LOCK = "train.lock"  # held by the process that trains the run

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        """The path of the run's file ``name`` (one of the class's names)."""
        return os.path.join(self.path, name)

    def has(self, name: str) -> bool:
        return os.path.exists(self.file(name))

    def require(self, name: str, what: str) -> str:
        """The path of ``name``; ValueError if it does not exist yet."""
        if not self.has(name):
            raise ValueError(f"workdir {self.path!r} has no {name}: {what}")
        return self.file(name)

    def iteration(self, seed: int) -> "RunDirectory":
        """The run of one seed of a run of several iterations."""
        return RunDirectory(os.path.join(self.path, f"seed-{seed}"))

    def is_trained(self) -> bool:
        """Whether training ended (``trained.json``; a run of an older version:
        its ``results.json``)."""
        return self.has(self.TRAINED) or self.has(self.RESULTS)

    def mark_trained(self, record: dict) -> None:
        """Writes ``trained.json``: the last epoch trained and the best one."""
        keys = ("epoch", "best_epoch", "best_rmse")
        self.write_json(self.TRAINED, {key: record[key] for key in keys if key in record})

    def acquire_lock(self) -> None:
        """Takes the run's lock for this process, or replaces the lock of a
        process of this host that no longer runs (a killed ``train``).

        Raises:
          ValueError: naming the folder and the process, when another
            process holds the lock (or one of another host, which cannot be
            checked).
        """
        path = self.file(self.LOCK)
        mine = lock_owner()
        for _ in range(2):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.lock_holder()
                if holder == mine or holder_alive(holder):
                    raise ValueError(
                        f"workdir {self.path!r} is being trained by process {holder.get('pid')} "
                        f"on {holder.get('host')!r}: wait until it ends (if that process is "
                        f"gone, remove {path})"
                    ) from None
                os.remove(path)  # stale: its process was killed
                continue
            with os.fdopen(handle, "w") as f:
                json.dump(mine, f)
            return

    def release_lock(self) -> None:
        """Removes the run's lock if this process holds it."""
        if self.has(self.LOCK) and self.lock_holder() == lock_owner():
            os.remove(self.file(self.LOCK))

    def lock_holder(self) -> dict:
        """The ``pid`` and ``host`` of the lock's holder ({} if unreadable)."""
        try:
            with open(self.file(self.LOCK)) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def member_runs(self) -> list["RunDirectory"]:
        """The runs of every seed of a run of several iterations (in seed order,
        from its record, else its ``seed-*`` folders); [] for a run of one."""
        if self.has(self.CONFIG) or not self.has(self.MARKER):
            return []
        seeds = (self.provenance() or {}).get("seeds")
        if not seeds:
            found = [name[5:] for name in os.listdir(self.path) if name.startswith("seed-")]
            seeds = sorted(int(seed) for seed in found if seed.isdigit())
        return [self.iteration(seed) for seed in seeds if self.iteration(seed).has(self.CONFIG)]

    def model(self, name: str) -> str:
        """The folder of one model of a classification run (`stconv.classification`)."""
        return os.path.join(self.path, name)

    def checkpoints(self) -> Checkpoints:
        """The run's checkpoints, without the unfinished saves of a process
        that no longer runs (`Checkpoints.remove_unfinished`): left while
        another that may run trains the run (`trained_elsewhere`)."""
        checkpoints = Checkpoints(self.path)
        if not self.trained_elsewhere():
            checkpoints.remove_unfinished()
        return checkpoints

    def trained_elsewhere(self) -> bool:
        """Whether another process that may still run (`holder_alive`) holds
        the lock of the run or of the run of several iterations it is one of."""
        for run in (self, RunDirectory(os.path.dirname(os.path.abspath(self.path)))):
            holder = run.lock_holder()  # {}: no lock, or one unreadable (stale)
            if holder and holder != lock_owner() and holder_alive(holder):
                return True
        return False

    # Configuration and data description.

    def is_run(self) -> bool:
        """Whether the folder holds a run (marked, or ``config.json`` of an older run)."""
        return self.has(self.MARKER) or self.has(self.CONFIG)

    def check_writable(self) -> None:
        """Raises ValueError unless the folder is a run, empty, or not there yet:
        stconv never writes over files it did not create."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(f"workdir {self.path!r} is a file: choose a folder")
        if os.path.isdir(self.path) and os.listdir(self.path) and not self.is_run():
            raise ValueError(
                f"workdir {self.path!r} is not empty and holds no stconv run: choose a new "
                "or empty folder (stconv never writes over files it did not create)"
            )
        check_can_write(self.path, "workdir")

    def config(self) -> Config:
        if not self.has(self.CONFIG) and self.is_classification():
            raise ValueError(
                f"workdir {self.path!r} holds a classification run (stconv classify), not a "
                "forecasting run: give a forecasting run's workdir, or train into a new one"
            )
        path = self.require(self.CONFIG, "it holds no run, train one first")
        return Config.load(path)

    def is_classification(self) -> bool:
        """Whether the folder holds a run of ``stconv classify`` (every session of
        its record one)."""
        try:
            sessions = (self.provenance() or {}).get("sessions", [])
        except (OSError, ValueError, AttributeError):  # unreadable: not known as one
            return False
        return bool(sessions) and all(session.get("kind") == "classify" for session in sessions)

    def mark(self) -> None:
        """Creates the folder, marked as stconv's (`is_run`)."""
        os.makedirs(self.path, exist_ok=True)
        if not self.has(self.MARKER):
            self.write_json(self.MARKER, {"stconv": __version__})

    def save_config(self, config: Config) -> None:
        """Creates the run: its marker, then ``config.json``."""
        self.mark()
        config.save(self.file(self.CONFIG))

    def save_data(self, dataset) -> None:
        """What a forecast of new data needs (`stconv.runs.forecaster`): the
        normalization, the `describe_data` record, the mask, the training
        climatology and the static inputs of a `stconv.data.registry.Dataset`."""
        dataset.normalizer.save(self.file(self.NORMALIZATION))
        self.write_json(self.DATA, describe_data(dataset))
        np.save(self.file(self.MASK), dataset.mask)
        np.save(self.file(self.CLIMATOLOGY), dataset.climatology.values)
        self.write_json(self.CLIMATOLOGY_KIND, dataset.climatology.to_dict())
        if dataset.extra is not None and dataset.extra.static_names:
            np.save(self.file(self.STATIC), dataset.extra.static)

    def check_data(self, dataset, source: str) -> None:
        """Raises ValueError naming ``source`` and every entry of ``data.json``
        (variables, units, input shape, grid) that ``dataset`` does not match."""
        written = self.read_json(self.DATA, "train the run first")
        recorded, present = complete_description(written), describe_data(dataset)
        differences = [  # what the run's version of data.json records
            f"{key} {present[key]!r:.60} where the run has {recorded[key]!r:.60}"
            for key in written
            if key in present and not np.array_equal(present[key], recorded[key])
        ]
        if differences:
            raise ValueError(
                f"{source} is not the data the run {self.path!r} was trained on: "
                f"{'; '.join(differences)}"
            )

    def data_description(self) -> dict:
        """``data.json`` (`describe_data`), completed for runs of older versions."""
        description = self.read_json(self.DATA, "train the run first", ("variables", "units"))
        return complete_description(description)

    def grid(self) -> Grid | None:
        """The `Grid` of the run's variables, from ``data.json``; None for runs
        made before it recorded the coordinates."""
        description = self.data_description()
        return Grid.from_description(description) if "lat" in description else None

    def normalizer(self) -> Normalizer:
        """The run's normalization statistics.

        Raises:
          ValueError: naming ``normalization.json``, if it is missing, or its
            statistics are not as stconv writes them (a standard deviation
            that is not a positive finite number gives no forecast).
        """
        values = self.read_json(self.NORMALIZATION, "train the run first", ("mean", "std"))
        climatology = self.climatology() if values.get("climatology") else None
        try:
            return Normalizer.from_dict(values, climatology)
        except (ValueError, TypeError) as error:
            path = self.file(self.NORMALIZATION)
            raise ValueError(f"run file {path!r}: {error}; {DAMAGED}") from None

    def mask(self) -> np.ndarray:
        return np.load(self.require(self.MASK, "train the run first"))

    def climatology(self, normalizer: Normalizer | None = None) -> Climatology | None:
        """The training climatology, in physical units; None for runs made
        before it was saved. Runs made before it was by time of year saved
        each cell's mean normalized: ``normalizer`` (default the run's) turns
        it back."""
        if not self.has(self.CLIMATOLOGY):
            return None
        values = np.load(self.file(self.CLIMATOLOGY))
        if self.has(self.CLIMATOLOGY_KIND):
            return Climatology.from_dict(self.read_json(self.CLIMATOLOGY_KIND, ""), values)
        normalizer = normalizer or self.normalizer()
        return Climatology("annual", normalizer.denormalize(values)[None].astype(np.float32))

    def extra_inputs(self) -> ExtraInputs:
        """The static fields and calendar features the run reads beside its
        variables (none for runs made before they existed)."""
        description = self.data_description()
        static = np.load(self.file(self.STATIC)) if self.has(self.STATIC) else None
        shape = tuple(description["input_shape"][1:3])
        return ExtraInputs.from_dict(description.get("extra_inputs", {}), static, shape)

    def provenance(self) -> dict | None:
        """The run's `stconv.runs.provenance` record; None for runs made before it was kept."""
        if not self.has(self.PROVENANCE):
            return None
        return self.read_json(self.PROVENANCE, "", ("config", "inputs", "sessions"))

    def save_session(self, record: dict, session: dict) -> None:
        """Writes ``record`` with ``session`` as its last session: replaced if it
        is that session finishing (same start and command), appended otherwise."""
        sessions = list(record.get("sessions", []))
        last = sessions[-1] if sessions else None
        if last and (last["started"], last["command"]) == (session["started"], session["command"]):
            sessions[-1] = session
        else:
            sessions.append(session)
        record["sessions"] = sessions
        self.write_json(self.PROVENANCE, record)

    # Training log and results.

    def read_history(self, last_epoch: int) -> list[dict]:
        """Epoch rows up to ``last_epoch``; the log is rewritten without later
        rows, and without a last line that a killed process left unfinished."""
        rows = []
        if self.has(self.METRICS):
            with open(self.file(self.METRICS)) as f:
                lines = [line for line in f if line.strip()]
            if lines and not lines[-1].endswith("\n"):
                lines.pop()  # cut short by a kill: its epoch is trained again
            rows = [json.loads(line) for line in lines]
        rows = [row for row in rows if row["epoch"] <= last_epoch]
        write_text(self.file(self.METRICS), "".join(json.dumps(row) + "\n" for row in rows))
        return rows

    def append_history(self, row: dict) -> None:
        with open(self.file(self.METRICS), "a") as f:
            f.write(json.dumps(row) + "\n")

    def results(self) -> dict:
        """``results.json``: per target variable, ``{forecast: scores}``
        (`stconv.evaluation.scoring.name_and_score`). A run of an older
        version kept ``{forecast: scores}`` of its variables pooled: it is read
        as the scores of one entry named after them."""
        results = self.read_json(self.RESULTS, "train or evaluate the run first")
        if "rmse" in next(iter(results.values()), {}):
            return {",".join(self.data_description()["variables"]): results}
        return results

    def write_json(self, name: str, values: Any) -> None:
        """Writes ``values`` as strict JSON (ValueError for NaN or infinity)."""
        write_text(self.file(name), json.dumps(values, indent=2, allow_nan=False))

    def read_json(self, name: str, what: str, keys: tuple[str, ...] = ()) -> Any:
        """The JSON file ``name`` of the run (``what`` to do if it is missing).

        Raises:
          ValueError: naming the file, if it is not JSON, or not an object
            holding ``keys``.
        """
        path = self.require(name, what)
        with open(path) as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"run file {path!r} is not JSON ({error}): {DAMAGED}") from None
        missing = [key for key in keys if not isinstance(values, dict) or key not in values]
        if missing:
            raise ValueError(f"run file {path!r} lacks {missing}: {DAMAGED}")
        return values


DAMAGED = "it is not as stconv wrote it; restore it, or train the run again"


def check_can_write(path: str | os.PathLike, flag: str) -> None:
    """Raises ValueError naming ``flag`` and ``path`` unless the folder
    ``path`` is (or, a file or a path not made yet, the nearest folder above
    it that exists) may be written: not read-only, not another user's, and a
    place that takes new files (a new file of its own is made there and
    removed at once: ``/proc`` and other pseudo file systems refuse it, and
    the error says what the system said)."""
    existing = os.path.abspath(path)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise ValueError(
            f"{flag} {os.fspath(path)!r} cannot be written: {existing!r} is read-only "
            "(a read-only file system, or no permission): choose another path"
        )
    probe = temporary_path(os.path.join(existing, "probe"))
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as error:
        raise ValueError(
            f"{flag} {os.fspath(path)!r} cannot be written: making a file in {existing!r} "
            f"fails ({error.strerror or error}): choose another path"
        ) from None
    remove_temporary(probe)


def describe_data(dataset) -> dict:
    """``data.json`` of a `stconv.data.registry.Dataset`: the input variables
    (channels, the targets first) with their units, long and standard names,
    the targets, the input shape, the grid coordinates, whether they are
    latitudes and longitudes, the input's own names of the dimensions and,
    where the run reads any, the extra inputs (static fields, calendar)."""
    grid = dataset.grid.description()
    variables = ("variables", "units", "long_name", "standard_name")
    description = {  # in the order stconv always wrote them
        **{key: grid.pop(key) for key in variables},
        "targets": list(dataset.targets),
        "input_shape": list(dataset.input_shape),
        **grid,  # lat, lon, geographic, dims
    }
    if dataset.extra is not None and dataset.extra.count:
        description["extra_inputs"] = dataset.extra.to_dict()
    return description


def complete_description(description: dict) -> dict:
    """A ``data.json`` of any version as `describe_data` writes it now: runs
    made before several variables were scored each had one unit for all
    variables and forecast every variable."""
    description = dict(description)
    variables = description["variables"]
    if isinstance(description.get("units"), str):
        description["units"] = [description["units"]] * len(variables)
    description.setdefault("targets", list(variables))
    for name in ("long_name", "standard_name"):
        description.setdefault(name, [""] * len(variables))
    return description


def check_new_file(
    path: str | os.PathLike,
    *,
    flag: str,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike, ...] = (),
    runs: tuple[str | os.PathLike, ...] = (),
) -> None:
    """Raises ValueError, naming ``flag`` and ``path``, unless stconv may write
    ``path``: a file whose folder exists, that is no run and inside none of
    ``runs`` nor any folder marked as a run, that is no folder (but a zarr
    store for a path ending ``.zarr``: `check_file_path`), that is none of
    ``inputs`` (`check_not_input`), and that does not exist yet (or
    ``overwrite`` says to replace it: a `stconv.checks.ParameterError` naming
    ``overwrite``).
    """
    given = os.fspath(path)
    if not given.strip():
        raise ValueError(f"{flag} {given!r} is empty: give the path of a file to write")
    path = os.path.abspath(given)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path!r} is invalid: its folder {folder!r} does not exist")
    runs = [os.path.abspath(run) for run in runs]
    parent = path
    while True:
        if parent in runs or RunDirectory(parent).has(RunDirectory.MARKER):
            where = "a run" if parent == path else f"inside the run {parent!r}"
            raise ValueError(
                f"{flag} {path!r} is {where}: stconv writes nothing into a run but its own "
                "files; choose a path outside it"
            )
        if os.path.dirname(parent) == parent:
            break
        parent = os.path.dirname(parent)
    check_file_path(given, flag)
    check_not_input(path, flag, inputs)
    if os.path.lexists(path) and not overwrite:
        what = (
            f"is a link to {os.readlink(path)!r}, which does not exist"
            if not os.path.exists(path)
            else "exists"
        )
        raise ParameterError(
            f"{flag} {path!r} {what}: pass {{overwrite}} to replace it, or choose another path",
            overwrite=True,
        )
    check_can_write(path, flag)


def check_not_input(path: str, flag: str, inputs: tuple) -> None:
    """Raises ValueError, naming ``flag``, if ``path`` is a file of ``inputs``
    (a glob's too), inside one or holds one: compared as real paths, so that
    links and other spellings of a path count."""
    real = os.path.realpath(path)
    for given, source in input_files(inputs):
        other = os.path.realpath(source)
        if real == other or (os.path.exists(path) and os.path.samefile(source, path)):
            which = (
                f"one of the input files {given!r}" if glob.has_magic(given) else "the input file"
            )
            raise ValueError(f"{flag} {path!r} is {which}: choose another path")
        for inner, outer, relation in ((real, other, "is inside"), (other, real, "holds")):
            if inner.startswith(outer.rstrip(os.sep) + os.sep):
                raise ValueError(
                    f"{flag} {path!r} {relation} the input {source!r}: choose another path"
                )


def input_files(inputs) -> list[tuple[str, str]]:
    """``(given, file)`` for every existing file of ``inputs``: paths and globs
    (expanded as `stconv.data.files.resolve_paths` does), in lists too;
    anything else (a Dataset) has none."""
    files = []
    for source in inputs:
        if isinstance(source, list | tuple):
            files.extend(input_files(source))
        elif isinstance(source, str | os.PathLike):
            given = os.fspath(source)
            matches = glob.glob(given) if glob.has_magic(given) else [given]
            files.extend((given, match) for match in matches if os.path.exists(match))
    return files


def check_file_path(path: str, flag: str) -> None:
    """Raises ValueError, naming ``flag``, unless ``path`` is that of a file,
    or, ending ``.zarr``, of a zarr store (new, or one to replace)."""
    absolute = os.path.abspath(path)
    if absolute.endswith(".zarr"):
        if os.path.lexists(absolute) and not is_zarr_store(absolute):
            raise ValueError(
                f"{flag} {absolute!r} is not a zarr store: stconv replaces nothing else; "
                "choose another path"
            )
    elif os.path.isdir(absolute) or path.endswith(("/", os.sep)):
        raise ValueError(
            f"{flag} {absolute!r} is a folder: give the path of a netCDF file to write "
            "(or of a zarr store, ending .zarr)"
        )


def is_zarr_store(path: str) -> bool:
    """Whether ``path`` is a folder holding a zarr store's metadata (zarr 2 or 3)."""
    names = ("zarr.json", ".zgroup", ".zarray")
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, n)) for n in names)
