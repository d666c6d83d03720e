"""Records the golden fixtures of ``tests/test_reference.py`` by running the reference.

The reference is the PyTorch implementation of STConvS2S and its baselines
(github AILAB-CEFET-RJ/stconvs2s, formerly MLRG-CEFET-RJ/stconvs2s). This
script is not run by the test suite and torch is not a dependency of stconv:
run it by hand in an environment of its own, with a checkout of the reference
named by ``STCONVS2S_REFERENCE``.

The fixtures come from two reference commits. Those with every input channel
forecast were recorded at a48c366; those with fewer output channels than input
channels (names ending in ``_out<N>``) at 8d8c866, the first commit whose
STConvS2S-R and -C take ``output_channels`` (its baselines and ablations do
not). The classes at a48c366 refuse ``output_channels``, and the fixtures
already recorded must not change: record only the missing ones, selected with
``--only SUBSTRING`` (repeatable; a fixture is recorded if its name holds any):

    python3.11 -m venv /tmp/torch-env
    /tmp/torch-env/bin/pip install torch==2.13.0 numpy pandas matplotlib
    git clone https://github.com/AILAB-CEFET-RJ/stconvs2s /tmp/stconvs2s
    git -C /tmp/stconvs2s checkout 8d8c866
    export STCONVS2S_REFERENCE=/tmp/stconvs2s
    /tmp/torch-env/bin/python tests/reference/record.py --only _out

Without ``--only`` it records every configuration of `CONFIGS` (at a48c366
only those without output channels can run). It writes one ``.npz`` per
configuration into ``tests/reference/fixtures/``, everything in float64 and
in the reference's layouts (activations ``(batch, channels, time, lat, lon)``,
PyTorch parameter names and shapes), except the initial values and inputs,
which are drawn in float32 and stored exactly as float32. Each group of
tensors is one flat vector, indexed in ``meta``. In the order recorded:

1. ``initial``: every parameter and buffer of the reference model, with its
   default initialisation, except that BatchNorm and LayerNorm scales, biases
   and running statistics are drawn away from their defaults (1 and 0), so
   that a scale swapped with a bias cannot go unnoticed. BatchNorm's
   ``num_batches_tracked`` is left out: at momentum 0.1 it plays no part.
2. ``train_output``: the train-mode forecast of ``inputs``; ``loss``: the
   paper's RMSE ``sqrt(MSE + 1e-6)`` against ``targets``; ``grad`` and
   ``input_grad``: its gradients with respect to every parameter and to the
   input.
3. ``running``: BatchNorm running statistics after two more train-mode
   forwards of ``inputs`` (three in all); ``eval_output``: the eval-mode
   forecast of ``inputs`` with them.
4. ``stepped``: the parameters after one ``torch.optim.RMSprop`` step with the
   paper's settings (lr 1e-3, alpha 0.9, eps 1e-6) on the gradients of 2.

``meta`` is a JSON string: the model, its configuration (with
``output_channels`` only where the configuration gives it), the number of
reference parameter and buffer elements (without ``num_batches_tracked``),
the reference's commit, torch's version and the index of each flat vector.
Dropout is 0 in every fixture:
PyTorch's and JAX's random masks cannot be matched.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures"
SEED = 2021
BATCH = 2
INPUT_LENGTH = 5
# Train-mode forwards after the one differentiated, before the eval-mode one.
STATS_FORWARDS = 2

# name, horizon, (lat, lon), input channels, num_layers, hidden_dim, kernel_size
# and, optionally, output channels (the first ones forecast; absent or None: all,
# and the reference class is called without ``output_channels``, as at a48c366).
# Horizons beyond the input only where the reference has a temporal generator
# (STConvS2S-R and -C) or a recurrence (ConvLSTM, PredRNN, MIM); non-square
# grids wherever the reference runs them (not PredRNN and MIM, whose
# LayerNorms are built for square grids).
CONFIGS = [
    ("stconvs2s-r", 5, (5, 5), 1, 2, 3, 3),
    ("stconvs2s-r", 15, (4, 4), 1, 2, 3, 3),
    ("stconvs2s-r", 10, (5, 6), 1, 2, 2, 5),
    ("stconvs2s-c", 5, (5, 5), 1, 2, 3, 3),
    ("stconvs2s-c", 25, (3, 4), 1, 3, 2, 3),
    ("conv3d", 5, (5, 5), 1, 3, 3, 3),
    ("conv2plus1d", 5, (4, 6), 2, 2, 3, 3),
    ("enc-dec3d", 5, (7, 10), 1, 2, 2, 5),
    ("ablation-stconvs2s-nocausalconstraint", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-notemporal", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-r-nochannelincrease", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-c-nochannelincrease", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-r-inverted", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-c-inverted", 5, (4, 6), 1, 2, 3, 3),
    ("ablation-stconvs2s-r-notfactorized", 5, (5, 5), 1, 2, 3, 3),
    ("ablation-stconvs2s-c-notfactorized", 5, (4, 6), 1, 2, 3, 3),
    ("convlstm", 3, (4, 4), 1, 2, 3, 3),
    ("convlstm", 10, (3, 5), 2, 2, 2, 3),
    ("predrnn", 10, (3, 3), 2, 2, 2, 3),
    ("mim", 10, (3, 3), 1, 3, 2, 3),
    # Fewer output channels than input channels, recorded at 8d8c866.
    ("stconvs2s-r", 5, (5, 5), 3, 2, 3, 3, 1),
    ("stconvs2s-r", 10, (3, 5), 3, 2, 2, 3, 2),
    ("stconvs2s-c", 10, (4, 6), 2, 2, 3, 3, 1),
    ("stconvs2s-c", 5, (5, 5), 3, 2, 3, 3, 2),
]


def reference_classes() -> dict:
    """The reference's model classes by registry name (as in its ``ml_builder.py``)."""
    from model import ablation, baselines
    from model.stconvs2s import STConvS2S_C, STConvS2S_R

    return {
        "stconvs2s-r": STConvS2S_R,
        "stconvs2s-c": STConvS2S_C,
        "conv3d": baselines.Conv3D,
        "conv2plus1d": baselines.Conv2Plus1D,
        "enc-dec3d": baselines.Endocer_Decoder3D,
        "convlstm": baselines.STConvLSTM,
        "predrnn": baselines.PredRNN,
        "mim": baselines.MIM,
        "ablation-stconvs2s-nocausalconstraint": ablation.AblationSTConvS2S_NoCausalConstraint,
        "ablation-stconvs2s-notemporal": ablation.AblationSTConvS2S_NoTemporal,
        "ablation-stconvs2s-r-nochannelincrease": ablation.AblationSTConvS2S_R_NoChannelIncrease,
        "ablation-stconvs2s-c-nochannelincrease": ablation.AblationSTConvS2S_C_NoChannelIncrease,
        "ablation-stconvs2s-r-inverted": ablation.AblationSTConvS2S_R_Inverted,
        "ablation-stconvs2s-c-inverted": ablation.AblationSTConvS2S_C_Inverted,
        "ablation-stconvs2s-r-notfactorized": ablation.AblationSTConvS2S_R_NotFactorized,
        "ablation-stconvs2s-c-notfactorized": ablation.AblationSTConvS2S_C_NotFactorized,
    }


