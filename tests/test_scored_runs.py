"""What a run's evaluation writes beside its scores: event scores by default
for rainfall-like data, intervals and the model's paired tests for every run,
the reference's score, per-cell scores and maps, regional scores and spectra."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv import cli
from stconv.runs.directory import RunDirectory

TINY = ["--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--epochs", "1"]
TINY += ["--input-length", "3", "--horizon", "2", "--forecast-samples", "0"]


@pytest.fixture(scope="module")
def rain_run(tmp_path_factory):
    """A tiny run on synthetic daily rainfall (labelled so: gamma-distributed
    showers in mm/day, two of three days dry) on a 6 x 8 grid."""
    folder = tmp_path_factory.mktemp("rain")
    rng = np.random.default_rng(0)
    times = pd.date_range("2001-01-01", periods=300, freq="D")
    wet = rng.random((300, 6, 8)) < 0.35
    rain = np.where(wet, rng.gamma(0.8, 8.0, (300, 6, 8)), 0.0).astype(np.float32)
    data = xr.Dataset(
        {"pr": (("time", "lat", "lon"), rain, {"units": "mm/day"})},
        coords={"time": times, "lat": np.linspace(-10, 10, 6), "lon": np.linspace(0, 35, 8)},
    )
    data.to_netcdf(folder / "rain.nc")
    workdir = folder / "run"
    argv = ["train", "--workdir", str(workdir), *TINY, "--dataset", str(folder / "rain.nc")]
    argv += ["--bootstrap", "200", "--regions", "global,tropics,north=0:10:0:20"]
    argv += ["--forecast-samples", "1"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(argv) == 0
    (folder / "printed.txt").write_text(printed.getvalue())
    return workdir


def test_rainfall_gets_the_event_scores_by_default(rain_run, capsys):
    results = RunDirectory(rain_run).read_json("results.json", "")["pr"]
    events = results["persistence"]["events"]
    assert events["thresholds"] == ["1", "10", "20"] and events["scales"] == [1, 3, 5]
    for score in ("hit_rate", "false_alarm_ratio", "csi", "ets", "frequency_bias", "sedi"):
        assert len(events[score]) == 3 and len(events[f"{score}_per_lead"]) == 2
    assert np.shape(events["fss"]) == (3, 3)
    # the input mean smooths the showers: it rains >= 1 mm/day far more often than the truth
    assert results["input_mean"]["events"]["frequency_bias"][0] > 1.5
    assert set(results) >= {"stconvs2s-r", "persistence", "input_mean"}
    assert all("events" in record for record in results.values())


def test_every_score_has_an_interval_and_the_model_its_paired_tests(rain_run):
    results = RunDirectory(rain_run).read_json("results.json", "")["pr"]
    model = results["stconvs2s-r"]
    for record in results.values():
        low, high = record["interval"]["rmse"]
        assert low <= record["rmse"] <= high
        assert len(record["interval_per_lead"]["rmse"]) == 2
        assert record["bootstrap"]["replicates"] == 200
    versus = model["versus"]["persistence"]["rmse"]
    assert versus["difference"] == pytest.approx(
        model["rmse"] - results["persistence"]["rmse"], abs=1e-9
    )
    assert 0 < versus["p_value"] <= 1 and versus["interval"][0] <= versus["interval"][1]
    assert "versus" not in results["persistence"]
    assert model["rmse_reference"] > 0


def test_the_table_prints_intervals_events_and_the_verdict(rain_run):
    printed = (rain_run.parent / "printed.txt").read_text()
    assert "RMSE 95%" in printed and "than the best baseline" in printed
    assert "at 5% over" in printed and "events (value >= threshold, mm/day" in printed
    assert "RMSE per region over the whole test split" in printed


def test_per_cell_scores_are_those_of_the_written_forecasts(rain_run):
    """The model's RMSE and bias per cell at lead 1, by hand from
    ``test_forecasts.nc`` and the data file, equal ``cell_scores.nc``'s."""
    written = xr.open_dataset(rain_run / "test_forecasts.nc")
    data = xr.open_dataset(rain_run.parent / "rain.nc")
    lead_1 = written["pr"].isel(lead_time=0)
    truth = data["pr"].sel(time=written["valid_time"].isel(lead_time=0).values).values
    errors = lead_1.values - truth
    cells = xr.open_dataset(rain_run / "cell_scores.nc").sel(
        forecast="stconvs2s-r", lead_time=1, variable="pr"
    )
    np.testing.assert_allclose(cells["rmse"], np.sqrt(np.mean(errors**2, axis=0)), rtol=1e-4)
    np.testing.assert_allclose(cells["bias"], errors.mean(axis=0), rtol=1e-4, atol=1e-4)
    assert cells["windows"].values.min() == len(errors)
    for picture in ("cell_maps.png", "spectra.png", "forecast_errors.png"):
        assert (rain_run / picture).stat().st_size > 10_000


