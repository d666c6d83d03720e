"""A run assembled from its config: the dataset, the model and its
optimizer, and the forecast function of a trained run restored from its files.

Training (`stconv.experiment`) and every use of a finished run
(`stconv.forecaster.Forecaster`) assemble runs here, and only here.
"""

from collections.abc import Callable

from flax import nnx

from stconv import models
from stconv.config import Config
from stconv.data.registry import Dataset, data_files, load_dataset
from stconv.models.residual import Residual
from stconv.run import RunDirectory
from stconv.training import distributed
from stconv.training.checkpoints import CheckpointError
from stconv.training.step import create_optimizer, make_predict, make_train_step, paper_optimizer


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
        mask_file=config.mask_file,
        chunks=None if config.time_chunk is None else {"time": config.time_chunk},
    )


def build(config: Config, input_shape: tuple) -> tuple[nnx.Module, nnx.Optimizer]:
    """The model (with its own options, and the residual wrapper if asked) and
    its optimizer, initialised from ``config.seed``."""
    model = models.create(
        config.model,
        input_shape=input_shape,
        horizon=config.horizon,
        rngs=nnx.Rngs(config.seed),
        **config.model_kwargs(),
    )
    if config.residual:
        model = Residual(model, config.residual_base)
    return model, create_optimizer(model, paper_optimizer(config.learning_rate))


def restore_predict(run: RunDirectory, config: Config, input_shape: tuple) -> Callable:
    """The eval-mode forecast of the run's best epoch on every device present
    (or its fitted ARIMA models): normalized inputs to normalized forecasts.

    Raises:
      ValueError: naming the run, if it has no best checkpoint or it cannot
        be read (`stconv.training.checkpoints.CheckpointError`).
    """
    if models.is_fitted(config.model):
        return models.fitted(config.model).load_run(run)
    distributed.maybe_initialize()
    mesh = distributed.data_mesh()
    model, optimizer = build(config, input_shape)
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
