"""Event scores: contingency scores, FSS and the Brier score against `scores`,
hand-computed examples, per-window sums, thresholds and their errors."""

import json
import operator

import numpy as np
import pytest
import xarray as xr
from scores.categorical import ThresholdEventOperator
from scores.probability import brier_score
from scores.spatial import fss_2d

from stconv.evaluation.events import (
    EVENT_SCORES,
    EventAccumulator,
    Threshold,
    default_thresholds,
    event_results,
    is_precipitation,
    parse_thresholds,
    threshold_fields,
)

DIMS = ("window", "lead", "lat", "lon", "channel")
SCORES_METHODS = {
    "hit_rate": "hit_rate",
    "false_alarm_ratio": "false_alarm_ratio",
    "csi": "threat_score",
    "ets": "equitable_threat_score",
    "frequency_bias": "frequency_bias",
    "sedi": "symmetric_extremal_dependence_index",
}


def accumulate(forecast, truth, mask, values, batches=(0, 3, 5), scales=(1, 3, 5), **kwargs):
    """An accumulator of numeric thresholds ``values`` fed the windows in batches
    starting at ``batches``; ensemble forecasts have their members first."""
    grid = truth.shape[2:]
    names = tuple(str(v) for v in values)
    fields = threshold_fields(parse_thresholds(",".join(names)), None, grid)
    accumulator = EventAccumulator(fields, names, scales, **kwargs)
    ensemble = kwargs.get("ensemble", False)
    ends = (*batches[1:], truth.shape[0])
    for start, end in zip(batches, ends, strict=True):
        rows = slice(start, end)
        accumulator.add(forecast[:, rows] if ensemble else forecast[rows], truth[rows], mask[rows])
    return accumulator


def totals(accumulator):
    return {name: sums.sum(axis=0) for name, sums in accumulator.window_sums().items()}


def random_fields(seed=0, shape=(7, 2, 5, 6, 2)):
    rng = np.random.default_rng(seed)
    forecast = rng.random(shape).astype(np.float32)
    truth = (0.5 * forecast + 0.5 * rng.random(shape)).astype(np.float32)
    mask = rng.random(shape) > 0.2
    return forecast, truth, mask


def with_nan(values, mask):
    return xr.DataArray(np.where(mask, values, np.nan), dims=DIMS)


def test_categorical_scores_match_scores():
    forecast, truth, mask = random_fields()
    values = (0.3, 0.7)
    sums = totals(accumulate(forecast, truth, mask, values))
    fcst, obs = with_nan(forecast, mask), with_nan(truth, mask)
    matcher = ThresholdEventOperator(default_op_fn=operator.ge)
    for k, value in enumerate(values):
        table = matcher.make_contingency_manager(fcst, obs, event_threshold=value)
        per_lead = table.transform(preserve_dims=["lead", "channel"])
        counts = per_lead.get_counts()
        np.testing.assert_array_equal(sums["hits"][..., k], counts["tp_count"])
        np.testing.assert_array_equal(sums["misses"][..., k], counts["fn_count"])
        np.testing.assert_array_equal(sums["false_alarms"][..., k], counts["fp_count"])
        np.testing.assert_array_equal(sums["correct_negatives"][..., k], counts["tn_count"])
        overall = table.transform(preserve_dims=["channel"])
        summed = {name: value.sum(axis=0) for name, value in sums.items()}
        for ours, theirs in SCORES_METHODS.items():
            expected = getattr(per_lead, theirs)().transpose("lead", "channel").values
            np.testing.assert_allclose(EVENT_SCORES[ours](sums)[..., k], expected, rtol=1e-12)
            expected = getattr(overall, theirs)().values
            np.testing.assert_allclose(EVENT_SCORES[ours](summed)[..., k], expected, rtol=1e-12)


def test_undefined_sedi_is_nan_as_in_scores():
    # a perfect forecast: hit rate 1 and false alarm rate 0 -> the logarithms diverge
    truth = np.array([[[[[0.0], [5.0], [12.0], [0.0]]]]])
    matcher = ThresholdEventOperator(default_op_fn=operator.ge)
    obs = xr.DataArray(truth, dims=DIMS)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = matcher.make_contingency_manager(obs, obs, event_threshold=1.0)
        expected = float(expected.symmetric_extremal_dependence_index())
    sums = totals(accumulate(truth, truth, truth > -1, (1,), batches=(0,), scales=(1,)))
    assert np.isnan(expected) and np.isnan(EVENT_SCORES["sedi"](sums)).all()