def output_channels(config: tuple) -> int | None:
    """A configuration's output channels: its 8th element, None where absent."""
    return config[7] if len(config) > 7 else None


def fixture_name(config: tuple) -> str:
    name, horizon, grid, channels, num_layers, hidden_dim, kernel_size = config[:7]
    outputs = output_channels(config)
    suffix = "" if outputs is None else f"_out{outputs}"
    return (
        f"{name}_{grid[0]}x{grid[1]}x{channels}_L{num_layers}d{hidden_dim}k{kernel_size}"
        f"_h{horizon}{suffix}"
    )


def move_norms_off_defaults(model: torch.nn.Module, generator: torch.Generator) -> None:
    """BatchNorm and LayerNorm scales near 1, biases and running means near 0,
    running variances in [0.5, 1.5]: every such value differs from its twin."""
    norms = (torch.nn.BatchNorm3d, torch.nn.LayerNorm)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, norms):
                continue
            shape = module.weight.shape
            module.weight.copy_(1 + 0.2 * torch.randn(shape, generator=generator))
            module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))


@contextlib.contextmanager
def cloning_split():
    """``torch.split`` returning copies instead of views, while recording.

    The reference's MIM adds to the gates it splits off in place
    (``i_ += i_x``); torch 2 refuses that on split views when gradients are
    needed. On copies the values are the same and autograd accepts it.
    """
    split = torch.split

    def cloned(*args, **kwargs):
        return tuple(part.clone() for part in split(*args, **kwargs))

    torch.split = cloned
    try:
        yield
    finally:
        torch.split = split


def pack(tensors: dict, dtype=np.float64) -> tuple[np.ndarray, list]:
    """One flat vector of ``tensors`` and its ``[name, shape]`` index (one zip
    entry instead of one per tensor keeps the fixtures small)."""
    index = [[key, list(value.shape)] for key, value in tensors.items()]
    flat = torch.cat([torch.zeros(0)] + [value.detach().reshape(-1) for value in tensors.values()])
    return flat.numpy().astype(dtype), index


