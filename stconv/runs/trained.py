"""`TrainedRun`: the frozen value of a trained run, everything but its forecast.

Built once, from a run's folder (`TrainedRun.load`) or from a run still in
memory (`TrainedRun.from_dataset`): its configuration, what it was trained on
(``data.json``), its training statistics, mask, climatology and extra inputs,
its provenance record and folder. Every configuration and grid read of a
forecaster is here, and what the layers below need of it is handed down as
their own values: `inputs` to check new data with
(`stconv.data.field_checks.RunInputs`), `scoring` to score forecasts with
(`stconv.evaluation.scoring.RunScoring`). A new attribute of a run is one
field here.
"""

import dataclasses
import os
import warnings

import numpy as np

from stconv import models
from stconv.checks import ParameterError, check_positive
from stconv.config import Config
from stconv.data.climatology import Climatology
from stconv.data.features import ExtraInputs
from stconv.data.field_checks import RunInputs
from stconv.data.grid import Grid
from stconv.data.normalization import Normalizer
from stconv.data.registry import Dataset
from stconv.evaluation.scoring import RunScoring
from stconv.runs import provenance
from stconv.runs.directory import (
    RunDirectory,
    check_new_file,
    complete_description,
    describe_data,
)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained run, as its files record it.

    Attributes:
      config: the run's configuration.
      description: what the run was trained on, as its ``data.json``
        (`stconv.runs.directory.describe_data`, completed for old runs by
        `stconv.runs.directory.complete_description`): ``variables`` in
        channel order, their ``units``, ``targets``, ``input_shape`` and, for
        runs that recorded them, the ``lat`` and ``lon`` coordinates (else only
        the grid's shape is checked) and whether they are latitudes (``geographic``).
      normalizer: the training statistics.
      mask: ``(lat, lon, channel)`` cells it forecasts.
      climatology: the training climatology (physical units), or None (not recorded).
      extra: the static fields and calendar features the run reads beside
        its variables (`stconv.data.features`); None: none.
      origin: the run's provenance record (`stconv.runs.provenance`); None for runs
        made before records were kept, and for runs not loaded from a folder.
      path: the run's folder, if it was loaded from one.
    """

    config: Config
    description: dict
    normalizer: Normalizer
    mask: np.ndarray
    climatology: Climatology | None = None
    extra: ExtraInputs | None = None
    origin: dict | None = None
    path: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "description", complete_description(self.description))

    @classmethod
    def load(cls, run: RunDirectory, unfinished: bool = False) -> "TrainedRun":
        """The run whose files are in ``run`` (a run of one seed), trained or,
        ``unfinished``, not (`check_trained`)."""
        config, description = run.config(), run.data_description()
        cls.check_trained(run, unfinished)
        return cls(
            config, description, run.normalizer(), run.mask(), run.climatology(),
            run.extra_inputs(), run.provenance(), run.path,
        )  # fmt: skip

    @staticmethod
    def check_trained(run: RunDirectory, unfinished: bool = False) -> None:
        """Raises `stconv.checks.ParameterError`, naming ``run``, if its training
        (of every seed) has not ended, unless ``unfinished``: then warns
        (`stconv.runs.provenance.UnfinishedRunWarning`) for a run of one seed."""
        if run.member_runs():
            if not run.has(run.SUMMARY) and not unfinished:
                raise ParameterError(
                    f"workdir {run.path!r} holds runs of several seeds whose training has not "
                    "ended: finish them by training with {resume}, or pass {unfinished}",
                    resume=True,
                    unfinished=True,
                )
        elif not run.is_trained() and not unfinished:
            raise ParameterError(
                f"workdir {run.path!r} holds a run whose training has not ended (killed or "
                "still running): finish it by training with {resume}, or pass "
                "{unfinished} to use its best checkpoint so far",
                resume=True,
                unfinished=True,
            )
        elif not run.is_trained():
            message = (
                f"workdir {run.path!r}: its training has not ended: using its best epoch so far"
            )
            warnings.warn(message, provenance.UnfinishedRunWarning, stacklevel=4)

    @classmethod
    def ensemble(
        cls,
        runs: list["TrainedRun"],
        names: list[str],
        origin: dict | None = None,
        path: str | None = None,
    ) -> "TrainedRun":
        """The run of an ensemble of ``runs`` (named ``names``: of one config but
        the seed, on the same data) whose folder is ``path`` with the record ``origin``.

        Raises:
          ValueError: naming the member trained otherwise.
        """
        first = runs[0].config
        for other, name in zip(runs[1:], names[1:], strict=True):
            training = other.config.training.replace(seed=first.training.seed)
            if other.config.replace(training=training) != first:
                raise ValueError(
                    f"member {name!r} was trained with another config than {names[0]!r}"
                )
        config = first.replace(training=first.training.replace(iterations=len(runs)))
        return dataclasses.replace(runs[0], config=config, origin=origin, path=path)

    @classmethod
    def from_dataset(cls, config: Config, dataset: Dataset) -> "TrainedRun":
        """The run of ``config`` trained on ``dataset``, as `load` would give it
        once its files are written."""
        return cls(
            config, describe_data(dataset), dataset.normalizer, dataset.mask,
            dataset.climatology, dataset.extra,
        )  # fmt: skip

    @property
    def variables(self) -> list[str]:
        """The input variables, as channels: the targets first."""
        return list(self.description["variables"])

    @property
    def targets(self) -> list[str]:
        """The variables forecast: the first `outputs` channels."""
        return list(self.description["targets"])

    @property
    def outputs(self) -> int:
        return len(self.targets)

    @property
    def units(self) -> list[str]:
        """The units of every input variable (``""``: none given)."""
        return list(self.description["units"])

    @property
    def grid(self) -> Grid | None:
        """The `Grid` the run was trained on; None if not recorded."""
        if "lat" not in self.description:
            return None
        return Grid.from_description(self.description)

    @property
    def input_length(self) -> int:
        return self.config.data.input_length

    @property
    def horizon(self) -> int:
        return self.config.data.horizon

    @property
    def batch_size(self) -> int:
        """Windows per batch of a forecast (``eval_batch_size``)."""
        return self.config.evaluation.eval_batch_size

    @property
    def batch_bytes(self) -> int:
        """The bytes of one batch's float32 inputs and forecasts."""
        length, lat, lon, channels = self.description["input_shape"]
        return 4 * self.batch_size * lat * lon * (length * channels + self.horizon * self.outputs)

    @property
    def fitted(self) -> str | None:
        """The model's name if it is fitted per cell (ARIMA), else None."""
        return self.model if models.is_fitted(self.model) else None

    @property
    def model(self) -> str:
        """The model's name."""
        return self.config.model.name

    @property
    def seed(self) -> int:
        """The training seed."""
        return self.config.training.seed

    @property
    def where(self) -> str:
        """The run, for errors: its folder, or ``this forecaster``."""
        return f"the run {self.path!r}" if self.path else "this forecaster"

    def inputs(self) -> RunInputs:
        """What the run reads, to check new data against."""
        grid = self.grid
        extra = self.extra
        return RunInputs(
            variables=tuple(self.variables),
            targets=tuple(self.targets),
            units=tuple(self.units),
            specs=tuple(self.config.data.variables or self.variables),
            input_length=self.input_length,
            mask=self.mask,
            lat=None if grid is None else grid.lat,
            lon=None if grid is None else grid.lon,
            pole=None if grid is None else grid.pole,
            bbox=self.config.data.bbox,
            static_names=tuple(extra.static_names) if extra is not None else (),
            calendar=bool(extra is not None and extra.calendar),
            fitted=self.fitted,
            allow_extreme_values=self.config.data.allow_extreme_values,
            climatology=self.climatology,
            std=self.normalizer.std if self.config.data.normalization != "none" else None,
            chunk_frames=self.batch_size + self.input_length - 1,
        )

    def scoring(self) -> RunScoring:
        """What scoring the run's forecasts takes."""
        return RunScoring(
            model=self.model,
            targets=tuple(self.targets),
            units=tuple(self.units[: self.outputs]),
            normalizer=self.normalizer,
            climatology=self.climatology,
            horizon=self.horizon,
            batch_size=self.batch_size,
            area_weights=self.config.evaluation.area_weights,
            geographic=self.description.get("geographic", True),
            bootstrap=self.config.evaluation.bootstrap,
            thresholds=self.config.evaluation.thresholds,
            neighbourhoods=self.config.evaluation.neighbourhoods,
        )

    def warn_without_units(self) -> None:
        """Warns (`stconv.runs.provenance.UnitsWarning`) of targets the run's data
        gave no units for: on every forecast."""
        missing = [n for n, u in zip(self.targets, self.units, strict=False) if not u]
        if missing:
            warnings.warn(
                f"the run's data gave no units for {missing}: its inputs cannot be checked "
                "and its forecasts carry none; they are in the units of the data it was "
                "trained on",
                provenance.UnitsWarning,
                stacklevel=3,
            )

    def check_output(
        self,
        path: str | os.PathLike,
        data: str | os.PathLike,
        overwrite: bool = False,
        batch_size: int | None = None,
    ) -> None:
        """Raises `stconv.checks.ParameterError`, naming the parameter, unless
        forecasts of ``data`` may be written to ``path``
        (`stconv.runs.directory.check_new_file`: never into this run) in
        batches of ``batch_size`` (None: the run's)."""
        runs = (self.path,) if self.path is not None else ()
        try:
            check_new_file(path, flag="{path}", overwrite=overwrite, inputs=(data,), runs=runs)
        except ParameterError as error:  # named as the parameter ``path`` too
            raise ParameterError(error.message, path=None, **error.given) from error
        except ValueError as error:  # named as the parameter ``path``
            raise ParameterError(str(error), path=None) from error
        if batch_size is not None:
            check_positive("{batch_size}", batch_size, lambda m: ParameterError(m, batch_size=None))
