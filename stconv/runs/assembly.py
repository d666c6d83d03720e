"""A run assembled from its config: the dataset, the model and its
optimizer, and the forecast function of a trained run restored from its files.

Training (`stconv.runs.experiment`) and every use of a finished run
(`stconv.runs.forecaster.Forecaster`) assemble runs here, and only here.
"""

import os
from collections.abc import Callable

from flax import nnx

from stconv import models
from stconv.config import Config, ModelConfig
from stconv.data.features import split_static
from stconv.data.registry import (
    DATASETS,
    Dataset,
    data_files,
    is_path,
    load_dataset,
    static_file,
)
from stconv.models.residual import Residual
from stconv.runs import provenance
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

    data = config.data
    static = data.static
    if static is not None:
        path, names = split_static(
            static, lambda path: path in DATASETS or os.path.exists(os.path.expanduser(path))
        )
        static = f"{absolute(path)}:{names}" if path != static else absolute(static)
    data = data.replace(
        dataset=absolute(data.dataset), data_path=absolute(data.data_path),
        mask_file=absolute(data.mask_file), static=static,
    )  # fmt: skip
    return config.replace(data=data)


def config_files(config: Config) -> list[str]:
    """The files ``config``'s dataset is read from (`stconv.data.registry.data_files`)."""
    data = config.data
    return data_files(data.dataset, data.data_path, data.mask_file, data.static)


def input_changes(config: Config, recorded: list[dict]) -> list[str]:
    """`provenance.input_changes` of ``config``'s files against those a run
    recorded; the static fields' file only where recorded (runs made before
    stconv listed it lack it)."""
    static = [] if config.data.static is None else [static_file(config.data.static)]
    return provenance.input_changes(recorded, config_files(config), newer=static)


def load_config_dataset(config: Config) -> Dataset:
    """``config``'s dataset, windowed, split, normalized and masked: its data
    section, read lazily in chunks of ``config.execution.time_chunk`` steps
    if set, or of the steps `stconv.data.files.streaming_chunk` chooses
    (saying so) if the field would not fit this machine's memory."""
    chunk = config.execution.time_chunk
    if chunk is None:
        return load_dataset(config.data, stream_if_large=True)
    return load_dataset(config.data, chunks={"time": chunk})


def create_model(
    model: ModelConfig,
    input_shape: tuple,
    horizon: int,
    output_channels: int | None = None,
    seed: int = 0,
) -> nnx.Module:
    """The network of the model section (with its own options, and the
    residual wrapper if asked) for samples of ``input_shape``, initialised
    from ``seed``: it forecasts ``horizon`` steps of the first
    ``output_channels`` channels of its inputs (the targets; default all)."""
    network = models.create(
        model.name,
        input_shape=input_shape,
        horizon=horizon,
        output_channels=output_channels,
        rngs=nnx.Rngs(seed),
        **model.hyperparameters(),
    )
    if model.residual:
        network = Residual(network, model.residual_base, output_channels, horizon)
    return network


def build(
    config: Config,
    input_shape: tuple,
    output_channels: int | None = None,
    steps_per_epoch: int = 1,
) -> tuple[nnx.Module, nnx.Optimizer]:
    """The model (`create_model`) and its optimizer, initialised from
    ``config.training.seed``. A ``cosine`` learning-rate schedule decays over
    ``config.training.epochs`` epochs of ``steps_per_epoch`` steps."""
    training = config.training
    model = create_model(
        config.model, input_shape, config.data.horizon, output_channels, training.seed
    )
    decay_steps = None
    if training.learning_rate_schedule == "cosine":
        decay_steps = training.epochs * steps_per_epoch
    return model, create_optimizer(model, paper_optimizer(training.learning_rate, decay_steps))


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
    if models.is_fitted(config.model.name):
        return targets_of(models.fitted(config.model.name).load_run(run), output_channels)
    distributed.maybe_initialize()
    mesh = distributed.data_mesh()
    model, optimizer = build(config, input_shape, output_channels)
    _, state = make_train_step(model, optimizer, mesh=mesh, fsdp=config.execution.fsdp)
    checkpoints = run.checkpoints()
    if not checkpoints.exists("best"):
        raise ValueError(f"workdir {run.path!r} has no best checkpoint: train the run first")
    try:
        checkpoints.restore("best", state)
    except CheckpointError as error:
        if error.corrupt:
            error.add_note("the run's best epoch is lost: train it again into a new workdir")
        raise
    predict = make_predict(model, config.data.horizon, config.training.compute_dtype, mesh)
    return lambda inputs: predict(state[0], inputs)
