"""The fault catalog: bad files, flags, workdirs, run files and outputs against every command.

Each case runs the CLI in-process on one tiny trained run and its input files
(a copy of them when its setup writes a file first), and asserts the exit code
(2: unusable input, flag or run file; 1: a failure while running), a one-line
message that names the culprit, and that no file changed, appeared or
disappeared (SHA-256 of every file before and after).
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import TINY_RUN, digest, paper_format_dataset, time_series_dataset

from stconv import cli
from stconv.data.synthetic import cmip6_like, era5_like, write_synthetic_netcdf

TINY = [*TINY_RUN]  # the flags of the shared run (`conftest.tiny_run`)
SERIES = ["--input-length", "3", "--horizon", "2"]  # for the 40-step files of `series`


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_run) -> Path:
    """A finished tiny run (``run``, a copy of `conftest.tiny_run`), an input for it
    (``new.nc``) and a file of the user's."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(tiny_run, root / "run")
    write_synthetic_netcdf(root / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    (root / "mine.nc").write_text("the user's own file")
    return root


@pytest.fixture(scope="module")
def root_files(root) -> dict:
    """`digest` of ``root`` as made: the cases that write nothing run in it, not in a copy."""
    return digest(root)


def remove_new_entries(root: Path, files: dict) -> None:
    """Removes what a failed case left at the top of ``root`` (a workdir, an
    output), so that the cases after it do not fail for it too."""
    kept = {name.split("/")[0] for name in files}
    for path in root.iterdir():
        if path.name not in kept:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


# Files the cases write into their copy before the command runs.


def series(d: Path, edit: Callable[[xr.Dataset], xr.Dataset | None], **kwargs) -> None:
    """``d/bad.nc``: a 40-day series (`conftest.time_series_dataset`) after ``edit``."""
    dataset = time_series_dataset(num_steps=40, **kwargs)
    dataset = edit(dataset) or dataset
    dataset.to_netcdf(d / "bad.nc")


def era5(d: Path, levels=None) -> None:
    """``d/era5.nc``: an ERA5 file of t2m (K), u10 (m s**-1) and msl (Pa), or of
    ``z`` and ``t`` on pressure ``levels``."""
    era5_like(num_steps=40, levels=levels).to_netcdf(d / "era5.nc")


def hot_era5(d: Path) -> None:
    """``d/era5.nc`` (unpacked) with one t2m value of 4,900 K."""
    dataset = era5_like(num_steps=40)
    dataset["t2m"].encoding = {}
    dataset["t2m"][9, 0, 0] = 4900.0
    dataset.to_netcdf(d / "era5.nc")


def era5_static(d: Path, name: str, values: Callable[[np.ndarray], None], units: str) -> None:
    """``d/era5.nc`` (`era5`) and ``d/static.nc``, a static field ``name`` of
    its grid in ``units``: ones, after ``values`` edits them in place."""
    era5(d)
    with xr.open_dataset(d / "era5.nc") as dataset:
        grid = {"latitude": dataset["latitude"], "longitude": dataset["longitude"]}
    field = np.ones((grid["latitude"].size, grid["longitude"].size), np.float32)
    values(field)
    static = xr.Dataset({name: (tuple(grid), field, {"units": units})}, coords=grid)
    static.to_netcdf(d / "static.nc")


def cmip6(d: Path, edit: Callable[[xr.Dataset], xr.Dataset]) -> None:
    """``d/tas_day.nc`` and ``d/uas_day.nc``, one CMIP6 variable each, uas after ``edit``."""
    datasets = cmip6_like(num_steps=40)
    datasets["tas"].to_netcdf(d / "tas_day.nc")
    edit(datasets["uas"]).to_netcdf(d / "uas_day.nc")


def new_input(d: Path, edit: Callable[[xr.Dataset], xr.Dataset | None]) -> None:
    """``d/bad.nc``: the run's input ``new.nc`` after ``edit``."""
    with xr.open_dataset(d / "new.nc") as dataset:
        dataset = dataset.load()
    dataset = edit(dataset) or dataset
    dataset.to_netcdf(d / "bad.nc")


def assign(dataset: xr.Dataset, variable: str, index: tuple, value: float) -> None:
    dataset[variable].values[index] = value


def corrupt(path: Path) -> None:
    """Overwrites 200 bytes of the data of an uncompressed netCDF file with 0x7f
    (3.4e38 as float32), as a damaged disk or transfer might."""
    data = bytearray(path.read_bytes())
    data[-1200:-1000] = b"\x7f" * 200
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def best_manifest(d: Path, kind: str = "best") -> Path:
    (step,) = (d / "run" / "checkpoints" / kind).iterdir()
    return step / "state" / "manifest.ocdbt"


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))


def edit_config(d: Path, text: str) -> None:
    (d / "run" / "config.json").write_text(text)


def read_only(monkeypatch, folder: Path) -> None:
    """Makes ``folder`` unwritable as a read-only file system would (root ignores chmod)."""
    folder.mkdir(exist_ok=True)
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == folder else access(p, mode)
    )


