"""`train_and_evaluate`: the main job, from a config to a trained, tested run.

It orchestrates: the run is assembled from its config (`stconv.runs.assembly`),
trained (`stconv.training`), and tested and reported (`stconv.runs.reporting`); the
run's files are written and read through `stconv.runs.directory.RunDirectory`, and each
command is one session of the run's record (`stconv.runs.provenance.Session`).
`evaluate_run` tests a finished run again (``stconv evaluate``).

Training runs on all devices, or ``config.execution.num_devices`` of them
(`stconv.training.distributed`); with several processes, all run the same job and
process 0 writes the files (the checkpoints are written by all together).
"""

import functools
from collections.abc import Callable

import numpy as np
from flax import nnx

from stconv import models
from stconv.checks import ParameterError, ParameterNote
from stconv.config import EXECUTION_FIELDS, FLAGS, Config
from stconv.data.errors import DataError
from stconv.data.pipeline import num_batches
from stconv.data.registry import Dataset
from stconv.evaluation import baselines, plots
from stconv.evaluation.metrics import grid_weights
from stconv.evaluation.regions import parse_regions, region_masks
from stconv.evaluation.scoring import evaluate
from stconv.runs import provenance
from stconv.runs.assembly import (
    build,
    config_files,
    input_changes,
    load_config_dataset,
    resolved,
    targets_of,
)
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster
from stconv.runs.reporting import report_ensemble, report_seeds, report_test_split
from stconv.training import distributed
from stconv.training.checkpoints import CheckpointError
from stconv.training.loop import fit
from stconv.training.step import forecast_loss, make_predict, make_train_step
from stconv.training.tensorboard import EpochWriter


def new_record(
    config: Config, dataset: Dataset, seeds: list[int], inputs: list[dict] | None = None
) -> dict:
    """The provenance record of a run of ``config`` on ``dataset``, before its
    first session; ``inputs``: its files' records, if already hashed."""
    if inputs is None:
        inputs = provenance.describe_inputs(config_files(config))
    return provenance.new_record(config.to_dict(), seeds, inputs, provenance.describe_data(dataset))


def check_evaluation(config: Config, dataset: Dataset) -> None:
    """Raises, before any file is written or any epoch trained, if the test
    could not be scored as ``config.evaluation`` asks on the data's grid:
    latitudes that cannot be weighted (`grid_weights`), or regions that are
    not on it (`region_masks`: a missing region file, land without a land mask...)."""
    grid = dataset.grid
    grid_weights(grid.latitudes, config.evaluation.area_weights, f"dataset {config.data.dataset!r}")
    if config.evaluation.regions:
        specs = parse_regions(config.evaluation.regions)
        region_masks(specs, grid.lat, grid.lon, scored=dataset.mask[..., 0])


# What the evaluation of one forecast makes and an ensemble's does not.
SINGLE_FORECAST_ONLY = ("maps", "regions", "forecast_samples")


def check_ensemble_evaluation(evaluation: dict) -> None:
    """Raises ParameterError, naming the first, where ``evaluation`` (the fields
    given for one evaluation) asks an ensemble for what it does not make:
    per-cell maps, regional scores or forecast samples."""
    for name in SINGLE_FORECAST_ONLY:
        value = evaluation.get(name)
        if value:
            raise ParameterError(
                f"evaluation.{name}={value!r} is invalid for an ensemble (a run of several "
                "seeds, or perturbed members): maps, regions and forecast samples are made for "
                "one forecast; evaluate one seed's folder (seed-N) without members"
            )


def target_loss(config: Config, dataset: Dataset):
    """The training loss: the paper's RMSE of the targets' normalized errors,
    weighted per target by ``config.training.target_weights`` (`stconv.training.losses`).

    Raises:
      DataError: if the weights do not give one weight per target.
    """
    weights = config.training.target_weights
    if weights is None:
        return forecast_loss
    if len(weights) != len(dataset.targets):
        raise DataError(
            f"dataset {config.data.dataset!r}: training.target_weights={weights!r} is invalid: "
            f"give one weight per target ({len(dataset.targets)}: {dataset.targets})"
        )
    return functools.partial(forecast_loss, weights=weights)


