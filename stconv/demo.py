"""Quickstart demo: STConvS2S-R on the embedded HadCM3 A1B temperature field.

Builds STConvS2S-R at the paper's CHIRPS size (2 layers, 8 filters, kernel 5),
cuts one batch of 5 -> 5 year windows from the embedded dataset
(iris-sample-data's annual-mean surface air temperature over North America,
1860-2099), then runs a forward pass and jit-compiled train steps on that one
batch and prints the training loss falling.

    python -m stconv.demo
"""

import argparse
import os
import time

import iris_sample_data
import jax
import numpy as np
import xarray as xr
from flax import nnx

from stconv import models, train

EMBEDDED_FILE = os.path.join(iris_sample_data.path, "A1B_north_america.nc")
EMBEDDED_VARIABLE = "air_temperature"


def load_embedded_temperature() -> xr.DataArray:
    """The embedded dataset: air temperature (K), dims (time, latitude, longitude)."""
    with xr.open_dataset(EMBEDDED_FILE) as dataset:
        return dataset[EMBEDDED_VARIABLE].load()


def first_windows(
    field: np.ndarray, batch_size: int, input_length: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch_size`` windows, stride 1, as channels-last
    ``(batch, time, lat, lon, 1)`` inputs and targets."""
    length = input_length + horizon
    if field.shape[0] < batch_size + length - 1:
        raise ValueError(
            f"batch_size={batch_size} is invalid: the field has {field.shape[0]} steps, "
            f"enough for {field.shape[0] - length + 1} windows"
        )
    windows = np.stack([field[i : i + length] for i in range(batch_size)])[..., None]
    return windows[:, :input_length], windows[:, input_length:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="train steps to run")
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=8)
    parser.add_argument("--kernel-size", type=int, default=5)
    args = parser.parse_args(argv)
    input_length = horizon = 5

    temperature = load_embedded_temperature()
    print(f"dataset: {EMBEDDED_FILE}")
    print(
        f"  {EMBEDDED_VARIABLE} {dict(temperature.sizes)} in {temperature.attrs.get('units')}, "
        f"{str(temperature.time.values[0])[:4]}-{str(temperature.time.values[-1])[:4]}"
    )
    # Normalise with statistics of the first 60% of years (the training years).
    values = temperature.values.astype(np.float32)
    train_years = values[: int(0.6 * len(values))]
    mean, std = train_years.mean(), train_years.std()
    inputs, targets = first_windows((values - mean) / std, args.batch_size, input_length, horizon)

    model = models.create(
        "stconvs2s-r",
        input_shape=inputs.shape[1:],
        horizon=horizon,
        num_layers=args.num_layers,
        hidden_dim=args.hidden_dim,
        kernel_size=args.kernel_size,
    )
    print(f"model: stconvs2s-r, {train.count_parameters(model):,} trainable parameters")

    start = time.perf_counter()
    model.eval()
    predictions = jax.block_until_ready(nnx.jit(lambda model, x: model(x))(model, inputs))
    rmse = float(np.sqrt(np.mean((np.asarray(predictions) - targets) ** 2)) * std)
    print(
        f"forward: {inputs.shape} -> {predictions.shape} in {time.perf_counter() - start:.1f} s "
        "(includes compilation), "
        f"RMSE of the untrained model {rmse:.2f} K"
    )

    model.train()
    optimizer = train.create_optimizer(model)
    train_step, state = train.make_train_step(model, optimizer)
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        state, metrics = train_step(state, (inputs, targets))
        loss = float(metrics["loss"])
        note = " (includes compilation)" if step == 1 else ""
        print(
            f"train step {step:3d}: loss {loss:.4f} (normalised RMSE, {loss * std:.2f} K), "
            f"{time.perf_counter() - start:.1f} s{note}"
        )


if __name__ == "__main__":
    main()
