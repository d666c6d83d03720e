"""`train_and_evaluate`: the main job, from a config to test metrics and forecasts.

The run's files are written and read through `stconv.run.RunDirectory`,
which lists them.

Training runs on all devices, or ``config.num_devices`` of them
(`stconv.training.distributed`); with several processes, all run the same job and
process 0 writes the files (the checkpoints are written by all together).
"""

import dataclasses

import numpy as np
from flax import nnx

from stconv import models, provenance
from stconv.config import EXECUTION_FIELDS, Config
from stconv.data.registry import Dataset, data_files, load_dataset
from stconv.evaluation import plots
from stconv.evaluation.metrics import area_weights
from stconv.evaluation.netcdf import ForecastWriter
from stconv.evaluation.scoring import (
    baselines,
    evaluate,
    format_summary,
    format_table,
    name_and_score,
)
from stconv.models.residual import Residual
from stconv.run import RunDirectory
from stconv.training import distributed
from stconv.training.checkpoints import CheckpointError
from stconv.training.loop import fit
from stconv.training.step import (
    create_optimizer,
    make_predict,
    make_train_step,
    paper_optimizer,
)
from stconv.training.tensorboard import EpochWriter


def config_files(config: Config) -> list[str]:
    """The files ``config``'s dataset is read from (`stconv.data.registry.data_files`)."""
    return data_files(config.dataset, config.data_path, config.mask_file)


def new_record(
    config: Config, dataset: Dataset, seeds: list[int], inputs: list[dict] | None = None
) -> dict:
    """The provenance record of a run of ``config`` on ``dataset``, before its
    first session; ``inputs``: its files' records, if already hashed."""
    if inputs is None:
        inputs = provenance.describe_inputs(config_files(config))
    return provenance.new_record(
        dataclasses.asdict(config), seeds, inputs, provenance.describe_data(dataset)
    )


def load_config_dataset(config: Config) -> Dataset:
    return load_dataset(
        config.dataset,
        path=config.data_path,
        input_length=config.input_length,
        horizon=config.horizon,
        normalization=config.normalization,
        mask_file=config.mask_file,
        chunks=None if config.time_chunk is None else {"time": config.time_chunk},
    )


def build(config: Config, input_shape: tuple) -> tuple[nnx.Module, nnx.Optimizer]:
    """The model and its optimizer, initialised from ``config.seed``."""
    model = models.create(
        config.model,
        input_shape=input_shape,
        horizon=config.horizon,
        rngs=nnx.Rngs(config.seed),
        **config.model_kwargs(),
    )
    if config.residual:
        model = Residual(model, config.residual_base)
    return model, create_optimizer(model, paper_optimizer(config.learning_rate))


def prepare_workdir(
    config: Config, run: RunDirectory, resume: bool, allow_changed_data: bool = False
) -> list[str]:
    """Creates the run's directory or checks that it holds this run.

    The placement (``num_devices``, ``fsdp``) may change between a run and its
    resumption: it does not change the result. A resumption warns when the
    software differs from the run's record and refuses input files that
    changed, unless ``allow_changed_data`` (`check_resumed_inputs`). Every
    process checks; process 0 writes.

    Returns:
      The differences from the run's record that a resumption goes on with.
    """
    run.check_writable()
    exists = run.is_run()
    distributed.barrier("workdir checked")  # before process 0 writes config.json
    if exists:
        saved = run.config()
        changed = [
            k
            for k, v in vars(config).items()
            if k not in EXECUTION_FIELDS and getattr(saved, k) != v
        ]
        if changed:
            raise ValueError(
                f"workdir {run.path!r} holds another run (its config.json differs in {changed}): "
                "choose a new workdir"
            )
        if not resume:
            raise ValueError(
                f"workdir {run.path!r} already holds this run: pass --resume to continue it "
                "or choose a new workdir"
            )
        return check_resumed_inputs(config, run, allow_changed_data)
    if distributed.is_primary():
        run.save_config(config)
    distributed.barrier("workdir created")
    return []


def check_resumed_inputs(config: Config, run: RunDirectory, allow_changed_data: bool) -> list[str]:
    """The differences between the run's record and the present, each warned
    of; raises ValueError if the input files changed, unless ``allow_changed_data``."""
    origin = run.provenance()
    if origin is None:
        return []  # a run made before records were kept
    software = provenance.software_changes(origin)
    inputs = provenance.input_changes(origin["inputs"], config_files(config))
    if inputs and not allow_changed_data:
        raise ValueError(
            f"workdir {run.path!r} was trained on other data: {'; '.join(inputs)}: resuming "
            "would mix two datasets in one run; pass --allow-changed-data to resume anyway, "
            "or train into a new workdir"
        )
    provenance.warn(run.path, software + inputs)
    return software + inputs


