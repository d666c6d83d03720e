"""The five sections of a run's configuration, each a frozen dataclass that
checks its own fields: `DataConfig`, `ModelConfig`, `TrainingConfig`,
`EvaluationConfig` and `ExecutionConfig`.

Each field's help text (and its choices) is in its metadata, the one place
the command line (`stconv.cli`), the TOML files and the docs read it from; a
help text names other fields as ``section.field``, and the command line
writes them as their flags.
Errors name a field as ``section.field`` (``training.learning_rate=inf is
invalid: ...``); the command line turns that name into its flag.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from stconv import models
from stconv.checks import (
    MAX_SEED,
    check_above_zero,
    check_choice,
    check_finite,
    check_non_negative,
    check_positive,
    check_seed,
)

# The choices of fields, checked here and by the modules that implement them.
NORMALIZATIONS = ("channel", "cell", "climatology", "none")  # `stconv.data.normalization`
LEARNING_RATE_SCHEDULES = ("constant", "cosine")  # `stconv.training.step`
COMPUTE_DTYPES = ("float32", "bfloat16")  # `stconv.training.precision`
# The names of `stconv.data.registry.DATASETS` (which loads xarray: not here,
# so that the command line's help answers at once; a test holds them equal).
DATASET_NAMES = ("hadcm3-a1b", "cfsr", "chirps", "weather", "synthetic")
# The noises of perturbed-input members (`stconv.runs.forecaster.Forecaster.perturbed`),
# in training standard deviations, among which `choose_perturbation` picks the
# one whose ensemble has the lowest CRPS on the validation split.
PERTURBATION_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def model_names() -> list[str]:
    """Every valid model name: the networks of `stconv.models.available()` and ``arima``."""
    return [*models.available(), *models.FITTED]


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    flag: str | None = None,
    signed: bool = False,
) -> Any:
    """A section's field with its help text (one sentence), its ``choices`` (or
    a function that lists them) and, where it is not the field's name, its
    ``flag`` name (``model`` for ``model.name``): the field's name on the
    command line and in a flat (older) config.json; ``signed``: its values
    may be negative."""
    metadata = {"help": help, "choices": choices, "flag": flag, "signed": signed}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(field: dataclasses.Field) -> list[str] | None:
    """The choices of a section's field (listed when asked), or None."""
    choices = field.metadata.get("choices")
    return list(choices() if callable(choices) else choices) if choices is not None else None


