"""The stconv command: one-line errors with exit code 2, help, presets."""

import json

import pytest

from stconv import cli

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0",
]  # fmt: skip


def train(workdir, *extra):
    return cli.main(["train", "--workdir", str(workdir), *TINY, *extra])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--model", "unet"],
            "model 'unet' is unknown: choose from ['ablation-stconvs2s-c-inverted',",
        ),
        (["--dataset", "era5"], "dataset 'era5' is unknown: choose from ['hadcm3-a1b'"),
        (["--epochs", "0"], "epochs=0 is invalid: must be an integer >= 1"),
        (["--learning-rate", "-1"], "learning_rate=-1.0 is invalid"),
        (["--kernel-size", "40"], "kernel_size=40 is invalid"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    assert train(tmp_path / "run", *args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0 and "--workdir" in capsys.readouterr().out


def test_preset_with_overriding_flags_is_what_the_run_records(tmp_path):
    workdir = tmp_path / "run"
    flags = ["--preset", "main", "--epochs", "1", "--dataset", "synthetic", "--num-layers", "1"]
    flags += ["--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16"]
    assert cli.main(["train", "--workdir", str(workdir), *flags]) == 0
    config = json.loads((workdir / "config.json").read_text())
    assert (config["epochs"], config["num_layers"], config["dataset"]) == (1, 1, "synthetic")
    assert config["residual"] is True and config["normalization"] == "cell"  # from the preset
    with pytest.raises(SystemExit) as exit_:  # argparse: the choices, exit code 2
        cli.main(["train", "--workdir", str(tmp_path / "other"), "--preset", "nope"])
    assert exit_.value.code == 2 and not (tmp_path / "other").exists()