def validation_scores(
    scores: list[dict], std: np.ndarray, weights: tuple | None, dataset: Dataset
) -> dict:
    """What early stopping compares, from the model's validation scores per
    target (`stconv.evaluation.scoring.evaluate`): the RMSE and MAE of a
    single target, in its units; with several targets, which have different
    units, the mean of their RMSEs (and MAEs) divided by their training
    standard deviations, weighted as the loss is, and each target's RMSE."""
    if len(scores) == 1:
        return {"rmse": scores[0]["rmse"], "mae": scores[0]["mae"]}
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, float)

    def mean(metric: str) -> float:
        values = np.array([s[metric] for s in scores]) / np.asarray(std, float)
        return float(np.sum(weights * values) / np.sum(weights))

    per_variable = {name: s["rmse"] for name, s in zip(dataset.targets, scores, strict=True)}
    return {"rmse": mean("rmse"), "mae": mean("mae"), "per_variable": per_variable}


def validation_text(row: dict, units: str, several: bool) -> str:
    """``validation RMSE 0.8509 K`` of one target (in its ``units``); with
    ``several``, the normalized score that early stopping compares and, where
    the row has them, each target's RMSE in its units."""
    if not several:
        rmse = row["validation_rmse"]  # four significant digits where 4 decimals show none
        return (
            f"validation RMSE {rmse:.4f} {units}"
            if rmse >= 1e-3
            else f"validation RMSE {rmse:.4g} {units}"
        )
    text = f"validation score {row['validation_rmse']:.4f}"
    if "validation_rmse_per_variable" in row:
        each = row["validation_rmse_per_variable"].items()
        text += f" (RMSE {', '.join(f'{name} {value:.4g}' for name, value in each)})"
    return text