def test_the_global_region_is_the_whole_grid(rain_run):
    run = RunDirectory(rain_run)
    regional = run.read_json("regional_scores.json", "")["pr"]
    results = run.read_json("results.json", "")["pr"]
    assert list(regional) == ["global", "tropics", "north"]
    for forecast in ("stconvs2s-r", "persistence"):
        for metric in ("rmse", "weighted_rmse", "bias"):
            expected = results[forecast][metric]
            assert regional["global"][forecast][metric] == pytest.approx(expected, rel=1e-5)
    assert regional["north"]["persistence"]["cells"] < regional["global"]["persistence"]["cells"]


def test_the_spectra_hold_the_truth_and_every_forecast(rain_run):
    spectra = xr.open_dataset(rain_run / "spectra.nc")
    assert set(spectra["source"].values) >= {"truth", "stconvs2s-r", "input_mean"}
    assert spectra.sizes["wavenumber"] == 8 // 2 + 1 and spectra.sizes["lead_time"] == 2
    power = spectra["power"].sel(variable="pr", lead_time=1)
    # the input mean averages three days of showers: less power than the truth at every k >= 1
    assert (power.sel(source="input_mean")[1:] < power.sel(source="truth")[1:]).all()


def test_evaluate_takes_other_evaluation_settings_for_this_evaluation(rain_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(rain_run, run)
    argv = ["evaluate", "--workdir", str(run), "--thresholds", "5,q90", "--bootstrap", "100"]
    assert cli.main([*argv, "--regions", "south=-10:0:0:35", "--no-maps"]) == 0  # regions only
    results = RunDirectory(run).read_json("results.json", "")["pr"]["persistence"]
    assert results["events"]["thresholds"] == ["5", "q90"]
    assert results["bootstrap"]["replicates"] == 100
    assert list(RunDirectory(run).read_json("regional_scores.json", "")["pr"]) == ["south"]
    assert RunDirectory(run).config().evaluation.bootstrap == 200  # the run's own: unchanged
    members = ["evaluate", "--workdir", str(run), "--members", "3", "--perturbation", "0.5"]
    assert cli.main([*members, "--bootstrap", "0", "--no-maps"]) == 0
    perturbed = RunDirectory(run).read_json("perturbed_results.json", "")["pr"]
    brier = perturbed["stconvs2s-r"]["events"]["brier"]  # an ensemble's: the Brier score
    assert len(brier) == 3 and all(0 <= b <= 1 for b in brier)
    assert "brier" not in perturbed["persistence"]["events"]
    assert cli.main(["evaluate", "--workdir", str(run), "--regions", "atlantis"]) == 2
    assert "--regions 'atlantis' is invalid" in capsys.readouterr().err


def test_the_new_scores_round_trip_through_the_dataset(rain_run):
    """``results.json`` with intervals, paired tests, events (undefined ones as
    null) and the reference's score reads as a Dataset and back, number for number."""
    from stconv.evaluation.scores import as_dataset, as_results

    results = RunDirectory(rain_run).read_json("results.json", "")
    scores = as_dataset(results)
    assert as_results(scores) == results
    assert scores["p_value"].sel(baseline="persistence", metric="rmse") > 0
    assert set(scores["events"].dims) == {"forecast", "variable", "event_metric", "threshold"}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--thresholds", "q100"], "--thresholds 'q100' is invalid"),
        (["--thresholds", "1,1.0"], "--thresholds '1,1.0' is invalid"),
        (["--regions", "box=10:0:0:20"], "--regions 'box=10:0:0:20' is invalid"),
        (["--regions", "file:/none/regions.nc"], "region file '/none/regions.nc' does not exist"),
        (["--regions", "file:/"], "region file '/' is a folder: give a netCDF file"),
        # every cell of the embedded field is valid: its mask is no land mask
        (["--regions", "sea"], "region 'sea' needs a land mask, and the data's mask holds"),
        (["--regions", "land"], "every cell: give --mask-file, or leave the region out"),
        (["--regions", "box=80:90:0:10"], "regions: region 'box' has no cell of the grid"),
        (["--neighbourhoods", "2"], "--neighbourhoods 2 is invalid: give odd sizes"),
        (["--bootstrap", "-1"], "--bootstrap -1 is invalid"),
    ],
)
def test_bad_score_settings_are_refused_before_anything_is_written(
    tmp_path, capsys, flags, message
):
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), *flags]) == 2
    assert message in capsys.readouterr().err and not workdir.exists()


def test_sea_of_a_land_mask_file_is_refused_as_never_scored(tmp_path, capsys):
    """The mask file leaves the sea out of every score: ``sea``, and a box at
    sea, would score nothing (they crashed writing their NaN scores)."""
    land = np.zeros((37, 49), bool)
    land[:, :20] = True  # the embedded field's grid, land in the west
    np.save(tmp_path / "land.npy", land)
    for regions in ("land,sea", "west=15:60:225:240,east=15:60:300:315"):
        flags = ["--mask-file", str(tmp_path / "land.npy"), "--regions", regions]
        assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags]) == 2
        region = regions.split(",")[1].split("=")[0]
        message = f"regions: region {region!r} has no scored cell: the data's mask (--mask-file"
        assert message in capsys.readouterr().err and not (tmp_path / "run").exists()
