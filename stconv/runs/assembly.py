"""A run assembled from its config: the dataset, the model and its
optimizer, and the forecast function of a trained run restored from its files.

Training (`stconv.runs.experiment`) and every use of a finished run
(`stconv.runs.forecaster.Forecaster`) assemble runs here, and only here.
"""

import os
from collections.abc import Callable

from flax import nnx

from stconv import models
from stconv.config import Config
from stconv.data.features import split_static
from stconv.data.registry import DATASETS, Dataset, data_files, is_path, load_dataset
from stconv.models.residual import Residual
from stconv.runs.directory import RunDirectory
from stconv.training import distributed
from stconv.training.checkpoints import CheckpointError
from stconv.training.step import create_optimizer, make_predict, make_train_step, paper_optimizer


def resolved(config: Config) -> Config:
    """``config`` with its files' paths absolute (a dataset's name stays a
    name): a run then reads the same files from any folder."""

    def absolute(path: str | None) -> str | None:
        if path is None or path in DATASETS or not is_path(os.path.expanduser(path)):
            return path  # a name (or nothing that could be read: its error names it as given)
        return os.path.abspath(os.path.expanduser(path))

    static = config.static
    if static is not None:
        path, names = split_static(
            static, lambda path: path in DATASETS or os.path.exists(os.path.expanduser(path))
        )
        static = f"{absolute(path)}:{names}" if path != static else absolute(static)
    return config.replace(
        dataset=absolute(config.dataset), data_path=absolute(config.data_path),
        mask_file=absolute(config.mask_file), static=static,
    )  # fmt: skip


def config_files(config: Config) -> list[str]:
    """The files ``config``'s dataset is read from (`stconv.data.registry.data_files`)."""
    return data_files(config.dataset, config.data_path, config.mask_file)


def load_config_dataset(config: Config) -> Dataset:
    """``config``'s dataset, windowed, split, normalized and masked."""
    return load_dataset(
        config.dataset,
        path=config.data_path,
        input_length=config.input_length,
        horizon=config.horizon,
        normalization=config.normalization,
        variables=config.variables,
        targets=config.targets,
        mask_file=config.mask_file,
        climatology_window=config.climatology_window,
        static=config.static,
        time_features=config.time_features,
        allow_extreme_values=config.allow_extreme_values,
        chunks=None if config.time_chunk is None else {"time": config.time_chunk},
        **({} if config.bbox is None else {"bbox": config.bbox}),
    )


def build(
    config: Config,
    input_shape: tuple,
    output_channels: int | None = None,
    steps_per_epoch: int = 1,
) -> tuple[nnx.Module, nnx.Optimizer]:
    """The model (with its own options, and the residual wrapper if asked) and
    its optimizer, initialised from ``config.seed``: it forecasts the first
    ``output_channels`` channels of its inputs (the targets; default all).
    A ``cosine`` learning-rate schedule decays over ``config.epochs`` epochs of
    ``steps_per_epoch`` steps."""
    model = models.create(
        config.model,
        input_shape=input_shape,
        horizon=config.horizon,
        output_channels=output_channels,
        rngs=nnx.Rngs(config.seed),
        **config.model_kwargs(),
    )
    if config.residual:
        model = Residual(model, config.residual_base, output_channels)
    decay_steps = None
    if config.learning_rate_schedule == "cosine":
        decay_steps = config.epochs * steps_per_epoch
    return model, create_optimizer(model, paper_optimizer(config.learning_rate, decay_steps))


def targets_of(predict: Callable, output_channels: int | None) -> Callable:
    """``predict`` of a model that forecasts every channel (a fitted one),
    returning the first ``output_channels`` (the targets; None: all)."""
    if output_channels is None:
        return predict
    return lambda inputs: predict(inputs)[..., :output_channels]


def restore_predict(
    run: RunDirectory, config: Config, input_shape: tuple, output_channels: int | None = None
) -> Callable:
    """The eval-mode forecast of the run's best epoch on every device present
    (or its fitted ARIMA models): normalized inputs to normalized forecasts of
    the first ``output_channels`` channels (the targets; default all).

    Raises:
      ValueError: naming the run, if it has no best checkpoint or it cannot
        be read (`stconv.training.checkpoints.CheckpointError`).
    """
    if models.is_fitted(config.model):
        return targets_of(models.fitted(config.model).load_run(run), output_channels)
    distributed.maybe_initialize()
    mesh = distributed.data_mesh()
    model, optimizer = build(config, input_shape, output_channels)
    _, state = make_train_step(model, optimizer, mesh=mesh, fsdp=config.fsdp)
    checkpoints = run.checkpoints()
    if not checkpoints.exists("best"):
        raise ValueError(f"workdir {run.path!r} has no best checkpoint: train the run first")
    try:
        checkpoints.restore("best", state)
    except CheckpointError as error:
        if error.corrupt:
            error.add_note("the run's best epoch is lost: train it again into a new workdir")
        raise
    predict = make_predict(model, config.horizon, config.compute_dtype, mesh)
    return lambda inputs: predict(state[0], inputs)