class Section:
    """What every section shares: its name in errors and files, and the checks
    of its fields (each named ``section.field``)."""

    NAME: ClassVar[str] = ""
    LISTS: ClassVar[tuple[str, ...]] = ()  # fields of several values: tuples

    def named(self, field: str) -> str:
        return f"{self.NAME}.{field}"

    def tuples(self) -> None:
        """Makes the list fields tuples (JSON gives lists, Python users any sequence)."""
        for name in self.LISTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

    def check_finite(self) -> None:
        """Raises ValueError naming the field of a number that is inf or nan."""
        for field in dataclasses.fields(self):
            check_finite(self.named(field.name), getattr(self, field.name))

    def positive(self, *names: str) -> None:
        """Checks that the fields ``names`` not None are integers >= 1."""
        for name in names:
            if getattr(self, name) is not None:
                check_positive(self.named(name), getattr(self, name))

    def parsed(self, name: str, parse: Callable[[str], Any]) -> None:
        """Raises ValueError naming the field ``name`` if ``parse`` refuses its
        text (its reason, after the ``what: `` the parser names it by)."""
        try:
            parse(getattr(self, name))
        except ValueError as error:
            reason = str(error).split(": ", 1)[-1]
            text = getattr(self, name)
            raise ValueError(f"{self.named(name)}={text!r} is invalid: {reason}") from None

    def replace(self, **changes) -> "Section":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """What the model reads: the dataset, its variables, windows and inputs
    (`stconv.data.registry.load_dataset`)."""

    NAME: ClassVar[str] = "data"
    LISTS: ClassVar[tuple[str, ...]] = ("variables", "targets", "bbox", "time_range")

    dataset: str = setting(
        "hadcm3-a1b",
        "the dataset: a name of stconv.data.registry.DATASETS or a netCDF path (a glob of "
        "files combines one variable per file)",
        choices=(*DATASET_NAMES, "PATH"),
    )
    data_path: str | None = setting(None, "the file of the cfsr and chirps datasets")
    variables: tuple[str, ...] | None = setting(
        None,
        "the input variables, comma-separated: names, or NAME:LEVEL for one level of a variable "
        "with a vertical dimension (z:500); unset: every gridded variable",
    )
    targets: tuple[str, ...] | None = setting(
        None, "the variables to forecast, comma-separated, among the inputs; unset: all inputs"
    )
    bbox: tuple[float, ...] | None = setting(
        None,
        "lat_min,lat_max,lon_min,lon_max: a region of the grid, in either longitude convention, "
        "across longitude 0 or 180 too",
        signed=True,
    )
    time_range: tuple[str, ...] | None = setting(
        None,
        "START,END: the period to read, inclusive, as dates (1979-01-01,2015-12-31, or years: "
        "1979,2015) or, for a time axis of numbers, numbers; the splits divide it; unset: all",
    )
    mask_file: str | None = setting(
        None,
        "a land mask (nonzero = valid, or at least 0.5 where it holds fractions as ERA5's lsm "
        "does): a .npy array of the grid's shape, or a netCDF file of one variable whose cells "
        "are taken by latitude and longitude (ERA5's lsm fits); its other cells are left out "
        "of the loss and the scores; unset: cells that are NaN throughout the training split "
        "are masked",
    )
    input_length: int = setting(5, "input frames per window")
    horizon: int = setting(5, "frames to forecast")
    normalization: str = setting(
        "channel",
        "channel (each variable's training mean and std), cell (anomalies from each cell's "
        "training mean), climatology (anomalies from the climatology by time of year) or none "
        "(raw values, as the paper)",
        choices=NORMALIZATIONS,
    )
    climatology_window: int = setting(
        61, "days the climatology by day of year is smoothed over, an odd number (WeatherBench 2's)"
    )
    static: str | None = setting(
        None,
        "FILE[:var,var]: fields without time (orography, land-sea mask) added as normalized "
        "inputs, never forecast; FILE may be a dataset name whose file holds them (weather)",
    )
    time_features: bool = setting(
        False, "add the sine and cosine of the day of year (and hour of day) as inputs"
    )
    allow_extreme_values: bool = setting(
        False,
        "accept values beyond what their units allow (refused by default as fill values, "
        "corrupt data or mislabelled units: stconv.data.checks.check_extremes)",
    )

    def __post_init__(self):
        self.tuples()
        self.check_finite()
        self.positive("input_length", "horizon", "climatology_window")
        if self.climatology_window % 2 == 0:
            raise ValueError(
                f"{self.named('climatology_window')}={self.climatology_window!r} is invalid: "
                "must be odd (a window centred on the day)"
            )
        check_choice(self.named("normalization"), self.normalization, NORMALIZATIONS)
        self.check_variables()

    def check_variables(self) -> None:
        """Raises ValueError for targets that are not among the given inputs,
        a bbox that is not four numbers with ``lat_min <= lat_max`` and a time
        range that is not two values."""
        for name in ("variables", "targets"):
            values = getattr(self, name)
            if values is not None and (
                not values or not all(isinstance(v, str) and v for v in values)
            ):
                raise ValueError(
                    f"{self.named(name)}={values!r} is invalid: give one or more variable names"
                )
            repeated = sorted({v for v in values or () if list(values).count(v) > 1})
            if repeated:
                raise ValueError(
                    f"{self.named(name)}={values!r} is invalid: {repeated} given twice: "
                    "name each variable once"
                )
        if self.variables is not None and self.targets is not None:
            missing = [t for t in self.targets if t not in self.variables]
            if missing:
                raise ValueError(
                    f"{self.named('targets')}={self.targets!r} is invalid: {missing} are not "
                    f"among the input variables {list(self.variables)}: every target must be "
                    "an input"
                )
        if self.bbox is not None and (
            len(self.bbox) != 4 or not all(
                isinstance(v, int | float) for v in self.bbox
            ) or self.bbox[0] > self.bbox[1]
        ):  # fmt: skip
            raise ValueError(
                f"{self.named('bbox')}={self.bbox!r} is invalid: give lat_min,lat_max,lon_min,"
                "lon_max with lat_min <= lat_max"
            )
        if self.time_range is not None:
            object.__setattr__(self, "time_range", tuple(str(v).strip() for v in self.time_range))
            if len(self.time_range) != 2 or not all(self.time_range):
                raise ValueError(
                    f"{self.named('time_range')}={self.time_range!r} is invalid: give START,END "
                    "(dates such as 1979-01-01,2015-12-31, or numbers for a time axis of numbers)"
                )


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
    """The model and its hyperparameters (`stconv.models`)."""

    NAME: ClassVar[str] = "model"

    name: str = setting(
        "stconvs2s-r",
        "the model; arima: per-cell SARIMAX(5,0,1) fitted on the training split (pip install "
        "'stconv[arima]'), which refuses the network, optimizer, epoch, seed and iterations "
        "settings other than their defaults",
        choices=model_names,
        flag="model",
    )
    num_layers: int = setting(3, "layers per block (or stacked cells)")
    hidden_dim: int = setting(32, "the hidden channels (the channel schedule's d)")
    kernel_size: int = setting(5, "the convolutions' kernel size k")
    dropout: float = setting(0.0, "the dropout rate, in [0, 1)")
    options: dict = setting(  # noqa: RUF009 (a dict's field: default_factory)
        {},
        "one of the model's own keyword options, KEY=VALUE (repeatable), e.g. "
        "channel_increase=false for STConvS2S (stconv.models.options)",
        flag="model_options",
    )
    residual: bool = setting(
        False,
        "forecast the change from a base frame (model.residual_base) instead of the field itself "
        "(the paper's, model.residual=False): persistence, or the input mean, is then the "
        "network's zero output",
    )
    residual_base: str = setting(
        "last",
        "the base of model.residual: last (the last input frame), mean (the mean of the input "
        "frames) or, with data.normalization=climatology, climatology, anomaly (the last "
        "anomaly persisted) or damped (that anomaly times a factor per lead fitted on the "
        "training split)",
        choices=models.RESIDUAL_BASES,
    )
    arima_center: str = setting(
        "train",
        "arima: forecast around each cell's training mean (train) or each window's mean (window)",
        choices=models.ARIMA_CENTERS,
    )
    arima_max_train_length: int | None = setting(
        None, "arima: fit each cell on the last N training steps only; unset: all of them"
    )

    def __post_init__(self):
        self.check_finite()
        models.check_name(self.name)
        # Typed once, here: the flags' strings become the values the model takes.
        object.__setattr__(self, "options", models.parse_options(self.name, dict(self.options)))
        self.positive("arima_max_train_length")
        check_choice(self.named("residual_base"), self.residual_base, models.RESIDUAL_BASES)
        check_choice(self.named("arima_center"), self.arima_center, models.ARIMA_CENTERS)

    def hyperparameters(self) -> dict:
        """The network's hyperparameters and own options (without the data's shapes):
        the keyword arguments of `stconv.models.create`."""
        return dict(
            num_layers=self.num_layers, hidden_dim=self.hidden_dim,
            kernel_size=self.kernel_size, dropout=self.dropout, **self.options,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Section):
    """How the network is trained (`stconv.training`)."""

    NAME: ClassVar[str] = "training"
    LISTS: ClassVar[tuple[str, ...]] = ("target_weights",)

    batch_size: int = setting(15, "examples per train step")
    epochs: int = setting(80, "the most epochs to train")
    patience: int = setting(16, "epochs without a better validation RMSE before stopping")
    learning_rate: float = setting(1e-3, "RMSprop's learning rate")
    learning_rate_schedule: str = setting(
        "constant",
        "constant (the paper's), or cosine: from the learning rate down to zero along a half "
        "cosine over the epochs",
        choices=LEARNING_RATE_SCHEDULES,
    )
    target_weights: tuple[float, ...] | None = setting(
        None, "one weight per target in the loss, comma-separated; unset: equal"
    )
    compute_dtype: str = setting(
        "float32",
        "float32, or bfloat16: compute in bfloat16 on GPUs and TPUs, with the parameters, "
        "optimizer state and loss in float32 (slower on CPUs)",
        choices=COMPUTE_DTYPES,
    )
    seed: int = setting(1000, "seeds the model's initialisation, dropout and the order of the data")
    iterations: int = setting(
        1, "repeat the run with seeds seed, seed + 10, ... and report their mean +- std"
    )

    def __post_init__(self):
        self.tuples()
        check_above_zero(self.named("learning_rate"), self.learning_rate)
        self.check_finite()
        self.positive("batch_size", "epochs", "patience", "iterations")
        check_seed(self.named("seed"), self.seed)
        if self.seed + 10 * (self.iterations - 1) > MAX_SEED:
            raise ValueError(
                f"{self.named('seed')}={self.seed} is invalid with {self.named('iterations')}="
                f"{self.iterations}: the last seed, seed + 10 * (iterations - 1), must be at "
                f"most {MAX_SEED}"
            )
        check_choice(
            self.named("learning_rate_schedule"), self.learning_rate_schedule,
            LEARNING_RATE_SCHEDULES,
        )  # fmt: skip
        check_choice(self.named("compute_dtype"), self.compute_dtype, COMPUTE_DTYPES)
        weights = self.target_weights
        if weights is not None and not all(
            isinstance(w, int | float) and not isinstance(w, bool) and w > 0 for w in weights
        ):
            raise ValueError(
                f"{self.named('target_weights')}={weights!r} is invalid: must be finite numbers > 0"
            )