def prepare_workdir(
    config: Config, run: RunDirectory, resume: bool, allow_changed_data: bool = False
) -> list[str]:
    """Creates the run's directory or checks that it holds this run.

    The placement (the execution section: ``num_devices``, ``fsdp``,
    ``time_chunk``) may change between a run and its resumption: it does not
    change the result. A resumption warns when the software differs from the
    run's record and refuses input files that changed, unless
    ``allow_changed_data`` (`check_resumed_inputs`). Every process checks;
    process 0 writes.

    Returns:
      The differences from the run's record that a resumption goes on with.
    """
    run.check_writable()
    exists = run.is_run()
    distributed.barrier("workdir checked")  # before process 0 writes config.json
    if exists:
        saved = resolved(run.config())  # a run of an older version: relative to here
        before = saved.flags()
        changed = [
            k for k, v in config.flags().items() if k not in EXECUTION_FIELDS and before[k] != v
        ]
        if changed:
            settings = ", ".join(f"{'.'.join(FLAGS[k])}={before[k]!r}" for k in changed)
            raise ValueError(
                f"workdir {run.path!r} holds another run, of other settings ({settings} in its "
                "config.json): choose a new workdir, or give the run's settings to resume it"
            )
        if not resume:
            raise ParameterError(
                f"workdir {run.path!r} already holds this run: pass {{resume}} to continue it "
                "or choose a new workdir",
                resume=True,
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
    inputs = input_changes(config, origin["inputs"])
    if inputs and not allow_changed_data:
        raise ParameterError(
            f"workdir {run.path!r} was trained on other data: {'; '.join(inputs)}: resuming "
            "would mix two datasets in one run; pass {allow_changed_data} to resume anyway, "
            "or train into a new workdir",
            allow_changed_data=True,
        )
    provenance.warn(run.path, software + inputs)
    return software + inputs


def session_kind(resume: bool, existing: dict | None) -> str:
    """The session of a ``train`` command: ``resume`` where it continues a run
    with a record (``existing``), else ``train``."""
    return "resume" if resume and existing is not None else "train"


def train_and_evaluate(
    config: Config, workdir: str, resume: bool = False, allow_changed_data: bool = False
) -> dict:
    """Trains ``config.training.iterations`` runs (seeds ``seed, seed + 10, ...``) and returns
    the test metrics; with several iterations, also their mean and std.

    A fitted model (``arima``) is fitted once (`fit_and_evaluate`): its fit does
    not depend on the seed. Every run, and the folder of several, gets a
    provenance record (`stconv.runs.provenance`); ``allow_changed_data`` lets
    ``resume`` continue on input files that changed since the run began.
    """
    distributed.maybe_initialize()
    config = resolved(config)
    try:
        if models.is_fitted(config.model.name):
            return fit_and_evaluate(config, workdir, resume, allow_changed_data)
        if config.training.iterations == 1:
            return train_once(
                config, workdir, resume, allow_changed_data=allow_changed_data, lock=True
            )
        return train_seeds(config, workdir, resume, allow_changed_data)
    finally:
        if distributed.is_primary():
            RunDirectory(workdir).release_lock()


def train_seeds(config: Config, workdir: str, resume: bool, allow_changed_data: bool) -> dict:
    """The runs of ``config.training.iterations`` seeds in ``workdir``, their summary
    and their ensemble (`train_and_evaluate`)."""
    with provenance.Session("train") as session:
        with session.clock.phase("data_loading"):
            dataset = load_config_dataset(config)  # checked once, before any file is written
        check_evaluation(config, dataset)
        top = RunDirectory(workdir)  # the runs of every seed and their summary
        top.check_writable()
        seeds = [config.training.seed + 10 * i for i in range(config.training.iterations)]
        existing = top.provenance()
        origin = existing or new_record(config, dataset, seeds)
        if distributed.is_primary():
            top.mark()
            top.acquire_lock()
            session.attach(top, origin, kind=session_kind(resume, existing))
        runs = []
        for i, seed in enumerate(seeds):
            print(f"iteration {i + 1}/{config.training.iterations}, seed {seed}")
            run_config = config.override(seed=seed, iterations=1)
            path = top.iteration(seed).path
            with session.clock.phase(f"seed {seed}"):
                runs.append(
                    train_once(
                        run_config, path, resume, dataset, origin["inputs"], allow_changed_data
                    )
                )
        reported = report_seeds(runs, top)
        reported["ensemble"] = report_ensemble(
            Forecaster.load(workdir), dataset, top, session.clock
        )
        if distributed.is_primary():  # the summary with the ensemble's scores
            top.write_json(top.SUMMARY, reported)
        return reported


def train_once(
    config: Config,
    workdir: str,
    resume: bool = False,
    dataset: Dataset | None = None,
    inputs: list[dict] | None = None,
    allow_changed_data: bool = False,
    lock: bool = False,
) -> dict:
    """One run: train with early stopping, restore the best epoch, test, write outputs.

    ``dataset`` is ``config``'s, if already loaded, and ``inputs`` its files'
    records (`stconv.runs.provenance.describe_inputs`), if already hashed. Every
    process runs it; process 0 writes the files and, with ``lock``, takes the
    workdir's lock (`stconv.runs.directory.RunDirectory.acquire_lock`)."""
    with provenance.Session("train") as session:
        clock = session.clock
        mesh = distributed.data_mesh(config.execution.num_devices)
        distributed.check_batch_size(config.training.batch_size, mesh)
        print(f"{distributed.describe(mesh)}{', parameters split (FSDP)' * config.execution.fsdp}")
        primary = distributed.is_primary()
        if dataset is None:
            with clock.phase("data_loading"):
                dataset = load_config_dataset(config)
        check_evaluation(config, dataset)
        loss_fn = target_loss(config, dataset)
        steps_per_epoch = num_batches(dataset.splits["train"], config.training.batch_size)
        model, optimizer = build(config, dataset.input_shape, len(dataset.targets), steps_per_epoch)
        if config.model.residual and config.model.residual_base == "damped":
            model.set_damping(training_damping(dataset, config.data.horizon))
        run = RunDirectory(workdir)
        changing = open_workdir(
            run, config, dataset, session, inputs,
            resume=resume, allow_changed_data=allow_changed_data, lock=lock and primary,
        )  # fmt: skip
        dtype = config.training.compute_dtype
        train_step, state = make_train_step(
            model, optimizer, loss_fn, compute_dtype=dtype, mesh=mesh, fsdp=config.execution.fsdp
        )
        predict = make_predict(model, config.data.horizon, dtype, mesh)
        checkpoints = run.checkpoints()
        units, several = dataset.grid.units[0], len(dataset.targets) > 1
        record = resume_record(checkpoints, state) if resume else None
        history = run.read_history(record["epoch"] if record else 0) if primary else []

        validate = validator(config, dataset, predict)
        events = EpochWriter(run.file(run.TENSORBOARD)) if primary else None
        on_epoch = epoch_writer(
            (run, events, changing) if primary else None, history, units, several
        )
        with clock.phase("training"):  # validation included; the first step's compile apart
            state, record = fit(
                clock.first_call(train_step), state, dataset.splits["train"], checkpoints,
                on_epoch, config.training, validate=validate, record=record,
                saved={"normalization": dataset.normalizer.to_dict()}, mesh=mesh,
            )  # fmt: skip
        if primary:  # the events' writer too
            events.close()
            run.mark_trained(record)
        try:
            if primary:
                with clock.phase("writing"):
                    plots.learning_curve(
                        history, record["best_epoch"], run.file(run.LEARNING_CURVE),
                        None if several else units,
                    )  # fmt: skip
            best = checkpoints.restore("best", state)
            nnx.update((model, optimizer), state)
            score = validation_text({"validation_rmse": best["best_rmse"]}, units, several)
            print(f"best epoch {best['best_epoch']} ({score})")
            forecaster = Forecaster.from_dataset(config, dataset, lambda x: predict(state[0], x))
            results = report_test_split(forecaster, dataset, run, clock)
            changing()
            return results
        except Exception as error:  # the training itself is done and kept: say so
            error.add_note(kept_training(workdir))
            raise


def open_workdir(
    run: RunDirectory,
    config: Config,
    dataset: Dataset,
    session: provenance.Session,
    inputs: list[dict] | None,
    *,
    resume: bool,
    allow_changed_data: bool,
    lock: bool,
) -> Callable[[], None]:
    """Prepares ``run``'s folder for a training session (`prepare_workdir`),
    with its lock if ``lock``; attaches ``session`` on the primary process and
    saves the run's data files at once unless it resumes.

    Returns:
      `run_writer`'s function, which saves them (a resumption's at its first
      epoch or its result).
    """
    changes = prepare_workdir(config, run, resume, allow_changed_data)
    if lock:  # `train_and_evaluate` releases it
        run.acquire_lock()
    existing = run.provenance()
    origin = existing or new_record(config, dataset, [config.training.seed], inputs)
    kind = session_kind(resume, existing)
    changing = run_writer(run, dataset, session)
    if distributed.is_primary():  # the run's inputs and software, from its start
        session.attach(run, origin, kind=kind, changes=changes, save=False)
        if kind != "resume":
            changing()
    return changing


def training_damping(dataset: Dataset, horizon: int) -> np.ndarray:
    """The damping factors of the persisted anomaly of the targets, per lead
    time, fitted on ``dataset``'s training split, streamed where it is read
    in blocks (`stconv.evaluation.baselines.training_damping`)."""
    targets = len(dataset.targets)
    climatology = dataset.climatology.first(targets)
    return baselines.training_damping(dataset.splits["train"], targets, climatology, horizon)


def kept_training(workdir: str) -> ParameterNote:
    """The note of an error after the training of ``workdir`` ended: it is
    kept, and the call that tests it again (`evaluate_run`)."""
    return ParameterNote(
        f"the training is finished and kept in {workdir}: rerun the test with `{{evaluate_run}}`",
        evaluate_run={"workdir": workdir},
    )


def run_writer(run: RunDirectory, dataset: Dataset, session: provenance.Session) -> Callable:
    """``changing()``: writes, once, the run's data files
    (`RunDirectory.save_data`) and the session attached to it into its
    record, before the run changes: a new run's at once, a resumption's at
    its first epoch or its result, so that one that fails first changes no
    file of the run. Nothing where no session is attached (a process that
    writes no file)."""

    def changing() -> None:
        if session.run is not None and not session.saved:
            run.save_data(dataset)
            session.save()

    return changing


def epoch_writer(
    writer: tuple[RunDirectory, EpochWriter, Callable[[], None]] | None,
    history: list,
    units: str,
    several: bool,
) -> Callable[[dict, bool], None]:
    """``on_epoch`` of `stconv.training.loop.fit`: keeps each epoch's row in
    ``history`` and, on the process that writes (``writer`` given: the run,
    its TensorBoard events and `run_writer`'s ``changing``), in the run's
    log and events, after ``changing``; prints it as one line."""

    def on_epoch(row: dict, improved: bool) -> None:
        history.append(row)
        if writer is not None:
            run, events, changing = writer
            changing()
            run.append_history(row)
            events.write(row)
        print(
            f"epoch {row['epoch']:3d}: train loss {row['train_loss']:.4f}, "
            f"{validation_text(row, units, several)}{' (best)' if improved else ''}, "
            f"{row['seconds']:.1f} s"
        )

    return on_epoch


def validator(config: Config, dataset: Dataset, predict: Callable) -> Callable:
    """``validate(state)``: what early stopping compares (`validation_scores`)
    of ``predict(params, inputs)`` with the state's parameters, on the
    validation split."""

    def validate(state: nnx.State) -> dict:
        forecaster = {"model": lambda x: predict(state[0], x)}
        validation = dataset.splits["validation"]
        std = dataset.normalizer.std[: len(dataset.targets)]
        what = f"the validation split of {config.data.dataset!r}"
        scores = evaluate(forecaster, validation, std, config.evaluation.eval_batch_size, what=what)
        return validation_scores(scores["model"], std, config.training.target_weights, dataset)

    return validate


def resume_record(checkpoints, state: nnx.State) -> dict | None:
    """Restores the checkpoint of the last epoch saved into ``state`` and
    returns its record; None if there is none. That is ``latest``, or ``best``
    where ``latest`` was removed or the run was killed between saving an
    improved epoch as ``best`` and as ``latest`` (both hold the same state and
    record)."""
    held = {kind: checkpoints.epoch(kind) for kind in ("latest", "best")}
    held = {kind: epoch for kind, epoch in held.items() if epoch is not None}
    if not held:
        return None
    kind = max(held, key=lambda k: (held[k], k == "latest"))  # latest where they tie
    try:
        record = checkpoints.restore(kind, state)
    except CheckpointError as error:
        if not error.corrupt:
            raise
        if kind == "latest" and checkpoints.exists("best"):
            error.add_note(
                ParameterNote(
                    f"remove {checkpoints.path('latest')} and rerun with {{resume}} to continue "
                    f"from the best epoch ({checkpoints.path('best')})",
                    resume=True,
                )
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
    with provenance.Session("train") as session:
        module = models.fitted(config.model.name)  # before any file: it may need an extra
        with session.clock.phase("data_loading"):
            dataset = load_config_dataset(config)
        check_evaluation(config, dataset)
        run = RunDirectory(workdir)
        changes = prepare_workdir(config, run, resume, allow_changed_data)
        run.acquire_lock()  # `train_and_evaluate` releases it
        existing = run.provenance()
        origin = existing or new_record(config, dataset, [])
        run.save_data(dataset)
        session.attach(run, origin, kind=session_kind(resume, existing), changes=changes)
        with session.clock.phase("training"):
            predict = module.fit_run(config, dataset, run, resume)
        run.mark_trained({"epoch": 1, "best_epoch": 1})
        predict = targets_of(predict, len(dataset.targets))
        forecaster = Forecaster.from_dataset(config, dataset, predict)
        return report_test_split(forecaster, dataset, run, session.clock)


def evaluate_run(
    workdir: str,
    members: int | None = None,
    perturbation: float | None = None,
    unfinished: bool = False,
    evaluation: dict | None = None,
) -> dict:
    """Tests the finished run in ``workdir`` again (``stconv evaluate``): its best
    epoch on its dataset, checked against ``data.json``, with a warning per
    library version and input file that differs from the run's record; adds an
    ``evaluate`` session to the record. A run of several seeds is tested as
    their ensemble (`stconv.runs.reporting.report_ensemble`); with ``members``, a
    run of one seed as the ensemble of its forecasts from ``members``
    perturbed inputs (`stconv.runs.forecaster.Forecaster.perturbed`) with noise
    ``perturbation`` (None: chosen on the validation split,
    `stconv.runs.forecaster.Forecaster.choose_perturbation`), written to
    ``perturbed_results.json`` and ``perturbed_ensemble.png``. A run whose
    training has not ended is refused, unless ``unfinished`` (`Forecaster.load`).
    ``evaluation`` overrides fields of the run's evaluation section
    (``{"regions": "tropics"}``) for this evaluation only."""
    with provenance.Session("evaluate") as session:
        forecaster = Forecaster.load(workdir, unfinished)
        if evaluation:
            forecaster = forecaster.evaluated_with(**evaluation)
        forecaster.check_members(members, perturbation)  # before the data are read
        if members is not None or forecaster.members:
            check_ensemble_evaluation(evaluation or {})
        config, run = forecaster.config, RunDirectory(workdir)
        with session.clock.phase("data_loading"):
            dataset = load_config_dataset(config)
        check_evaluation(config, dataset)
        if members is not None:
            if perturbation is None:
                validation, lat = dataset.splits["validation"], dataset.grid.lat
                perturbation, tried = forecaster.choose_perturbation(validation, lat, members)
                each = ", ".join(f"{scale:g}: {crps:.4f}" for scale, crps in tried.items())
                print(f"perturbation {perturbation:g}, the lowest validation CRPS ({each})")
            forecaster = forecaster.perturbed(members, perturbation)
        data_run = (run.member_runs() or [run])[0]  # a run of several seeds: its first
        data_run.check_data(dataset, f"dataset {config.data.dataset!r}")
        origin = forecaster.origin
        if origin is not None:
            inputs = input_changes(config, origin["inputs"])
            provenance.warn(workdir, inputs)  # the software's were warned of by `Forecaster.load`
            if distributed.is_primary():
                changes = provenance.software_changes(origin) + inputs
                session.attach(run, origin, changes=changes, save=False)
        if members is not None:
            return report_ensemble(forecaster, dataset, run, session.clock, perturbed=True)
        if forecaster.members:
            return report_ensemble(forecaster, dataset, run, session.clock)
        return report_test_split(forecaster, dataset, run, session.clock)
