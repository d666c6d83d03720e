"""Zarr stores as they lie on disk: which chunks were never written, and which
chunk cannot be decoded.

A zarr array is stored as one object per chunk (per shard, for a sharded
array), under a key of its grid coordinates: ``c/2/0/0`` in zarr 3, ``2.0.0``
in zarr 2. A chunk never written reads as the array's fill value: a missing
value where that fill value is NaN or the variable's ``_FillValue``
(`reads_as_missing`), but a number otherwise (0 K for a float array whose fill
value is 0), which nothing downstream can tell from data. zarr writes no chunk
that holds only its fill value (``write_empty_chunks`` is off by default), so a
chunk never written is a fault only where it reads as a number.

`unwritten_chunks` lists the directory of a local store, never its data;
`undecodable_chunk` reads an array object by object, to name the one that a
failed read (a truncated file: "Zstd decompression error") came from.
"""

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import zarr

# Files of a zarr store's root: zarr 3's metadata, zarr 2's group, array and
# consolidated metadata.
STORE_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")
# Files in an array's folder besides its chunks.
METADATA_FILES = frozenset({"zarr.json", ".zarray", ".zattrs"})


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One stored object (a chunk, or a shard) of an array.

    Attributes:
      coords: its coordinates in the grid of stored objects.
      key: its key in the store, relative to the array (``c/2/0/0``).
      region: the slices of the array it holds, one per axis.
    """

    coords: tuple[int, ...]
    key: str
    region: tuple[slice, ...]


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a zarr store (zarr 2 or 3)."""
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, marker)) for marker in STORE_MARKERS
    )


def store_arrays(path: str | os.PathLike, names: Sequence[str] | None = None) -> dict:
    """The arrays of the store ``path`` (its root group) by name: all, or those
    that ``names`` read (`arrays_named`).

    The arrays' own metadata is read, not the consolidated copy: that is what
    their chunks were written with.
    """
    group = zarr.open_group(os.fspath(path), mode="r", use_consolidated=False)
    arrays = dict(group.arrays())
    if names is None:
        return arrays
    return {name: arrays[name] for name in arrays_named(list(arrays), names)}


def arrays_named(arrays: Sequence[str], names: Sequence[str]) -> list[str]:
    """The arrays among ``arrays`` that variables ``names`` read, in the order
    of ``names``: a name itself, or ``NAME`` of ``NAME:LEVEL`` and of its
    channel (``z`` of ``z:500`` and of ``z500``)."""
    found = []
    for name in names:
        base = name.partition(":")[0]
        matches = [base] if base in arrays else [a for a in arrays if is_level_of(base, a)]
        found += [match for match in matches if match not in found]
    return found


def is_level_of(channel: str, array: str) -> bool:
    """Whether ``channel`` names a level of ``array`` (``z500`` of ``z``)."""
    level = channel.removeprefix(array)
    if level == channel or not level:
        return False
    try:
        float(level)
    except ValueError:
        return False
    return True


def stored_shape(array: zarr.Array) -> tuple[int, ...]:
    """The shape of the array's stored objects: its shards, or its chunks."""
    return tuple(array.shards or array.chunks)


def stored_grid(array: zarr.Array) -> tuple[int, ...]:
    """The number of stored objects of ``array`` along each axis."""
    shape, step = array.shape, stored_shape(array)
    return tuple(-(-size // s) for size, s in zip(shape, step, strict=True))


def chunks_of(array: zarr.Array) -> Iterator[Chunk]:
    """Every stored object of ``array``, in C order of their grid coordinates."""
    step = stored_shape(array)
    for coords in np.ndindex(*stored_grid(array)):
        coords = tuple(int(c) for c in coords)
        region = tuple(
            slice(c * s, min((c + 1) * s, size))
            for c, s, size in zip(coords, step, array.shape, strict=True)
        )
        yield Chunk(coords, array.metadata.encode_chunk_key(coords), region)


def written_keys(folder: str | os.PathLike) -> set[str]:
    """The keys of the files under an array's ``folder`` (``c/2/0/0``), its
    metadata files excluded: a listing of the folder, no file is read."""
    keys = set()
    for directory, _, files in os.walk(folder):
        relative = os.path.relpath(directory, folder)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        keys.update(prefix + name for name in files if prefix or name not in METADATA_FILES)
    return keys


def unwritten_chunks(array: zarr.Array, store: str | os.PathLike) -> list[Chunk]:
    """The stored objects of ``array`` (an array of the local store ``store``)
    that have no file, in C order of their grid coordinates."""
    written = written_keys(os.path.join(os.fspath(store), *array.path.split("/")))
    if len(written) >= np.prod(stored_grid(array), dtype=np.int64):
        return []  # as many files as chunks: none can be missing
    return [chunk for chunk in chunks_of(array) if chunk.key not in written]


def earliest(chunks: Sequence[Chunk], axis: int) -> Chunk:
    """The chunk of ``chunks`` that starts first along ``axis`` (first in C
    order among those that start there)."""
    return min(chunks, key=lambda chunk: (chunk.coords[axis], chunk.coords))


def reads_as_missing(fill_value, encoding: Mapping) -> bool:
    """Whether a chunk never written, which reads as ``fill_value``, is a
    missing value once xarray decodes it: NaN, or the variable's
    ``_FillValue`` or ``missing_value`` (``encoding``, as xarray opened it)."""
    if fill_value is None:
        return False  # zarr 2 without a fill value: unwritten chunks read as 0
    fill = np.asarray(fill_value)
    if np.issubdtype(fill.dtype, np.floating) and np.isnan(fill):
        return True
    marked = [encoding.get("_FillValue"), *np.atleast_1d(encoding.get("missing_value", []))]
    return any(value is not None and np.asarray(value) == fill for value in marked)


def undecodable_chunk(array: zarr.Array) -> tuple[Chunk, Exception] | None:
    """The first stored object of ``array`` (in C order) that cannot be read,
    and the error reading it gave; None if every one reads. Reads the array
    object by object: all of its data, when none fails."""
    for chunk in chunks_of(array):
        try:
            array[chunk.region]
        except Exception as error:  # a codec's error: of any type
            return chunk, error
    return None


def array_dims(array: zarr.Array) -> tuple[str, ...]:
    """The names of the dimensions of ``array``: zarr 3's ``dimension_names``,
    or xarray's ``_ARRAY_DIMENSIONS`` attribute in zarr 2; ``()`` where not given."""
    names = getattr(array.metadata, "dimension_names", None)
    if names is None:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    return tuple(str(name) for name in names or ())
