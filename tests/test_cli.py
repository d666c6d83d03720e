"""The stconv command: help, presets, and what the file policy allows
(its refusals are in the fault catalog, `test_faults.py`)."""

import argparse
import json
import subprocess
import sys
import warnings

import pytest

from stconv import cli
from stconv.checks import ParameterNote
from stconv.training.step import TrainingError

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--no-maps",
]  # fmt: skip


def train(workdir, *extra):
    return cli.main(["train", "--workdir", str(workdir), *TINY, *extra])


def test_calls_and_notes_name_functions_in_python_and_commands_on_the_command_line():
    error = TrainingError("kept (`{evaluate_run}` tests it)", evaluate_run={"unfinished": True})
    assert str(error) == "kept (`evaluate_run(unfinished=True)` tests it)"
    error.add_note(ParameterNote("rerun with {resume} into `{train_and_evaluate}`", resume=True,
                                 train_and_evaluate={"workdir": "runs/r"}))  # fmt: skip
    assert error.__notes__ == ["rerun with resume=True into `train_and_evaluate(workdir='runs/r')`"]
    assert cli.one_line(error) == (
        "kept (`stconv evaluate --unfinished` tests it); rerun with --resume into "
        "`stconv train --workdir runs/r`"
    )


@pytest.mark.filterwarnings("always")
def test_stconvs_warnings_are_one_line_and_other_warnings_as_python_shows_them(
    tmp_path, capsys, monkeypatch
):
    """The synthetic data's climatology warning, before a refused workdir."""
    (tmp_path / "theirs.txt").write_text("")
    assert train(tmp_path) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("stconv train: warning: dataset 'synthetic': the training split")
    assert error.startswith(f"stconv train: error: workdir '{tmp_path}' is not empty")
    shown = []
    monkeypatch.setattr(warnings, "showwarning", lambda *args: shown.append(args))
    theirs = UserWarning("theirs")
    cli.one_line_warning("train")(theirs, UserWarning, "lib.py", 7)
    assert shown == [(theirs, UserWarning, "lib.py", 7, None, None)]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    printed = capsys.readouterr().out
    assert exit_.value.code == 0 and "--workdir" in printed
    if command == "evaluate":  # a list's default as the flag takes it
        assert "(default 1,3,5)" in " ".join(printed.split())


def test_every_flag_of_every_command_says_what_it_does():
    commands = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent = [
        (name, action.option_strings[0])
        for name, command in commands.choices.items()
        for action in command._actions
        if action.option_strings and not action.help
    ]
    assert silent == []
    from stconv.classification.models import CLASSIFIERS

    assert tuple(CLASSIFIERS) == cli.CLASSIFIERS  # classify's help lists them without JAX


def test_a_flag_its_command_does_not_take_is_named_in_one_line_of_that_command(tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), "--seeds", "2"]) == 2
    error = capsys.readouterr().err
    assert error == (
        "stconv train: error: unrecognized arguments: --seeds 2 "
        "(`stconv train --help` lists its flags)\n"
    )
    assert not workdir.exists()
    assert cli.main(["evaluate", "--workdir", str(workdir), "--epochs", "3"]) == 2
    assert capsys.readouterr().err.startswith("stconv evaluate: error: unrecognized arguments")


def test_preset_with_overriding_flags_is_what_the_run_records(tmp_path):
    workdir = tmp_path / "run"
    flags = ["--preset", "main", "--epochs", "1", "--iterations", "1", "--dataset", "synthetic"]
    flags += ["--num-layers", "1"]
    flags += ["--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16"]
    assert cli.main(["train", "--workdir", str(workdir), *flags]) == 0
    config = json.loads((workdir / "config.json").read_text())  # nested, by section
    data, model, training = config["data"], config["model"], config["training"]
    assert (training["epochs"], model["num_layers"], data["dataset"]) == (1, 1, "synthetic")
    assert model["residual"] is True and data["normalization"] == "cell"  # from the preset
    with pytest.raises(SystemExit) as exit_:  # argparse: the choices, exit code 2
        cli.main(["train", "--workdir", str(tmp_path / "other"), "--preset", "nope"])
    assert exit_.value.code == 2 and not (tmp_path / "other").exists()


# The file policy allows an empty folder and its own run.


def test_train_uses_an_empty_folder_and_marks_its_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert train(tmp_path / "empty", "--epochs", "1") == 0
    assert (tmp_path / "empty" / "stconv-run.json").exists()
    assert train(tmp_path / "empty", "--epochs", "1", "--resume") == 0  # its own run


def test_the_flags_and_the_config_load_neither_jax_nor_flax():
    """``stconv --help`` and ``stconv train --help`` answer at once: parsing the flags
    and checking a config imports no JAX, Flax or xarray (checked in a fresh process)."""
    code = """if True:
        import contextlib, io, sys
        from stconv import cli, config
        for argv in (["--help"], ["train", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                cli.main(argv)
        args = cli.parser().parse_args(["train", "--workdir", "w", "--preset", "main"])
        assert cli.config_from_args(args).model.residual
        print(sorted(m for m in ("jax", "jaxlib", "flax", "xarray") if m in sys.modules))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
