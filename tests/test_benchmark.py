"""experiments/benchmark.py on a tiny configuration: every field, the skipped path, resuming.

Nothing here asserts on speed.
"""

import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv import models
from stconv.models.conv_algorithms import conv
from stconv.models.layers import Conv
from stconv.training import heap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")

# Horizon 7 from 5 inputs: STConvS2S's temporal generator rejects it, ConvLSTM does not.
TINY = dict(
    grid=(8, 8),
    input_length=5,
    horizon=7,
    hyperparameters=dict(num_layers=1, hidden_dim=2, kernel_size=3),
    normalization="channel",
)
RUN_FIELDS = {
    "model", "config", "status", "hyperparameters", "parameters", "compile_s", "step_s",
    "step_times_s", "samples_per_s", "gflop_per_step", "gflop_per_s",
    "xla_gflop_per_step", "eval_compile_s", "eval_s",
    "eval_samples_per_s", "memory", "final_loss", "ceiling_gflop_per_s", "fraction_of_ceiling",
}  # fmt: skip


def experiment_script(name: str):
    """``experiments/NAME.py`` as a module with the tiny configuration added, while
    ``experiments/`` is on the path (for its `import benchmark_data, reproduce`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(EXPERIMENTS)
        spec = importlib.util.spec_from_file_location(name, os.path.join(EXPERIMENTS, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        patch.setitem(importlib.import_module("benchmark").CONFIGS, "tiny", TINY)  # imported
        if hasattr(module, "CONFIGS"):
            patch.setitem(module.CONFIGS, "tiny", TINY)
        yield module


@pytest.fixture(scope="module")
def benchmark():
    yield from experiment_script("benchmark")


def positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_paper_configurations(benchmark):
    assert (
        benchmark.describe(benchmark.CONFIGS["cfsr"]) == "32x32, 3 layers, 32 filters, k5, 5 -> 5"
    )
    assert benchmark.CONFIGS["cfsr-15"]["horizon"] == 15
    assert (
        benchmark.describe(benchmark.CONFIGS["chirps"]) == "50x50, 2 layers, 8 filters, k5, 5 -> 5"
    )
    # PredRNN as the paper trained it: kernel 3 (and dropout 0.5).
    predrnn = benchmark.model_kwargs("predrnn", benchmark.CONFIGS["cfsr"])
    assert (predrnn["kernel_size"], predrnn["dropout"], predrnn["hidden_dim"]) == (3, 0.5, 32)


def test_tiny_run_json_markdown_and_resume(benchmark, tmp_path):
    out = tmp_path / "benchmark.json"
    argv = [
        "--configs", "tiny", "--models", "stconvs2s-r", "convlstm", "--steps", "1",
        "--eval-batch-size", "3", "--batch-size", "4", "--matmul-size", "128",
        "--json", str(out), "--markdown", str(tmp_path / "benchmark.md"),
        "--data-dir", str(tmp_path / "data"), "--synthetic-steps", "100",
        "--pipeline-batches", "10",
    ]  # fmt: skip
    benchmark.main(argv)
    results = json.loads(out.read_text())

    assert set(results) == {
        "command", "date", "device", "ceiling", "settings", "configs", "runs", "pipeline",
    }  # fmt: skip
    assert results["device"]["platform"] == jax.devices()[0].platform
    assert results["device"]["device_count"] >= 1
    assert all(positive(results["ceiling"][key]) for key in results["ceiling"])

    skipped, run = results["runs"]
    assert (skipped["model"], skipped["status"]) == ("stconvs2s-r", "skipped")
    assert "horizon=7" in skipped["reason"]
    assert set(run) == RUN_FIELDS
    assert (run["model"], run["status"]) == ("convlstm", "ok")
    numbers = [value for key, value in run.items() if isinstance(value, int | float)]
    assert all(positive(value) for value in numbers), run
    assert run["memory"]["total_bytes"] > 0 and run["memory"]["process_peak_rss_bytes"] > 0
    # XLA counts the recurrence's loop body once; the model's count sees every step.
    assert run["gflop_per_step"] > run["xla_gflop_per_step"]

    pipeline = results["pipeline"]["tiny"]
    assert pipeline["fastest_model"] == "convlstm"
    assert positive(pipeline["samples_per_s"]) and pipeline["batches"] == 10
    assert pipeline["ratio"] == pytest.approx(pipeline["samples_per_s"] / run["samples_per_s"])
    assert isinstance(pipeline["meets_target"], bool)
    assert "synthetic" in pipeline["data"]
    table = (tmp_path / "benchmark.md").read_text()
    assert "| tiny | convlstm |" in table and "skipped: horizon=7" in table

    # Resuming runs nothing again but measures the pipeline and the ceiling anew.
    resumed = benchmark.main([*argv, "--resume"])
    assert resumed["runs"] == results["runs"]
    assert "ratio" in resumed["pipeline"]["tiny"]
    with pytest.raises(SystemExit):
        benchmark.main([*argv, "--resume", "--steps", "2"])


def test_flops_count_scan_iterations(benchmark):
    def f(x, w):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=10)[0]

    x = w = jnp.ones((16, 16))
    assert benchmark.jaxpr_flops(jax.make_jaxpr(f)(x, w).jaxpr) == 10 * 2 * 16**3

    def dead(x, w):
        _ = x @ w  # unused: XLA drops it, so must the count
        return x + 1

    assert benchmark.jaxpr_flops(benchmark.live(jax.make_jaxpr(dead)(x, w).jaxpr)) == 0

    conv = jax.jit(lambda x, k: benchmark.conv_general(x, k, (1, 1), ((1, 1), (1, 1)), (1, 1)))
    x, k = jnp.ones((2, 6, 6, 3)), jnp.ones((3, 3, 3, 4))
    assert benchmark.jaxpr_flops(jax.make_jaxpr(conv)(x, k).jaxpr) == 2 * (2 * 6 * 6 * 4) * 27


def test_model_flops_are_the_plain_convolutions(benchmark):
    """One same-padded (3, 3, 3) conv: its forward and its kernel gradient (the
    input gradient is dead), whatever formulation stconv runs it in."""
    model = Conv(1, 1, (3, 3, 3), padding=((1, 1),) * 3, rngs=nnx.Rngs(0))
    batch = {"inputs": jnp.ones((2, 4, 5, 5, 1)), "targets": jnp.ones((2, 4, 5, 5, 1))}
    assert benchmark.model_flops(model, batch) == 2 * (2 * (2 * 4 * 5 * 5) * 27)


def tiny_stconvs2s():
    """A fresh one-layer STConvS2S-R on an 8x8 grid (`conv_calls` traces a model once)."""
    return models.create(
        "stconvs2s-r", input_shape=(5, 8, 8, 1), horizon=5, num_layers=1, hidden_dim=2,
        kernel_size=3,
    )  # fmt: skip


def test_conv_calls_records_every_convolution(benchmark):
    calls = benchmark.conv_calls(tiny_stconvs2s(), (2, 5, 8, 8, 1))
    assert calls and all(len(kernel) == 5 for _, kernel, *_ in calls)


def test_benchmark_layers_times_every_convolution(benchmark):
    rows = benchmark.benchmark_layers(tiny_stconvs2s(), (2, 5, 8, 8, 1), repeats=1)
    calls = benchmark.conv_calls(tiny_stconvs2s(), (2, 5, 8, 8, 1))
    assert calls
    assert [row["kernel"] for row in rows] == [list(kernel) for _, kernel, *_ in calls]
    for row in rows:
        assert all(
            row[f"{label}_ms"] > 0
            for label in ("stconv", "direct", "xla", "forward", "train_forward")
        )


def test_direct_conv_is_conv_without_ffts(benchmark):
    """A 5x5 kernel between 32 channels runs through FFTs on the CPU; `direct_conv` does not."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 8, 8, 32))
    k = 0.1 * jax.random.normal(jax.random.key(1), (1, 5, 5, 32, 32))
    padding = ((0, 0), (2, 2), (2, 2))

    def jaxpr(fn):
        return str(jax.make_jaxpr(lambda x, k: fn(x, k, padding=padding))(x, k))

    assert "fft" in jaxpr(conv)
    assert "fft" not in jaxpr(benchmark.direct_conv)
    np.testing.assert_allclose(
        benchmark.direct_conv(x, k, padding=padding), conv(x, k, padding=padding), atol=1e-4
    )


