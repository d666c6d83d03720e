"""Every model with a reference counterpart against golden fixtures recorded from it.

The fixtures (``tests/reference/fixtures/*.npz``) were recorded by running the
reference PyTorch implementation (github AILAB-CEFET-RJ/stconvs2s, formerly
MLRG-CEFET-RJ/stconvs2s) in float64 with ``tests/reference/record.py``, which
says what each holds: at its commit a48c366, and at 8d8c866 those with fewer
output channels than input channels (``output_channels`` in their meta, names
ending in ``_out<N>``). Only STConvS2S-R and -C have a reference counterpart
for output channels: the reference's baselines and ablations do not take
``output_channels`` and always forecast every input channel. Each test here
loads one, copies the reference's initial weights into the stconv model of the
same configuration (`stconv.models.reference_weights`), replays what the
reference did, in float64, and asserts:

- train-mode forecast and RMSE loss: 1e-10 relative;
- gradients of the loss with respect to the input and every parameter: 1e-9;
- BatchNorm running statistics after three train-mode forwards, and the
  eval-mode forecast with them: 1e-10 (PyTorch's unbiased running variance);
- every parameter after one step of the paper's RMSprop: 1e-9;
- the fixture, the reference and stconv hold the same number of parameter
  and buffer elements.

"Relative" is to the largest magnitude of the compared array. float64 is
enabled only inside these tests (``jax.enable_x64``).

No fixture exists where the reference cannot run (README, "Baselines and
ablations"): forecasts beyond the input length by the convolutional
baselines and the ablations, which have no temporal generator there;
PredRNN and MIM on non-square grids (their LayerNorms are built for square
ones) or with a horizon shorter than the input (they fail there); STConvS2S
with ``input_length < horizon < 2 * input_length`` (the reference's
generator then builds mismatched layers). Dropout is 0 in every fixture:
PyTorch's and JAX's random masks cannot be matched (dropout's scaling is
tested in ``test_stconvs2s.py`` and ``test_recurrent.py``).
"""

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv import models
from stconv.models.reference_weights import (
    WEIGHT_MAPS,
    activations_to_stconv,
    load_reference_weights,
    to_stconv_layout,
    weight_map,
)
from stconv.training.losses import rmse_loss
from stconv.training.step import create_optimizer, forecast

FIXTURES = sorted((Path(__file__).parent / "reference" / "fixtures").glob("*.npz"))
OUTPUT_TOLERANCE = 1e-10
GRADIENT_TOLERANCE = 1e-9
# XLA's CPU backend compiles about twice as fast without its optimisations;
# the replays run once, on tiny arrays.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def unpack(flat: np.ndarray, index: list) -> dict[str, np.ndarray]:
    """A fixture's flat vector as ``{name: float64 array}``."""
    arrays, start = {}, 0
    for name, shape in index:
        size = int(np.prod(shape))
        arrays[name] = flat[start : start + size].reshape(shape).astype(np.float64)
        start += size
    assert start == flat.size
    return arrays


def load_fixture(path: Path) -> dict:
    with np.load(path) as data:
        fixture = {key: data[key] for key in data.files}
    fixture["meta"] = meta = json.loads(str(fixture["meta"]))
    for group, index in meta["index"].items():
        fixture[group] = unpack(fixture[group], index)
    return fixture


def build(meta: dict) -> nnx.Module:
    # RBG keys: XLA compiles their random draws far faster than threefry's.
    return models.create(
        meta["model"],
        input_shape=(meta["input_length"], *meta["grid"], meta["channels"]),
        horizon=meta["horizon"],
        num_layers=meta["num_layers"],
        hidden_dim=meta["hidden_dim"],
        kernel_size=meta["kernel_size"],
        output_channels=meta.get("output_channels"),
        rngs=nnx.Rngs(jax.random.key(0, impl="rbg")),
    )


