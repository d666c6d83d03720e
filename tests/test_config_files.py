"""The config's sections as files and flags: TOML files (``train --config``,
``info --config``), the flat config.json of runs made before the sections,
the flags' help, and errors that name a field (a flag on the command line)."""

import argparse
import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from stconv import cli
from stconv.config import (
    DATASET_NAMES,
    FLAGS,
    SECTIONS,
    Config,
    get_config,
    load_toml,
    to_toml,
)
from stconv.config.run import flattened
from stconv.runs.directory import RunDirectory
from stconv.runs.provenance import format_record

LEGACY = Path(__file__).parent / "data" / "legacy-run-20bbac7" / "run"


def parse(*flags: str) -> Config:
    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser)
    return cli.config_from_args(parser.parse_args(list(flags)))


@pytest.mark.parametrize(
    "config",
    [
        Config(),
        get_config("main"),
        get_config("weather"),
        Config.from_flags(
            model="stconvs2s-c", model_options={"channel_increase": "false"},
            bbox=(-10, 5, 350, 20), time_range=("1979-01-01", "2015-12-31"),
            variables=("z:500", "t2m"), targets=("t2m",), target_weights=(2.5,), num_devices=2,
            data_path='C:\\data\\"quoted" é.nc', learning_rate=3e-4,
        ),
    ],
)  # fmt: skip
def test_the_toml_of_a_config_reads_back_the_same_config(config, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(to_toml(config))
    assert load_toml(path) == config


def test_a_time_range_is_two_values_by_flag_or_file(tmp_path):
    assert parse("--time-range", "1979,2015").data.time_range == ("1979", "2015")
    path = tmp_path / "run.toml"
    path.write_text("[data]\ntime_range = [1979, 2015]\n")  # numbers in TOML: the same
    assert load_toml(path).data.time_range == ("1979", "2015")


def test_train_config_file_overrides_the_preset_and_flags_override_it(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nhidden_dim = 4\n\n[training]\nepochs = 7\nseed = 3\n")
    assert parse("--config", str(path)) == Config.from_flags(hidden_dim=4, epochs=7, seed=3)
    # preset < file < flags: the file's epochs over the preset's, the flag's seed over the file's
    config = parse("--preset", "main", "--config", str(path), "--seed", "5")
    assert config == get_config("main", hidden_dim=4, epochs=7, seed=5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model]\nhiden_dim = 4\n", r"unknown key 'hiden_dim' in \[model\]: choose from \["),
        ("[modle]\nhidden_dim = 4\n", r"unknown key 'modle': a config file holds the sections"),
        ("hidden_dim = 4\n", r"unknown key 'hidden_dim': a config file holds the sections"),
        (
            "[training]\nlearning_rate = inf\n",
            r"training.learning_rate=inf is invalid: must be a fin",
        ),
        ("[training\n", "is not a TOML config"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_toml(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stconv train: error: file ") and str(path) in err
    assert not workdir.exists()


def test_a_config_file_that_cannot_be_read_exits_2_naming_it(tmp_path, capsys):
    workdir = tmp_path / "run"
    for path, message in [
        (tmp_path / "none.toml", "does not exist"),
        (tmp_path, "cannot be read: Is a directory"),
    ]:
        assert cli.main(["train", "--workdir", str(workdir), "--config", str(path)]) == 2
        assert capsys.readouterr().err == f"stconv train: error: file '{path}' {message}\n"
        assert not workdir.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning-rate", "inf"], "--learning-rate inf is invalid: must be a finite number > 0"),
        (["--learning-rate", "nan"], "--learning-rate nan is invalid: must be a finite number > 0"),
        (["--target-weights", "1,inf"], r"--target-weights 1.0,inf is invalid: must be finite"),
        (["--climatology-window", "4"], "--climatology-window 4 is invalid: must be odd"),
        (["--model", "arima", "--static", "x.nc"], "--model 'arima' fits each cell's own series"),
    ],
)
def test_the_command_line_names_the_flag_of_an_invalid_field(tmp_path, capsys, flags, message):
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not workdir.exists()  # refused before anything is written


def test_each_field_has_one_flag_named_by_one_rule():
    assert len(FLAGS) == sum(len(dataclasses.fields(s)) for s in SECTIONS.values())
    assert cli.flag_of("model", "name") == "--model"
    assert cli.flag_of("model", "options") == "--model-option"
    assert cli.flag_of("model", "hidden_dim") == "--hidden-dim"
    assert cli.flag_of("evaluation", "area_weights") == "--area-weights"
    text = "dataset 'x': training.target_weights=(1.0,) is invalid; data.static; model.name='a'"
    assert (
        cli.as_flags(text) == "dataset 'x': --target-weights 1.0 is invalid; --static; --model 'a'"
    )


def test_every_train_flag_has_one_sentence_and_its_choices(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default None" not in out and out.count("default default") == 0
    for name, choices in [
        ("--dataset", DATASET_NAMES),
        ("--normalization", ("channel", "cell", "climatology", "none")),
        ("--residual-base", ("last", "mean")),
        ("--learning-rate-schedule", ("constant", "cosine")),
        ("--compute-dtype", ("float32", "bfloat16")),
        ("--arima-center", ("train", "window")),
    ]:
        assert f"{name} {{{','.join(choices)}" in out
    assert "choose from ablation-stconvs2s" in out and "stconvs2s-r, arima" in out  # --model
    assert "--residual, --no-residual forecast the change from a base frame" in out
    assert "--mask-file MASK_FILE a land mask" in out
    for section in SECTIONS.values():
        for field in dataclasses.fields(section):
            assert field.metadata["help"] and "\n" not in field.metadata["help"]
            assert not re.search(r"\.\s+[A-Z]", field.metadata["help"])  # one sentence
            assert cli.flag_of(section.NAME, field.name) in out


def test_the_dataset_choices_are_the_registry_s():
    from stconv.data.registry import DATASETS

    assert tuple(DATASETS) == DATASET_NAMES


# Runs made before the sections: a flat config.json (and provenance record).


def test_a_flat_config_of_an_older_run_loads_unchanged(tmp_path):
    flat = {"model": "stconvs2s-r", "hidden_dim": 8, "epochs": 3, "model_options": {}}
    (tmp_path / "config.json").write_text(json.dumps(flat))
    assert Config.load(tmp_path / "config.json") == Config.from_flags(hidden_dim=8, epochs=3)
    config = Config.load(LEGACY / "config.json")
    recorded = json.loads((LEGACY / "config.json").read_text())
    flags = config.flags()
    assert {k: flags[k] for k in recorded} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()
    }
    defaults = Config().flags()  # the options added since take their defaults
    assert {k: v for k, v in flags.items() if k not in recorded} == {
        k: v for k, v in defaults.items() if k not in recorded
    }
    assert (config.model.hidden_dim, config.data.dataset, config.training.batch_size) == (
        2, "synthetic", 16,
    )  # fmt: skip


def test_a_new_run_saves_its_config_nested(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.save_config(Config.from_flags(hidden_dim=4))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(saved) == set(SECTIONS) and saved["model"]["hidden_dim"] == 4
    assert run.config() == Config.from_flags(hidden_dim=4)


def test_info_config_prints_a_run_s_config_as_toml_that_trains_the_same(tmp_path, capsys):
    assert cli.main(["info", "--config", str(LEGACY)]) == 0
    text = capsys.readouterr().out
    assert text.startswith('[data]\ndataset = "synthetic"\n')
    (tmp_path / "run.toml").write_text(text)
    assert load_toml(tmp_path / "run.toml") == Config.load(LEGACY / "config.json")
    assert parse("--config", str(tmp_path / "run.toml")) == Config.load(LEGACY / "config.json")


def test_records_print_their_config_by_flag_name_nested_or_flat():
    flat = json.loads((LEGACY / "provenance.json").read_text())
    nested = {**flat, "config": Config.from_dict(flat["config"]).to_dict()}
    first = [
        format_record(record).splitlines()[0].removeprefix("configuration: ")
        for record in (nested, flat)
    ]
    assert all(item in first[0] for item in first[1].split(", "))  # and the newer options
    assert format_record(nested).splitlines()[1:] == format_record(flat).splitlines()[1:]
    assert "hidden_dim=2" in format_record(flat)
    assert {k: v for k, v in flattened(nested["config"]).items() if k in flat["config"]} == flat[
        "config"
    ]


def test_resuming_compares_the_config_with_a_flat_one_of_an_older_run(tmp_path):
    from stconv.runs.experiment import prepare_workdir

    shutil.copytree(LEGACY, tmp_path / "run")
    run = RunDirectory(tmp_path / "run")
    same = Config.load(LEGACY / "config.json")
    with pytest.raises(ValueError, match="already holds this run: pass resume=True to continue"):
        prepare_workdir(same, run, resume=False)
    with pytest.raises(
        ValueError, match=r"other settings \(model.hidden_dim=2 in its config.json\)"
    ):
        prepare_workdir(same.override(hidden_dim=3), run, resume=True)
    # the execution section may change on resuming
    with pytest.raises(ValueError, match="already holds this run"):
        prepare_workdir(same.override(num_devices=1, time_chunk=8), run, resume=False)