def refuses_files(monkeypatch, folder: Path) -> None:
    """Makes ``folder`` refuse new files and folders with ENOENT, as ``/proc``
    does though `os.access` calls it writable (for any user running the tests)."""
    folder.mkdir(exist_ok=True)
    real_open, real_mkdir = os.open, os.mkdir

    def refused(path) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))

    def open_(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & os.O_CREAT:
            raise refused(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise refused(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


def statistics(d: Path, **values) -> None:
    """The run's ``normalization.json`` with ``values`` (JSON: NaN is written as is)."""
    edit_json(d / "run" / "normalization.json", lambda v: v.update(values))


class FullDisk(netCDF4.Dataset):
    """A netCDF file whose variables fail to write, as on a full disk."""

    def __getitem__(self, name):
        class Unwritable:
            def __setitem__(self, key, value):
                raise RuntimeError("NetCDF: HDF error")

        return Unwritable()


def full_disk(monkeypatch) -> None:
    from stconv import outputs
    from stconv.evaluation import netcdf

    monkeypatch.setattr(netcdf.netCDF4, "Dataset", FullDisk)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0))


def writes_nothing(setup: Callable) -> Callable:
    """Marks a setup that writes no file: its case runs in the module's ``root``
    itself, not in a copy, and ``root`` must be unchanged after it."""
    setup.writes_nothing = True
    return setup


@writes_nothing
def nothing(d, monkeypatch):
    pass


@writes_nothing
def in_folder(d, monkeypatch):
    """The command runs from ``d``."""
    monkeypatch.chdir(d)


# (setup(d, monkeypatch), argv(d), exit code, fragments the one line must hold)
TRAIN_FLAGS = [
    ("model-unknown", ["--model", "unet"], "model 'unet' is unknown: choose from"),
    ("dataset-unknown", ["--dataset", "era5"], "dataset 'era5' is unknown: choose from"),
    ("epochs-zero", ["--epochs", "0"], "--epochs 0 is invalid"),
    ("learning-rate-negative", ["--learning-rate", "-1"], "--learning-rate -1.0 is invalid"),
    ("learning-rate-infinite", ["--learning-rate", "inf"], "--learning-rate inf is invalid: must be a finite number > 0"),
    ("learning-rate-nan", ["--learning-rate", "nan"], "--learning-rate nan is invalid: must be a finite number > 0"),
    ("kernel-too-large", ["--kernel-size", "40"], "kernel_size=40 is invalid"),
    ("seed-negative", ["--seed", "-1"], "--seed -1 is invalid"),
    ("seed-beyond-32-bits", ["--seed", str(2**70)], f"--seed {2**70} is invalid: must be at most 2**32 - 1"),
    ("seed-last-iteration-beyond-32-bits", ["--seed", str(2**32 - 5), "--iterations", "2"], "the last seed, seed + 10 * (iterations - 1), must be at most 4294967295"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size 0 is invalid"),
    ("horizon-zero", ["--horizon", "0"], "--horizon 0 is invalid"),
    ("input-length-zero", ["--input-length", "0"], "--input-length 0 is invalid"),
    ("normalization-unknown", ["--normalization", "zscore"], "--normalization 'zscore'"),
    ("num-layers-zero", ["--num-layers", "0"], "num_layers=0 is invalid"),
    ("hidden-dim-zero", ["--hidden-dim", "0"], "hidden_dim=0 is invalid"),
    ("patience-zero", ["--patience", "0"], "--patience 0 is invalid"),
    ("iterations-zero", ["--iterations", "0"], "--iterations 0 is invalid"),
    ("time-chunk-zero", ["--time-chunk", "0"], "--time-chunk 0 is invalid"),
    ("compute-dtype-unknown", ["--compute-dtype", "int8"], "--compute-dtype 'int8' is invalid"),
    ("residual-base-unknown", ["--residual-base", "median"], "--residual-base 'median' is invalid"),
    ("paper-dataset-without-path", ["--dataset", "cfsr"], "dataset 'cfsr' needs path="),
    ("dataset-file-missing", ["--dataset", "{d}/none.nc"], "none.nc' does not exist"),
    ("mask-file-missing", ["--mask-file", "{d}/none.npy"], "none.npy' does not exist"),
    ("epochs-not-a-number", ["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    ("preset-unknown", ["--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
    ("model-option-unknown", ["--model-option", "nope=1"], "model 'stconvs2s-r' has no option 'nope' (--model-option nope=...): its options are ['channel_increase'"),
    ("model-option-bad-value", ["--model-option", "channel_increase=maybe"], "model option channel_increase='maybe' is invalid: must be bool"),
    ("model-option-not-key-value", ["--model-option", "channel_increase"], "--model-option 'channel_increase' is invalid: write KEY=VALUE"),
    ("model-option-of-arima", ["--model", "arima", "--model-option", "order=3"], "model 'arima' has no option 'order'"),
]  # fmt: skip

BAD_SERIES = [
    ("inf-in-training", lambda ds: assign(ds, "tas", (3, 1, 1), np.inf), "'tas' is infinite at time 2001-01-04 00:00:00 (index 3)"),
    ("inf-in-validation", lambda ds: assign(ds, "tas", (30, 0, 2), -np.inf), "'tas' is infinite at time 2001-01-31"),
    ("validation-and-test-missing", lambda ds: assign(ds, "tas", slice(24, None), np.nan), "'tas' is missing in every valid cell at time 2001-01-25"),
    ("one-frame-missing", lambda ds: assign(ds, "tas", 5, np.nan), "missing in every valid cell at time 2001-01-06"),
    ("default-fill-value-without-attribute", lambda ds: assign(ds, "tas", (20, 1, 2), 9.969209968386869e36), "'tas' reaches 9.97e+36 at time 2001-01-21 00:00:00 (index 20) (in 1 of its cells): beyond 1e+15 in any units, a fill value without _FillValue, corrupt data or other units; mark missing values with _FillValue, or accept them with --allow-extreme-values"),
    ("absurd-values-in-test-years", lambda ds: assign(ds, "tas", 36, 1e30), "'tas' reaches 1e+30 at time 2001-02-06 00:00:00 (index 36) (in 20 of its cells)"),
    ("string-variable", lambda ds: ds.assign(tas=ds["tas"].astype(str)), "variable 'tas' holds <U"),
    ("time-duplicated", lambda ds: ds.isel(time=[0, 1, 2, 2, *range(3, 40)]), "time is duplicated at index 3"),
    ("time-gap", lambda ds: ds.drop_isel(time=17), "time is not regular at index 17 (2001-01-17 00:00:00 to 2001-01-19"),
    ("time-decreasing", lambda ds: ds.isel(time=[0, 2, 1, *range(3, 40)]), "time is not increasing at index 2"),
    ("no-lat-dimension", lambda ds: ds.isel(lat=0), "has no lat dimension among"),
    ("too-short", lambda ds: ds.isel(time=slice(0, 8)), "too few for one window"),
    ("latitudes-outside", lambda ds: ds.assign_coords(lat=ds["lat"] * 20), "latitudes -200..200 are outside [-90, 90]: area weights need geographic latitudes (pass --no-area-weights"),
    ("latitudes-not-monotonic", lambda ds: ds.isel(lat=[0, 2, 1, 3]), "latitudes are not monotonic"),
]  # fmt: skip

# (setup, flags, fragment) of runs of several variables.
VARIABLES = [
    ("target-not-an-input", era5, ["--variables", "t2m,u10", "--targets", "msl"], ["--targets msl is invalid: ['msl'] are not among the input variables ['t2m', 'u10']: every target must be an input"]),
    ("target-not-in-the-file", era5, ["--targets", "tp"], ["era5.nc", "target 'tp' is not an input variable: the inputs are ['t2m', 'u10', 'msl']"]),
    ("variable-unknown", era5, ["--variables", "t2m,tp"], ["era5.nc", "has no gridded variable 'tp': available are ['t2m', 'u10', 'msl']"]),
    ("level-needed", lambda d: era5(d, (1000, 850, 500)), ["--variables", "z"], ["era5.nc", "variable 'z' has 3 levels on 'pressure_level' (1000, 850, 500): choose one as z:LEVEL, e.g. --variables z:1000"]),
    ("level-missing", lambda d: era5(d, (1000, 850, 500)), ["--variables", "z:300"], ["era5.nc", "variable 'z' has no level '300' on 'pressure_level': choose from 1000, 850, 500"]),
    ("level-of-a-surface-variable", era5, ["--variables", "t2m:500"], ["era5.nc", "variable 't2m' has no vertical dimension: write 't2m' without ':500'"]),
    ("target-weights-per-target", era5, ["--targets", "t2m,u10", "--target-weights", "1"], ["--target-weights 1.0 is invalid: give one weight per target (2: ['t2m', 'u10'])"]),
    ("target-weights-per-input", era5, ["--target-weights", "1,2"], ["era5.nc", "--target-weights 1.0,2.0 is invalid: give one weight per target (3: ['t2m', 'u10', 'msl'])"]),
    ("bbox-latitudes-inverted", era5, ["--bbox", "40,-40,0,10"], ["--bbox 40.0,-40.0,0.0,10.0 is invalid: give lat_min,lat_max,lon_min,lon_max"]),
    ("bbox-outside-the-grid", era5, ["--bbox", "70,80,0,10"], ["era5.nc", "bbox=(70.0, 80.0, 0.0, 10.0) selects no grid cells"]),
    ("variable-twice", era5, ["--variables", "t2m,u10,t2m"], ["--variables t2m,u10,t2m is invalid: ['t2m'] given twice: name each variable once"]),
    ("target-twice", era5, ["--targets", "t2m,t2m"], ["--targets t2m,t2m is invalid: ['t2m'] given twice"]),
    ("static-infinite", lambda d: era5_static(d, "z", lambda v: v.__setitem__((2, 3), np.inf), "m"), ["--static", "{d}/static.nc"], ["--static '{d}/static.nc': static field 'z' is infinite at lat index 2, lon index 3 (in 1 of its cells)"]),
    ("static-all-missing", lambda d: era5_static(d, "lsm", lambda v: v.fill(np.nan), "1"), ["--static", "{d}/static.nc"], ["--static '{d}/static.nc': static field 'lsm' is missing (NaN) in every cell"]),
    ("static-beyond-its-units", lambda d: era5_static(d, "t", lambda v: v.fill(5000.0), "K"), ["--static", "{d}/static.nc"], ["static field 't' reaches 5e+03 at lat index 0, lon index 0: outside -400..400, the values K can take", "--allow-extreme-values"]),
]  # fmt: skip
# Files of one CMIP6 variable each that do not combine: other grids or time axes.
COMBINED = [
    ("other-latitudes", lambda ds: ds.assign_coords(lat=ds["lat"] + 1)),
    ("other-times", lambda ds: ds.isel(time=slice(1, None))),
]

PREDICT_INPUTS = [
    ("other-grid", lambda ds: ds.isel(lat=slice(0, 8)), "is not on the run's grid (lat x lon 8 x 16, the run's 16 x 16): pass --other-grid"),
    ("shifted-grid", lambda ds: ds.assign_coords(lon=ds["lon"] + 100), "is not on the run's grid (lon 100..115, the run's 0..15)"),
    ("all-missing", lambda ds: assign(ds, "synthetic_0", slice(None), np.nan), "'synthetic_0' is missing in every valid cell at time 2000-01-01"),
    ("other-units", lambda ds: ds["synthetic_0"].attrs.update(units="degC"), "variable 'synthetic_0' is in degC, the run was trained in K"),
    ("variable-missing", lambda ds: ds.rename(synthetic_0="tas"), "has no gridded variable 'synthetic_0'"),
    ("too-short", lambda ds: ds.isel(time=slice(0, 3)), "has 3 time steps: at least input_length=5"),
    ("infinite", lambda ds: assign(ds, "synthetic_0", (4, 2, 2), np.inf), "is infinite at time 2000-01-05"),
    ("fill-value", lambda ds: assign(ds, "synthetic_0", (4, 2, 2), 9.969209968386869e36), "'synthetic_0' reaches 9.97e+36 at time 2000-01-05"),
    ("time-gap", lambda ds: ds.drop_isel(time=6), "time is not regular at index 6"),
    ("units-missing", lambda ds: ds["synthetic_0"].attrs.clear(), "variable 'synthetic_0' has no units and the run was trained in K: pass --units K"),
    ("beyond-kelvin", lambda ds: assign(ds, "synthetic_0", (4, 2, 2), 4900.0), "'synthetic_0' reaches 4.9e+03 at time 2000-01-05 00:00:00 (index 4) (in 1 of its cells): outside -400..400, the values K can take"),
]  # fmt: skip


# Ensembles of perturbed inputs beyond what memory holds, or of absurd noise.
MEMBERS = [
    ("members-beyond-memory", ["--members", str(10**7)], "--members 10000000 is invalid: at most"),
    ("members-astronomical", ["--members", str(10**30)], f"--members {10**30} is invalid: at most"),
    ("perturbation-infinite", ["--members", "3", "--perturbation", "inf"], "--perturbation inf is invalid: must be a finite number in (0, 100]"),
    ("perturbation-nan", ["--members", "3", "--perturbation", "nan"], "--perturbation nan is invalid"),
    ("perturbation-absurd", ["--members", "3", "--perturbation", "1e30"], "--perturbation 1e+30 is invalid: must be a finite number in (0, 100] training standard deviations"),
]  # fmt: skip


def predict(d, output="{d}/forecast.nc", input_="{d}/bad.nc", *extra) -> list[str]:
    return ["predict", "--workdir", "{d}/run", "--input", input_, "--output", output, *extra]


CASES = [
    *(
        pytest.param(nothing, ["train", "--workdir", "{d}/new", *TINY, *flags], 2, [text], id=f"train-{name}")
        for name, flags, text in TRAIN_FLAGS
    ),
    *(
        pytest.param(lambda d, mp, edit=edit: series(d, edit), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/bad.nc", *SERIES], 2, ["bad.nc", text], id=f"data-{name}")
        for name, edit, text in BAD_SERIES
    ),
    *(
        pytest.param(lambda d, mp, setup=setup: setup(d), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/era5.nc", *SERIES, *flags], 2, fragments, id=f"variables-{name}")
        for name, setup, flags, fragments in VARIABLES
    ),
    *(
        pytest.param(lambda d, mp, edit=edit: cmip6(d, edit), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/*_day.nc", *SERIES], 2, ["tas_day.nc' (+1 more) do not combine into one dataset", "give files of one grid and time axis"], id=f"files-{name}")
        for name, edit in COMBINED
    ),
    pytest.param(lambda d, mp: series(d, lambda ds: None) or corrupt(d / "bad.nc"), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/bad.nc", *SERIES], 2, ["bad.nc", "'tas' reaches 3.4e+38 at time 2001-01-30 00:00:00 (index 29) (in 2 of its cells): beyond 1e+15 in any units"], id="data-corrupt-bytes"),
    pytest.param(lambda d, mp: hot_era5(d), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/era5.nc", *SERIES], 2, ["era5.nc", "'t2m' reaches 4.9e+03 at time 2001-01-03 06:00:00 (index 9) (in 1 of its cells): outside -400..400, the values K can take"], id="data-temperature-beyond-kelvin"),
    pytest.param(lambda d, mp: (d / "bad.nc").write_text("not netCDF"), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/bad.nc"], 2, ["bad.nc' could not be opened"], id="data-not-netcdf"),
    pytest.param(lambda d, mp: (d / "bad.nc").write_bytes(b""), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/bad.nc"], 2, ["bad.nc' could not be opened"], id="data-empty-file"),
    pytest.param(lambda d, mp: (d / "era5.grib").write_bytes(b"GRIB"), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/era5.grib"], 2, ["era5.grib' could not be opened: it is GRIB, which xarray reads with cfgrib only"], id="data-grib"),
    pytest.param(lambda d, mp: paper_format_dataset().pipe(lambda ds: assign(ds, "x", (1, 0, 0, 0, 0), np.inf) or ds).to_netcdf(d / "bad.nc"), ["train", "--workdir", "{d}/new", *TINY, "--dataset", "{d}/bad.nc"], 2, ["bad.nc (x)", "infinite at sample index 1, time index 0"], id="data-paper-format-infinite"),
    pytest.param(lambda d, mp: np.save(d / "mask.npy", np.ones((3, 3))), ["train", "--workdir", "{d}/new", *TINY, "--mask-file", "{d}/mask.npy"], 2, ["mask.npy' has shape (3, 3)"], id="data-mask-wrong-shape"),
    # Workdirs.
    pytest.param(nothing, ["train", "--workdir", "{d}/mine.nc", *TINY], 2, ["mine.nc' is a file: choose a folder"], id="workdir-is-a-file"),
    pytest.param(lambda d, mp: (d / "mine").mkdir() or (d / "mine" / "metrics.jsonl").write_text("{}"), ["train", "--workdir", "{d}/mine", *TINY], 2, ["mine' is not empty and holds no stconv run"], id="workdir-foreign"),
    pytest.param(lambda d, mp: read_only(mp, d / "ro"), ["train", "--workdir", "{d}/ro/run", *TINY], 2, ["ro/run' cannot be written", "read-only"], id="workdir-read-only"),
    pytest.param(nothing, ["train", "--workdir", "/proc/stconv_run", *TINY], 2, ["workdir '/proc/stconv_run' cannot be written", "choose another path"], id="workdir-in-proc"),
    pytest.param(lambda d, mp: refuses_files(mp, d / "pseudo"), ["train", "--workdir", "{d}/pseudo/run", *TINY], 2, ["workdir '{d}/pseudo/run' cannot be written: making a file in '{d}/pseudo' fails (No such file or directory)"], id="workdir-refuses-files"),
    pytest.param(nothing, ["train", "--workdir", "{d}/run", *TINY], 2, ["run' already holds this run: pass --resume"], id="workdir-same-run"),
    pytest.param(nothing, ["train", "--workdir", "{d}/run", *TINY, "--epochs", "3"], 2, ["run' holds another run, of other settings (--epochs 1 in its config.json): choose a new workdir, or give the run's settings to resume it"], id="workdir-other-run"),
    pytest.param(lambda d, mp: truncate(best_manifest(d, "latest")), ["train", "--workdir", "{d}/run", *TINY, "--resume"], 2, ["latest/1 is corrupt or incomplete", "remove", "rerun with --resume"], id="resume-latest-corrupt"),
    pytest.param(lambda d, mp: edit_config(d, "{"), ["train", "--workdir", "{d}/run", *TINY, "--resume"], 2, ["config.json"], id="resume-config-corrupt"),
    # Run files read by evaluate and predict.
    pytest.param(nothing, ["evaluate", "--workdir", "{d}/none"], 2, ["none' has no config.json"], id="evaluate-no-run"),
    pytest.param(nothing, ["evaluate", "--workdir", "{d}/mine.nc"], 2, ["mine.nc' has no config.json"], id="evaluate-workdir-is-a-file"),
    pytest.param(lambda d, mp: edit_config(d, "{"), ["evaluate", "--workdir", "{d}/run"], 2, ["config.json"], id="evaluate-config-not-json"),
    pytest.param(lambda d, mp: edit_config(d, '{"modle": "x"}'), ["evaluate", "--workdir", "{d}/run"], 2, ["config.json", "modle"], id="evaluate-config-unknown-key"),
    pytest.param(lambda d, mp: edit_config(d, '{"epochs": -3}'), ["evaluate", "--workdir", "{d}/run"], 2, ["config.json", "epochs=-3"], id="evaluate-config-bad-value"),
    pytest.param(lambda d, mp: (d / "run" / "data.json").unlink(), ["evaluate", "--workdir", "{d}/run"], 2, ["run' has no data.json"], id="evaluate-data-json-missing"),
    pytest.param(lambda d, mp: (d / "run" / "normalization.json").unlink(), ["evaluate", "--workdir", "{d}/run"], 2, ["run' has no normalization.json"], id="evaluate-normalization-missing"),
    pytest.param(lambda d, mp: (d / "run" / "mask.npy").unlink(), ["evaluate", "--workdir", "{d}/run"], 2, ["run' has no mask.npy"], id="evaluate-mask-missing"),
    pytest.param(lambda d, mp: (d / "run" / "normalization.json").write_text("{}"), ["evaluate", "--workdir", "{d}/run"], 2, ["normalization.json' lacks ['mean', 'std']: it is not as stconv wrote it"], id="evaluate-normalization-empty"),
    pytest.param(lambda d, mp: statistics(d, std=[0.0]), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["run file '{d}/run/normalization.json': std[0] = 0 is invalid: a standard deviation must be a positive finite number", "train the run again"], id="predict-normalization-std-zero"),
    pytest.param(lambda d, mp: statistics(d, std=[-2.5]), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["normalization.json'", "std[0] = -2.5 is invalid"], id="predict-normalization-std-negative"),
    pytest.param(lambda d, mp: statistics(d, std=[float("nan")]), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["normalization.json'", "std[0] = nan is invalid"], id="predict-normalization-std-nan"),
    pytest.param(lambda d, mp: statistics(d, mean=[float("inf")]), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["normalization.json'", "mean holds values that are not finite"], id="predict-normalization-mean-infinite"),
    pytest.param(lambda d, mp: statistics(d, std=[0.0]), ["evaluate", "--workdir", "{d}/run"], 2, ["normalization.json'", "std[0] = 0 is invalid"], id="evaluate-normalization-std-zero"),
    pytest.param(lambda d, mp: edit_json(d / "run" / "data.json", lambda v: v.pop("units")), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["data.json' lacks ['units']"], id="predict-data-json-without-units"),
    pytest.param(lambda d, mp: (d / "run" / "data.json").write_text("{"), ["evaluate", "--workdir", "{d}/run"], 2, ["data.json' is not JSON"], id="evaluate-data-json-not-json"),
    pytest.param(lambda d, mp: (d / "run" / "provenance.json").write_text("{}"), ["evaluate", "--workdir", "{d}/run"], 2, ["provenance.json' lacks ['config', 'inputs', 'sessions']"], id="evaluate-provenance-empty"),
    pytest.param(lambda d, mp: (d / "run" / "provenance.json").write_text("{}"), ["info", "{d}/run"], 2, ["provenance.json' lacks"], id="info-provenance-empty"),
    pytest.param(lambda d, mp: shutil.rmtree(d / "run" / "checkpoints"), ["evaluate", "--workdir", "{d}/run"], 2, ["run' has no best checkpoint"], id="evaluate-checkpoints-missing"),
    pytest.param(lambda d, mp: truncate(best_manifest(d)), ["evaluate", "--workdir", "{d}/run"], 2, ["best/1 is corrupt or incomplete", "train it again"], id="evaluate-best-corrupt"),
    pytest.param(lambda d, mp: (best_manifest(d).parent / "_METADATA").unlink(), ["evaluate", "--workdir", "{d}/run"], 2, ["best/1"], id="evaluate-best-metadata-missing"),
    pytest.param(lambda d, mp: write_synthetic_netcdf(d / "other.nc", 400, 8, 8) or edit_config(d, (d / "run" / "config.json").read_text().replace('"synthetic"', f'"{d}/other.nc"')), ["evaluate", "--workdir", "{d}/run"], 2, ["other.nc' is not the data the run", "variables ['temperature'] where the run has ['synthetic_0']"], id="evaluate-other-data"),
    # Inputs and outputs of predict.
    *(
        pytest.param(lambda d, mp, edit=edit: new_input(d, edit), predict("{d}"), 2, ["bad.nc", text], id=f"predict-input-{name}")
        for name, edit, text in PREDICT_INPUTS
    ),
    pytest.param(nothing, predict("{d}", "{d}/forecast.nc", "{d}/none.nc"), 2, ["none.nc' does not exist"], id="predict-input-missing"),
    pytest.param(lambda d, mp: truncate(best_manifest(d)), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 2, ["best/1 is corrupt or incomplete"], id="predict-best-corrupt"),
    pytest.param(nothing, predict("{d}", "{d}/mine.nc", "{d}/new.nc"), 2, ["--output", "mine.nc' exists: pass --overwrite"], id="predict-output-exists"),
    pytest.param(nothing, predict("{d}", "{d}/new.nc", "{d}/new.nc", "--overwrite"), 2, ["--output", "new.nc' is the input file"], id="predict-output-is-input"),
    pytest.param(lambda d, mp: (d / "in").mkdir() or [xr.load_dataset(d / "new.nc").isel(time=part).to_netcdf(d / "in" / name) for name, part in (("a.nc", slice(0, 6)), ("b.nc", slice(6, None)))], predict("{d}", "{d}/in/b.nc", "{d}/in/*.nc", "--overwrite"), 2, ["--output", "b.nc' is one of the input files '{d}/in/*.nc'"], id="predict-output-in-input-glob"),
    pytest.param(lambda d, mp: (d / "link.nc").symlink_to(d / "new.nc"), predict("{d}", "{d}/link.nc", "{d}/new.nc", "--overwrite"), 2, ["--output", "link.nc' is the input file"], id="predict-output-links-to-input"),
    pytest.param(in_folder, predict("{d}", "./run/../new.nc", "./new.nc", "--overwrite"), 2, ["--output", "new.nc' is the input file"], id="predict-output-is-input-other-spelling"),
    pytest.param(nothing, predict("{d}", "{d}", "{d}/new.nc"), 2, ["--output '{d}' is a folder: give the path of a netCDF file"], id="predict-output-is-a-folder"),
    pytest.param(in_folder, predict("{d}", ".", "{d}/new.nc", "--overwrite"), 2, ["--output '{d}' is a folder"], id="predict-output-dot"),
    pytest.param(nothing, predict("{d}", "", "{d}/new.nc"), 2, ["--output '' is empty: give the path of a file to write"], id="predict-output-empty"),
    pytest.param(nothing, predict("{d}", "{d}/forecast.nc/", "{d}/new.nc"), 2, ["--output", "forecast.nc' is a folder"], id="predict-output-trailing-slash"),
    pytest.param(nothing, predict("{d}", "{d}/run", "{d}/new.nc", "--overwrite"), 2, ["--output", "run' is a run: stconv writes nothing into a run"], id="predict-output-is-the-run"),
    pytest.param(lambda d, mp: (d / "data.zarr").mkdir() or (d / "data.zarr" / "notes.txt").write_text("mine"), predict("{d}", "{d}/data.zarr", "{d}/new.nc", "--overwrite"), 2, ["--output", "data.zarr' is not a zarr store: stconv replaces nothing else"], id="predict-output-zarr-not-a-store"),
    pytest.param(nothing, predict("{d}", "{d}/run/config.json", "{d}/new.nc", "--overwrite"), 2, ["--output", "config.json' is inside the run"], id="predict-output-run-config"),
    pytest.param(nothing, predict("{d}", "{d}/run/forecast.nc", "{d}/new.nc"), 2, ["--output", "forecast.nc' is inside the run"], id="predict-output-in-run"),
    pytest.param(nothing, predict("{d}", "{d}/run/checkpoints/f.nc", "{d}/new.nc"), 2, ["--output", "f.nc' is inside the run"], id="predict-output-in-checkpoints"),
    pytest.param(nothing, predict("{d}", "{d}/nowhere/forecast.nc", "{d}/new.nc"), 2, ["--output", "its folder", "nowhere' does not exist"], id="predict-output-folder-missing"),
    pytest.param(lambda d, mp: read_only(mp, d / "ro"), predict("{d}", "{d}/ro/forecast.nc", "{d}/new.nc"), 2, ["--output", "cannot be written", "read-only"], id="predict-output-read-only"),
    pytest.param(nothing, predict("{d}", "/proc/x.nc", "{d}/new.nc"), 2, ["--output '/proc/x.nc' cannot be written", "choose another path"], id="predict-output-in-proc"),
    pytest.param(lambda d, mp: refuses_files(mp, d / "pseudo"), predict("{d}", "{d}/pseudo/x.nc", "{d}/new.nc"), 2, ["--output '{d}/pseudo/x.nc' cannot be written: making a file in '{d}/pseudo' fails (No such file or directory)"], id="predict-output-refuses-files"),
    pytest.param(nothing, predict("{d}", "{d}/forecast.nc", "{d}/new.nc", "--units", "degC"), 2, ["new.nc", "variable 'synthetic_0' is in K, not in degC as --units says"], id="predict-units-contradict-the-file"),
    pytest.param(nothing, predict("{d}", "{d}/forecast.nc", "{d}/new.nc", "--units", "tas=K"), 2, ["--units names ['tas'], which are not the run's variables ['synthetic_0']"], id="predict-units-of-another-variable"),
    pytest.param(nothing, predict("{d}", "{d}/forecast.nc", "{d}/new.nc", "--batch-size", "0"), 2, ["--batch-size=0 is invalid"], id="predict-batch-size-zero"),
    pytest.param(lambda d, mp: (d / "link.nc").symlink_to(d / "gone.nc"), predict("{d}", "{d}/link.nc", "{d}/new.nc"), 2, ["--output '{d}/link.nc' is a link to '{d}/gone.nc', which does not exist: pass --overwrite to replace it"], id="predict-output-dangling-link"),
    *(
        pytest.param(nothing, [*command, *flags], 2, [text], id=f"{command[0]}-{name}")
        for command in (["evaluate", "--workdir", "{d}/run"], predict("{d}", "{d}/forecast.nc", "{d}/new.nc"))
        for name, flags, text in MEMBERS
    ),
    pytest.param(lambda d, mp: full_disk(mp), predict("{d}", "{d}/forecast.nc", "{d}/new.nc"), 1, ["could not write", "forecast.nc", "the disk is full", "nothing was written"], id="predict-disk-full"),
    # classify.
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--dataset", "cifar"], 2, ["--dataset cifar is unknown: choose from the image datasets ['mnist-5k', 'digits']"], id="classify-dataset-unknown"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--models", "resnet"], 2, ["--models resnet is unknown: choose from ['cnn', 'mlp']"], id="classify-model-unknown"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--epochs", "0"], 2, ["--epochs 0 is invalid"], id="classify-epochs-zero"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--batch-size", "0"], 2, ["--batch-size 0 is invalid"], id="classify-batch-size-zero"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--learning-rate", "0"], 2, ["--learning-rate 0.0 is invalid"], id="classify-learning-rate-zero"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--seed", "-2"], 2, ["--seed -2 is invalid"], id="classify-seed-negative"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/run"], 2, ["run' holds a forecasting run (finished or not): classify into a new workdir"], id="classify-into-a-forecasting-run"),
    pytest.param(lambda d, mp: (d / "run" / "results.json").unlink(), ["classify", "--workdir", "{d}/run"], 2, ["run' holds a forecasting run (finished or not)"], id="classify-into-an-unfinished-forecasting-run"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/c", "--seed", str(2**40)], 2, [f"--seed {2**40} is invalid: must be at most 2**32 - 1"], id="classify-seed-beyond-32-bits"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/mine.nc", "--dataset", "digits"], 2, ["mine.nc' is a file"], id="classify-workdir-is-a-file"),
    pytest.param(nothing, ["classify", "--workdir", "{d}/run", "--dataset", "digits"], 2, ["run' holds a forecasting run (finished or not)"], id="classify-workdir-forecast-run"),
]  # fmt: skip


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a warning would be a second line
@pytest.mark.parametrize("setup, argv, code, fragments", CASES)
def test_fault(
    root, root_files, tmp_path, monkeypatch, capsys, request, setup, argv, code, fragments
):
    shared = getattr(setup, "writes_nothing", False)
    d = root if shared else tmp_path / "case"
    if shared:
        request.addfinalizer(lambda: remove_new_entries(root, root_files))
    else:
        shutil.copytree(root, d)
    setup(d, monkeypatch)
    before = root_files if shared else digest(d)
    try:
        exit_code = cli.main([arg.format(d=d) for arg in argv])
    except SystemExit as exit_:  # argparse's own errors
        exit_code = exit_.code
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if not line.startswith(("usage:", " "))]
    assert exit_code == code, error
    assert len(lines) == 1 and lines[0].startswith("stconv"), error
    for fragment in fragments:
        assert fragment.format(d=d) in lines[0], lines[0]
    assert digest(d) == before  # nothing changed, appeared or disappeared


def test_the_executable_prints_one_line_for_a_corrupt_checkpoint(root, tmp_path):
    """Out of process: orbax's threads, left behind by the failed restore, add nothing."""
    shutil.copytree(root / "run", tmp_path / "run")
    truncate(best_manifest(tmp_path))
    command = [sys.executable, "-m", "stconv.cli", "evaluate", "--workdir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "best/1 is corrupt or incomplete" in done.stderr


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's of the scores: not shown
def test_accepted_extreme_values_give_no_score_as_a_number(tmp_path, capsys):
    """With --allow-extreme-values, 1e30 in the test years trains, but the test
    scores are not finite: exit 1, one line, and no results.json."""
    series(tmp_path, lambda ds: assign(ds, "tas", 36, 1e30))
    argv = [
        "train",
        "--workdir",
        str(tmp_path / "run"),
        *TINY,
        "--dataset",
        str(tmp_path / "bad.nc"),
    ]
    assert cli.main([*argv, *SERIES, "--allow-extreme-values"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stconv")]
    assert len(lines) == 1
    assert "the stconvs2s-r forecast of tas scores rmse = inf: not a finite number" in lines[0]
    assert "the training is finished and kept in" in lines[0]
    assert not (tmp_path / "run" / "results.json").exists()
    assert (tmp_path / "run" / "checkpoints").exists()

    # A resumption that fails the same way, or on data whose training years
    # changed since (with other training statistics), changes no file of the
    # run: neither normalization.json nor its record nor TensorBoard's events.
    kept = digest(tmp_path / "run")
    resume = [*argv, *SERIES, "--allow-extreme-values", "--resume", "--allow-changed-data"]
    assert cli.main(resume) == 1
    assert digest(tmp_path / "run") == kept
    series(tmp_path, lambda ds: assign(ds, "tas", slice(3, 6), 1e30) or assign(ds, "tas", 36, 1e30))
    assert cli.main(resume) == 1
    assert "the training is finished and kept in" in capsys.readouterr().err
    assert digest(tmp_path / "run") == kept


def test_another_grid_is_forecast_when_asked_with_its_own_mask(root, tmp_path, capsys):
    shutil.copy(root / "new.nc", tmp_path / "new.nc")

    def edit(dataset):
        dataset = dataset.isel(lat=slice(0, 8))
        dataset["synthetic_0"][:, 0, 0] = np.nan  # a cell with no data at all
        return dataset

    new_input(tmp_path, edit)
    output = tmp_path / "forecast.nc"
    arguments = ["--workdir", str(root / "run"), "--input", str(tmp_path / "bad.nc")]
    assert cli.main(["predict", *arguments, "--output", str(output), "--other-grid"]) == 0
    with xr.open_dataset(output) as forecast:
        values = forecast["synthetic_0"].values
    assert values.shape == (8, 5, 8, 16)
    assert np.isnan(values[:, :, 0, 0]).all() and np.isfinite(values[:, :, 1:, :]).all()


def test_predict_overwrite_replaces_a_file_on_request(root, tmp_path):
    output = tmp_path / "forecast.nc"
    output.write_text("an old forecast")
    arguments = ["--workdir", str(root / "run"), "--input", str(root / "new.nc")]
    assert cli.main(["predict", *arguments, "--output", str(output), "--overwrite"]) == 0
    with xr.open_dataset(output) as forecast:
        assert forecast["synthetic_0"].shape == (8, 5, 16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.nc"]  # no temporary left


def test_latitudes_that_cannot_be_weighted_train_unweighted_on_request(tmp_path, capsys):
    series(tmp_path, lambda ds: ds.assign_coords(lat=ds["lat"] * 20))
    flags = [*TINY, "--dataset", str(tmp_path / "bad.nc"), *SERIES, "--no-area-weights"]
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags]) == 0
    assert "wRMSE = RMSE (not area-weighted)" in capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())["tas"]
    assert results["stconvs2s-r"]["area_weighted"] is False
    assert results["stconvs2s-r"]["weighted_rmse"] == results["stconvs2s-r"]["rmse"]


def test_predict_never_writes_non_finite_forecasts(root, tmp_path):
    from stconv.runs.forecaster import Forecaster

    forecaster = Forecaster.load(root / "run")
    forecaster.predict = lambda x: np.full((len(x), 5, 16, 16, 1), np.inf, np.float32)
    with pytest.raises(RuntimeError, match="not finite inside the run's mask: nothing was written"):
        forecaster.write(root / "new.nc", tmp_path / "out.nc")
    assert list(tmp_path.iterdir()) == []  # nor a temporary


def test_float16_data_are_forecast_as_float32_data(root, tmp_path):
    """A float16 store of temperatures: its means are taken in float64, not
    overflowed to inf K and refused as data in other units."""
    with xr.open_dataset(root / "new.nc") as dataset:
        dataset.load().astype(np.float16).to_zarr(tmp_path / "half.zarr", consolidated=False)
    arguments = ["predict", "--workdir", str(root / "run"), "--output"]
    assert (
        cli.main([*arguments, str(tmp_path / "half.nc"), "--input", str(tmp_path / "half.zarr")])
        == 0
    )
    assert cli.main([*arguments, str(tmp_path / "full.nc"), "--input", str(root / "new.nc")]) == 0
    with (
        xr.open_dataset(tmp_path / "half.nc") as half,
        xr.open_dataset(tmp_path / "full.nc") as full,
    ):
        np.testing.assert_allclose(half["synthetic_0"], full["synthetic_0"], atol=0.5)