def replay(model: nnx.Module, fixture: dict) -> dict:
    """What ``record.py`` did with the reference, with stconv's model, loss and
    optimizer, in one compilation: the train-mode forecast, loss and gradients,
    two more train-mode forwards, the eval-mode forecast, one optimizer step.

    Returns:
      The results as numpy arrays, the gradients as an `nnx.State`, and the
      model with its statistics and parameters as they are at the end.
    """
    meta = fixture["meta"]
    inputs = jnp.asarray(activations_to_stconv(fixture["inputs"].astype(np.float64)))
    targets = jnp.asarray(activations_to_stconv(fixture["targets"].astype(np.float64)))
    horizon = targets.shape[1]
    model.eval()
    eval_graph = nnx.graphdef(model)
    model.train()
    graphdef, state = nnx.split((model, create_optimizer(model)))

    def loss_fn(model, inputs):
        outputs = forecast(model, inputs, horizon)
        # The fixture's targets hold its output channels; no broadcasting.
        assert outputs.shape == targets.shape, f"{outputs.shape} != {targets.shape}"
        return rmse_loss(outputs, targets), outputs

    def run(state, inputs):
        model, optimizer = nnx.merge(graphdef, state)
        gradients = nnx.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
        (loss, outputs), (grads, input_grad) = gradients(model, inputs)
        for _ in range(meta["stats_forwards"] - 1):
            model(inputs)
        eval_outputs = forecast(nnx.merge(eval_graph, nnx.state(model)), inputs, horizon)
        optimizer.update(model, grads)
        results = dict(
            loss=loss, train_output=outputs, input_grad=input_grad, eval_output=eval_outputs
        )
        return results, grads, nnx.state((model, optimizer))

    compiled = jax.jit(run).lower(state, inputs).compile(FAST_COMPILE)
    results, grads, state = compiled(state, inputs)
    nnx.update(model, state[0])
    results = {key: np.asarray(value) for key, value in results.items()}
    return dict(results, grads=grads, model=model)


def replay_fixture(path: Path) -> tuple[dict, dict]:
    """A fixture and stconv's replay of it, in float64."""
    with jax.enable_x64(True):
        fixture = load_fixture(path)
        model = build(fixture["meta"])
        load_reference_weights(model, fixture["meta"]["model"], fixture["initial"])
        return fixture, replay(model, fixture)


