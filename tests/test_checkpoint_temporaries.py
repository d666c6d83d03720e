"""orbax's temporary folder of an unfinished checkpoint save (``N.orbax-checkpoint-tmp``)
is removed when the run is next opened, unless another process that may still run
holds the run's lock, and at once when a save fails in this process."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest
from conftest import TINY_RUN, digest
from flax import nnx

from stconv import cli
from stconv.runs.directory import RunDirectory
from stconv.training.checkpoints import Checkpoints, CheckpointWriteError

SAID = "the unfinished checkpoint of a process that no longer runs"


def unfinished(folder, name: str = "1.orbax-checkpoint-tmp"):
    """A temporary as orbax 0.12 leaves it (the step's and its items'), with a file inside."""
    temporary = folder / name
    (temporary / "state.orbax-checkpoint-tmp" / "d").mkdir(parents=True)
    (temporary / "state.orbax-checkpoint-tmp" / "d" / "0123abcd").write_bytes(b"\0" * 64)
    (temporary / "_CHECKPOINT_METADATA").write_text("{}")
    return temporary


def removal_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if SAID in line]


def hold_lock(run, pid: int) -> None:
    """``train.lock`` as `RunDirectory.acquire_lock` writes it, for process ``pid``."""
    (run / RunDirectory.LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def run(tmp_path, tiny_run):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


@pytest.mark.parametrize(
    "argv",
    [["evaluate", "--workdir", "{w}"], ["train", "--workdir", "{w}", *TINY_RUN, "--resume"]],
    ids=["evaluate", "train-resume"],
)
def test_a_dead_process_temporary_is_removed_when_the_run_opens(run, capsys, argv):
    best = run / "checkpoints" / "best"
    checkpoints = digest(run / "checkpoints")
    temporary = unfinished(best)
    hold_lock(run, dead_pid())  # a killed ``train``'s lock: stale too
    code = cli.main([arg.format(w=run) for arg in argv])
    err = capsys.readouterr().err
    assert code == 0, err
    assert not temporary.exists()
    assert removal_lines(err) == [f"stconv: removed {temporary}, {SAID}"]
    assert digest(run / "checkpoints") == checkpoints


def test_a_temporary_is_left_while_another_live_process_holds_the_lock(run, capsys):
    temporary = unfinished(run / "checkpoints" / "latest")
    with subprocess.Popen(["sleep", "60"]) as trainer:
        try:
            hold_lock(run, trainer.pid)
            assert cli.main(["evaluate", "--workdir", str(run)]) == 0
        finally:
            trainer.kill()
    assert digest(temporary) and not removal_lines(capsys.readouterr().err)


@pytest.mark.parametrize("holder", ["live", "another-host", "dead"])
def test_the_lock_of_a_run_of_several_iterations_covers_its_seeds(tmp_path, capsys, holder):
    seed = tmp_path / "top" / "seed-42"
    temporary = unfinished(seed / "checkpoints" / "best", "3.orbax-checkpoint-tmp")
    owner = {"live": os.getppid(), "another-host": os.getpid(), "dead": dead_pid()}[holder]
    host = "elsewhere.example" if holder == "another-host" else socket.gethostname()
    lock = {"pid": owner, "host": host}
    (tmp_path / "top" / RunDirectory.LOCK).write_text(json.dumps(lock))
    RunDirectory(seed).checkpoints()
    assert temporary.exists() == (holder != "dead")
    assert len(removal_lines(capsys.readouterr().err)) == (holder == "dead")


def test_only_orbax_temporaries_of_a_step_are_removed(tmp_path, capsys):
    latest = tmp_path / "checkpoints" / "latest"
    removed = [unfinished(latest, "7.orbax-checkpoint-tmp-1712345678"), unfinished(latest)]
    for name in ("notes.orbax-checkpoint-tmp", "1.orbax-checkpoint-tmp-x", "1.orbax-tmp"):
        unfinished(latest, name)
    (latest / "2.orbax-checkpoint-tmp").write_text("a file, not orbax's folder")
    os.symlink(tmp_path, latest / "3.orbax-checkpoint-tmp")
    inside = tuple(f"{path.relative_to(tmp_path)}/" for path in removed)
    kept = {path: sha for path, sha in digest(tmp_path).items() if not path.startswith(inside)}
    RunDirectory(tmp_path).checkpoints()
    assert not any(path.exists() for path in removed)
    assert digest(tmp_path) == kept and os.path.islink(latest / "3.orbax-checkpoint-tmp")
    said = sorted(removal_lines(capsys.readouterr().err))
    assert said == sorted(f"stconv: removed {path}, {SAID}" for path in removed)


def test_a_full_disk_while_saving_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    real_save = ocp.JsonCheckpointHandler._save_fn

    async def full_disk(self, record, directory):
        if record["epoch"] == 2:  # after the arrays are written into the temporary
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(directory))
        await real_save(self, record, directory)

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", full_disk)
    checkpoints = Checkpoints(str(tmp_path))
    state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
    checkpoints.save("best", 1, state, {"epoch": 1})
    saved = digest(tmp_path)
    with pytest.raises(CheckpointWriteError, match="the disk is full"):
        checkpoints.save("best", 2, state, {"epoch": 2})
    assert os.listdir(tmp_path / "checkpoints" / "best") == ["1"]
    assert digest(tmp_path) == saved and not capsys.readouterr().err  # the error is the line
    monkeypatch.undo()
    checkpoints.save("best", 2, state, {"epoch": 2})
    assert checkpoints.epoch("best") == 2