SUMMARY_METRICS = ("rmse", "mae", "weighted_rmse", "bias", "acc", "skill_vs_persistence")
SUMMARY_METRICS += tuple(f"{metric}_per_lead" for metric in ("rmse", "weighted_rmse", "acc"))


def summarize(runs: list[dict]) -> dict:
    """``{forecast: {metric: {"mean", "std"}}}`` over the runs of several seeds
    (per-lead metrics elementwise)."""
    return {
        name: {
            metric: {
                "mean": np.mean([run[name][metric] for run in runs], axis=0).tolist(),
                "std": np.std([run[name][metric] for run in runs], axis=0).tolist(),
            }
            for metric in SUMMARY_METRICS
            if metric in runs[0][name]
        }
        for name in runs[0]
    }


def train_and_evaluate(
    config: Config, workdir: str, resume: bool = False, allow_changed_data: bool = False
) -> dict:
    """Trains ``config.iterations`` runs (seeds ``seed, seed + 10, ...``) and returns
    the test metrics; with several iterations, also their mean and std.

    A fitted model (``arima``) is fitted once (`fit_and_evaluate`): its fit does
    not depend on the seed. Every run, and the folder of several, gets a
    provenance record (`stconv.provenance`); ``allow_changed_data`` lets
    ``resume`` continue on input files that changed since the run began.
    """
    distributed.maybe_initialize()
    if models.is_fitted(config.model):
        return fit_and_evaluate(config, workdir, resume, allow_changed_data)
    if config.iterations == 1:
        return train_once(config, workdir, resume, allow_changed_data=allow_changed_data)
    clock, session = provenance.PhaseClock(), provenance.start_session("train")
    with clock.phase("data_loading"):
        dataset = load_config_dataset(config)  # checked once, before any file is written
    top = RunDirectory(workdir)  # the runs of every seed and their summary
    top.check_writable()
    seeds = [config.seed + 10 * i for i in range(config.iterations)]
    existing = top.provenance()
    origin = existing or new_record(config, dataset, seeds)
    session["kind"] = session_kind(resume, existing)
    if distributed.is_primary():
        top.mark()
        top.save_session(origin, session)
    runs = []
    for i, seed in enumerate(seeds):
        print(f"iteration {i + 1}/{config.iterations}, seed {seed}")
        run_config = config.replace(seed=seed, iterations=1)
        path = RunDirectory(workdir).iteration(seed).path
        with clock.phase(f"seed {seed}"):
            runs.append(
                train_once(run_config, path, resume, dataset, origin["inputs"], allow_changed_data)
            )
    summary = summarize(runs)
    print(format_summary(summary, dataset.grid["units"], config.iterations))
    if distributed.is_primary():
        top.write_json(RunDirectory.SUMMARY, {"runs": runs, "summary": summary})
        means = {
            name: {
                **{metric: values["mean"] for metric, values in metrics.items()},
                "area_weighted": runs[0][name]["area_weighted"],
            }
            for name, metrics in summary.items()
        }
        plots.skill_by_lead(means, top.file(top.SKILL_BY_LEAD), dataset.grid["units"])
        top.save_session(origin, provenance.finish_session(session, clock))
    return {"runs": runs, "summary": summary}


def session_kind(resume: bool, existing: dict | None) -> str:
    """The session of a ``train`` command: ``resume`` where it continues a run
    with a record (``existing``), else ``train``."""
    return "resume" if resume and existing is not None else "train"


