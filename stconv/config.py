"""Run configuration: one frozen dataclass, and the choices of its fields.

Every field is a command-line flag (`stconv.cli`). This module loads neither
JAX nor Flax, so that the command line parses and checks flags at once.
"""

import dataclasses
import json
import os

from stconv import models
from stconv.checks import MAX_SEED, check_above_zero, check_choice, check_positive, check_seed

# Fields that change how a run computes, not its result: a resumed run may change them.
EXECUTION_FIELDS = ("num_devices", "fsdp", "time_chunk")
# Fields of several values: tuples (``--variables t2m,u10`` on the command line).
LIST_FIELDS = ("variables", "targets", "target_weights", "bbox")
# The choices of fields, checked here and by the modules that implement them.
NORMALIZATIONS = ("channel", "cell", "climatology", "none")  # `stconv.data.normalization`
RESIDUAL_BASES = ("last", "mean")  # `stconv.models.residual`
LEARNING_RATE_SCHEDULES = ("constant", "cosine")  # `stconv.training.step`
COMPUTE_DTYPES = ("float32", "bfloat16")  # `stconv.training.precision`
ARIMA_CENTERS = ("train", "window")  # `stconv.models.arima`
# The noises of perturbed-input members (`stconv.runs.forecaster.Forecaster.perturbed`),
# in training standard deviations, among which `choose_perturbation` picks the
# one whose ensemble has the lowest CRPS on the validation split.
PERTURBATION_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def model_names() -> list[str]:
    """Every valid ``model``: the networks of `stconv.models.available()` and ``arima``."""
    return [*models.available(), *models.FITTED]


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Defaults follow the paper.

    Attributes:
      model: a name from `stconv.models.available()`, or ``arima``: the paper's
        classical baseline, per-cell SARIMAX(5, 0, 1) fitted on the training
        split (`stconv.models.arima`); it ignores the network, optimizer, epoch, seed
        and iterations options.
      dataset: a name from `stconv.data.registry.DATASETS` or a netCDF path
        (or a glob of files: one variable per file combines).
      data_path: the file of the ``cfsr`` and ``chirps`` datasets.
      variables: the input variables: names, or ``NAME:LEVEL`` for one level
        of a variable with a vertical dimension (``z:500``); None: every
        gridded variable.
      targets: the variables to forecast, among the inputs; None: all inputs.
        Each is scored in its own units.
      target_weights: one weight per target in the loss; None: equal.
      bbox: ``(lat_min, lat_max, lon_min, lon_max)``: a region of the grid,
        in either longitude convention, across longitude 0 or 180 too.
      mask_file: a land mask instead of masking NaN cells.
      input_length: input frames per window.
      horizon: frames to forecast.
      num_layers: layers per block.
      hidden_dim: the channel schedule's ``d``.
      kernel_size: the model's k.
      dropout: dropout rate.
      model_options: the model's own keyword options (`stconv.models.options`),
        e.g. ``{"channel_increase": False}`` for STConvS2S; command-line
        strings (``"false"``) are converted by the option's type.
      normalization: ``channel``, ``cell`` (anomalies from each cell's training
        mean), ``climatology`` (anomalies from the climatology by time of
        year, `stconv.data.climatology`) or ``none`` (raw values, as the paper).
      climatology_window: days over which the climatology by day of year of
        daily and sub-daily data is smoothed (odd; WeatherBench 2's 61).
      static: ``FILE[:var,var]``: fields without time (orography, land-sea
        mask) added as normalized inputs, never forecast; FILE may be a
        dataset name whose file holds them (``weather``).
      time_features: add the sine and cosine of the day of year (and of the
        hour of day for sub-daily data) as inputs, never forecast.
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
      learning_rate_schedule: ``constant`` (the paper's) or ``cosine``: from
        ``learning_rate`` down to zero along a half cosine over ``epochs``
        epochs (`stconv.training.step.paper_optimizer`).
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
      allow_extreme_values: accept values beyond what their units allow in
        the data (beyond 1e15 in any units, or a plausible range for known
        units: `stconv.data.checks.check_extremes`), refused by default as
        fill values, corrupt data or mislabelled units.
      time_chunk: open the data lazily with dask, this many time steps per
        chunk, so that a file larger than memory streams from disk (each host
        reading only its batches); None loads it into memory.
    """

    model: str = "stconvs2s-r"
    dataset: str = "hadcm3-a1b"
    data_path: str | None = None
    variables: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    target_weights: tuple[float, ...] | None = None
    bbox: tuple[float, ...] | None = None
    mask_file: str | None = None
    input_length: int = 5
    horizon: int = 5
    num_layers: int = 3
    hidden_dim: int = 32
    kernel_size: int = 5
    dropout: float = 0.0
    model_options: dict = dataclasses.field(default_factory=dict)
    normalization: str = "channel"
    climatology_window: int = 61
    static: str | None = None
    time_features: bool = False
    allow_extreme_values: bool = False
    residual: bool = False
    residual_base: str = "last"
    area_weights: bool = True
    batch_size: int = 15
    eval_batch_size: int = 64
    epochs: int = 80
    patience: int = 16
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
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
        for name in LIST_FIELDS:  # JSON gives lists, Python users any sequence
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        self.check_variables()
        models.check_name(self.model)
        # Typed once, here: the flags' strings become the values the model takes.
        options = models.parse_options(self.model, dict(self.model_options))
        object.__setattr__(self, "model_options", options)
        positive = ("input_length", "horizon", "batch_size", "eval_batch_size", "epochs")
        positive += ("patience", "iterations", "climatology_window")
        if self.arima_max_train_length is not None:
            positive += ("arima_max_train_length",)
        positive += tuple(
            name for name in ("num_devices", "time_chunk") if getattr(self, name) is not None
        )
        for name in positive:
            check_positive(name, getattr(self, name))
        if self.climatology_window % 2 == 0:
            raise ValueError(
                f"climatology_window={self.climatology_window!r} is invalid: must be odd "
                "(a window centred on the day)"
            )
        check_seed("seed", self.seed)
        if self.seed + 10 * (self.iterations - 1) > MAX_SEED:
            raise ValueError(
                f"seed={self.seed} is invalid with iterations={self.iterations}: the last "
                f"seed, seed + 10 * (iterations - 1), must be at most {MAX_SEED}"
            )
        check_above_zero("learning_rate", self.learning_rate)
        check_choice("learning_rate_schedule", self.learning_rate_schedule, LEARNING_RATE_SCHEDULES)
        check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        if self.forecast_samples < 0:
            raise ValueError(f"forecast_samples={self.forecast_samples!r} is invalid: must be >= 0")
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        if self.model in models.FITTED and (
            self.static or self.time_features or self.normalization == "climatology"
        ):
            raise ValueError(
                f"model={self.model!r} fits each cell's own series: it takes no static, no "
                "time_features and no climatology normalization"
            )
        check_choice("residual_base", self.residual_base, RESIDUAL_BASES)
        check_choice("arima_center", self.arima_center, ARIMA_CENTERS)

    def check_variables(self) -> None:
        """Raises ValueError for targets that are not among the given inputs,
        weights that do not fit the targets, and a bbox that is not four
        numbers with ``lat_min <= lat_max``."""
        for name in ("variables", "targets"):
            values = getattr(self, name)
            if values is not None and (
                not values or not all(isinstance(v, str) and v for v in values)
            ):
                raise ValueError(f"{name}={values!r} is invalid: give one or more variable names")
        if self.variables is not None and self.targets is not None:
            missing = [t for t in self.targets if t not in self.variables]
            if missing:
                raise ValueError(
                    f"targets={self.targets!r} is invalid: {missing} are not among the input "
                    f"variables {list(self.variables)}: every target must be an input"
                )
        weights = self.target_weights
        if weights is not None:
            if not all(isinstance(w, int | float) and w > 0 for w in weights):
                raise ValueError(f"target_weights={weights!r} is invalid: must be numbers > 0")
            if self.targets is not None and len(weights) != len(self.targets):
                raise ValueError(
                    f"target_weights={weights!r} is invalid: give one weight per target "
                    f"({len(self.targets)}: {list(self.targets)})"
                )
        if self.bbox is not None and (
            len(self.bbox) != 4 or self.bbox[0] > self.bbox[1] or not all(
                isinstance(v, int | float) for v in self.bbox
            )
        ):  # fmt: skip
            raise ValueError(
                f"bbox={self.bbox!r} is invalid: give lat_min,lat_max,lon_min,lon_max with "
                "lat_min <= lat_max"
            )

    def model_kwargs(self) -> dict:
        """The model's hyperparameters and own options (without the data shapes)."""
        return dict(
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            kernel_size=self.kernel_size,
            dropout=self.dropout,
            **self.model_options,
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
