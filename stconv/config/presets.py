"""Named presets: the paper's settings, the README's main job and the
comparison on data with seasons (``weather``), by flat names
(`stconv.config.run.FLAGS`, the flags' names).

    config = get_config("paper-cfsr", horizon=15, data_path="data/...")

(``stconv train`` takes them with its ``preset`` flag, the flags given over them.)

The paper's settings per dataset and model are also what
``experiments/reproduce.py`` and ``experiments/benchmark.py`` run
(`cell_settings`).
"""

from stconv.config.run import Config

# Castro et al. 2021, Section 4: CFSR 3 layers of 32 filters, CHIRPS 2 of 8,
# kernel 5, raw values. The embedded data warm beyond their training range:
# per-cell normalization and residual forecasts, as in the README's main job.
DATASET_SETTINGS = {
    "cfsr": dict(num_layers=3, hidden_dim=32, kernel_size=5, normalization="none"),
    "chirps": dict(num_layers=2, hidden_dim=8, kernel_size=5, normalization="none"),
    "hadcm3-a1b": dict(
        num_layers=2, hidden_dim=8, kernel_size=5, normalization="cell", residual=True
    ),
}
# The paper's PredRNN (kernel 3) and its recurrent baselines' dropout.
MODEL_SETTINGS = {"predrnn": dict(kernel_size=3, dropout=0.5), "mim": dict(dropout=0.5)}
# Settings of single (model, dataset) cells: ARIMA around each window's mean
# on the embedded data, the counterpart of residual forecasts.
CELL_SETTINGS = {("arima", "hadcm3-a1b"): dict(arima_center="window")}

PRESETS = {
    # The README's main job on the embedded HadCM3 A1B field: residual forecasts
    # around the input mean (chosen on the validation split: validation RMSE
    # 0.8509 K against 0.8635 K around the last frame), three seeds.
    "main": dict(
        dataset="hadcm3-a1b",
        epochs=40,
        **DATASET_SETTINGS["hadcm3-a1b"],
        residual_base="mean",
        iterations=3,
    ),
    # Data with seasons (issue 28): t2m forecast from t2m, the winds, the static
    # orography and the calendar, as anomalies from the climatology by day of
    # year; sized so that its three seeds train in under 10 minutes on 2 cores,
    # the learning rate decaying along a cosine (chosen on the validation split:
    # best validation RMSE 2.226 K over the seeds against 2.242 K at a constant
    # rate; experiments/results/seasons.md).
    "weather": dict(
        dataset="weather",
        variables=("t2m", "u10", "v10"),
        targets=("t2m",),
        static="weather:orography",
        time_features=True,
        normalization="climatology",
        num_layers=2,
        hidden_dim=8,
        kernel_size=5,
        batch_size=32,
        epochs=6,
        learning_rate_schedule="cosine",
        iterations=3,
    ),
    # The paper's Table 2 settings (the files are the user's: data_path=...).
    "paper-cfsr": dict(dataset="cfsr", **DATASET_SETTINGS["cfsr"]),
    "paper-chirps": dict(dataset="chirps", **DATASET_SETTINGS["chirps"]),
}


def cell_settings(model: str, dataset: str) -> dict:
    """The paper's settings of one (model, dataset) cell of its tables."""
    return {
        **DATASET_SETTINGS.get(dataset, {}),
        **MODEL_SETTINGS.get(model, {}),
        **CELL_SETTINGS.get((model, dataset), {}),
    }


def get_config(name: str, **overrides) -> Config:
    """The preset ``name`` with ``overrides`` by flat name (``epochs=10``).

    Raises:
      ValueError: naming the preset and the valid names, if it is unknown.
    """
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is unknown: choose from {sorted(PRESETS)}")
    return Config.from_flags(**{**PRESETS[name], **overrides})
