"""Quickstart demo: STConvS2S-R on the embedded HadCM3 A1B temperature field.

Builds STConvS2S-R at the paper's CHIRPS size (2 layers, 8 filters, kernel 5),
cuts one batch of 5 -> 5 year windows from the embedded dataset
(iris-sample-data's annual-mean surface air temperature over North America,
1860-2099), then runs a forward pass and jit-compiled train steps on that one
batch and prints the training loss falling.

    python -m stconv.demo
"""

import argparse
import time

import jax
import numpy as np
from flax import nnx

from stconv import models
from stconv.datasets import EMBEDDED_FILE, load_dataset
from stconv.pipeline import epoch_batches
from stconv.train import count_parameters, create_optimizer, make_train_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="train steps to run")
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=8)
    parser.add_argument("--kernel-size", type=int, default=5)
    args = parser.parse_args(argv)
    input_length = horizon = 5

    dataset = load_dataset("hadcm3-a1b", input_length=input_length, horizon=horizon)
    train_windows = dataset.splits["train"]
    print(f"dataset: hadcm3-a1b, {EMBEDDED_FILE}")
    print(
        f"  {dataset.grid['channel']} on a {len(dataset.grid['lat'])} x "
        f"{len(dataset.grid['lon'])} grid in {dataset.grid['units']}, "
        f"{len(train_windows)} training windows of {input_length} -> {horizon} years"
    )
    batch = next(epoch_batches(train_windows, args.batch_size, shuffle=False))
    inputs, targets = batch["inputs"], batch["targets"]
    std = float(dataset.normalizer.std[0])

    model = models.create(
        "stconvs2s-r",
        input_shape=inputs.shape[1:],
        horizon=horizon,
        num_layers=args.num_layers,
        hidden_dim=args.hidden_dim,
        kernel_size=args.kernel_size,
    )
    print(f"model: stconvs2s-r, {count_parameters(model):,} trainable parameters")

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
    optimizer = create_optimizer(model)
    train_step, state = make_train_step(model, optimizer)
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        state, metrics = train_step(state, batch)
        loss = float(metrics["loss"])
        note = " (includes compilation)" if step == 1 else ""
        print(
            f"train step {step:3d}: loss {loss:.4f} (normalised RMSE, {loss * std:.2f} K), "
            f"{time.perf_counter() - start:.1f} s{note}"
        )


if __name__ == "__main__":
    main()
