"""Files written whole or not at all, and only where nothing else is lost.

A file stconv writes goes first to a hidden temporary of its own beside it
(`temporary_path`: named after the file, the process and its host), moved
into place when complete (`move_into_place`; a zarr store:
`move_store_into_place`), and removed on every exit Python sees. The
temporary of a process that was killed is removed by the next write of the
same file (`remove_stale_temporaries`). `write_text` does all of this for a
small text file (a run's JSON files).

Progress bars (`progress_bar`) are drawn on a terminal only: a log file gets
the lines the commands print (one per epoch), not the bar's frames.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator

from tqdm import tqdm

from stconv.checks import ParameterNote

# The errors of a disk (or a quota) that is full, and the free bytes below
# which a failed write whose error names no cause is put down to a full disk.
FULL = (errno.ENOSPC, errno.EDQUOT)
FULL_BELOW = 2**20


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` (replacing it) whole or not at all."""
    with replaced_whole(path) as temporary, open(temporary, "w") as f:
        f.write(text)


@contextlib.contextmanager
def replaced_whole(path: str) -> Iterator[str]:
    """The path of a new temporary to write in place of ``path``, which it
    replaces when the ``with`` block ends without an exception; removed on
    every exit."""
    remove_stale_temporaries(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        remove_temporary(temporary)


TEMPORARY = ".stconv-tmp"  # the end of every temporary's name


def temporary_path(path: str) -> str:
    """A new name beside ``path`` for a temporary of this process:
    ``.NAME.PID.HOST.RANDOM.stconv-tmp``, hidden, named after ``path`` and
    its writer, so that `remove_stale_temporaries` knows whose it is."""
    folder, name = os.path.split(os.path.abspath(path))
    owner = f"{os.getpid()}.{socket.gethostname()}"
    return os.path.join(folder, f".{name}.{owner}.{secrets.token_hex(4)}{TEMPORARY}")


def remove_stale_temporaries(path: str, folders: bool = False) -> None:
    """Removes the temporaries of ``path`` (`temporary_path`: files, or
    ``folders``) of processes of this host that no longer run (killed while
    writing), saying so on stderr; nothing else: a live process's, another
    host's and any other file stay."""
    folder, name = os.path.split(os.path.abspath(path))
    host = socket.gethostname()
    pattern = re.compile(
        rf"\.{re.escape(name)}\.(\d+)\.{re.escape(host)}\.[0-9a-f]{{8}}{re.escape(TEMPORARY)}"
    )
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder: writing there fails, naming the output
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        kind = entry.is_dir if folders else entry.is_file
        if not match or not kind(follow_symlinks=False):
            continue
        if holder_alive({"pid": match[1], "host": host}):
            continue
        try:
            remove_temporary(entry.path)
        except OSError:  # another's, read-only: it stays, and is no reason to fail
            continue
        print(
            f"stconv: removed {entry.path}, the unfinished output of process {match[1]}, "
            "which no longer runs",
            file=sys.stderr,
        )


def remove_temporary(temporary: str | None) -> None:
    """Removes a temporary file or folder, if it is there."""
    if temporary is None or not os.path.lexists(temporary):
        return
    if os.path.isdir(temporary) and not os.path.islink(temporary):
        shutil.rmtree(temporary)
    else:
        os.remove(temporary)


def move_into_place(temporary: str, path: str, overwrite: bool) -> None:
    """Moves the file ``temporary`` to ``path``; without ``overwrite``, never
    over anything there (`appeared`)."""
    target = os.path.abspath(path)
    try:
        if overwrite:
            os.replace(temporary, target)
        else:
            link_or_rename(temporary, target)
    except FileExistsError:
        raise appeared(path) from None
    except OSError as error:
        raise OSError(
            f"could not move the forecasts to {path}: {error.strerror or error}"
        ) from None


def link_or_rename(temporary: str, target: str) -> None:
    """Moves the file ``temporary`` to ``target`` unless anything is there
    (FileExistsError): as a hard link, which fails atomically then, or,
    where the file system has none, by a rename after a check."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (EPERM, ENOTSUP): check, then rename
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.rename(temporary, target)
    else:
        os.remove(temporary)


def move_store_into_place(temporary: str, path: str, overwrite: bool) -> None:
    """Moves the zarr store (a folder) ``temporary`` to ``path``: with
    ``overwrite`` in place of the store there (`replace_store`), else never
    over anything there (`appeared`)."""
    target = os.path.abspath(path)
    try:
        if overwrite:
            replace_store(temporary, target)
        elif os.path.lexists(target):
            raise FileExistsError(target)
        else:
            os.rename(temporary, target)  # fails onto a file or a folder that is not empty
    except OSError as error:
        if not overwrite and os.path.lexists(target):
            raise appeared(path) from None
        raise OSError(
            f"could not move the forecasts to {path}: {error.strerror or error}"
        ) from None


def replace_store(temporary: str, target: str) -> None:
    """Renames the folder ``temporary`` to ``target``; the store at ``target``
    is moved aside first, and back if the rename fails, then removed."""
    aside = temporary_path(target) if os.path.lexists(target) else None
    if aside is not None:
        os.rename(target, aside)
    try:
        os.rename(temporary, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
            aside = None
        raise
    finally:
        remove_temporary(aside)


def appeared(path: str) -> FileExistsError:
    """The error of a file at ``path`` that appeared while the forecasts
    were written: it stays as it is (a note names the parameter ``overwrite``)."""
    error = FileExistsError(
        f"{path} appeared while the forecasts were written (another program made it): it is "
        "left as it is and the forecasts were not written"
    )
    error.add_note(
        ParameterNote("choose another path, or pass {overwrite} to replace it", overwrite=True)
    )
    return error


def disk_full(error: BaseException, folder: str) -> bool:
    """Whether a write into ``folder`` failed on a full disk or quota: by the
    error's errno, tensorstore's ``os_error_code`` or message, or, for an
    error that names no cause of its own (netCDF's "HDF error"), the free
    space of a file system that has any (``/proc`` has none, and is not full)."""
    if isinstance(error, OSError) and error.errno in FULL:
        return True
    text = str(error)
    if any(f"os_error_code='{code}'" in text or os.strerror(code) in text for code in FULL):
        return True
    if isinstance(error, OSError) and isinstance(error.errno, int) and error.errno > 0:
        return False  # the system said what it was (netCDF's own codes are negative)
    existing = folder
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    usage = shutil.disk_usage(existing)
    return usage.total > 0 and usage.free < FULL_BELOW


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options) -> tqdm:
    """A tqdm progress bar on stderr, drawn only where stderr is a terminal
    (and ``show``): redirected to a log file, its carriage-return frames would
    bury the one line per epoch that training prints. Not drawn, it iterates
    over ``iterable`` and its methods do nothing.

    Args:
      iterable: what the bar counts, or None to `tqdm.update` it by hand.
      show: False draws no bar, even on a terminal.
      **options: tqdm's (``total``, ``desc``, ``unit``, ...); the bar is
        removed when done unless ``leave=True``.

    Returns:
      The bar, to iterate over or update.
    """
    stream = sys.stderr
    try:
        terminal = stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        terminal = False
    options = {"leave": False, **options}
    return tqdm(iterable, file=stream, disable=not (show and terminal), **options)


def lock_owner() -> dict:
    """This process, as a run's lock names it."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def holder_alive(holder: dict) -> bool:
    """Whether a lock's holder may still run: a process of this host that
    exists, or one of another host (which cannot be checked)."""
    if holder.get("host") != socket.gethostname():
        return bool(holder)
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except (KeyError, TypeError, ValueError):
        return False
    return True
