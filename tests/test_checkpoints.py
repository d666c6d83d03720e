"""A checkpoint that cannot be written (a full disk) stops a run with one line
naming it (exit code 1), and ``--resume`` continues the run once the disk is fine."""

import errno
import json
import logging
import os
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest
from flax import nnx

from stconv import cli
from stconv.training.checkpoints import (
    QUIET,
    CheckpointError,
    Checkpoints,
    CheckpointWriteError,
)

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--no-maps", "--epochs", "3",
]  # fmt: skip
# Epoch 2's records cannot be written: its arrays are, into orbax's temporary folder.
FULL_DISK = """
import errno, os, sys
import orbax.checkpoint as ocp

real_save = ocp.JsonCheckpointHandler._save_fn


async def full_disk(self, record, directory):
    if record["epoch"] == 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(directory / "metadata"))
    await real_save(self, record, directory)
"""
# As orbax's writing threads sometimes do: a coroutine never awaited, collected at exit.
ABANDONED = """
async def write_fragment():
    pass


class Cycle:
    pass


async def full_disk_abandoning(self, record, directory):
    if record["epoch"] == 2:
        cycle = Cycle()
        cycle.cycle, cycle.fragment = cycle, write_fragment()
    await full_disk(self, record, directory)
"""


def state() -> nnx.State:
    return nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize(
    "error, cause",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk is full"),
        (ValueError("RESOURCE_EXHAUSTED: Error writing [os_error_code='28']"), "the disk is full"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (ValueError("UNKNOWN: tensorstore\n{spec}"), "UNKNOWN: tensorstore; training"),
    ],
    ids=["enospc", "edquot", "tensorstore-full", "io-error", "tensorstore-other"],
)  # fmt: skip
def test_a_failed_save_is_named_in_one_line(tmp_path, monkeypatch, error, cause):
    checkpoints = Checkpoints(str(tmp_path / "run"))

    def save(*args, **kwargs):
        raise error

    monkeypatch.setattr(checkpoints.managers["latest"], "save", save)
    with pytest.raises(CheckpointWriteError) as raised:
        checkpoints.save("latest", 4, state(), {"epoch": 4})
    folder = os.path.join(tmp_path, "run", "checkpoints", "latest", "4")
    message = str(raised.value)
    assert message.startswith(f"could not write checkpoint {folder}: {cause}")
    resumed = "`train_and_evaluate(resume=True)` continues from them"  # the command line's: flags
    assert "\n" not in message and message.endswith(resumed)
    checkpoints.save("best", 4, state(), {"epoch": 4})  # another kind is written
    assert checkpoints.epoch("best") == 4


def test_a_failed_reads_tasks_logged_before_its_error_are_silenced(tmp_path, monkeypatch, caplog):
    """orbax's failed reading tasks can be collected, and logged by asyncio,
    while the restore still raises: before the error is named."""
    checkpoints = Checkpoints(str(tmp_path / "run"))
    manager = checkpoints.managers["best"]

    def restore(*args, **kwargs):
        logging.getLogger("asyncio").error("Task exception was never retrieved\nfuture: <Task>")
        raise ValueError("Error reading the manifest")

    monkeypatch.setattr(manager, "restore", restore)
    monkeypatch.setattr(manager, "latest_step", lambda: 1)
    monkeypatch.setattr(QUIET, "active", False)
    with caplog.at_level(logging.ERROR), pytest.raises(CheckpointError, match="corrupt"):
        checkpoints.restore("best", state())
    assert "never retrieved" not in caplog.text


def test_a_full_disk_stops_the_executable_in_one_line(tmp_path):
    """Out of process: all that orbax's and asyncio's threads log, and Python
    at exit, is the one line."""
    workdir = tmp_path / "run"
    argv = ["stconv", "train", "--workdir", str(workdir), *TINY]
    code = f"{FULL_DISK}{ABANDONED}\nocp.JsonCheckpointHandler._save_fn = full_disk_abandoning\n"
    code += f"from stconv import cli\nsys.argv = {argv!r}\ncli.entry_point()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if is_said(line)]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    folder = os.path.join(workdir, "checkpoints")
    assert lines[0].startswith(f"stconv train: error: could not write checkpoint {folder}")
    assert "/2: the disk is full; training stopped" in lines[0]
    assert lines[0].endswith("then `stconv train --resume` continues from them")


def is_said(line: str) -> bool:
    """A line of stderr other than the progress bar and the climatology warning."""
    return bool(line.strip()) and not line.startswith("epoch ") and "limatology" not in line


def test_a_run_stopped_by_a_full_disk_resumes(tmp_path, monkeypatch, capsys, caplog):
    patch = {}
    exec(FULL_DISK, patch)  # the same failure, in this process
    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", patch["full_disk"])
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), *TINY]) == 1
    error = capsys.readouterr().err
    assert "could not write checkpoint" in error and "the disk is full" in error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    partial = [p.name for p in (workdir / "checkpoints").glob("*/*") if "tmp" in p.name]
    assert not partial  # the failed save's temporary is removed, its space freed
    monkeypatch.undo()
    assert cli.main(["train", "--workdir", str(workdir), *TINY, "--resume"]) == 0
    assert "after epoch 1" in capsys.readouterr().out
    with open(workdir / "metrics.jsonl") as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2, 3]
    assert (workdir / "results.json").exists()
