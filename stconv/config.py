"""Run configuration: one frozen dataclass; every field is a command-line flag."""

import argparse
import dataclasses
import json
import os
import types
import typing

from stconv import models
from stconv.checks import check_above_zero, check_choice, check_non_negative, check_positive
from stconv.models.residual import RESIDUAL_BASES
from stconv.training.precision import COMPUTE_DTYPES

# Fields that change how a run computes, not its result: a resumed run may change them.
EXECUTION_FIELDS = ("num_devices", "fsdp", "time_chunk")


def model_names() -> list[str]:
    """Every valid ``model``: the deep models of `stconv.models.available()` and ``arima``."""
    return [*models.available(), *models.FITTED]


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Defaults follow the paper.

    Attributes:
      model: a name from `stconv.models.available()`, or ``arima``: the paper's
        classical baseline, per-cell SARIMAX(5, 0, 1) fitted on the training
        split (`stconv.models.arima`); it ignores the network, optimizer, epoch, seed
        and iterations options.
      dataset: a name from `stconv.data.registry.NAMES` or a netCDF path.
      data_path: the file of the ``cfsr`` and ``chirps`` datasets.
      mask_file: a land mask instead of masking NaN cells.
      input_length: input frames per window.
      horizon: frames to forecast.
      num_layers: layers per block.
      hidden_dim: the channel schedule's ``d``.
      kernel_size: the model's k.
      dropout: dropout rate.
      normalization: ``channel``, ``cell`` (anomalies from each cell's training
        mean) or ``none`` (raw values, as the paper).
      area_weights: weight the test scores by grid-cell area (cosine of
        latitude, `stconv.evaluation.metrics.area_weights`) beside the
        unweighted ones; data without latitudes fall back to unweighted.
      residual: the network predicts the change from a base frame
        (`stconv.models.residual`); False, as in the paper, predicts the field.
      residual_base: the base of ``residual``: ``last`` (the last input
        frame; persistence is the network's zero output) or ``mean`` (the
        mean of the input frames; the input-mean baseline is its zero output).
      batch_size: examples per train step.
      eval_batch_size: windows per batch when evaluating and predicting (forward
        passes only: it can be much larger than ``batch_size``).
      epochs: the most epochs to train.
      patience: epochs without a better validation RMSE before stopping.
      learning_rate: RMSprop's learning rate.
      compute_dtype: ``float32``, or ``bfloat16`` for mixed precision on GPUs
        and TPUs (`stconv.training.precision`): the model computes in bfloat16, the
        parameters, optimizer state and loss stay float32.
      seed: seeds the model's initialisation, dropout and the data order.
      iterations: repeat the run with seeds ``seed, seed + 10, ...``; mean +- std.
      forecast_samples: test samples drawn in the forecast PNG.
      arima_center: ``arima`` forecasts around each cell's training mean
        (``train``, the model as fitted) or around each window's mean
        (``window``: a field that drifts away from its training period does
        not pull the forecasts back).
      arima_max_train_length: ``arima`` fits each cell on the last this many
        training steps only; None fits all.
      num_devices: train on the first this many devices (`jax.devices()`);
        None uses all. ``batch_size`` must be a multiple of it.
      fsdp: split each parameter and optimizer-state array over the devices
        (FSDP) instead of keeping a copy on every device; for large models.
      time_chunk: open the data lazily with dask, this many time steps per
        chunk, so that a file larger than memory streams from disk (each host
        reading only its batches); None loads it into memory.
    """

    model: str = "stconvs2s-r"
    dataset: str = "hadcm3-a1b"
    data_path: str | None = None
    mask_file: str | None = None
    input_length: int = 5
    horizon: int = 5
    num_layers: int = 3
    hidden_dim: int = 32
    kernel_size: int = 5
    dropout: float = 0.0
    normalization: str = "channel"
    residual: bool = False
    residual_base: str = "last"
    area_weights: bool = True
    batch_size: int = 15
    eval_batch_size: int = 64
    epochs: int = 80
    patience: int = 16
    learning_rate: float = 1e-3
    compute_dtype: str = "float32"
    seed: int = 1000
    iterations: int = 1
    forecast_samples: int = 3
    arima_center: str = "train"
    arima_max_train_length: int | None = None
    num_devices: int | None = None
    fsdp: bool = False
    time_chunk: int | None = None

    def __post_init__(self):
        if self.model not in model_names():
            raise ValueError(
                f"model {self.model!r} is unknown: choose from {models.available()} "
                f"or {', '.join(map(repr, models.FITTED))}"
            )
        positive = ("input_length", "horizon", "batch_size", "eval_batch_size", "epochs")
        positive += ("patience", "iterations")
        if self.arima_max_train_length is not None:
            positive += ("arima_max_train_length",)
        positive += tuple(
            name for name in ("num_devices", "time_chunk") if getattr(self, name) is not None
        )
        for name in positive:
            check_positive(name, getattr(self, name))
        check_non_negative("seed", self.seed)
        check_above_zero("learning_rate", self.learning_rate)
        check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        if self.forecast_samples < 0:
            raise ValueError(f"forecast_samples={self.forecast_samples!r} is invalid: must be >= 0")
        check_choice("residual_base", self.residual_base, RESIDUAL_BASES)
        check_choice("arima_center", self.arima_center, ("train", "window"))

    def model_kwargs(self) -> dict:
        """The model's hyperparameters (without the data shapes)."""
        return dict(
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            kernel_size=self.kernel_size,
            dropout=self.dropout,
        )

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        """The config saved at ``path``.

        Raises:
          ValueError: naming the file, if it is not JSON, holds unknown
            settings or an invalid value.
        """
        path = os.fspath(path)
        try:
            with open(path) as f:
                values = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"file {path!r} is not a saved config (invalid JSON: {error})"
            ) from None
        if not isinstance(values, dict):
            raise ValueError(f"file {path!r} is not a saved config: expected a JSON object")
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"file {path!r} has unknown settings {unknown}: it was not written by this "
                "version of stconv"
            )
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"file {path!r}: {error}") from None