def train_once(
    config: Config,
    workdir: str,
    resume: bool = False,
    dataset: Dataset | None = None,
    inputs: list[dict] | None = None,
    allow_changed_data: bool = False,
) -> dict:
    """One run: train with early stopping, restore the best epoch, test, write outputs.

    ``dataset`` is ``config``'s, if already loaded, and ``inputs`` its files'
    records (`stconv.provenance.describe_inputs`), if already hashed. Every
    process runs it; process 0 writes the files.
    """
    clock, session = provenance.PhaseClock(), provenance.start_session("train")
    mesh = distributed.data_mesh(config.num_devices)
    distributed.check_batch_size(config.batch_size, mesh)
    print(f"{distributed.describe(mesh)}{', parameters split (FSDP)' * config.fsdp}")
    primary = distributed.is_primary()
    if dataset is None:
        with clock.phase("data_loading"):
            dataset = load_config_dataset(config)
    test_weights(config, dataset)  # latitudes that cannot be weighted: before any file
    model, optimizer = build(config, dataset.input_shape)
    run = RunDirectory(workdir)
    session["changes"] = prepare_workdir(config, run, resume, allow_changed_data)
    existing = run.provenance()
    origin = existing or new_record(config, dataset, [config.seed], inputs)
    session["kind"] = session_kind(resume, existing)
    if primary:
        run.save_data(dataset)
    train_step, state = make_train_step(
        model, optimizer, compute_dtype=config.compute_dtype, mesh=mesh, fsdp=config.fsdp
    )
    predict = make_predict(model, config.horizon, config.compute_dtype, mesh)
    checkpoints = run.checkpoints()
    units = dataset.grid["units"]
    record = resume_record(checkpoints, state) if resume else None
    history = run.read_history(record["epoch"] if record else 0) if primary else []
    if primary:  # the run's inputs and software, from its start (or resumption)
        run.save_session(origin, session)

    def validate(state: nnx.State) -> dict:
        forecaster = {"model": lambda x: predict(state[0], x)}
        validation = dataset.splits["validation"]
        std = dataset.normalizer.std
        what = f"the validation split of {config.dataset!r}"
        return evaluate(forecaster, validation, std, config.eval_batch_size, what=what)["model"]

    events = EpochWriter(run.file(run.TENSORBOARD)) if primary else None

    def on_epoch(row: dict, improved: bool) -> None:
        history.append(row)
        if primary:
            run.append_history(row)
            events.write(row)
        print(
            f"epoch {row['epoch']:3d}: train loss {row['train_loss']:.4f}, validation RMSE "
            f"{row['validation_rmse']:.4f} {units}{' (best)' if improved else ''}, "
            f"{row['seconds']:.1f} s"
        )

    with clock.phase("training"):  # validation included; the first step's compile apart
        state, record = fit(
            clock.first_call(train_step), state, dataset.splits["train"], checkpoints,
            on_epoch, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
            validate=validate, patience=config.patience, record=record,
            saved={"normalization": dataset.normalizer.to_dict()}, mesh=mesh,
        )  # fmt: skip
    if events is not None:
        events.close()

    try:
        if primary:
            with clock.phase("writing"):
                plots.learning_curve(
                    history, record["best_epoch"], run.file(run.LEARNING_CURVE), units
                )
        best = checkpoints.restore("best", state)
        nnx.update((model, optimizer), state)
        print(f"best epoch {best['best_epoch']} (validation RMSE {best['best_rmse']:.4f} {units})")
        results = evaluate_test_split(
            config, dataset, lambda x: predict(state[0], x), workdir, clock
        )
    except Exception as error:  # the training itself is done and kept: say so
        error.add_note(
            f"the training is finished and kept in {workdir}: rerun the test with "
            f"`stconv evaluate --workdir {workdir}`"
        )
        raise
    if primary:
        run.save_session(origin, provenance.finish_session(session, clock))
    return results


def resume_record(checkpoints, state: nnx.State) -> dict | None:
    """Restores the ``latest`` checkpoint into ``state`` (or ``best``, when
    ``latest`` was removed) and returns its record; None if there is none."""
    kind = next((k for k in ("latest", "best") if checkpoints.exists(k)), None)
    if kind is None:
        return None
    try:
        record = checkpoints.restore(kind, state)
    except CheckpointError as error:
        if not error.corrupt:
            raise
        if kind == "latest" and checkpoints.exists("best"):
            error.add_note(
                f"remove {checkpoints.path('latest')} and rerun with --resume to continue "
                f"from the best epoch ({checkpoints.path('best')})"
            )
        else:
            error.add_note("train again into a new workdir")
        raise
    print(f"resuming {checkpoints.workdir} after epoch {record['epoch']} ({kind} checkpoint)")
    return record


def fit_and_evaluate(
    config: Config, workdir: str, resume: bool = False, allow_changed_data: bool = False
) -> dict:
    """A model fitted in closed form (`stconv.models.FITTED`, e.g. ``arima``):
    fitted on the training split and saved into the run by its module, then
    tested like a network; ``resume`` reuses a saved fit."""
    clock, session = provenance.PhaseClock(), provenance.start_session("train")
    module = models.fitted(config.model)  # before any file: it may need an extra
    with clock.phase("data_loading"):
        dataset = load_config_dataset(config)
    test_weights(config, dataset)
    run = RunDirectory(workdir)
    session["changes"] = prepare_workdir(config, run, resume, allow_changed_data)
    existing = run.provenance()
    origin = existing or new_record(config, dataset, [])
    session["kind"] = session_kind(resume, existing)
    run.save_data(dataset)
    run.save_session(origin, session)
    with clock.phase("training"):
        predict = module.fit_run(config, dataset, run, resume)
    results = evaluate_test_split(config, dataset, predict, workdir, clock)
    run.save_session(origin, provenance.finish_session(session, clock))
    return results


