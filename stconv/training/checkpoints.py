"""Orbax checkpoints of a run: the latest and the best epoch.

Each holds the model and optimizer state and a JSON record of the epoch, the
early-stopping state, the data iterator's position and the normalization
statistics.

The arrays may be split or replicated over several devices and hosts
(`stconv.training.distributed`): every process saves its shards together, and a
restore places the arrays as the state given to it is placed, on any number
of devices, whatever the placement they were saved from.

orbax writes a step into a temporary folder beside it (`UNFINISHED`), renamed
to the step's number when complete. A save that fails in this process
removes its temporary; that of a process killed while saving is removed when
the run is next opened (`stconv.runs.directory.RunDirectory.checkpoints`,
`Checkpoints.remove_unfinished`).
"""

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import jax
import orbax.checkpoint as ocp
from flax import nnx

from stconv.checks import NamesParameters
from stconv.outputs import disk_full


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: ``corrupt`` (or incomplete), or of another model."""

    def __init__(self, message: str, corrupt: bool):
        super().__init__(message)
        self.corrupt = corrupt


class CheckpointWriteError(NamesParameters, OSError):
    """A checkpoint that could not be written (a full disk, an I/O error):
    the command fails (exit code 1) with one line naming its folder, and the
    call that continues the run (`stconv.checks.NamesParameters`)."""


class QuietFailures(logging.Filter):
    """Drops the logs, each with a traceback, of orbax's failed writes and
    reads: that of an error in one of its writing threads (raised again where
    the save waits, and named there in one line by `Checkpoints.save`), and
    asyncio's of the reads and writes abandoned after one failed (``active``:
    a save is under way, or a save or restore failed and was named in one
    line)."""

    active = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        in_thread = "_SignalingThread.run() raised an exception" in message
        abandoned = self.active and "exception was never retrieved" in message
        return not (in_thread or abandoned)


QUIET = QuietFailures()

# orbax's temporary folder of a step being saved: ``1.orbax-checkpoint-tmp`` (orbax
# 0.12; its items' temporaries are inside it), ``1.orbax-checkpoint-tmp-<timestamp>``
# (older versions).
UNFINISHED = re.compile(rf"(\d+){re.escape(ocp.utils.TMP_DIR_SUFFIX)}(-\d+)?")
# The seconds a failed save's writing threads are waited for before its temporary is removed.
ABANDONED_WRITES_WAIT = 10.0


def quiet_abandoned_work() -> None:
    """After a failed save or restore, silences the rest of orbax's abandoned
    work: asyncio's logs of its failed tasks, and Python's warnings, at exit,
    of its coroutines that were never awaited."""
    QUIET.active = True
    warnings.filterwarnings(
        "ignore", message="coroutine '.*' was never awaited", category=RuntimeWarning
    )


class Checkpoints:
    """``workdir/checkpoints/latest`` and ``workdir/checkpoints/best``, one step each."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
        root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.managers = {
            kind: ocp.CheckpointManager(os.path.join(root, kind), options=options)
            for kind in ("latest", "best")
        }
        for logger in ("absl", "asyncio"):
            logging.getLogger(logger).addFilter(QUIET)  # once: a filter is added once

    def save(self, kind: str, epoch: int, state: nnx.State, record: dict) -> None:
        """Saves ``state`` (model and optimizer) and ``record`` under ``epoch``.

        Raises:
          CheckpointWriteError: naming the checkpoint's folder, if it could not
            be written; orbax's partial folder is removed (its temporary, the
            space it took freed): a resumed training continues from the
            checkpoints written before.
        """
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(nnx.to_pure_dict(state)), record=ocp.args.JsonSave(record)
        )
        with self.failures_named(kind, epoch):
            saved = self.managers[kind].save(epoch, args=args)
            self.managers[kind].wait_until_finished()
        if not saved:  # orbax skips a step below the one it holds
            raise RuntimeError(f"checkpoint {self.path(kind)} holds a later epoch than {epoch}")

    @contextlib.contextmanager
    def failures_named(self, kind: str, epoch: int) -> Iterator[None]:
        """Turns the errors of orbax (and tensorstore, which raises ValueError)
        while writing epoch ``epoch`` of ``kind`` into a one-line
        `CheckpointWriteError` that names its folder and, when it is so, the
        full disk."""
        folder = os.path.join(os.fspath(self.managers[kind].directory), str(epoch))
        QUIET.active = True
        running = set(threading.enumerate())
        try:
            yield
        except (OSError, ValueError, RuntimeError) as error:
            quiet_abandoned_work()
            join_started_threads(running, ABANDONED_WRITES_WAIT)  # they write into it
            self.remove_unfinished(kind, epoch, say=False)  # the error's one line names it
            cause = "the disk is full" if disk_full(error, folder) else first_line(error)
            raise CheckpointWriteError(
                f"could not write checkpoint {folder}: {cause}; training stopped, keeping the "
                "checkpoints written before: free space (or fix the disk), then "
                "`{train_and_evaluate}` continues from them",
                train_and_evaluate={"resume": True},
            ) from None
        QUIET.active = False  # not after a failure: its abandoned writes fail later

    def remove_unfinished(
        self, kind: str | None = None, epoch: int | None = None, say: bool = True
    ) -> None:
        """Removes orbax's temporary folders (`UNFINISHED`) of ``kind``'s
        unfinished saves (of ``epoch``; default: of ``latest`` and ``best``, of
        any epoch), saying so on stderr, one line each, unless not ``say``;
        nothing else. Only the first process removes them: the others share
        its folder, or their own stays as theirs.

        Call it only where no process is saving into them (the run's lock:
        `stconv.runs.directory.RunDirectory.checkpoints`), or for a save of
        this process that failed."""
        if jax.process_index() != 0:
            return
        for name in (kind,) if kind else self.managers:
            for path in unfinished_saves(os.fspath(self.managers[name].directory), epoch):
                try:
                    shutil.rmtree(path)
                except OSError:  # read-only, or removed meanwhile: no reason to fail
                    continue
                if say:
                    print(
                        f"stconv: removed {path}, the unfinished checkpoint of a process that "
                        "no longer runs",
                        file=sys.stderr,
                    )

    def exists(self, kind: str) -> bool:
        return self.managers[kind].latest_step() is not None

    def epoch(self, kind: str) -> int | None:
        """The epoch ``kind`` holds; None if it holds none."""
        return self.managers[kind].latest_step()

    def path(self, kind: str) -> str:
        """The folder of the epoch held in ``kind`` (or of ``kind``, if none)."""
        step = self.managers[kind].latest_step()
        root = os.fspath(self.managers[kind].directory)
        return root if step is None else os.path.join(root, str(step))

    def restore(self, kind: str, state: nnx.State) -> dict:
        """Restores into ``state`` (in place), keeping its arrays' placement, and
        returns the record.

        Raises:
          CheckpointError: naming the checkpoint's folder, if it cannot be read.
        """
        manager = self.managers[kind]
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
        QUIET.active = True  # a failed read's tasks can be logged before its error is raised
        try:
            restored = manager.restore(
                manager.latest_step(),
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError, TypeError, OSError) as error:
            quiet_abandoned_work()  # its abandoned reads fail later: named here
            cause = (str(error).splitlines() or [type(error).__name__])[0]
            mismatch = "shape" in cause or "structure" in cause
            what = (
                "does not fit the model of the run's config.json (changed after training?)"
                if mismatch
                else "is corrupt or incomplete"
            )
            raise CheckpointError(
                f"checkpoint {self.path(kind)} {what}: {cause[:160]}", corrupt=not mismatch
            ) from None
        nnx.replace_by_pure_dict(state, restored["state"])
        return restored["record"]


def join_started_threads(running: set[threading.Thread], seconds: float) -> None:
    """Waits, ``seconds`` at most in all, for the threads started since
    ``running`` to end (and those they start): those of a failed save go on
    writing the other items into its temporary (orbax's and asyncio's)."""
    deadline = time.monotonic() + seconds
    while started := set(threading.enumerate()) - running:
        for thread in started:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                thread.join(left)
            except RuntimeError:  # still being started: joined in the next round
                time.sleep(0.001)


def unfinished_saves(folder: str, epoch: int | None = None) -> list[str]:
    """The paths of orbax's temporary folders (`UNFINISHED`, of ``epoch`` if
    given) in ``folder``: folders, not links, nor files of other names."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # none yet
        return []
    found = []
    for entry in entries:
        match = UNFINISHED.fullmatch(entry.name)
        of_epoch = match is not None and (epoch is None or int(match[1]) == epoch)
        if of_epoch and entry.is_dir(follow_symlinks=False):
            found.append(entry.path)
    return sorted(found)


def first_line(error: BaseException) -> str:
    """The error's first line, cut to 160 characters (tensorstore's errors
    carry their whole spec)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return (str(error).splitlines() or [type(error).__name__])[0][:160]
