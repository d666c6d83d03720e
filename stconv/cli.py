"""The ``stconv`` command: ``train``, ``evaluate``, ``predict`` and ``classify``.

stconv train --workdir runs/r --epochs 40 --num-layers 2 --hidden-dim 8
stconv evaluate --workdir runs/r
stconv predict --workdir runs/r --input new.nc --output forecast.nc
stconv info runs/r

Each command runs on all devices; on a cluster, every process runs the same
command (`stconv.training.distributed.maybe_initialize`).
"""

import argparse
import sys
import warnings

from stconv.checks import check_positive
from stconv.config import add_config_flags, config_from_args


def train_command(args: argparse.Namespace) -> None:
    from stconv.experiment import train_and_evaluate

    train_and_evaluate(
        config_from_args(args),
        args.workdir,
        resume=args.resume,
        allow_changed_data=args.allow_changed_data,
    )


def evaluate_command(args: argparse.Namespace) -> None:
    from stconv.experiment import evaluate_run

    evaluate_run(args.workdir)


def info_command(args: argparse.Namespace) -> None:
    from stconv.provenance import format_record
    from stconv.run import RunDirectory

    run = RunDirectory(args.workdir)
    if not run.is_run():
        raise ValueError(f"workdir {args.workdir!r} holds no stconv run")
    origin = run.provenance()
    if origin is None:
        raise ValueError(
            f"run {args.workdir!r} has no {run.PROVENANCE}: it was made before stconv kept "
            "records (its config.json and data.json say what they can)"
        )
    print(format_record(origin))


def predict_command(args: argparse.Namespace) -> None:
    from stconv.data.registry import grid_of
    from stconv.evaluation.netcdf import ForecastWriter
    from stconv.forecaster import Forecaster
    from stconv.run import check_new_file
    from stconv.training.distributed import is_primary

    check_new_file(
        args.output, flag="--output", overwrite=args.overwrite, inputs=(args.input,),
        runs=(args.workdir,),
    )  # fmt: skip
    if args.batch_size is not None:
        check_positive("--batch-size", args.batch_size)
    forecaster = Forecaster.load(args.workdir)
    if args.batch_size is not None:
        forecaster.config = forecaster.config.replace(eval_batch_size=args.batch_size)
    field = forecaster.field(
        args.input, other_grid=args.other_grid
    )  # lazy (dask): each batch reads only its frames
    grid = dict(grid_of(field), units=forecaster.units)  # the units the run was trained in
    batches = forecaster.batches(field)
    if not is_primary():  # the others compute with process 0, which writes
        for _ in batches:
            pass
        return
    horizon = forecaster.horizon
    with ForecastWriter(args.output, grid, forecaster.field_mask(field), horizon) as writer:
        for predictions, init_times in batches:
            writer.write(predictions, init_times)
    print(f"wrote {writer.count} forecasts of {horizon} steps to {args.output}")


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
    evaluate = commands.add_parser("evaluate", help="test a trained run again")
    evaluate.add_argument("--workdir", required=True)
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
        "--other-grid",
        action="store_true",
        help="forecast an input on another grid than the run's, masked where it has no data",
    )
    predict.set_defaults(run=predict_command)
    info = commands.add_parser(
        "info", help="what made a run: data, code, software, machine and time of each command"
    )
    info.add_argument("workdir", help="folder of a run")
    info.set_defaults(run=info_command)
    classify = commands.add_parser(
        "classify", help="the 2D baseline: a CNN and an MLP on handwritten digits"
    )
    classify.add_argument("--workdir", required=True)
    classify.add_argument("--dataset", default="mnist-5k", help="mnist-5k or digits")
    classify.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    classify.add_argument("--epochs", type=int, default=15)
    classify.add_argument("--batch-size", type=int, default=64)
    classify.add_argument("--learning-rate", type=float, default=1e-3)
    classify.add_argument("--seed", type=int, default=0)
    classify.set_defaults(run=classify_command)
    return main


def one_line(error: BaseException) -> str:
    """The error's message and notes on one line (an OSError names its file)."""
    if isinstance(error, OSError) and error.filename is not None:
        message = f"{error.filename}: {error.strerror or error}"
    else:
        message = str(error)
    return "; ".join([message, *getattr(error, "__notes__", [])]).replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Exit codes: 0 done; 2 the input, a flag or a run's files
    are not usable (a one-line error names which); 1 the command failed while
    running (training diverged, a file could not be written). Bugs keep their
    traceback."""
    from stconv.provenance import COMMAND

    args = parser().parse_args(argv)
    command = COMMAND.set(["stconv", *(sys.argv[1:] if argv is None else argv)])
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning(args.command)
            args.run(args)
    except ValueError as error:
        print(f"stconv {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except (RuntimeError, ImportError, OSError) as error:
        print(f"stconv {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1
    finally:
        COMMAND.reset(command)
    return 0


def one_line_warning(command: str):
    """A `warnings.showwarning` that prints a run's provenance warnings as one
    ``stconv COMMAND: warning: ...`` line each; other warnings as Python does."""
    from stconv.provenance import ProvenanceWarning

    python_shows = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, ProvenanceWarning):
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