def test_fss_matches_scores_on_a_grid_extended_by_non_events():
    """`fss_2d(zero_padding=True)` also centres windows one row and column past
    the bottom-right edge: on our grid extended by a row and a column of
    non-events, those are centres of ours."""
    forecast, truth, _ = random_fields(1, (4, 2, 6, 7, 1))
    values, scales = (0.4, 0.8), (1, 3, 5)
    extend = ((0, 0), (0, 0), (0, 1), (0, 1), (0, 0))
    extended = [np.pad(x, extend, constant_values=-1.0) for x in (forecast, truth)]
    mask = np.ones(extended[0].shape, bool)
    sums = totals(accumulate(*extended, mask, values, batches=(0, 2), scales=scales))
    per_lead = EVENT_SCORES["fss"](sums)
    fcst, obs = (xr.DataArray(x, dims=DIMS) for x in (forecast, truth))
    for k, value in enumerate(values):
        for s, scale in enumerate(scales):
            expected = fss_2d(
                fcst, obs, event_threshold=value, window_size=(scale, scale),
                spatial_dims=("lat", "lon"), zero_padding=True,
                reduce_dims=["window", "lat", "lon"], threshold_operator=np.greater_equal,
            )  # fmt: skip
            expected = expected.transpose("lead", "channel").values
            np.testing.assert_allclose(per_lead[..., k, s], expected, rtol=1e-12)


def one_row(values):
    """Values along one row of 1 x n cells: ``(1, 1, 1, n, 1)``."""
    return np.asarray(values, np.float64).reshape(1, 1, 1, -1, 1)


def test_fss_by_hand_with_zero_padding():
    # events at cell 0 (forecast) and cell 1 (truth) of a 1 x 3 row; at scale 3
    # every window holds 9 cells, the padding's 0 included: P_f = 1/9, 1/9, 0
    # and P_o = 1/9, 1/9, 1/9, so sum (P_f - P_o)^2 = 1/81, sum P_f^2 + P_o^2 = 5/81
    forecast, truth = one_row([5.0, 0.0, 0.0]), one_row([0.0, 5.0, 0.0])
    accumulator = accumulate(forecast, truth, truth > -1, (1,), batches=(0,), scales=(1, 3))
    sums = totals(accumulator)
    np.testing.assert_allclose(sums["fss_squared"][0, 0, 0], [2.0, 1 / 81])
    np.testing.assert_allclose(sums["fss_reference"][0, 0, 0], [2.0, 5 / 81])
    np.testing.assert_allclose(EVENT_SCORES["fss"](sums)[0, 0, 0], [0.0, 0.8])


def test_masked_cells_are_neither_events_nor_centres():
    # events everywhere, the last of 3 cells masked: scale 1 scores two
    # centres (P = 1 each); at scale 3 each window holds the 2 valid events of 9
    forecast = truth = one_row([5.0, 5.0, 5.0])
    mask = one_row([1, 1, 0]) > 0
    sums = totals(accumulate(forecast, truth, mask, (1,), batches=(0,), scales=(1, 3)))
    np.testing.assert_allclose(sums["fss_reference"][0, 0, 0], [4.0, 4 * (2 / 9) ** 2])
    assert sums["hits"][0, 0, 0] == 2 and sums["correct_negatives"][0, 0, 0] == 0


def test_contingency_of_a_row_by_hand():
    # threshold 10: truth events at 10 (>=), 12, 15; forecast events at 11 and 10
    truth, forecast = one_row([10.0, 12.0, 0.0, 15.0]), one_row([11.0, 3.0, 10.0, 9.99])
    sums = totals(accumulate(forecast, truth, truth > -1, (1, 10), batches=(0,)))
    names = ("hits", "misses", "false_alarms", "correct_negatives")
    counts = np.stack([sums[name][0, 0] for name in names], axis=-1)  # (threshold, count)
    np.testing.assert_array_equal(counts, [[3, 0, 1, 0], [1, 2, 1, 0]])
    scores = {name: EVENT_SCORES[name](sums)[0, 0, 1] for name in EVENT_SCORES if name != "brier"}
    assert scores["hit_rate"] == pytest.approx(1 / 3)
    assert scores["false_alarm_ratio"] == pytest.approx(1 / 2)
    assert scores["csi"] == pytest.approx(1 / 4)
    assert scores["frequency_bias"] == pytest.approx(2 / 3)
    # no correct negatives: a random forecast hits (3 * 2) / 4 = 1.5, more than 1
    assert scores["ets"] == pytest.approx((1 - 1.5) / (4 - 1.5))


