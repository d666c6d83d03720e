"""The extension points, one edit each (docs/extending.md): a dataset is one
entry of `DATASETS`, a metric one entry of `METRICS` (and, to be shown under a
label of its own, one of `PRESENTATION`), a model's own option one
``--model-option``. One tiny run is trained with all three added, and each
test sees its own flow through to the run's files, tables and plots."""

import contextlib
import dataclasses

import numpy as np
import pytest

from stconv import cli, models
from stconv import config as configuration
from stconv.config import SECTIONS, Config, DataConfig, load_toml, to_toml
from stconv.config.sections import setting
from stconv.data import registry
from stconv.data.errors import DataError
from stconv.data.files import open_field, resolve_paths
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.evaluation import metrics
from stconv.runs import presentation
from stconv.runs.assembly import build, load_config_dataset
from stconv.runs.directory import RunDirectory
from stconv.runs.reporting import format_summary, format_table, summarize
from stconv.training.step import count_parameters

FLAGS = [
    "--dataset", "ramp", "--input-length", "3", "--horizon", "2", "--num-layers", "2",
    "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "8", "--epochs", "1",
    "--forecast-samples", "0", "--no-maps", "--model-option", "channel_increase=false",
]  # fmt: skip

# The new metric: the mean squared error, from the sums RMSE already takes;
# and how it is shown: its label, a block of the multi-seed table, its own panel.
MSE = metrics.Metric(metrics.squared_sums, metrics.per_cell("squared"))
MSE_SHOWN = presentation.Presentation(
    "MSE", title="mean squared error", in_summary_table=True, plot="MSE"
)


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A run of a dataset added to the table, scored with a metric added to the
    table, of a model given one of its own options; and what it printed."""
    root = tmp_path_factory.mktemp("extending")
    path = root / "ramp.nc"
    write_synthetic_netcdf(path, 48, 8, 10, seed=7, variable="ramp")
    entry = registry.Entry(
        "a field of this test's own file",
        open=lambda request: open_field(
            str(path), "ramp", chunks=request.chunks, **request.open_options
        ),
        files=lambda _: resolve_paths(str(path)),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.DATASETS, "ramp", entry)
        patch.setitem(metrics.METRICS, "mse", MSE)
        patch.setitem(presentation.PRESENTATION, "mse", MSE_SHOWN)
        workdir, printed = root / "run", root / "printed.txt"
        with open(printed, "w") as out, contextlib.redirect_stdout(out):
            assert cli.main(["train", "--workdir", str(workdir), *FLAGS]) == 0
        yield RunDirectory(workdir), path, printed.read_text()


def test_a_dataset_is_one_entry_of_the_table(extended):
    run, path, _ = extended
    assert run.data_description()["variables"] == ["ramp"]
    inputs = run.provenance()["inputs"]
    assert [item["path"] for item in inputs] == [str(path)]  # its files are recorded
    assert registry.data_files("ramp") == [str(path)]
    with pytest.raises(DataError, match=r"choose from \[.*'ramp'\] or a netCDF path"):
        registry.load_dataset("nope")


def test_a_metric_is_one_entry_of_the_table(extended):
    run, _, printed = extended
    results = run.results()
    ramp = results["ramp"]
    for result in ramp.values():  # results.json: overall and per lead time
        assert result["mse"] == pytest.approx(result["rmse"] ** 2, rel=1e-6)
        assert result["mse_per_lead"] == pytest.approx(np.square(result["rmse_per_lead"]))
    header = next(line for line in printed.splitlines() if line.startswith("forecast"))
    assert "MSE" in header.split()  # the printed table of the run
    assert "MSE" in format_table(ramp, "K").splitlines()[1].split()
    summary = summarize([results, results])["ramp"]  # the multi-seed summary
    assert summary["stconvs2s-r"]["mse"]["mean"] == pytest.approx(ramp["stconvs2s-r"]["mse"])
    assert summary["stconvs2s-r"]["mse_per_lead"]["std"] == [0.0, 0.0]
    assert "\nMSE " in format_summary(summary, "K", 2)
    titles = [axis.get_title() for axis in presentation.skill_figure(results).axes]
    assert len(titles) == 3 and titles[2] == "mean squared error"  # its own panel


def test_a_model_option_reaches_the_model_from_the_command_line(extended):
    run, _, _ = extended
    config = run.config()
    assert config.model.options == {"channel_increase": False}
    saved = run.read_json(run.CONFIG, "")
    assert saved["model"]["options"] == {"channel_increase": False}  # typed, not "false"
    input_shape = tuple(run.data_description()["input_shape"])
    model, _ = build(config, input_shape)
    ablation = models.create(
        "ablation-stconvs2s-r-nochannelincrease", input_shape=input_shape, horizon=2,
        num_layers=2, hidden_dim=2, kernel_size=3,
    )  # fmt: skip
    default, _ = build(config.override(model_options={}), input_shape)
    assert count_parameters(model) == count_parameters(ablation) != count_parameters(default)


def test_model_options_are_typed_from_strings_and_refused_when_unknown():
    assert models.options("stconvs2s-r") == {
        "channel_increase": bool, "spatial_first": bool, "factorized": bool
    }  # fmt: skip
    assert "channel_increase" not in models.options("ablation-stconvs2s-r-nochannelincrease")
    config = Config.from_flags(model_options={"spatial_first": "True"})
    assert config.model.options == {"spatial_first": True}
    assert config.model.hyperparameters()["spatial_first"] is True
    with pytest.raises(
        ValueError,
        match=r"^model 'stconvs2s-r' has no option 'nope'.*"
        r"its options are \['channel_increase', 'factorized', 'spatial_first'\]$",
    ):
        Config.from_flags(model_options={"nope": "1"})  # fmt: skip
    with pytest.raises(ValueError, match=r"model option factorized='maybe' is invalid: must be"):
        Config.from_flags(model_options={"factorized": "maybe"})
    with pytest.raises(ValueError, match=r"model 'arima' has no option 'x'.*it has no options"):
        Config.from_flags(model="arima", model_options={"x": "1"})


# A data option: one field of the data section, and the code that uses it.


def test_a_data_option_is_one_field_and_the_code_that_uses_it(tmp_path, monkeypatch, capsys):
    @dataclasses.dataclass(frozen=True)
    class Data(DataConfig):
        every: int = setting(1, "keep every N-th time step of the data (1: all)")

        def __post_init__(self):
            super().__post_init__()
            self.positive("every")

    path = tmp_path / "ramp.nc"
    write_synthetic_netcdf(path, 48, 8, 10, seed=7, variable="ramp")
    asked = []

    def open_ramp(request):  # the code that uses it: it gets the data section whole
        asked.append(request.data)
        field = open_field(str(path), "ramp", chunks=request.chunks)
        return field.isel(time=slice(None, None, request.data.every))

    entry = registry.Entry("a field of this test's own file", open_ramp, lambda _: [str(path)])
    monkeypatch.setitem(registry.DATASETS, "ramp", entry)
    monkeypatch.setitem(SECTIONS, "data", Data)  # the field, as if written in DataConfig
    monkeypatch.setitem(configuration.FLAGS, "every", ("data", "every"))
    flags = ["train", "--workdir", str(tmp_path / "run"), "--dataset", "ramp"]
    flags += ["--input-length", "3", "--horizon", "2"]
    config = cli.config_from_args(cli.parser().parse_args([*flags, "--every", "2"]))
    assert isinstance(config.data, Data) and config.data.every == 2
    halved = load_config_dataset(config)
    assert asked[-1] is config.data
    whole = load_config_dataset(config.override(every=1))
    assert sum(map(len, halved.splits.values())) < sum(map(len, whole.splits.values()))
    (tmp_path / "run.toml").write_text(to_toml(config))  # the TOML key, config.json
    assert '[data]\ndataset = "ramp"\n' in to_toml(config) and "every = 2\n" in to_toml(config)
    assert load_toml(tmp_path / "run.toml") == config
    config.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == config
    assert cli.main([*flags, "--every", "0"]) == 2  # its check, named by its flag
    assert "--every 0 is invalid: must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "--every EVERY" in capsys.readouterr().out
