"""Scores as an xarray Dataset (`stconv.evaluation.scores`): its layout, its
values equal to the results' numbers, ``results.json`` written from it number
for number, and the summary, tables and skill plot derived from it."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from stconv.evaluation import metrics, scores
from stconv.evaluation.scoring import add_skill, name_and_score
from stconv.runs import presentation
from stconv.runs.experiment import validation_text
from stconv.runs.field_report import format_regions
from stconv.runs.reporting import (
    format_ensemble,
    format_results,
    format_summaries,
    format_table,
    summarize,
)

RECORDED = Path(__file__).parent / "data" / "legacy-run-20bbac7" / "run" / "results.json"


@pytest.fixture
def recorded() -> dict:
    """A run's ``results.json``, recorded by the code before the Dataset."""
    return json.loads(RECORDED.read_text())


def two_variables(
    seed: int = 0,
    model: str = "stconvs2s",
    baselines: tuple[str, ...] = ("persistence", "input_mean"),
    scales: tuple[float, float] = (1.0, 100.0),
    units: tuple[str, str] = ("K", "Pa"),
) -> dict[str, dict]:
    """Results of two variables with different units, as `name_and_score` lays
    them out, from made-up accumulated scores."""
    rng = np.random.default_rng(seed)

    def record(scale: float) -> dict:
        scores = {}
        for name in metrics.METRICS:
            per_lead = (scale * rng.uniform(0.5, 2, 3)).tolist()
            scores[name], scores[f"{name}_per_lead"] = float(np.mean(per_lead)), per_lead
        return {**scores, "cells": 120, "area_weighted": True}

    evaluated = {name: [record(scale) for scale in scales] for name in ("model", *baselines)}
    return name_and_score(evaluated, model, ["t2m", "msl"], list(units), "by calendar month")


def test_the_dataset_has_one_value_per_forecast_variable_metric_and_lead(recorded):
    dataset = scores.as_dataset(recorded)
    assert dict(dataset["per_lead"].sizes) == {
        "forecast": 4, "variable": 1, "metric": 8, "lead_time": 5
    }  # fmt: skip
    assert dataset["overall"].dims == ("forecast", "variable", "metric")
    assert list(dataset["forecast"].values) == list(recorded["synthetic_0"])
    skills = ["skill_vs_persistence", "skill_vs_best_baseline"]
    assert dataset["metric"].values.tolist() == [*metrics.METRICS, *skills]
    assert dataset["lead_time"].values.tolist() == [1, 2, 3, 4, 5]
    assert dataset["units"].values.tolist() == ["K"]
    assert dataset.attrs == {
        "area_weighted": True,
        "climatology": "the training mean of every cell",
    }


def test_its_values_are_the_results_numbers(recorded):
    dataset = scores.as_dataset(recorded)
    for forecast, result in recorded["synthetic_0"].items():
        one = dataset.sel(forecast=forecast, variable="synthetic_0")
        for metric in dataset["metric"].values:
            assert float(one["overall"].sel(metric=metric)) == result[metric]
            per_lead = one["per_lead"].sel(metric=metric).values.tolist()
            assert per_lead == result[f"{metric}_per_lead"]
        assert int(one["cells"]) == result["cells"]
        assert str(one["best_baseline"].values) == result["best_baseline"]


def test_results_json_is_written_from_it_exactly_as_recorded(recorded):
    written = scores.as_results(scores.as_dataset(recorded))
    assert json.dumps(written) == json.dumps(recorded)  # keys, order and every digit
    several = two_variables()
    assert json.dumps(scores.as_results(scores.as_dataset(several))) == json.dumps(several)


def test_several_variables_keep_their_own_units_and_best_baseline():
    results = two_variables()
    dataset = scores.as_dataset(results)
    assert dataset["units"].values.tolist() == ["K", "Pa"]
    assert dataset["variable"].values.tolist() == ["t2m", "msl"]
    assert dataset["forecast"].values.tolist() == ["stconvs2s", "persistence", "input_mean"]
    for variable in ("t2m", "msl"):
        best = min(
            ("persistence", "input_mean"), key=lambda f: results[variable][f]["weighted_rmse"]
        )
        assert str(dataset["best_baseline"].sel(variable=variable).values) == best