def _field_type(field: dataclasses.Field) -> type:
    """The flag's type: ``str | None`` -> str."""
    hint = typing.get_type_hints(Config)[field.name]
    if isinstance(hint, types.UnionType):
        return next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


HELP = {
    "model": "one of {models}; arima: per-cell SARIMAX(5,0,1) fitted on the training split "
    "(pip install 'stconv[arima]'), which ignores the network, optimizer, epoch, seed and "
    "iterations options",
    "arima_center": "arima: forecast around each cell's training mean (train) or around each "
    "window's mean (window)",
    "arima_max_train_length": "arima: fit each cell on the last N training steps only",
    "num_devices": "train on the first N devices (None: all of them); batch_size must be a "
    "multiple of N",
    "time_chunk": "open the data lazily (dask), N time steps per chunk, for files larger "
    "than memory",
    "fsdp": "split parameters and optimizer state over the devices instead of replicating them",
    "compute_dtype": "float32, or bfloat16: compute in bfloat16 on GPUs and TPUs, with the "
    "parameters, optimizer state and loss in float32 (slower on CPUs)",
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--preset`` and ``--field-name`` for every Config field
    (``--no-residual`` for booleans); `config_from_args` applies the flags
    given over the preset's values, or over the defaults."""
    from stconv.configs import PRESETS

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from these settings (main: the README's main job; paper-cfsr, "
        "paper-chirps: the paper's); the flags given override them",
    )
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        help_ = HELP.get(field.name, "").format(models=", ".join(model_names()))
        help_ = f"{help_}; default {field.default}" if help_ else f"default {field.default}"
        # Flags not given stay out of the namespace, so a preset's values stand.
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=help_,
            )  # fmt: skip
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_)


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset (``--preset``, or the defaults) with the flags given."""
    from stconv.configs import get_config

    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }
    preset = getattr(args, "preset", None)
    return get_config(preset, **given) if preset is not None else Config(**given)
