"""Config: defaults, validation, flags, presets, round trips."""

import argparse

import pytest

from stconv.cli import add_config_flags, config_from_args
from stconv.config import PRESETS, Config, cell_settings, get_config


def parse(*flags: str) -> Config:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return config_from_args(parser.parse_args(list(flags)))


def test_defaults_are_the_papers():
    config = parse()
    assert config == Config()
    model, training = config.model, config.training
    assert (model.num_layers, model.hidden_dim, model.kernel_size) == (3, 32, 5)
    assert (training.batch_size, training.epochs, training.patience) == (15, 80, 16)
    assert config.training.learning_rate == 1e-3 and config.training.seed == 1000


def test_flags_set_fields_and_booleans():
    config = parse("--num-layers", "2", "--residual", "--learning-rate", "0.01")
    assert config == Config.from_flags(num_layers=2, residual=True, learning_rate=0.01)
    assert parse("--residual", "--no-residual").model.residual is False


def test_the_main_preset_is_the_readme_main_job_and_flags_override_it():
    readme = Config.from_flags(
        num_layers=2,
        hidden_dim=8,
        epochs=40,
        residual=True,
        residual_base="mean",
        normalization="cell",
        iterations=3,
    )
    assert parse("--preset", "main") == readme == get_config("main")
    assert parse("--preset", "main", "--epochs", "3", "--no-residual") == readme.override(
        epochs=3, residual=False
    )


def test_paper_presets_and_cells():
    assert get_config("paper-cfsr", data_path="x.nc").model.hidden_dim == 32
    assert get_config("paper-chirps", data_path="x.nc").model.num_layers == 2
    assert cell_settings("predrnn", "cfsr") == dict(
        num_layers=3, hidden_dim=32, kernel_size=3, normalization="none", dropout=0.5
    )
    assert cell_settings("arima", "hadcm3-a1b")["arima_center"] == "window"
    assert set(PRESETS) == {"main", "paper-cfsr", "paper-chirps", "weather"}
    weather = get_config("weather")
    data = weather.data
    assert (data.targets, data.static, data.time_features) == (("t2m",), "weather:orography", True)
    assert data.normalization == "climatology" and weather.training.iterations == 3
    assert weather.training.learning_rate_schedule == "cosine"


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model="nope"), "model 'nope' is unknown"),
        (dict(epochs=0), "training.epochs=0 is invalid: must be an integer >= 1"),
        (dict(batch_size=True), "training.batch_size=True is invalid"),
        (dict(learning_rate=0.0), "training.learning_rate=0.0 is invalid: must be a finite num"),
        (dict(learning_rate=float("inf")), "learning_rate=inf is invalid: must be a finite number"),
        (dict(learning_rate=float("nan")), "learning_rate=nan is invalid: must be a finite number"),
        (dict(target_weights=(1, float("inf"))), r"target_weights=\(1, inf\) is invalid: must be"),
        (dict(bbox=(0, float("nan"), 1, 2)), "data.bbox=.* is invalid: must be finite numbers"),
        (dict(dropout=float("nan")), "model.dropout=nan is invalid: must be a finite number"),
        (dict(compute_dtype="float16"), "training.compute_dtype='float16' is invalid"),
        (
            dict(learning_rate_schedule="linear"),
            r"learning_rate_schedule='linear' is invalid: choose from \['constant', 'cosine'\]",
        ),
        (dict(arima_center="mean"), "model.arima_center='mean' is invalid"),
        (dict(climatology_window=4), "data.climatology_window=4 is invalid: must be odd"),
        (dict(time_range=("1979",)), r"data.time_range=\('1979',\) is invalid: give START,END"),
        (dict(time_range=("1979", "")), r"data.time_range=\('1979', ''\) is invalid"),
        (dict(targets=("a",), target_weights=(1, 2)), "training.target_weights=.* one weight per"),
        (dict(model="arima", static="x.nc"), "model.name='arima' fits each cell's own series"),
        (dict(model="arima", residual=True), "fits each cell's own series: .* no model.residual"),
        (dict(colour="red"), r"settings \['colour'\] are unknown"),
    ],
)
def test_bad_values_raise_one_line_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        Config.from_flags(**changes)
    assert "\n" not in str(error.value)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"preset 'nope' is unknown: choose from \['main'"):
        get_config("nope")
    with pytest.raises(SystemExit):
        parse("--preset", "nope")


def test_save_and_load_round_trip(tmp_path):
    config = get_config("main", seed=7, mask_file="mask.npy")
    config.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == config


def test_seed_must_be_a_non_negative_integer():
    with pytest.raises(ValueError, match="seed=-1 is invalid: must be an integer >= 0"):
        Config.from_flags(seed=-1)
    assert parse("--seed", "0").training.seed == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "is not a saved config \\(invalid JSON"),
        ("[1, 2]", "is not a saved config: expected a JSON object"),
        ('{"model": "stconvs2s-r", "colour": "red"}', "has unknown settings \\['colour'\\]"),
        ('{"epochs": 0}', "config.json': training.epochs=0 is invalid"),
        ('{"training": {"epochs": 0}}', "config.json': training.epochs=0 is invalid"),
        ('{"training": {"epoch": 3}}', r"has unknown keys \['epoch'\] in \[training\]"),
    ],
)
def test_a_bad_saved_config_names_its_file(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        Config.load(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
