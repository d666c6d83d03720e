"""bfloat16 mixed precision: it trains like float32 and keeps float32 state (tiny models)."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv import cli, models
from stconv.config import Config
from stconv.models.residual import Residual
from stconv.training.step import create_optimizer, make_predict, make_train_step

STEPS = 20
# Measured on the project's CPU: each step's bfloat16 loss is within 0.12%
# (stconvs2s-r) and 0.04% (convlstm) of float32's. 1% is about 2.5 bfloat16
# roundings; a wrong gradient would move the curve further (float32's falls
# by 29% (stconvs2s-r) and 4% (convlstm) over the 20 steps).
LOSS_RTOL = 0.01


# convlstm's dropout tests that the random streams advance in bfloat16 mode;
# stconvs2s-r has none: its dropout makes XLA's CPU compile 4x slower.
DROPOUT = {"convlstm": 0.1, "stconvs2s-r": 0.0}


def tiny(name: str) -> nnx.Module:
    return models.create(
        name,
        input_shape=(5, 8, 8, 1),
        horizon=5,
        num_layers=2,
        hidden_dim=4,
        kernel_size=3,
        dropout=DROPOUT[name],
        rngs=nnx.Rngs(0),
    )


def batch(seed: int = 1) -> dict:
    x = jax.random.normal(jax.random.key(seed), (4, 5, 8, 8, 1))
    return {"inputs": x, "targets": 0.5 * jnp.flip(x, axis=1)}


def raw(leaf: jax.Array) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


@functools.cache
def trained(name: str, compute_dtype: str | None):
    """``STEPS`` train steps on one fixed batch: the model, optimizer and losses."""
    model = tiny(name)
    optimizer = create_optimizer(model)
    train_step, state = make_train_step(model, optimizer, compute_dtype=compute_dtype)
    losses = []
    for _ in range(STEPS):
        state, metrics = train_step(state, batch())
        losses.append(float(metrics["loss"]))
    nnx.update((model, optimizer), state)
    return model, optimizer, np.array(losses)


@pytest.mark.parametrize("name", ["stconvs2s-r", "convlstm"])
def test_bfloat16_mode_trains(name):
    *_, f32 = trained(name, None)
    *_, bf16 = trained(name, "bfloat16")
    # convlstm's dropout makes its curve noisy: compare the first and last five steps
    assert np.all(np.isfinite(bf16)) and bf16[-5:].mean() < bf16[:5].mean()
    np.testing.assert_allclose(bf16, f32, rtol=LOSS_RTOL)


@pytest.mark.parametrize("name", ["stconvs2s-r", "convlstm"])
def test_bfloat16_state_stays_float32_like_float32_mode(name):
    model16, optimizer16, _ = trained(name, "bfloat16")
    model32, optimizer32, _ = trained(name, None)
    state16, state32 = nnx.state((model16, optimizer16)), nnx.state((model32, optimizer32))
    leaves16, leaves32 = jax.tree.leaves(state16), jax.tree.leaves(state32)
    assert jax.tree.structure(state16) == jax.tree.structure(state32)
    for leaf16, leaf32 in zip(leaves16, leaves32, strict=True):
        assert leaf16.dtype == leaf32.dtype  # float32 params, statistics, optimizer state
        if not jnp.issubdtype(leaf16.dtype, jnp.floating):
            # random streams and the optimizer's step count: the copy's updates came back
            np.testing.assert_array_equal(raw(leaf16), raw(leaf32))
    stats16 = jax.tree.leaves(nnx.state(model16, nnx.BatchStat))
    stats32 = jax.tree.leaves(nnx.state(model32, nnx.BatchStat))
    initial = jax.tree.leaves(nnx.state(tiny(name), nnx.BatchStat))
    for s16, s32, s0 in zip(stats16, stats32, initial, strict=True):
        assert not np.allclose(s16, s0)  # updated
        np.testing.assert_allclose(s16, s32, atol=0.1 * np.abs(s32).max())  # measured 5%


def matmul_operand_dtypes(jaxpr) -> list[set]:
    """Operand dtypes of every convolution and matrix product, in nested jaxprs too."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
            found.append({str(v.aval.dtype) for v in eqn.invars})
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else [param]:
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    found += matmul_operand_dtypes(sub)
    return found