def test_the_skill_is_computed_once_on_the_dataset_as_before(recorded):
    stripped = {
        forecast: {
            k: v for k, v in result.items() if not k.startswith("skill") and k != "best_baseline"
        }
        for forecast, result in recorded["synthetic_0"].items()
    }
    assert json.dumps(add_skill(stripped)) == json.dumps(recorded["synthetic_0"])
    skilled = scores.with_skill(scores.as_dataset({"synthetic_0": stripped}))
    assert json.dumps(scores.as_results(skilled)) == json.dumps(recorded)


def test_an_ensembles_scores_round_trip():
    results = two_variables()
    for variable, forecasts in results.items():
        for i, result in enumerate(forecasts.values()):
            members = 3 if i == 0 else 1
            ensemble = {"members": members, "crps": 0.5, "crps_per_lead": [0.1, 0.2, 0.3]}
            ensemble["rank_histogram"] = [[i + 1] * (members + 1)] * 3
            if i == 0:
                ensemble["perturbation"] = 0.1
            result["ensemble"] = ensemble
        results[variable] = {f: dict(sorted_ensemble_first(r)) for f, r in forecasts.items()}
    dataset = scores.as_dataset(results)
    assert dict(dataset["rank_histogram"].sizes)["rank"] == 4
    assert dataset["members"].values.tolist() == [3, 1, 1]
    assert json.dumps(scores.as_results(dataset)) == json.dumps(results)


def sorted_ensemble_first(result: dict) -> list:
    """A forecast's entries in `as_results`'s order: ``ensemble`` after ``area_weighted``."""
    items = [(k, v) for k, v in result.items() if k != "ensemble"]
    at = [k for k, _ in items].index("area_weighted") + 1
    return [*items[:at], ("ensemble", result["ensemble"]), *items[at:]]


def test_the_summary_is_the_mean_and_std_over_runs_as_numpy_gives_them():
    runs = [two_variables(seed) for seed in range(3)]
    summary = summarize(runs)
    for variable in ("t2m", "msl"):
        scored = summary[variable]["stconvs2s"]
        assert list(scored)[:3] == ["skill_vs_persistence", "rmse", "rmse_per_lead"]
        values = [run[variable]["stconvs2s"]["rmse_per_lead"] for run in runs]
        assert scored["rmse_per_lead"]["mean"] == np.mean(values, 0).tolist()
        assert scored["rmse_per_lead"]["std"] == np.std(values, 0).tolist()
        overall = [run[variable]["stconvs2s"]["acc"] for run in runs]
        assert scored["acc"] == {"mean": np.mean(overall), "std": np.std(overall)}
    dataset = scores.summary([scores.as_dataset(run) for run in runs])
    assert dataset["statistic"].values.tolist() == ["mean", "std"]
    assert scores.summary_record(scores.summary_dataset(summary)) == summary


def test_the_tables_read_the_same_from_the_dataset_and_from_the_results(recorded):
    dataset = scores.as_dataset(recorded)
    assert format_results(dataset) == format_results(recorded)
    table = format_table(recorded["synthetic_0"], "K").splitlines()
    assert table[1].split()[:7] == ["forecast", "RMSE", "wRMSE", "MAE", "bias", "ACC", "skill"]
    assert table[2].startswith("stconvs2s-r     11.343  11.336   9.398")


def test_a_metric_without_a_presentation_is_a_column_under_its_name(recorded, monkeypatch):
    square = metrics.Metric(metrics.squared_sums, metrics.per_cell("squared"))
    monkeypatch.setitem(metrics.METRICS, "mean_square", square)
    for result in recorded["synthetic_0"].values():
        result["mean_square"] = result["rmse"] ** 2
        result["mean_square_per_lead"] = np.square(result["rmse_per_lead"]).tolist()
    assert presentation.presentation("mean_square").label == "mean_square"
    header = format_table(recorded["synthetic_0"], "K").splitlines()[1].split()
    assert header[6:8] == ["mean_square", "skill"]
    titles = [axis.get_title() for axis in presentation.skill_figure(recorded).axes]
    assert len(titles) == 2  # no panel of its own


def same_widths(table: str, starts: tuple[str, ...]) -> set[int]:
    """The lengths of the lines of ``table`` that start with one of ``starts``."""
    return {len(line) for line in table.splitlines() if line.startswith(starts)}


