"""`Config`: a run's configuration, five sections (`stconv.config.sections`)
and the checks across them; saved nested as ``config.json``.

Every field also has a flat name, unique across the sections (`FLAGS`):
``hidden_dim``, ``model`` for ``model.name``, ``model_options`` for
``model.options``. It names the command-line flag (``hidden-dim``), the
keywords of `Config.from_flags` and the presets, and the fields of the flat
``config.json`` of runs made before the sections (loaded unchanged).
"""

import dataclasses
import json
import os
from typing import Any

from stconv import models
from stconv.config.sections import (
    SECTIONS,
    DataConfig,
    EvaluationConfig,
    ExecutionConfig,
    ModelConfig,
    Section,
    TrainingConfig,
)


def flag_name(field: dataclasses.Field) -> str:
    """The flat name of a section's field: its metadata's ``flag``, else its name."""
    return field.metadata.get("flag") or field.name


# The flat name of every field -> (section, field): the one mapping of the
# command line, `Config.from_flags` and the flat config.json of older runs.
FLAGS: dict[str, tuple[str, str]] = {
    flag_name(field): (section.NAME, field.name)
    for section in SECTIONS.values()
    for field in dataclasses.fields(section)
}
# The fields that change how a run computes, not its result (the execution
# section's): a resumed run may change them.
EXECUTION_FIELDS = tuple(
    flag for flag, (section, _) in FLAGS.items() if section == ExecutionConfig.NAME
)


def flattened(values: dict) -> dict:
    """A saved config's values by flat name: nested sections (`Config.to_dict`)
    flattened, flat ones (older runs) as they are; nothing checked or added."""
    if not (set(values) <= set(SECTIONS) and all(isinstance(v, dict) for v in values.values())):
        return dict(values)
    flat = {place: name for name, place in FLAGS.items()}
    return {
        flat.get((section, field), f"{section}.{field}"): value
        for section, fields in values.items()
        for field, value in fields.items()
    }


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run, in five sections. Defaults
    follow the paper.

    Attributes:
      data: what the model reads (`DataConfig`).
      model: the model and its hyperparameters (`ModelConfig`).
      training: how it is trained (`TrainingConfig`).
      evaluation: how it is tested (`EvaluationConfig`).
      execution: where it computes (`ExecutionConfig`): a resumed run may change it.

    Raises:
      ValueError: naming the field (``training.learning_rate=inf is invalid:
        ...``) of the first invalid value.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = dataclasses.field(default_factory=ExecutionConfig)

    def __post_init__(self):
        for name, section in SECTIONS.items():
            if not isinstance(getattr(self, name), section):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is invalid: must be a {section.__name__}"
                )
        data, weights = self.data, self.training.target_weights
        if weights is not None and data.targets is not None and len(weights) != len(data.targets):
            raise ValueError(
                f"training.target_weights={weights!r} is invalid: give one weight per target "
                f"({len(data.targets)}: {list(data.targets)})"
            )
        model = self.model
        anomaly_base = model.residual and model.residual_base in models.ANOMALY_BASES
        if anomaly_base and data.normalization != "climatology":
            raise ValueError(
                f"model.residual_base={model.residual_base!r} is invalid with "
                f"data.normalization={data.normalization!r}: its base is a forecast of the "
                "anomaly, so the inputs must be anomalies (data.normalization=climatology)"
            )
        if models.is_fitted(self.model.name) and (
            data.static or data.time_features or data.normalization == "climatology"
            or model.residual
        ):  # fmt: skip
            raise ValueError(
                f"model.name={self.model.name!r} fits each cell's own series: it takes no "
                "data.static, no data.time_features, no climatology data.normalization and no "
                "model.residual (model.arima_center=window forecasts the departures from the "
                "window's level)"
            )

    @classmethod
    def from_flags(cls, **values: Any) -> "Config":
        """The config of the defaults with ``values`` given by flat name
        (`FLAGS`): ``Config.from_flags(hidden_dim=8, epochs=1)``.

        Raises:
          ValueError: naming an unknown name, or the first invalid value.
        """
        return cls(**{name: section() for name, section in SECTIONS.items()}).override(**values)

    def override(self, **values: Any) -> "Config":
        """This config with ``values`` given by flat name (`FLAGS`):
        ``config.override(seed=1010, iterations=1)``."""
        unknown = sorted(set(values) - set(FLAGS))
        if unknown:
            raise ValueError(f"settings {unknown} are unknown: choose from {sorted(FLAGS)}")
        changes: dict[str, dict] = {}
        for flag, value in values.items():
            section, field = FLAGS[flag]
            changes.setdefault(section, {})[field] = value
        return dataclasses.replace(
            self,
            **{name: getattr(self, name).replace(**given) for name, given in changes.items()},
        )

    def flags(self) -> dict[str, Any]:
        """Every field by flat name (`FLAGS`)."""
        return {flag: getattr(getattr(self, s), f) for flag, (s, f) in FLAGS.items()}

    def replace(self, **sections: Section) -> "Config":
        """This config with whole sections replaced: ``config.replace(data=...)``."""
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, dict]:
        """The sections as nested dicts (what ``config.json`` holds)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, values: dict, source: str = "the config") -> "Config":
        """The config of nested sections (``{"data": {...}, ...}``: `to_dict`, a
        TOML file) or of flat names (the ``config.json`` of runs made before
        the sections); a section left out keeps its defaults.

        Raises:
          ValueError: naming ``source`` and the key, for an unknown section or
            key, and the first invalid value.
        """
        if not isinstance(values, dict):
            raise ValueError(f"{source} is not a config: expected a table of sections")
        nested = set(values) <= set(SECTIONS) and all(isinstance(v, dict) for v in values.values())
        if not nested:  # the flat config.json of an older run
            unknown = sorted(set(values) - set(FLAGS))
            if unknown:
                raise ValueError(
                    f"{source} has unknown settings {unknown}: it was not written by this "
                    "version of stconv"
                )
        for name, given in values.items() if nested else ():
            fields = [field.name for field in dataclasses.fields(SECTIONS[name])]
            unknown = sorted(set(given) - set(fields))
            if unknown:
                raise ValueError(
                    f"{source} has unknown keys {unknown} in [{name}]: choose from {fields}"
                )
        try:
            if not nested:
                return cls.from_flags(**values)
            return cls(**{name: SECTIONS[name](**given) for name, given in values.items()})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes the sections as JSON (`to_dict`)."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        """The config saved at ``path``: nested, or flat as older runs saved it.

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
        return cls.from_dict(values, f"file {path!r}")


def check_fitted_settings(config: Config, given: dict) -> None:
    """Raises ValueError naming the first setting ``given`` (by a flag or the
    config file, not a preset) other than its default that a model fitted in
    closed form would ignore (`stconv.models.NETWORK_SETTINGS`): a run's
    printed configuration (`stconv info --config`) holds every default."""
    if not models.is_fitted(config.model.name):
        return
    defaults = Config.from_flags()
    for flat in models.NETWORK_SETTINGS:
        section, field = FLAGS[flat]
        value = getattr(getattr(config, section), field)
        if flat in given and value != getattr(getattr(defaults, section), field):
            raise ValueError(
                f"{section}.{field}={value!r} is not used by model.name={config.model.name!r}, "
                "which fits each cell's series in closed form: leave it out"
            )
