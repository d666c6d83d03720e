"""Giving the memory that XLA's compiler frees back to the system.

Compiling a program leaves the heap holding the pages the compiler has freed;
the C allocator keeps them for later allocations, and the program's own
buffers, allocated next, raise the process's resident memory on top of them.
Trimming the heap after each compile, before the program runs, returns them:
MIM's train step at CHIRPS peaks at 1.47 instead of 1.69 GB
(`python experiments/profile_memory.py --model mim --config chirps`, and with
``--keep-heap``). A trim took 0.12 s after that 9 s compile, so only compiles
of `MIN_COMPILE_SECONDS` or more, the large programs', are followed by one.
"""

import ctypes

import jax

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
MIN_COMPILE_SECONDS = 0.5


def _find_malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None


_malloc_trim = _find_malloc_trim()
_listening = False


def trim(event: str, duration: float, **metadata) -> None:
    """A `jax.monitoring` listener: trims the heap after each XLA compile of at
    least `MIN_COMPILE_SECONDS`."""
    if event == COMPILE_EVENT and duration >= MIN_COMPILE_SECONDS:
        _malloc_trim(0)


def trim_after_compiles() -> bool:
    """From now on, returns the heap's free pages to the system after every XLA
    compile (of at least `MIN_COMPILE_SECONDS`) in this process; calling it
    again adds nothing.

    Returns:
      Whether it does: only where the C library has glibc's ``malloc_trim``.
    """
    global _listening
    if _malloc_trim is not None and not _listening:
        jax.monitoring.register_event_duration_secs_listener(trim)
        _listening = True
    return _listening