def test_forecasts_with_long_names_keep_the_tables_aligned():
    long = ("persistence", "anomaly_persistence", "damped_anomaly_persistence")
    model = "ablation-stconvs2s-nocausalconstraint"
    runs = [two_variables(seed, model, long) for seed in range(2)]
    rows = ("forecast", model, *long)
    table = format_results(runs[0]).split("\n\n")[0]  # t2m's: its numbers fit the columns
    assert len(same_widths(table, rows)) == 1, table
    assert f"\n{model} " in table and "\ndamped_anomaly_persistence " in table
    summary = format_summaries(scores.summary_dataset(summarize(runs)), 2).split("\n\n")[0]
    assert len(same_widths(summary, (model, *long))) == 1, summary
    dataset = scores.as_dataset(runs[0])
    dataset["members"] = ("forecast", [3, 1, 1, 1])
    names = ("crps", "crps_skill", "crps_spread", "spread", "spread_skill_ratio")
    dataset["ensemble_overall"] = (("forecast", "variable", "ensemble_metric"), np.ones((4, 2, 5)))
    dataset["ensemble_per_lead"] = dataset["ensemble_overall"].expand_dims(lead_time=[1, 2, 3])
    dataset = dataset.assign_coords(ensemble_metric=list(names))
    ensemble = format_ensemble(dataset, ("1000", "1010", "1020")).split("\n\n")[0]
    assert len(same_widths(ensemble, rows)) == 1, ensemble


def test_regions_and_forecasts_with_long_names_keep_the_region_table_aligned():
    forecasts = ["stconvs2s-r", "damped_anomaly_persistence"]
    regions = ["tropics", "a_region_named_at_length_by_its_user"]
    overall = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)  # variable, region, forecast, metric
    regional = xr.Dataset(
        {
            "overall": (("variable", "region", "forecast", "metric"), overall),
            "cells": (("variable", "region", "forecast"), [[[12, 12], [123456789, 123456789]]]),
        },
        coords={"variable": ["t2m"], "region": regions, "forecast": forecasts, "metric": ["rmse"]},
    ).assign_coords(units=("variable", ["K"]))
    table = format_regions(regional, "stconvs2s-r").splitlines()
    assert len({len(line) for line in table[1:]}) == 1, "\n".join(table)
    assert table[1].split() == ["t2m", "(K)", "cells", *forecasts]
    assert table[3].split() == [regions[1], "123456789", "3.000", "4.000"]


def test_scores_too_small_for_three_decimals_are_shown_in_a_power_of_ten_of_their_units():
    results = two_variables(scales=(1.0, 3e-5), units=("K", "kg m-2 s-1"))
    flux = results["msl"]["stconvs2s"]
    shown = presentation.readable(scores.as_dataset(results))
    assert shown["shown_units"].values.tolist() == ["K", "1e-05 kg m-2 s-1"]
    one = shown.sel(variable="msl", forecast="stconvs2s")
    assert float(one["overall"].sel(metric="rmse")) == pytest.approx(flux["rmse"] * 1e5)
    assert float(one["per_lead"].sel(metric="mae", lead_time=2)) == pytest.approx(
        flux["mae_per_lead"][1] * 1e5
    )
    assert float(one["overall"].sel(metric="acc")) == flux["acc"]  # a pure number
    t2m = shown.sel(variable="t2m", forecast="stconvs2s")["overall"].sel(metric="rmse")
    assert float(t2m) == results["t2m"]["stconvs2s"]["rmse"]
    table = format_results(results).split("\n\n")[1].splitlines()
    assert "in 1e-05 kg m-2 s-1" in table[0]
    assert table[2].split()[1] == f"{flux['rmse'] * 1e5:.3f}" != "0.000"
    unchanged = scores.as_dataset(two_variables())
    assert presentation.readable(unchanged) is unchanged


def test_an_epochs_validation_rmse_keeps_four_significant_digits_when_tiny():
    assert validation_text({"validation_rmse": 0.85094}, "K", False) == "validation RMSE 0.8509 K"
    tiny = validation_text({"validation_rmse": 1.28249e-5}, "kg m-2 s-1", False)
    assert tiny == "validation RMSE 1.282e-05 kg m-2 s-1"