def record(classes: dict, config: tuple, commit: str) -> tuple[str, dict]:
    name, horizon, grid, channels, num_layers, hidden_dim, kernel_size = config[:7]
    outputs = output_channels(config)
    # Not passed at all without output channels: a48c366's classes refuse it.
    options = {} if outputs is None else {"output_channels": outputs}
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    input_size = (BATCH, channels, INPUT_LENGTH, *grid)
    # Initial values and inputs are drawn in float32 and computed with in
    # float64: the fixture stores them exactly as float32, the results as float64.
    torch.set_default_dtype(torch.float32)
    model = classes[name](
        input_size, num_layers, hidden_dim, kernel_size, "cpu", 0.0, horizon, **options
    )
    move_norms_off_defaults(model, generator)
    recurrent = name in ("convlstm", "predrnn", "mim")
    output_length = horizon if recurrent else max(horizon, INPUT_LENGTH)
    inputs = torch.randn(input_size, generator=generator)
    target_channels = channels if outputs is None else outputs
    targets = torch.randn((BATCH, target_channels, output_length, *grid), generator=generator)
    torch.set_default_dtype(torch.float64)  # the recurrent models' zero states
    model, inputs, targets = model.double(), inputs.double(), targets.double()

    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    parameters = dict(model.named_parameters())
    fixture = {"inputs": inputs.numpy().astype(np.float32)}
    fixture["targets"] = targets.numpy().astype(np.float32)
    index = {}
    fixture["initial"], index["initial"] = pack(state, np.float32)

    model.train()
    inputs.requires_grad_(True)
    with cloning_split():
        output = model(inputs)
    loss = torch.sqrt(torch.nn.functional.mse_loss(output, targets) + 1e-6)
    loss.backward()
    fixture["train_output"] = output.detach().numpy()
    fixture["loss"] = np.array(loss.item())
    fixture["input_grad"] = inputs.grad.numpy()
    # A parameter that does not reach the loss (ConvLSTM's last feedback
    # projection when no step is fed back) has no gradient: it is zero.
    grads = {k: torch.zeros_like(p) if p.grad is None else p.grad for k, p in parameters.items()}
    fixture["grad"], index["grad"] = pack(grads)

    with torch.no_grad():
        for _ in range(STATS_FORWARDS):
            model(inputs)
        running = {k: v for k, v in model.state_dict().items() if "running_" in k}
        fixture["running"], index["running"] = pack(running)
        model.eval()
        fixture["eval_output"] = model(inputs).numpy()

    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-6)
    optimizer.step()
    fixture["stepped"], index["stepped"] = pack(parameters)

    meta = dict(
        model=name,
        input_length=INPUT_LENGTH,
        horizon=horizon,
        grid=list(grid),
        channels=channels,
        num_layers=num_layers,
        hidden_dim=hidden_dim,
        kernel_size=kernel_size,
        **({} if outputs is None else {"output_channels": outputs}),
        batch=BATCH,
        seed=SEED,
        stats_forwards=1 + STATS_FORWARDS,
        reference_class=type(model).__name__,
        reference_elements=sum(v.numel() for v in state.values()),
        reference_commit=commit,
        torch_version=torch.__version__,
        index=index,
    )
    fixture["meta"] = np.array(json.dumps(meta))
    return fixture_name(config), fixture


def selected_configs(only: list[str] | None) -> list[tuple]:
    """The configurations of `CONFIGS` whose fixture name holds one of ``only``
    (all of them without ``only``)."""
    configs = [c for c in CONFIGS if not only or any(s in fixture_name(c) for s in only)]
    if not configs:
        sys.exit(f"--only {only} matches no configuration")
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUBSTRING",
        help="record only the fixtures whose name holds SUBSTRING (repeatable)",
    )
    configs = selected_configs(parser.parse_args().only)
    reference = os.environ.get("STCONVS2S_REFERENCE")
    if not reference or not (Path(reference) / "model" / "stconvs2s.py").is_file():
        sys.exit(
            f"STCONVS2S_REFERENCE={reference!r} is invalid: set it to a checkout of "
            "github MLRG-CEFET-RJ/stconvs2s (the folder holding model/stconvs2s.py)"
        )
    sys.path.insert(0, reference)
    commit = subprocess.run(
        ["git", "-C", reference, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    torch.use_deterministic_algorithms(True)
    classes = reference_classes()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    total = 0
    for config in configs:
        stem, fixture = record(classes, config, commit)
        path = FIXTURES / f"{stem}.npz"
        np.savez_compressed(path, **fixture)
        total += path.stat().st_size
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")
    print(f"{len(configs)} fixtures, {total / 1024:.0f} KB in all (reference commit {commit})")


if __name__ == "__main__":
    main()