def test_side_by_side_alternates_and_reports_ratios(benchmark, monkeypatch, tmp_path):
    """`benchmark_reference.compare` with scripted workers: no process, no torch."""
    import benchmark_reference

    calls = []

    def scripted(command):
        side = "reference" if "reference_step.py" in command[1] else "stconv"
        calls.append(side)
        seconds = {"stconv": 1.0, "reference": 2.0}[side] * (1 + 0.1 * len(calls))
        run = {"status": "ok", "step_s": seconds, "eval_samples_per_s": 10 / seconds}
        run["peak_rss_bytes"] = 2e9 if side == "stconv" else 1e9
        run["train_peak_rss_bytes"] = 1.5e9 if side == "stconv" else 0.5e9
        return {**run, "compile_s": 3.0} if side == "stconv" else {**run, "first_step_s": 4.0}

    monkeypatch.setattr(benchmark_reference, "run_worker", scripted)
    argv = ["--reference", "/ref", "--models", "predrnn", "--configs", "cfsr", "--repeats", "2"]
    argv += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    results = benchmark.main(argv)
    assert calls == ["stconv", "reference", "reference", "stconv"]  # the order alternates
    summary = results["pairs"][0]["summary"]
    # Repeat 1: 1.1 s against 2.4 s; repeat 2: 1.4 s against 2.6 s.
    assert summary["step_ratio"]["min"] == pytest.approx(1.1 / 2.4)
    assert summary["step_ratio"]["max"] == pytest.approx(1.4 / 2.6)
    assert summary["memory_ratio"] == pytest.approx(2.0)
    assert summary["train_memory_ratio"] == pytest.approx(3.0)
    table = (tmp_path / "r.md").read_text()
    assert "| predrnn | cfsr | 1.250 (1.100-1.400) | 2.500 (2.400-2.600) |" in table
    assert "| 3.0 | 1.50 / 0.50 | 2.00 / 1.00 |" in table  # compile, then both memories
    assert json.loads((tmp_path / "r.json").read_text())["repeats"] == 2
    # The reference is built with the model's own settings (PredRNN: kernel 3, dropout 0.5).
    command = benchmark_reference.reference_command(
        "predrnn", benchmark.CONFIGS["cfsr"], benchmark.parse_args(argv)
    )
    assert command[command.index("--kernel-size") + 1] == "3"
    assert command[command.index("--dropout") + 1] == "0.5"