def test_equitable_threat_score_by_hand():
    # 3 hits, 2 misses, 1 false alarm, 4 correct negatives: random hits 5 * 4 / 10 = 2
    sums = {"hits": 3.0, "misses": 2.0, "false_alarms": 1.0, "correct_negatives": 4.0}
    sums = {name: np.array([value]) for name, value in sums.items()}
    assert EVENT_SCORES["ets"](sums)[0] == pytest.approx((3 - 2) / (3 + 2 + 1 - 2))
    hit_rate, false_rate = 3 / 5, 1 / 5
    logs = np.log([false_rate, hit_rate, 1 - hit_rate, 1 - false_rate])
    sedi = (logs[0] - logs[1] + logs[2] - logs[3]) / logs.sum()
    assert EVENT_SCORES["sedi"](sums)[0] == pytest.approx(sedi)


def test_a_dry_forecast_detects_nothing_though_its_rmse_looks_fine():
    truth = np.full(30, 0.1)
    truth[10] = 30.0
    displaced = np.roll(truth, 1)
    dry = np.zeros(30)

    def rmse(forecast):
        return np.sqrt(np.mean(np.square(forecast - truth)))

    assert rmse(dry) < rmse(displaced)  # the double penalty favours the dry forecast
    truth_row = one_row(truth)
    results = {}
    for name, forecast in (("dry", dry), ("displaced", displaced)):
        sums = totals(accumulate(one_row(forecast), truth_row, truth_row > -1, (10,), (0,)))
        results[name] = {score: EVENT_SCORES[score](sums)[0, 0, 0] for score in SCORES_METHODS}
        results[name]["fss"] = EVENT_SCORES["fss"](sums)[0, 0, 0]
    assert results["dry"]["hit_rate"] == 0 and results["dry"]["frequency_bias"] == 0
    assert results["dry"]["csi"] == 0 and np.isnan(results["dry"]["false_alarm_ratio"])
    np.testing.assert_array_equal(results["dry"]["fss"], [0, 0, 0])
    assert results["displaced"]["frequency_bias"] == 1
    assert results["displaced"]["fss"][0] == 0 and results["displaced"]["fss"][1] > 0.5


def test_brier_matches_scores_and_counts_are_of_the_ensemble_mean():
    forecast, truth, mask = random_fields(2)
    rng = np.random.default_rng(3)
    members = forecast + 0.3 * rng.standard_normal((4, *forecast.shape)).astype(np.float32)
    values = (0.3, 0.7)
    accumulator = accumulate(members, truth, mask, values, ensemble=True)
    sums = totals(accumulator)
    mean = accumulate(members.mean(axis=0), truth, mask, values)
    np.testing.assert_array_equal(sums["hits"], totals(mean)["hits"])
    np.testing.assert_allclose(sums["fss_squared"], totals(mean)["fss_squared"])
    for k, value in enumerate(values):
        share = with_nan(np.mean(members >= value, axis=0), mask)
        observed = with_nan((truth >= value).astype(np.float64), mask)
        expected = brier_score(share, observed, preserve_dims=["lead", "channel"]).values
        np.testing.assert_allclose(EVENT_SCORES["brier"](sums)[..., k], expected, rtol=1e-12)
        np.testing.assert_array_equal(sums["brier_count"][..., k], mask.sum(axis=(0, 2, 3)))


