"""The pieces a `Forecaster` is built of: the frozen run (`TrainedRun`), the
predictor wrappers (`stconv.evaluation.predictors`), the input checks
(`stconv.data.field_checks`) and errors that name parameters
(`stconv.checks.ParameterError`), spelled as flags by the command line."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv import cli
from stconv.checks import ParameterError
from stconv.data.errors import DataError
from stconv.data.field_checks import RunInputs, check_field, grid_difference
from stconv.data.normalization import Normalizer
from stconv.data.projection import RotatedPole
from stconv.evaluation import predictors
from stconv.evaluation.predictors import (
    Ensemble,
    Normalized,
    Perturbed,
    check_members,
    field_forecasts,
    members_of,
)
from stconv.runs.assembly import load_config_dataset
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster
from stconv.runs.trained import TrainedRun


def identity(inputs):
    """Forecasts every input frame as it is: a predictor whose output shows its input."""
    return np.asarray(inputs)


def test_a_parameter_error_is_spelled_as_python_or_as_flags():
    error = ParameterError("{members} is invalid; pass {other_grid} or {units}", members=1,
                           other_grid=True, units=None)  # fmt: skip
    assert str(error) == "members=1 is invalid; pass other_grid=True or units"
    assert (
        error.spelled(cli.parameter_flag) == "--members 1 is invalid; pass --other-grid or --units"
    )
    assert (
        ParameterError("{path} exists", path=None).spelled(cli.parameter_flag) == "--output exists"
    )
    assert isinstance(error, ValueError)


def test_an_ensemble_stacks_its_members_and_refuses_ensembles_as_members():
    inputs = np.arange(6, dtype=np.float32).reshape(1, 2, 1, 1, 3)
    ensemble = Ensemble([identity, lambda x: 2 * np.asarray(x)], ["a", "b"])
    assert members_of(ensemble) == ("a", "b") and members_of(identity) == ()
    np.testing.assert_array_equal(np.asarray(ensemble(inputs)), np.stack([inputs, 2 * inputs]))
    with pytest.raises(ValueError, match="an ensemble needs two members or more, not 1"):
        Ensemble([identity], ["a"])
    with pytest.raises(ValueError, match="member 'c' is an ensemble itself"):
        Ensemble([identity, ensemble], ["a", "c"])  # a wrapper composed twice


def test_perturbed_members_add_noise_to_the_variables_only():
    inputs = np.zeros((2, 3, 4, 5, 3), np.float32)  # 2 variables, then one extra input
    perturbed = Perturbed(identity, members=4, scale=0.5, variables=2, seed=1)
    members = np.asarray(perturbed(inputs))
    assert members.shape == (4, *inputs.shape) and perturbed.members[-1] == "perturbation 3"
    assert np.all(members[..., 2] == 0) and 0.4 < members[..., :2].std() < 0.6
    assert not np.array_equal(members[0], members[1])
    again = np.asarray(Perturbed(identity, 4, 0.5, 2, seed=1)(inputs))
    np.testing.assert_array_equal(again, members)  # one generator per seed
    with pytest.raises(ParameterError, match=r"^members: this forecaster is an ensemble of 4"):
        Perturbed(perturbed, 2, 0.5, 2)  # a wrapper composed twice


def test_normalized_wrappers_compose_with_members():
    normalizer = Normalizer(np.array([10.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    windows = np.random.default_rng(0).normal(10, 2, (3, 2, 4, 5, 2)).astype(np.float32)
    mask = np.ones((4, 5, 2), bool)
    mask[0, 0, 0] = False

    def target(inputs):  # a predictor forecasts the targets: here the first channel
        return np.asarray(inputs)[..., :1]

    single = Normalized(target, normalizer, outputs=1)
    physical = single(windows, mask)
    assert physical.shape == (3, 2, 4, 5, 1)
    np.testing.assert_allclose(physical[..., 1:, :, :], windows[..., 1:, :, :1], rtol=1e-6)
    assert np.isnan(physical[:, :, 0, 0, 0]).all()
    ensemble = Normalized(Perturbed(target, 3, 1e-6, 2), normalizer, outputs=1)
    members = ensemble(windows, mask)
    assert ensemble.members == ("perturbation 0", "perturbation 1", "perturbation 2")
    assert members.shape == (3, 3, 2, 4, 5, 1)  # (n, member, ...), as forecast files hold them
    np.testing.assert_allclose(members[:, 1], physical, rtol=1e-4, atol=1e-4)


def test_field_forecasts_stream_batches_padded_to_one_shape():
    shapes = []

    def predict(inputs):
        shapes.append(inputs.shape)
        return np.asarray(inputs)[:, -1:]

    times = pd.date_range("2001-01-01", periods=9, freq="D")
    values = np.arange(9 * 2 * 2, dtype=np.float32).reshape(9, 2, 2, 1)
    field = xr.DataArray(values, coords={"time": times}, dims=("time", "lat", "lon", "channel"))
    normalized = Normalized(predict, Normalizer(np.zeros(1, np.float32), np.ones(1, np.float32)), 1)
    batches = list(field_forecasts(normalized, field, np.ones((2, 2, 1), bool), 3, 1, 4))
    assert [len(b) for b in batches] == [4, 3] and shapes == [(4, 3, 2, 2, 1)] * 2
    np.testing.assert_array_equal(np.concatenate(batches)[:, 0], values[2:])


@pytest.mark.parametrize(
    "arguments, python, flags",
    [
        ({"perturbation": 0.5}, "perturbation needs members K", "--perturbation needs --members K"),
        ({"mean": True}, "mean: this forecaster has one member", "--mean: this forecaster"),
        ({"members": 1}, "members=1 is invalid: an ensemble needs 2", "--members 1 is invalid"),
        ({"members": 0}, "members=0 is invalid: must be an integer", "--members 0 is invalid"),
        ({"members": 2, "perturbation": -1.0}, "perturbation=-1.0 is invalid: must be a finite "
         "number in (0, 100]", "--perturbation -1.0 is invalid"),
        ({"members": 2, "perturbation": 101.0}, "perturbation=101.0 is invalid",
         "--perturbation 101.0 is invalid"),
        ({"members": 129, "batch_bytes": 2**20}, "members=129 is invalid: at most 128 members fit "
         "in half of this machine's 1 GiB", "--members 129 is invalid"),
        ({"members": 2, "fitted": "arima"}, "members: a arima run fits each cell's own",
         "--members: a arima run"),
    ],
)  # fmt: skip
def test_the_ensemble_parameters_are_checked_once_naming_them(
    arguments, python, flags, monkeypatch
):
    monkeypatch.setattr(predictors, "physical_memory", lambda: 2**30)
    with pytest.raises(ParameterError) as error:
        check_members(identity, **arguments)
    assert str(error.value).startswith(python)
    assert error.value.spelled(cli.parameter_flag).startswith(flags)


def test_the_checks_of_data_name_the_grid_and_the_parameter():
    times = pd.date_range("2001-01-01", periods=6, freq="D")
    field = xr.DataArray(
        np.ones((6, 3, 4, 1), np.float32),
        coords={"time": times, "lat": [10.0, 20.0, 30.0], "lon": [0.0, 1.0, 2.0, 3.0],
                "channel": ["t"], "units": ("channel", ["K"])},
        dims=("time", "lat", "lon", "channel"),
    )  # fmt: skip
    run = RunInputs(("t",), ("t",), ("K",), ("t",), 3, np.ones((3, 4, 1), bool))
    check_field(field, "x.nc", run)  # no coordinates recorded: the shape only
    moved = dataclasses.replace(run, lat=np.array([11.0, 21.0, 31.0]), lon=np.arange(4.0))
    assert grid_difference(field, moved) == "lat 10..30, the run's 11..31"
    # The same numbers about another pole, or not rotated, are other cells of the globe.
    same = dataclasses.replace(run, lat=field["lat"].values, lon=field["lon"].values)
    rotated_lat = field["lat"].assign_attrs(standard_name="grid_latitude")
    cordex = dataclasses.replace(same, pole=RotatedPole(39.25, -162.0))
    assert grid_difference(field, cordex) == (
        "not rotated, the run's rotated about the pole (39.25, -162)"
    )
    other_pole = field.assign_coords(lat=rotated_lat).assign_attrs(rotated_pole=RotatedPole(30, 0))
    assert grid_difference(other_pole, cordex) == (
        "rotated about the pole (30, 0), the run's rotated about the pole (39.25, -162)"
    )
    unknown_pole = field.assign_coords(lat=rotated_lat)  # a file without its grid mapping
    assert grid_difference(unknown_pole, cordex) == grid_difference(field, same) == ""
    with pytest.raises(DataError, match="pass other_grid=True to forecast it anyway") as error:
        check_field(field, "x.nc", moved)
    assert "pass --other-grid to forecast" in error.value.spelled(cli.parameter_flag)
    check_field(field, "x.nc", moved, other_grid=True)
    with pytest.raises(DataError, match="not in degC as units says"):
        check_field(field, "x.nc", run, units="degC")


def test_a_trained_run_is_the_same_value_from_its_folder_as_in_memory(tiny_run):
    loaded = TrainedRun.load(RunDirectory(tiny_run))
    in_memory = TrainedRun.from_dataset(loaded.config, load_config_dataset(loaded.config))
    assert loaded.path == str(tiny_run) and loaded.origin is not None and in_memory.path is None
    assert loaded.config == in_memory.config and loaded.description == in_memory.description
    np.testing.assert_array_equal(loaded.mask, in_memory.mask)
    np.testing.assert_allclose(loaded.normalizer.std, in_memory.normalizer.std, rtol=1e-6)
    np.testing.assert_allclose(
        loaded.climatology.values, in_memory.climatology.values, rtol=1e-6, equal_nan=True
    )
    assert loaded.inputs().variables == in_memory.inputs().variables == ("synthetic_0",)
    assert loaded.scoring().model == "stconvs2s-r" and loaded.scoring().horizon == loaded.horizon
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.path = "elsewhere"
    forecaster = Forecaster.load(tiny_run)
    assert forecaster.config == loaded.config and forecaster.description == loaded.description
    assert forecaster.config is forecaster.run.config and forecaster.members == ()


def test_members_are_bounded_by_half_the_memory_in_four_copies(monkeypatch):
    monkeypatch.setattr(predictors, "physical_memory", lambda: 2**30)
    assert predictors.max_members(2**20) == 2**30 // 2 // (4 * 2**20) == 128
    assert predictors.max_members(2**40) == 2  # an ensemble is at least two
    check_members(identity, members=128, perturbation=100.0, batch_bytes=2**20)  # the bounds pass