def test_a_model_without_counterpart_is_timed_alone(benchmark, monkeypatch, tmp_path):
    import benchmark_reference

    monkeypatch.setattr(
        benchmark_reference,
        "run_worker",
        lambda c: {"status": "ok", "step_s": 1.0, "eval_samples_per_s": 5.0,
                   "peak_rss_bytes": 1e9, "compile_s": 2.0},
    )  # fmt: skip
    monkeypatch.setattr(benchmark_reference, "WEIGHT_MAPS", {})
    argv = ["--reference", "/ref", "--models", "convlstm", "--configs", "cfsr", "--repeats", "1"]
    results = benchmark.main([*argv, "--markdown", str(tmp_path / "r.md")])
    assert results["pairs"][0]["reference"] == []
    assert (
        "| convlstm | cfsr | 1.000 (1.000-1.000) | no counterpart |"
        in (tmp_path / "r.md").read_text()
    )


def test_the_worker_prints_one_json_line(benchmark, capsys):
    run = benchmark.main(["--worker", "--models", "convlstm", "--configs", "tiny", "--steps", "1"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["status"] == "ok" and printed["step_s"] == run["step_s"]
    assert positive(printed["peak_rss_bytes"]) and positive(printed["compile_s"])
    assert 0 < printed["train_peak_rss_bytes"] <= printed["peak_rss_bytes"]


def test_a_failed_reference_is_named_not_taken_for_no_counterpart(benchmark, monkeypatch, tmp_path):
    import benchmark_reference

    def worker(command):
        if "reference_step.py" in " ".join(command):
            return {"status": "failed", "reason": "RuntimeError: a view modified inplace"}
        return {"status": "ok", "step_s": 1.0, "eval_samples_per_s": 5.0,
                "peak_rss_bytes": 1e9, "compile_s": 2.0}  # fmt: skip

    monkeypatch.setattr(benchmark_reference, "run_worker", worker)
    argv = ["--reference", "/ref", "--models", "mim", "--configs", "cfsr", "--repeats", "1"]
    benchmark.main([*argv, "--markdown", str(tmp_path / "r.md")])
    table = (tmp_path / "r.md").read_text()
    assert (
        "| mim | cfsr | 1.000 (1.000-1.000) | failed: RuntimeError: a view modified inplace |"
        in (table)
    )


@pytest.fixture(scope="module")
def profile_step():
    yield from experiment_script("profile_step")


def test_operation_names_the_pass_and_the_jax_operation(profile_step):
    op = profile_step.operation
    assert op("jit(train_step)/transpose(jvp())/while/body/closed_call/concatenate") == (
        "backward",
        "concatenate",
    )
    assert op("jit(train_step)/jvp()/while/body/jit(_pad)/pad") == ("forward", "jit(_pad)/pad")
    assert op("jit(train_step)/add") == ("other", "add")
    line = '  %ynn_fusion.3 = f32[15,50,50,8]{3,2,1,0} fusion(%a), metadata={op_name="jit(f)/mul"}'
    assert profile_step.instruction_sources(line) == {
        "ynn_fusion.3": ("f32[15,50,50,8]{3,2,1,0}", "jit(f)/mul")
    }


@pytest.mark.parametrize("evaluate", [False, True])
def test_profile_adds_up_the_traced_operations(profile_step, evaluate, capsys):
    argv = ["--model", "convlstm", "--config", "tiny", "--steps", "1"] + ["--eval"] * evaluate
    rows = profile_step.main(argv)
    passes = {row["pass"] for row in rows}
    assert all(row["ms"] > 0 for row in rows)
    assert any(row["operation"].endswith("conv_general_dilated") for row in rows)
    assert ("backward" in passes) != evaluate  # a forecast has no backward pass
    assert "of XLA operations per step" in capsys.readouterr().out


@pytest.fixture(scope="module")
def forecast_forms():
    yield from experiment_script("forecast_forms")


def forms_taken() -> list[bool]:
    """Whether a strided convolution from 8 channels is XLA's, a 3D one to one
    channel is banded and a 2D one from 32 channels to 64 direct, in jaxprs traced
    now (fresh functions: traced jaxprs are cached by function)."""
    x, w = jnp.ones((1, 5, 9, 8, 8)), jnp.ones((5, 5, 5, 8, 8))
    frames, gate = jnp.ones((1, 9, 8, 32)), jnp.ones((5, 5, 32, 64))
    strided = jax.make_jaxpr(lambda x, w: conv(x, w, strides=(1, 2, 2), padding=((2, 2),) * 3))
    final = jax.make_jaxpr(lambda x, w: conv(x, w[..., :1], padding=((2, 2),) * 3))
    gates = jax.make_jaxpr(lambda x, w: conv(x, w, padding=((2, 2),) * 2))
    return [
        "window_strides=(1, 2, 2)" in str(strided(x, w)),
        "fft" not in str(final(x, w)),
        "fft" not in str(gates(frames, gate)),
    ]


def test_train_step_forms_turn_the_forecast_forms_off(forecast_forms):
    assert forms_taken() == [True, True, True]
    with forecast_forms.train_step_forms():
        assert forms_taken() == [False, False, False]
    assert forms_taken() == [True, True, True]


def test_forecast_forms_times_both_sides(forecast_forms, capsys):
    argv = ["--model", "convlstm", "--config", "tiny", "--eval-batch-size", "2", "--repeats", "2"]
    times = forecast_forms.main(argv)
    assert sorted(times) == ["forecast forms", "train-step forms"]
    assert all(len(seconds) == 2 and all(map(positive, seconds)) for seconds in times.values())
    assert capsys.readouterr().out.count(" median ") == 2


@pytest.fixture(scope="module")
def profile_memory():
    yield from experiment_script("profile_memory")


def test_memory_report_allocations_are_read_and_alike_ones_added_up(profile_memory):
    report = (
        "Memory Space: default (color=0)\n"
        "Total bytes: 6291488 (6.00MiB)\n"
        "  cumulative_size;       size;       offset; used_by_n_values; shapes_list\n"
        "  ------------------------------------------------------------\n"
        "    2.00MiB( 33%);    2.00MiB;            0;                2; 2\u00d7f32[5,15,80]\n"
        "    4.00MiB( 67%);    2.00MiB;      2097152;                2; 2\u00d7f32[5,15,80]\n"
        "    5.50MiB( 92%);    1.50MiB;      4194304;                1; c64[8,3]\n"
        "    6.00MiB(100%);        32B;      5767168;                1; f32[8]\n"
        "\n"
        "  cumulative_size;       size;       offset; used_by_n_values; shapes_list\n"
        "    9.00MiB(100%);    9.00MiB;            0;                1; f32[9]\n"
    )
    rows = profile_memory.allocations(report)  # the default memory space only
    assert [row["bytes"] for row in rows] == [2 * 2**20, 2 * 2**20, 1.5 * 2**20, 32]
    groups = profile_memory.largest_groups(rows, top=2)
    assert groups == [
        {"shapes": "2\u00d7f32[5,15,80]", "count": 2, "bytes": 4 * 2**20},
        {"shapes": "c64[8,3]", "count": 1, "bytes": 1.5 * 2**20},
    ]


def test_memory_profile_follows_the_stages_and_xla_buffers(profile_memory, capsys, monkeypatch):
    trims = []
    monkeypatch.setattr(heap, "_malloc_trim", trims.append)
    argv = ["--model", "convlstm", "--config", "tiny", "--steps", "1", "--keep-heap"]
    result = profile_memory.main(argv)
    assert trims == []  # --keep-heap: the compile left its freed memory in the heap
    stages = result["stages"]
    assert list(stages) == ["imports", "runtime", "model and compile", "train steps"]
    peaks = [stage["peak_bytes"] for stage in stages.values()]
    assert peaks == sorted(peaks) and all(stage["rss_bytes"] > 0 for stage in stages.values())
    assert result["buffers"]["temp"] > 0 and result["allocations"] > 0
    assert 0 < result["largest"][0]["bytes"] <= result["buffers"]["temp"]
    assert "largest, alike ones added up" in capsys.readouterr().out


def test_memory_profile_without_fourier_holds_no_spectra(profile_memory, monkeypatch):
    import benchmark as imported

    tiny_k5 = {
        **TINY,
        "horizon": 5,
        "hyperparameters": {**TINY["hyperparameters"], "kernel_size": 5},
    }
    monkeypatch.setitem(imported.CONFIGS, "tiny-k5", tiny_k5)  # 5x5: FFTs on the CPU
    argv = ["--model", "conv3d", "--config", "tiny-k5", "--steps", "1"]
    assert profile_memory.main(argv)["complex_bytes"] > 0
    assert profile_memory.main([*argv, "--no-fourier"])["complex_bytes"] == 0
