"""The ``stconv`` command: ``train``, ``evaluate``, ``predict`` and ``classify``.

stconv train --workdir runs/r --epochs 40 --num-layers 2 --hidden-dim 8
stconv evaluate --workdir runs/r
stconv predict --workdir runs/r --input new.nc --output forecast.nc

Each command runs on all devices; on a cluster, every process runs the same
command (`stconv.distributed.maybe_initialize`).
"""

import argparse
import json
import os
import sys

import numpy as np

from stconv.config import ARIMA, Config, add_config_flags, config_from_args


def train_command(args: argparse.Namespace) -> None:
    from stconv.experiment import train_and_evaluate

    train_and_evaluate(config_from_args(args), args.workdir, resume=args.resume)


def restored_model(workdir: str):
    """The config, data description and predict function (the best epoch's, or the
    fitted ARIMA models) of a finished run; the model runs on all devices."""
    from stconv import distributed
    from stconv.checkpoints import Checkpoints
    from stconv.experiment import build
    from stconv.train import make_predict, make_train_step

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"workdir {workdir!r} holds no run (no config.json): train one first")
    config = Config.load(path)
    with open(os.path.join(workdir, "data.json")) as f:
        description = json.load(f)
    if config.model == ARIMA:
        return config, description, restored_arima(workdir)
    distributed.maybe_initialize()
    mesh = distributed.data_mesh()
    model, optimizer = build(config, tuple(description["input_shape"]))
    _, state = make_train_step(model, optimizer, mesh=mesh, fsdp=config.fsdp)
    checkpoints = Checkpoints(workdir)
    if not checkpoints.exists("best"):
        raise ValueError(f"workdir {workdir!r} has no best checkpoint: train the run first")
    checkpoints.restore("best", state)
    predict = make_predict(model, config.horizon, config.compute_dtype, mesh)
    return config, description, lambda x: predict(state[0], x)


def restored_arima(workdir: str):
    """The fitted ARIMA forecaster of an ``arima`` run."""
    from stconv.arima import ARIMAForecaster

    path = os.path.join(workdir, "arima.npz")
    if not os.path.exists(path):
        raise ValueError(f"workdir {workdir!r} has no arima.npz: train the run first")
    return ARIMAForecaster.load(path)


def evaluate_command(args: argparse.Namespace) -> None:
    from stconv.experiment import load_config_dataset, test

    config, _, predict = restored_model(args.workdir)
    test(config, load_config_dataset(config), predict, args.workdir)


def predict_command(args: argparse.Namespace) -> None:
    from stconv.distributed import is_primary
    from stconv.fields import open_field
    from stconv.forecasts import ForecastWriter, forecast_field
    from stconv.masks import nan_mask
    from stconv.normalization import Normalizer

    config, description, predict = restored_model(args.workdir)
    if args.batch_size is not None:
        config = config.replace(eval_batch_size=args.batch_size)
    normalizer = Normalizer.load(os.path.join(args.workdir, "normalization.json"))
    # Lazy (dask): each batch reads only its own frames.
    chunks = {"time": config.eval_batch_size + config.input_length - 1}
    field = open_field(args.input, description["variables"], chunks=chunks)
    length = config.input_length
    if field.sizes["time"] < length:
        raise ValueError(
            f"file {args.input!r} has {field.sizes['time']} time steps: at least "
            f"input_length={length} are needed"
        )
    mask = np.load(os.path.join(args.workdir, "mask.npy"))
    if mask.shape != field.shape[1:]:
        mask = nan_mask(field)
    grid = {
        "lat": field["lat"].values,
        "lon": field["lon"].values,
        "channel": description["variables"],
        "units": description["units"],
    }
    batches = forecast_field(predict, field, length, normalizer, config.eval_batch_size)
    if not is_primary():  # the others compute with process 0, which writes
        for _ in batches:
            pass
        return
    with ForecastWriter(args.output, grid, mask, config.horizon) as writer:
        for predictions, init_times in batches:
            writer.write(predictions, init_times)
    print(f"wrote {writer.count} forecasts of {config.horizon} steps to {args.output}")


def classify_command(args: argparse.Namespace) -> None:
    from stconv.classify import classify

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
    predict.set_defaults(run=predict_command)
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        print(f"stconv {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, ImportError) as error:
        print(f"stconv {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
