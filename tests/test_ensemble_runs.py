"""Runs of several seeds (their mean and spread, and as ensembles), perturbed
members of one run, and the climatological ensemble: scores, files, the API
and the errors (tiny, synthetic)."""

import contextlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv import cli
from stconv.data.climatology import Climatology, fit_climatology, member_frames
from stconv.data.errors import DataError
from stconv.evaluation.metrics import area_weights
from stconv.runs.forecaster import Forecaster

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--no-maps", "--epochs", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """A run of two seeds; what it printed is in ``printed.txt`` beside it."""
    workdir = tmp_path_factory.mktemp("ensemble") / "runs"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["train", "--workdir", str(workdir), *TINY, "--iterations", "2"]) == 0
    (workdir.parent / "printed.txt").write_text(printed.getvalue())
    return workdir


@pytest.fixture(scope="module")
def data_file(seeds):
    """The synthetic field of the runs, as a netCDF file."""
    from stconv.data.synthetic import write_synthetic_netcdf

    path = seeds.parent / "synthetic.nc"
    write_synthetic_netcdf(path, 30, 16, 16, seed=9, variable="synthetic_0")
    return path


def results_of(workdir, name="results.json"):
    return json.loads((workdir / name).read_text())["synthetic_0"]


def test_a_run_of_seeds_is_scored_as_their_ensemble(seeds):
    results = results_of(seeds)
    assert set(results) == {
        "stconvs2s-r", "persistence", "climatology", "input_mean", "climatological_ensemble",
    }  # fmt: skip
    model = results["stconvs2s-r"]["ensemble"]
    assert model["members"] == 2 and len(model["crps_per_lead"]) == 5
    assert model["crps"] == pytest.approx(model["crps_skill"] - model["crps_spread"])
    assert np.array(model["rank_histogram"]).shape == (5, 3)
    assert np.sum(model["rank_histogram"]) == results["stconvs2s-r"]["cells"]
    # a deterministic forecast's CRPS is its area-weighted MAE
    persistence = results["persistence"]
    assert persistence["ensemble"]["crps"] == pytest.approx(persistence["weighted_mae"], rel=1e-6)
    summary = json.loads((seeds / "summary.json").read_text())
    assert summary["ensemble"]["synthetic_0"]["stconvs2s-r"]["ensemble"] == model
    assert (seeds / "ensemble.png").stat().st_size > 10_000


def test_iterations_report_mean_and_std(seeds):
    assert "mean +- std over 2 runs" in (seeds.parent / "printed.txt").read_text()
    summary = json.loads((seeds / "summary.json").read_text())
    runs = [run["synthetic_0"] for run in summary["runs"]]
    means = summary["summary"]["synthetic_0"]
    rmses = [run["stconvs2s-r"]["rmse"] for run in runs]
    assert rmses[0] != rmses[1]  # seeds 1000 and 1010
    assert means["stconvs2s-r"]["rmse"]["mean"] == pytest.approx(np.mean(rmses))
    assert means["stconvs2s-r"]["rmse"]["std"] == pytest.approx(np.std(rmses))
    leads = np.array([run["stconvs2s-r"]["weighted_rmse_per_lead"] for run in runs])
    per_lead = means["stconvs2s-r"]["weighted_rmse_per_lead"]
    assert per_lead["mean"] == pytest.approx(leads.mean(axis=0).tolist())
    assert per_lead["std"] == pytest.approx(leads.std(axis=0).tolist())
    assert means["input_mean"]["rmse"]["std"] == 0.0  # no seed in a baseline
    assert (seeds / "seed-1010" / "results.json").exists()
    assert (seeds / "skill_by_lead.png").exists()


def test_the_mean_over_seeds_gets_an_interval_with_the_seeds_spread(seeds):
    """The half-width z sqrt(se^2 + s^2 / n): the windows' sampling error (from
    the runs' mean interval) with the seeds' spread (ddof 1) of their mean."""
    summary = json.loads((seeds / "summary.json").read_text())
    runs = [run["synthetic_0"]["stconvs2s-r"] for run in summary["runs"]]
    rmses = [run["rmse"] for run in runs]
    low, high = np.mean([run["interval"]["rmse"] for run in runs], axis=0)
    z = 1.959963984540054
    half = z * np.sqrt(((high - low) / (2 * z)) ** 2 + np.var(rmses, ddof=1) / 2)
    bounds = summary["summary"]["synthetic_0"]["stconvs2s-r"]["rmse"]["interval"]
    assert bounds == pytest.approx([np.mean(rmses) - half, np.mean(rmses) + half])
    printed = (seeds.parent / "printed.txt").read_text()
    assert "(the best baseline), mean over the runs: RMSE" in printed


def test_the_ensemble_mean_is_the_mean_of_the_members_forecasts(seeds):
    forecasts = []
    for seed in (1000, 1010):
        with xr.open_dataset(seeds / f"seed-{seed}" / "test_forecasts.nc") as members:
            forecasts.append(members["synthetic_0"].values)
    truth_mean = np.mean(forecasts, axis=0)
    members = np.stack(forecasts)
    # the spread of the members' own test forecasts, by hand: sqrt(mean over
    # windows, leads and cells of cos-latitude weighted unbiased variance)
    lat = xr.open_dataset(seeds / "seed-1000" / "test_forecasts.nc")["lat"].values
    weights = area_weights(lat)[None, None, :, None]
    variance = members.var(axis=0, ddof=1)
    spread = np.sqrt(np.nansum(variance * weights) / np.sum(np.isfinite(variance) * weights))
    model = results_of(seeds)["stconvs2s-r"]
    assert model["ensemble"]["spread"] == pytest.approx(spread, rel=1e-4)
    assert truth_mean.shape[0] == 71
    # the ensemble mean's wRMSE equals that of the mean of the members' forecasts
    assert model["ensemble"]["ensemble_mean_rmse"] == pytest.approx(
        model["weighted_rmse"], rel=1e-5
    )


def test_forecaster_load_gives_members_and_their_mean(seeds, data_file):
    forecaster = Forecaster.load(seeds)
    assert forecaster.members == ("seed 1000", "seed 1010")
    forecast = forecaster.forecast(str(data_file))
    values = forecast["synthetic_0"]
    assert values.dims == ("init_time", "member", "lead_time", "lat", "lon")
    assert list(forecast["member_name"].values) == ["seed 1000", "seed 1010"]
    first = values.isel(init_time=slice(0, 3)).values
    single = Forecaster.load(seeds / "seed-1010").forecast(str(data_file))
    np.testing.assert_allclose(
        first[:, 1], single["synthetic_0"].isel(init_time=slice(0, 3)).values, rtol=1e-6
    )
    mean = forecaster.forecast(str(data_file), mean=True)["synthetic_0"]
    assert mean.dims == ("init_time", "lead_time", "lat", "lon")
    np.testing.assert_allclose(mean.isel(init_time=slice(0, 3)).values, first.mean(axis=1))


def test_predict_writes_the_members_or_their_mean(seeds, data_file, tmp_path):
    members, mean = tmp_path / "members.nc", tmp_path / "mean.nc"
    common = ["predict", "--workdir", str(seeds), "--input", str(data_file)]
    assert cli.main([*common, "--output", str(members)]) == 0
    assert cli.main([*common, "--output", str(mean), "--mean"]) == 0
    with xr.open_dataset(members) as written, xr.open_dataset(mean) as averaged:
        assert written["synthetic_0"].dims[:2] == ("init_time", "member")
        assert list(written["member_name"].values) == ["seed 1000", "seed 1010"]
        np.testing.assert_allclose(
            averaged["synthetic_0"].values, written["synthetic_0"].mean("member").values, rtol=1e-6
        )


def test_evaluate_scores_the_ensemble_again(seeds, capsys):
    before = results_of(seeds)
    assert cli.main(["evaluate", "--workdir", str(seeds)]) == 0
    assert "ensemble scores over the whole test split" in capsys.readouterr().out
    after = results_of(seeds)
    assert after["stconvs2s-r"]["ensemble"]["crps"] == pytest.approx(
        before["stconvs2s-r"]["ensemble"]["crps"], rel=1e-6
    )


def test_an_ensembles_event_scores_are_printed_with_its_table(seeds, capsys, tmp_path):
    run = shutil.copytree(seeds, tmp_path / "runs")
    assert cli.main(["evaluate", "--workdir", str(run), "--thresholds", "q90"]) == 0
    printed = capsys.readouterr().out
    events = printed[printed.index("events (value >= threshold") :].splitlines()
    assert events[2].split()[:2] == ["stconvs2s-r", "q90"]
    assert "climatological_ensemble" in events[-1]
    assert results_of(run)["stconvs2s-r"]["events"]["thresholds"] == ["q90"]


def test_perturbed_members_of_one_run(seeds, data_file, capsys, tmp_path):
    run = seeds / "seed-1000"
    predict = ["predict", "--workdir", str(run), "--input", str(data_file), "--members", "2"]
    assert cli.main([*predict, "--output", str(tmp_path / "none.nc")]) == 2
    assert "has no chosen perturbation: pass --perturbation S" in capsys.readouterr().err
    assert cli.main(["evaluate", "--workdir", str(run), "--members", "3"]) == 0
    chosen = capsys.readouterr().out.split("perturbation ")[1].split(",")[0]
    perturbed = results_of(run, "perturbed_results.json")["stconvs2s-r"]
    assert perturbed["ensemble"]["members"] == 3 and perturbed["ensemble"]["crps_spread"] > 0
    assert perturbed["ensemble"]["perturbation"] == float(chosen)
    assert (run / "perturbed_ensemble.png").exists()
    # predict uses the noise evaluate chose
    assert cli.main([*predict, "--output", str(tmp_path / "two.nc")]) == 0
    with xr.open_dataset(tmp_path / "two.nc") as written:
        assert written.sizes["member"] == 2
    # the run's own results stay its single forecast's
    assert "ensemble" not in results_of(run)["stconvs2s-r"]
    # a larger perturbation spreads the members further
    forecaster = Forecaster.load(run)
    inputs = np.zeros((2, *forecaster.description["input_shape"]), np.float32)
    small = np.asarray(forecaster.perturbed(4, 0.01).predict(inputs))
    large = np.asarray(forecaster.perturbed(4, 1.0).predict(inputs))
    assert small.shape[0] == 4 and small.std(axis=0).mean() < large.std(axis=0).mean()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["evaluate", "--members", "3"], "is an ensemble of 2 seeds already"),
        (["evaluate", "--members", "1", "SEED"], "--members 1 is invalid: an ensemble needs 2"),
        (["predict", "--mean", "SEED"], "--mean: the run .* has one member"),
        (["evaluate", "--perturbation", "0.5", "SEED"], "--perturbation needs --members"),
        (
            ["evaluate", "--members", "2", "--perturbation", "-1", "SEED"],
            r"must be a finite number in \(0, 100\]",
        ),
        (["evaluate", "--regions", "global"], "--regions 'global' is invalid for an ensemble"),
        (["evaluate", "--maps"], "--maps is invalid for an ensemble"),
        (
            [
                "evaluate",
                "--members",
                "2",
                "--perturbation",
                "1",
                "--forecast-samples",
                "1",
                "SEED",
            ],
            "--forecast-samples 1 is invalid for an ensemble .* evaluate one seed's folder",
        ),
    ],
)
def test_ensemble_options_that_cannot_apply_give_one_line(seeds, data_file, capsys, flags, message):
    *flags, last = flags
    workdir = seeds / "seed-1000" if last == "SEED" else seeds
    flags = flags if last == "SEED" else [*flags, last]
    extra = ["--input", str(data_file), "--output", str(seeds.parent / "x.nc")]
    command = [flags[0], "--workdir", str(workdir), *flags[1:]]
    assert cli.main(command + (extra if flags[0] == "predict" else [])) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert __import__("re").search(message, error)


# The climatological ensemble's members: one per complete training year.


def daily(start, stop, calendar="standard"):
    return xr.date_range(
        start, stop, freq="D", calendar=calendar, use_cftime=calendar != "standard"
    )


def climatology_of(times):
    field = xr.DataArray(
        np.zeros((len(times), 1, 1, 1), np.float32),
        dims=("time", "lat", "lon", "channel"),
        coords={"time": times},
    )
    return fit_climatology(field, 3)


def test_members_by_day_of_year_on_the_standard_calendar():
    times = daily("2003-07-01", "2005-12-31")  # 2004 is a leap year; 2003 is partial
    frames = member_frames(climatology_of(times), times)
    assert frames.shape == (366, 2)  # 2004 and 2005
    picked = pd.DatetimeIndex(np.asarray(times)[frames[59]])  # slot 59: 29 February
    assert [str(t.date()) for t in picked] == ["2004-02-29", "2005-02-28"]
    picked = pd.DatetimeIndex(np.asarray(times)[frames[60]])  # 1 March in both
    assert [str(t.date()) for t in picked] == ["2004-03-01", "2005-03-01"]


@pytest.mark.parametrize("calendar, slots", [("noleap", 365), ("360_day", 360)])
def test_members_on_other_calendars(calendar, slots):
    times = daily("2001-01-01", "2003-06-30", calendar)
    frames = member_frames(climatology_of(times), times)
    assert frames.shape == (slots, 2)  # 2001 and 2002; 2003 is partial
    last = np.asarray(times)[frames[slots - 1]]
    assert [(t.year, t.month, t.day) for t in last] == [
        (2001, 12, 30 + (calendar == "noleap")),
        (2002, 12, 30 + (calendar == "noleap")),
    ]


def test_members_of_annual_data_are_every_training_frame():
    annual = Climatology("annual", np.zeros((1, 1, 1, 1), np.float32))
    np.testing.assert_array_equal(member_frames(annual, np.arange(5)), [[0, 1, 2, 3, 4]])


def test_no_complete_training_year_is_refused():
    times = daily("2001-01-01", "2002-06-30")
    climatology = climatology_of(times)
    short = times[200:]  # from July 2001 to June 2002: no complete year
    with pytest.raises(DataError, match="the training split holds no complete year"):
        member_frames(climatology, short, "the training split")


def test_a_split_from_july_counts_its_years_from_july():
    times = daily("2003-07-01", "2005-06-30")
    frames = member_frames(climatology_of(times), times)
    picked = pd.DatetimeIndex(np.asarray(times)[frames[0]])  # 1 January
    assert [str(t.date()) for t in picked] == ["2004-01-01", "2005-01-01"]