def test_window_sums_concatenate_in_order_and_sum_to_the_totals():
    forecast, truth, mask = random_fields(4, (6, 2, 5, 6, 2))
    batched = accumulate(forecast, truth, mask, (0.5,), batches=(0, 2, 5))
    one_by_one = accumulate(forecast, truth, mask, (0.5,), batches=tuple(range(6)))
    whole = accumulate(forecast, truth, mask, (0.5,), batches=(0,))
    windows = batched.window_sums()
    assert windows["hits"].shape == (6, 2, 2, 1)
    assert windows["fss_squared"].shape == (6, 2, 2, 1, 3)
    assert "brier" not in windows
    for name, sums in one_by_one.window_sums().items():
        np.testing.assert_allclose(windows[name], sums)
        np.testing.assert_allclose(windows[name].sum(axis=0), totals(whole)[name])
    first = accumulate(forecast[:1], truth[:1], mask[:1], (0.5,), batches=(0,))
    np.testing.assert_allclose(windows["hits"][0], first.window_sums()["hits"][0])


def test_quantile_thresholds_per_cell_and_cells_without_data():
    rng = np.random.default_rng(5)
    train = rng.gamma(0.5, 4.0, (40, 3, 4, 2))
    train[:, 0, 0, 0] = np.nan  # a cell without data
    train[::2, 1, 2, 1] = np.nan  # a cell with half its data
    thresholds = parse_thresholds("2,q90")
    fields = threshold_fields(thresholds, train)
    assert fields.shape == (2, 3, 4, 2)
    assert np.all(fields[0] == 2.0)
    for lat, lon, channel in np.ndindex(3, 4, 2):
        cell = train[:, lat, lon, channel]
        if (lat, lon, channel) == (0, 0, 0):
            assert np.isnan(fields[1, 0, 0, 0])
        else:
            assert fields[1, lat, lon, channel] == pytest.approx(np.nanquantile(cell, 0.9))
    bands = [train[:, :1], train[:, 1:]]  # of latitude rows, every time step
    np.testing.assert_array_equal(threshold_fields(thresholds, iter(bands)), fields)
    with pytest.raises(ValueError, match=r"shape \(3, 4, 1\) differs from the training data's"):
        threshold_fields(thresholds, train, (3, 4, 1))
    truth = np.full((1, 1, 3, 4, 2), 100.0)  # an event everywhere but where there is no data
    accumulator = EventAccumulator(fields, ("2", "q90"), scales=(1,))
    accumulator.add(truth, truth, np.ones(truth.shape, bool))
    hits = accumulator.window_sums()["hits"][0, 0]
    np.testing.assert_array_equal(hits, [[12, 11], [12, 12]])  # (channel, threshold)


def test_nan_values_are_not_scored():
    forecast, truth, mask = random_fields(6, (2, 1, 3, 3, 1))
    mask[:] = True
    truth[0, 0, 1, 1, 0] = np.nan
    forecast[1, 0, 2, 2, 0] = np.nan
    sums = totals(accumulate(forecast, truth, mask, (0.5,), batches=(0,)))
    cells = sum(sums[name] for name in ("hits", "misses", "false_alarms", "correct_negatives"))
    assert cells[0, 0, 0] == 2 * 9 - 2


def test_event_results_layout():
    forecast, truth, mask = random_fields(7, (3, 2, 5, 6, 2))
    members = np.stack([forecast, truth, forecast * 0.5])
    accumulator = accumulate(members, truth, mask, (0.3, 0.99), batches=(0,), ensemble=True)
    results = accumulator.result()
    assert len(results) == 2
    channel = results[1]
    assert channel["thresholds"] == ["0.3", "0.99"] and channel["scales"] == [1, 3, 5]
    assert set(channel) == {"thresholds", "scales"} | {
        name + suffix for name in EVENT_SCORES for suffix in ("", "_per_lead")
    }
    assert len(channel["csi"]) == 2 and len(channel["csi_per_lead"]) == 2
    assert np.shape(channel["fss"]) == (2, 3) and np.shape(channel["fss_per_lead"]) == (2, 2, 3)
    sums = totals(accumulator)
    overall = {name: value.sum(axis=0) for name, value in sums.items()}
    np.testing.assert_allclose(channel["ets"], EVENT_SCORES["ets"](overall)[1])
    np.testing.assert_allclose(channel["fss_per_lead"], EVENT_SCORES["fss"](sums)[:, 1])
    assert all(type(x) is float for x in channel["hit_rate"])
    json.dumps(results)
    deterministic = event_results(
        {k: v for k, v in sums.items() if not k.startswith("brier")}, ("0.3", "0.99"), (1, 3, 5)
    )
    assert "brier" not in deterministic[0] and "sedi_per_lead" in deterministic[0]