@dataclasses.dataclass(frozen=True)
class EvaluationConfig(Section):
    """How a trained run is tested and its forecasts drawn (`stconv.evaluation`)."""

    NAME: ClassVar[str] = "evaluation"
    LISTS: ClassVar[tuple[str, ...]] = ("neighbourhoods",)

    eval_batch_size: int = setting(
        64,
        "windows per batch when evaluating and predicting (forward passes only: it can be much "
        "larger than training.batch_size)",
    )
    forecast_samples: int = setting(3, "test samples drawn in the forecast PNG (0: none)")
    area_weights: bool = setting(
        True,
        "weight the test scores by grid-cell area (cosine of latitude) beside the unweighted "
        "ones (evaluation.area_weights=False: unweighted only)",
    )
    maps: bool = setting(
        True,
        "score every grid cell and the zonal power spectra (cell_scores.nc, spectra.nc) and draw "
        "them and the forecast samples (cell_maps.png, spectra.png, forecast_errors.png, "
        "forecast_maps.png)",
    )
    bootstrap: int = setting(
        1000,
        "block-bootstrap resamples of the test windows for every score's 95% interval and the "
        "model's paired tests against the baselines (0: none)",
    )
    thresholds: str | None = setting(
        None,
        "event thresholds of the categorical scores (hit rate, CSI, ETS, SEDI...) and the "
        "fractions skill score, in the targets' units or as per-cell training percentiles "
        "(1,10,q90); default: 1,10,20 for precipitation in mm/day, q75,q90,q99 for other "
        "precipitation, none for other variables; none: no event scores",
    )
    neighbourhoods: tuple[int, ...] = setting(
        (1, 3, 5), "the fractions skill score's square neighbourhoods, in cells (odd sizes)"
    )
    regions: str | None = setting(
        None,
        "score each region too: latitude bands (tropics, northern_extratropics, "
        "southern_extratropics, arctic, antarctic, global), land of the mask, boxes "
        "name=lat_min:lat_max:lon_min:lon_max, or file:PATH of a netCDF file of 0/1 masks "
        "(tropics,land,alps=44:48:5:16)",
    )

    def __post_init__(self):
        self.tuples()
        self.positive("eval_batch_size")
        check_non_negative(self.named("bootstrap"), self.bootstrap)
        if self.thresholds is not None and self.thresholds != "none":
            from stconv.evaluation.events import parse_thresholds  # numpy and scipy: only here

            self.parsed("thresholds", parse_thresholds)
        if self.regions is not None:
            from stconv.evaluation.regions import parse_regions  # xarray: only here

            self.parsed("regions", parse_regions)
        sizes = self.neighbourhoods
        if not sizes or not all(isinstance(n, int) and n >= 1 and n % 2 for n in sizes):
            raise ValueError(
                f"{self.named('neighbourhoods')}={sizes!r} is invalid: give odd sizes >= 1"
            )
        samples = self.forecast_samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ValueError(
                f"{self.named('forecast_samples')}={self.forecast_samples!r} is invalid: must "
                "be an integer >= 0"
            )


@dataclasses.dataclass(frozen=True)
class ExecutionConfig(Section):
    """Where a run computes, not what: a resumed run may change these
    (`stconv.training.distributed`, `stconv.data.files`)."""

    NAME: ClassVar[str] = "execution"

    num_devices: int | None = setting(
        None,
        "train on the first N devices; unset: all of them (the batch size must be a multiple of N)",
    )
    fsdp: bool = setting(
        False,
        "split parameters and optimizer state over the devices (FSDP) instead of replicating "
        "them, for large models",
    )
    time_chunk: int | None = setting(
        None,
        "open the data lazily (dask), N time steps per chunk, for files larger than memory; "
        "unset: load them into memory",
    )

    def __post_init__(self):
        self.positive("num_devices", "time_chunk")


SECTIONS: dict[str, type[Section]] = {
    section.NAME: section
    for section in (DataConfig, ModelConfig, TrainingConfig, EvaluationConfig, ExecutionConfig)
}
