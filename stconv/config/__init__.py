"""A run's configuration: `Config`, five sections of frozen dataclasses.

    config = Config.from_flags(hidden_dim=8, epochs=40)  # by flat (flag) names
    config.model.hidden_dim, config.training.epochs
    config = get_config("main", epochs=10)  # a preset, with changes

The modules: `sections` (the five sections, each field's help text and
checks), `run` (`Config`, the flat names `FLAGS`, config.json), `toml` (a
config as a TOML file) and `presets`. None of them loads JAX or Flax, so that
the command line parses and checks flags at once.
"""

from stconv.config.presets import PRESETS, cell_settings, get_config
from stconv.config.run import EXECUTION_FIELDS, FLAGS, Config
from stconv.config.sections import (
    COMPUTE_DTYPES,
    DATASET_NAMES,
    LEARNING_RATE_SCHEDULES,
    NORMALIZATIONS,
    PERTURBATION_SCALES,
    SECTIONS,
    DataConfig,
    EvaluationConfig,
    ExecutionConfig,
    ModelConfig,
    TrainingConfig,
    model_names,
)
from stconv.config.toml import load_toml, read_toml, to_toml

__all__ = [
    "COMPUTE_DTYPES",
    "DATASET_NAMES",
    "EXECUTION_FIELDS",
    "FLAGS",
    "LEARNING_RATE_SCHEDULES",
    "NORMALIZATIONS",
    "PERTURBATION_SCALES",
    "PRESETS",
    "SECTIONS",
    "Config",
    "DataConfig",
    "EvaluationConfig",
    "ExecutionConfig",
    "ModelConfig",
    "TrainingConfig",
    "cell_settings",
    "get_config",
    "load_toml",
    "model_names",
    "read_toml",
    "to_toml",
]