def evaluate_run(workdir: str) -> dict:
    """Tests the finished run in ``workdir`` again (``stconv evaluate``): its best
    epoch on its dataset, checked against ``data.json``, with a warning per
    library version and input file that differs from the run's record; adds an
    ``evaluate`` session to the record."""
    from stconv.forecaster import Forecaster

    clock, session = provenance.PhaseClock(), provenance.start_session("evaluate")
    forecaster = Forecaster.load(workdir)
    config, run = forecaster.config, RunDirectory(workdir)
    with clock.phase("data_loading"):
        dataset = load_config_dataset(config)
    run.check_data(dataset, f"dataset {config.dataset!r}")
    origin = forecaster.origin
    if origin is not None:
        inputs = provenance.input_changes(origin["inputs"], config_files(config))
        provenance.warn(workdir, inputs)  # the software's were warned of by `Forecaster.load`
        session["changes"] = provenance.software_changes(origin) + inputs
    results = evaluate_test_split(config, dataset, forecaster.predict, workdir, clock)
    if origin is not None and distributed.is_primary():
        run.save_session(origin, provenance.finish_session(session, clock))
    return results


def test_weights(config: Config, dataset: Dataset) -> np.ndarray | None:
    """The area weights of the test scores: None when ``config.area_weights`` is
    off or the data have no latitudes (or a single row of them).

    Raises:
      DataError: for latitudes that cannot be weighted (`area_weights`).
    """
    if not config.area_weights or not dataset.grid.get("geographic", True):
        return None
    return area_weights(dataset.grid["lat"], f"dataset {config.dataset!r}")


def evaluate_test_split(
    config: Config,
    dataset: Dataset,
    predict,
    workdir: str,
    clock: provenance.PhaseClock | None = None,
) -> dict:
    """Test scores of the model and the baselines; forecasts, maps and skill plot.

    Forecasts stream to ``test_forecasts.nc`` batch by batch; only the
    ``config.forecast_samples`` windows drawn in ``forecast_maps.png`` are kept.
    With several processes, the others compute with process 0 and write nothing.
    ``clock`` gets the seconds of the ``evaluation`` and of ``writing`` the files.
    """
    clock = clock or provenance.PhaseClock()
    source, normalizer = dataset.splits["test"], dataset.normalizer
    forecasters = {"model": predict, **baselines(dataset.climatology, config.horizon)}
    scoring = dict(
        what=f"the test split of {config.dataset!r}",
        climatology=dataset.climatology,
        weights=test_weights(config, dataset),
    )
    if not distributed.is_primary():
        with clock.phase("evaluation"):
            results = evaluate(
                forecasters, source, normalizer.std, config.eval_batch_size, **scoring
            )
        return name_and_score(results, config.model)
    init_times = source.init_times()
    picks = np.linspace(0, len(source) - 1, config.forecast_samples).astype(int)
    drawn = {}  # window index -> last input frame, truth and prediction at lead 1
    run = RunDirectory(workdir)
    with (
        clock.phase("evaluation"),
        ForecastWriter(
            run.file(run.TEST_FORECASTS), dataset.grid, dataset.mask, config.horizon
        ) as writer,
    ):

        def write(batch: dict, predictions: dict) -> None:
            with clock.phase("writing"):
                start = writer.count
                prediction = normalizer.denormalize(np.asarray(predictions["model"]))
                writer.write(prediction, init_times[start : start + len(prediction)])
                for index in picks[(picks >= start) & (picks < start + len(prediction))]:
                    i = index - start
                    truth = normalizer.denormalize(batch["targets"][i, 0])
                    drawn[index] = (
                        normalizer.denormalize(batch["inputs"][i, -1]),
                        np.where(batch["mask"][i, 0], truth, np.nan),
                        prediction[i, 0],
                    )

        results = evaluate(
            forecasters, source, normalizer.std, config.eval_batch_size, write, **scoring
        )
    results = name_and_score(results, config.model)
    with clock.phase("writing"):
        run.write_json(run.RESULTS, results)
        print(format_table(results, dataset.grid["units"]))
        plots.skill_by_lead(results, run.file(run.SKILL_BY_LEAD), dataset.grid["units"])
        if config.forecast_samples:
            draw_forecast_maps(dataset, [drawn[index] for index in picks], init_times[picks], run)
    return results


def draw_forecast_maps(dataset: Dataset, rows: list, init_times: np.ndarray, run) -> None:
    """``forecast_maps.png`` of the drawn windows' (last input, truth, prediction) rows."""
    last_inputs, truths, predictions = (np.stack(c) for c in zip(*rows, strict=True))
    plots.forecast_maps(
        last_inputs[..., 0],
        truths[..., 0],
        np.where(dataset.mask[..., 0], predictions[..., 0], np.nan),
        [f"init {str(t)[:10]}, lead 1" for t in init_times],
        run.file(run.FORECAST_MAPS),
        dataset.grid["units"],
    )