@pytest.fixture(scope="module")
def replays(request) -> dict[Path, Future]:
    """The replays of the fixtures that the selected tests use, two at a time:
    XLA compiles one while Python traces the next (compiling takes most of
    the time)."""
    selected = {
        item.callspec.params["case"]
        for item in request.session.items
        if "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {path: pool.submit(replay_fixture, path) for path in FIXTURES if path in selected}


@pytest.fixture(params=FIXTURES, ids=lambda path: path.stem)
def case(request, replays):
    return replays[request.param].result()


def assert_close(actual, expected, tolerance, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.float64, f"{what}: computed in {actual.dtype}"
    scale = max(np.max(np.abs(expected)), 1e-300)
    error = np.max(np.abs(actual - expected)) / scale
    assert error <= tolerance, f"{what}: relative error {error:.2e} > {tolerance:.0e}"


def variables(model: nnx.Module, kind) -> dict:
    return {path: np.asarray(v[...]) for path, v in nnx.to_flat_state(nnx.state(model, kind))}


def test_every_model_with_a_reference_counterpart_has_a_fixture():
    metas = [load_fixture(path)["meta"] for path in FIXTURES]
    assert {meta["model"] for meta in metas} == set(WEIGHT_MAPS)
    for meta in metas:  # what made each fixture
        assert len(meta["reference_commit"]) == 40 and meta["torch_version"].startswith("2.")
    fewer = [meta for meta in metas if "output_channels" in meta]
    assert {meta["model"] for meta in fewer} == {"stconvs2s-r", "stconvs2s-c"}
    for meta in fewer:
        assert 1 <= meta["output_channels"] < meta["channels"]
    assert set(WEIGHT_MAPS) <= set(models.available())


def test_element_counts_match(case):
    fixture, result = case
    recorded = sum(value.size for value in fixture["initial"].values())
    ours = sum(
        v.size for v in variables(result["model"], nnx.Any(nnx.Param, nnx.BatchStat)).values()
    )
    assert recorded == fixture["meta"]["reference_elements"] == ours


def test_train_mode_forecast_and_loss(case):
    fixture, result = case
    expected = activations_to_stconv(fixture["train_output"])
    assert_close(result["train_output"], expected, OUTPUT_TOLERANCE, "train-mode forecast")
    assert_close(result["loss"], fixture["loss"], OUTPUT_TOLERANCE, "loss")


def test_input_gradient(case):
    fixture, result = case
    expected = activations_to_stconv(fixture["input_grad"])
    assert_close(result["input_grad"], expected, GRADIENT_TOLERANCE, "input gradient")


def assert_group_close(fixture: dict, group: str, result: dict, ours: dict, tolerance: float):
    """Every reference tensor of the fixture's ``group`` against ``ours`` (stconv
    paths to arrays), in stconv's layout; the two must hold the same tensors."""
    entries = weight_map(fixture["meta"]["model"], result["model"])
    entries = [entry for entry in entries if entry.reference in fixture[group]]
    assert len(entries) == len(fixture[group]) == len(ours)
    for entry in entries:
        theirs = to_stconv_layout(fixture[group][entry.reference], entry.layout)
        assert_close(ours[entry.path], theirs, tolerance, f"{group} {entry.reference}")


def test_parameter_gradients(case):
    fixture, result = case
    grads = {path: np.asarray(v) for path, v in nnx.to_flat_state(result["grads"])}
    assert_group_close(fixture, "grad", result, grads, GRADIENT_TOLERANCE)


def test_running_statistics_and_eval_mode_forecast(case):
    fixture, result = case
    statistics = variables(result["model"], nnx.BatchStat)
    assert_group_close(fixture, "running", result, statistics, OUTPUT_TOLERANCE)
    expected = activations_to_stconv(fixture["eval_output"])
    assert_close(result["eval_output"], expected, OUTPUT_TOLERANCE, "eval-mode forecast")


def test_parameters_after_one_rmsprop_step(case):
    fixture, result = case
    parameters = variables(result["model"], nnx.Param)
    assert_group_close(fixture, "stepped", result, parameters, GRADIENT_TOLERANCE)


def test_float64_stays_inside_these_tests(replays):
    for future in replays.values():
        future.result()  # every replay has run
    assert not jax.config.jax_enable_x64
    assert jnp.zeros(1).dtype == jnp.float32


def tiny_model(name: str = "stconvs2s-r", horizon: int = 5) -> nnx.Module:
    meta = dict(
        model=name, input_length=5, horizon=horizon, grid=(4, 4), channels=1, num_layers=2,
        hidden_dim=2, kernel_size=3,
    )  # fmt: skip
    return build(meta)


def reference_like_state_dict(model: nnx.Module, name: str) -> dict[str, np.ndarray]:
    """Zeros in the reference's names and shapes, by inverting the layouts' shapes."""
    shapes = {path: v.shape for path, v in nnx.to_flat_state(nnx.state(model))}
    state_dict = {}
    for entry in weight_map(name, model):
        shape = shapes[entry.path]
        if entry.layout in ("conv", "conv_transpose"):
            first, second = (-1, -2) if entry.layout == "conv" else (-2, -1)
            shape = (shape[first], shape[second], *shape[:-2])
        elif entry.layout == "channels_last":
            shape = (shape[-1], *shape[:-1])
        state_dict[entry.reference] = np.zeros(shape)
    return state_dict


def test_layouts_by_hand():
    kernel = np.arange(2 * 3 * 1 * 2 * 2).reshape(2, 3, 1, 2, 2)  # (out, in, kt, kh, kw)
    ours = to_stconv_layout(kernel, "conv")
    assert ours.shape == (1, 2, 2, 3, 2) and ours[0, 1, 0, 2, 1] == kernel[1, 2, 0, 1, 0]
    transposed = to_stconv_layout(kernel, "conv_transpose")  # (in, out, ...): flipped
    assert (
        transposed.shape == (1, 2, 2, 2, 3) and transposed[0, 1, 0, 1, 2] == kernel[1, 2, 0, 0, 1]
    )
    norm = np.arange(24).reshape(2, 3, 4)  # LayerNorm [C, H, W]
    assert to_stconv_layout(norm, "channels_last")[2, 3, 1] == norm[1, 2, 3]


def test_load_reference_weights_sets_every_variable():
    model = tiny_model()
    state_dict = reference_like_state_dict(model, "stconvs2s-r")
    state_dict["stconvs2s_r.conv_final.bias"] = np.array([0.5])
    load_reference_weights(model, "stconvs2s-r", state_dict)
    values = [np.asarray(v[...]) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    assert sum(np.count_nonzero(v) for v in values) == 1


def test_load_reference_weights_names_what_does_not_match():
    model = tiny_model()
    state_dict = reference_like_state_dict(model, "stconvs2s-r")
    missing = dict(state_dict)
    del missing["stconvs2s_r.conv.1.conv_layers.0.1.running_var"]
    with pytest.raises(ValueError, match=r"not in the state_dict \['stconvs2s_r.conv.1"):
        load_reference_weights(model, "stconvs2s-r", missing)
    extra = dict(state_dict, **{"stconvs2s_r.extra.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"not in the model \['stconvs2s_r.extra.weight'\]"):
        load_reference_weights(model, "stconvs2s-r", extra)
    wrong = dict(state_dict, **{"stconvs2s_r.conv_final.weight": np.zeros((1, 2, 3, 3, 2))})
    with pytest.raises(ValueError, match=r"conv_final.weight.*does not fit head.final.kernel"):
        load_reference_weights(model, "stconvs2s-r", wrong)
    tracked = dict(state_dict, **{"stconvs2s_r.conv.1.conv_layers.0.1.num_batches_tracked": 3})
    load_reference_weights(model, "stconvs2s-r", tracked)  # unused by either side


def test_models_without_a_reference_counterpart_are_refused():
    with pytest.raises(ValueError, match="'arima' has no reference counterpart"):
        weight_map("arima", tiny_model())
    ablation = tiny_model("ablation-stconvs2s-r-inverted", horizon=10)
    with pytest.raises(ValueError, match="no temporal generator"):
        weight_map("ablation-stconvs2s-r-inverted", ablation)