@pytest.mark.parametrize("compute_dtype, expected", [(None, "float32"), ("bfloat16", "bfloat16")])
def test_train_step_computes_in_the_compute_dtype(compute_dtype, expected):
    model = tiny("convlstm")
    train_step, state = make_train_step(model, create_optimizer(model), compute_dtype=compute_dtype)
    dtypes = matmul_operand_dtypes(jax.make_jaxpr(train_step)(state, batch()).jaxpr)
    # forward and backward: the gate convolutions (spatial_conv custom VJP) and 1x1 products
    assert len(dtypes) >= 10 and all(d == {expected} for d in dtypes), dtypes


@pytest.mark.parametrize("name", ["stconvs2s-r", "convlstm"])
def test_bfloat16_predict_returns_float32_close_to_float32(name):
    model, _, _ = trained(name, None)
    inputs = batch(seed=2)["inputs"]
    f32 = make_predict(model, 5)(nnx.state(model), inputs)
    bf16 = make_predict(model, 5, compute_dtype="bfloat16")(nnx.state(model), inputs)
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, f32, atol=0.05 * float(jnp.abs(f32).max()))


def test_residual_stays_float32_on_raw_fields():
    # bfloat16 rounds 280 to steps of 2: only the network, which sees and
    # predicts changes from the last frame, may compute in bfloat16
    model = Residual(tiny("convlstm"))
    inputs = 280.0 + batch(seed=3)["inputs"]
    f32 = make_predict(model, 5)(nnx.state(model), inputs) - inputs[:, -1:]
    bf16 = make_predict(model, 5, "bfloat16")(nnx.state(model), inputs) - inputs[:, -1:]
    np.testing.assert_allclose(bf16, f32, atol=0.05 * float(jnp.abs(f32).max()))


def test_bad_compute_dtype_is_a_one_line_error(tmp_path, capsys):
    message = "compute_dtype='float16' is invalid: choose from ['float32', 'bfloat16']"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config.from_flags(compute_dtype="float16")
    model = tiny("convlstm")
    with pytest.raises(ValueError, match="compute_dtype='float16' is invalid"):
        make_train_step(model, create_optimizer(model), compute_dtype="float16")
    with pytest.raises(ValueError, match="compute_dtype='int8' is invalid"):
        make_predict(model, 5, compute_dtype="int8")
    args = ["train", "--workdir", str(tmp_path / "run"), "--compute-dtype", "float16"]
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert "--compute-dtype 'float16' is invalid: choose from" in error and error.count("\n") == 1


def test_config_without_compute_dtype_loads_as_float32(tmp_path):
    saved = Config().flags()  # the flat config.json of an older run
    del saved["compute_dtype"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Config.load(tmp_path / "config.json").training.compute_dtype == "float32"


def test_cli_trains_and_evaluates_in_bfloat16(tmp_path):
    workdir = str(tmp_path / "run")
    flags = ["--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2"]
    flags += ["--kernel-size", "3", "--epochs", "1", "--forecast-samples", "0", "--no-maps"]
    assert cli.main(["train", "--workdir", workdir, *flags, "--compute-dtype", "bfloat16"]) == 0
    with open(tmp_path / "run" / "results.json") as f:
        trained_results = json.load(f)
    assert np.isfinite(trained_results["synthetic_0"]["stconvs2s-r"]["rmse"])
    # the restored run predicts in bfloat16 too: the same test results
    assert cli.main(["evaluate", "--workdir", workdir]) == 0
    with open(tmp_path / "run" / "results.json") as f:
        assert json.load(f) == trained_results
