"""A run directory: the one place that names, writes and reads a run's files.

    run = RunDirectory("runs/hadcm3-a1b")
    run.config(), run.normalizer(), run.mask(), run.results()

A forecasting run holds ``config.json``, ``data.json`` (variables, units,
input shape), ``normalization.json``, ``mask.npy``, ``climatology.npy``,
``metrics.jsonl`` (one line per epoch), ``learning_curve.png``,
``checkpoints/{latest,best}``, ``results.json``, ``test_forecasts.nc`` and
``forecast_maps.png``; an ``arima`` run holds ``arima.npz`` instead of the
log, curve and checkpoints. A run of several iterations holds one run per
seed in ``seed-N`` and their ``summary.json``. A classification run holds
``results.json`` and, per model, a folder with ``metrics.jsonl``,
``checkpoints/latest`` and ``confusion_matrix.png``.
"""

import json
import os
from typing import Any

import numpy as np

from stconv.config import Config
from stconv.data.normalization import Normalizer
from stconv.training.checkpoints import Checkpoints


class RunDirectory:
    """The files of the run in ``path``.

    Readers raise ValueError naming the path and what is missing.
    """

    CONFIG = "config.json"
    DATA = "data.json"
    NORMALIZATION = "normalization.json"
    MASK = "mask.npy"
    CLIMATOLOGY = "climatology.npy"
    METRICS = "metrics.jsonl"
    RESULTS = "results.json"
    SUMMARY = "summary.json"
    ARIMA = "arima.npz"
    TEST_FORECASTS = "test_forecasts.nc"
    LEARNING_CURVE = "learning_curve.png"
    FORECAST_MAPS = "forecast_maps.png"
    CONFUSION_MATRIX = "confusion_matrix.png"  # each model of a classification run

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        """The path of the run's file ``name`` (one of the class's names)."""
        return os.path.join(self.path, name)

    def has(self, name: str) -> bool:
        return os.path.exists(self.file(name))

    def require(self, name: str, what: str) -> str:
        """The path of ``name``; ValueError if it does not exist yet."""
        if not self.has(name):
            raise ValueError(f"workdir {self.path!r} has no {name}: {what}")
        return self.file(name)

    def iteration(self, seed: int) -> "RunDirectory":
        """The run of one seed of a run of several iterations."""
        return RunDirectory(os.path.join(self.path, f"seed-{seed}"))

    def model(self, name: str) -> str:
        """The folder of one model of a classification run (`stconv.classification`)."""
        return os.path.join(self.path, name)

    def checkpoints(self) -> Checkpoints:
        return Checkpoints(self.path)

    # Configuration and data description.

    def config(self) -> Config:
        path = self.require(self.CONFIG, "it holds no run, train one first")
        return Config.load(path)

    def save_config(self, config: Config) -> None:
        os.makedirs(self.path, exist_ok=True)
        config.save(self.file(self.CONFIG))

    def save_data(self, dataset) -> None:
        """What a forecast of new data needs (`stconv.forecaster`): the
        normalization, variables, units and input shape, the mask and the
        training climatology (normalized) of a `stconv.data.registry.Dataset`."""
        dataset.normalizer.save(self.file(self.NORMALIZATION))
        description = {
            "variables": dataset.grid["channel"],
            "units": dataset.grid["units"],
            "input_shape": list(dataset.input_shape),
        }
        self.write_json(self.DATA, description)
        np.save(self.file(self.MASK), dataset.mask)
        np.save(self.file(self.CLIMATOLOGY), dataset.climatology)

    def data_description(self) -> dict:
        return self.read_json(self.DATA, "train the run first")

    def normalizer(self) -> Normalizer:
        return Normalizer.load(self.require(self.NORMALIZATION, "train the run first"))

    def mask(self) -> np.ndarray:
        return np.load(self.require(self.MASK, "train the run first"))

    def climatology(self) -> np.ndarray | None:
        """The normalized training climatology; None for runs made before it was saved."""
        return np.load(self.file(self.CLIMATOLOGY)) if self.has(self.CLIMATOLOGY) else None

    # Training log and results.

    def read_history(self, last_epoch: int) -> list[dict]:
        """Epoch rows up to ``last_epoch``; the log is rewritten without later rows."""
        rows = []
        if self.has(self.METRICS):
            with open(self.file(self.METRICS)) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        rows = [row for row in rows if row["epoch"] <= last_epoch]
        with open(self.file(self.METRICS), "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        return rows

    def append_history(self, row: dict) -> None:
        with open(self.file(self.METRICS), "a") as f:
            f.write(json.dumps(row) + "\n")

    def results(self) -> dict:
        return self.read_json(self.RESULTS, "train or evaluate the run first")

    def write_json(self, name: str, values: Any) -> None:
        with open(self.file(name), "w") as f:
            json.dump(values, f, indent=2)

    def read_json(self, name: str, what: str) -> Any:
        with open(self.require(name, what)) as f:
            return json.load(f)