def test_undefined_ratios_are_nan():
    zero = {name: np.zeros(2) for name in ("hits", "misses", "false_alarms", "correct_negatives")}
    zero.update(fss_squared=np.zeros(2), fss_reference=np.zeros(2))
    zero.update(brier=np.zeros(2), brier_count=np.zeros(2))
    for name, score in EVENT_SCORES.items():
        assert np.isnan(score(zero)).all(), name
    zero["false_alarms"] = np.ones(2)  # events forecast, none observed
    assert np.isnan(EVENT_SCORES["frequency_bias"](zero)).all()


def test_parse_thresholds():
    parsed = parse_thresholds(" 1, 10.0,q90 ,Q99.5,-2.5")
    assert [t.name for t in parsed] == ["1", "10", "q90", "q99.5", "-2.5"]
    assert parsed[1] == Threshold("10", value=10.0)
    assert parsed[3].quantile == pytest.approx(0.995) and parsed[3].value is None


@pytest.mark.parametrize(
    "text", ["", "1,,2", "rain", "q0", "q100", "q-5", "q", "qx", "nan", "inf", "1,1.0", "q90,q90"]
)
def test_bad_thresholds_are_refused(text):
    with pytest.raises(ValueError, match="thresholds") as error:
        parse_thresholds(text)
    assert "\n" not in str(error.value) and "qNN" in str(error.value)


def test_quantiles_need_training_data():
    with pytest.raises(ValueError, match="thresholds q90, q99: percentiles need the training"):
        threshold_fields(parse_thresholds("1,q90,q99"), None, (2, 3, 1))
    fields = threshold_fields(parse_thresholds("1,10"), None, (2, 3, 1))
    assert fields.shape == (2, 2, 3, 1) and fields[1, 1, 2, 0] == 10


def test_even_scales_and_mismatched_names_are_refused():
    fields = threshold_fields(parse_thresholds("1"), None, (2, 3, 1))
    with pytest.raises(ValueError, match="odd positive"):
        EventAccumulator(fields, ("1",), scales=(1, 2))
    with pytest.raises(ValueError, match="names"):
        EventAccumulator(fields, ("1", "2"))
    accumulator = EventAccumulator(fields, ("1",), ensemble=True)
    with pytest.raises(ValueError, match="members"):
        accumulator.add(np.zeros((1, 1, 2, 3, 1)), np.zeros((1, 1, 2, 3, 1)))


@pytest.mark.parametrize(
    ("name", "units", "standard_name", "expected"),
    [
        ("pr", "kg m-2 s-1", "precipitation_flux", True),
        ("x", None, "lwe_thickness_of_precipitation_amount", True),
        ("precip", "mm/day", None, True),
        ("chirps", None, None, True),
        ("total_precipitation_6hr", "m", None, True),
        ("tp", "m", None, True),
        ("rain", "mm h-1", None, True),
        ("var", "mm day-1", None, True),
        ("var", "mm d-1", None, True),
        ("var", "mm", None, True),
        ("var", "kg m**-2 s**-1", None, True),
        ("var", "kg/m2/s", None, True),
        ("t2m", "K", "air_temperature", False),
        ("tp", "K", None, False),
        ("z", "m", None, False),
        ("u10", "m s-1", None, False),
        ("drainage", None, None, False),
        ("evspsbl", "kg m-2 s-1", "water_evapotranspiration_flux", False),
        ("e", "m of water equivalent", None, False),
        ("tcwv", "kg m-2", None, False),
    ],
)
def test_is_precipitation(name, units, standard_name, expected):
    assert is_precipitation(name, units, standard_name) is expected


@pytest.mark.parametrize(
    ("units", "names"),
    [
        ("mm/day", ["1", "10", "20"]),
        ("mm day-1", ["1", "10", "20"]),
        ("mm d-1", ["1", "10", "20"]),
        ("mm", ["q75", "q90", "q99"]),
        ("kg m-2 s-1", ["q75", "q90", "q99"]),
        (None, ["q75", "q90", "q99"]),
    ],
)
def test_default_thresholds(units, names):
    assert [t.name for t in default_thresholds(units)] == names
