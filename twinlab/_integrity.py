"""Integrity of stored arrays: a record written with each array, checked whenever it is read.

zarr turns a missing chunk file into the array's fill value, silently; a damaged one into a
codec traceback. A twin's arrays therefore carry a record in their own ``zarr.json``
attributes (``twinlab_integrity``): shape, chunk shape, dtype, the number of chunk files and the
CRC-32 of every chunk file in C order of the chunk grid. Arrays are written with every chunk
stored (``write_empty_chunks``), so the grid alone says which files must exist, and with
zstd's frame checksum, so a garbled chunk fails to decode instead of decoding to wrong values.

* :func:`open_checked` (every reader) compares the record with the array's metadata and lists
  the chunk files — a directory listing, no data read — before it builds the dask array, whose
  blocks turn a decode failure into a :class:`TwinStoreError` naming the array and chunk.
* :func:`verify_array` (``twinlab info --verify``) also re-reads every chunk file and compares
  its CRC-32.

Arrays without a record (twins written by older twinlab versions, foreign OME-Zarr stores)
still open; only decode failures are reported for them.
"""

from __future__ import annotations

import itertools
import math
import os
import zlib
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from zarr.codecs import ZstdCodec

from .errors import TwinlabError, TwinStoreError

RECORD_KEY = "twinlab_integrity"
_RECORD_VERSION = 1
_MAX_NAMED = 5  # chunks named in one message; the rest are counted


def create_array(store: str | os.PathLike, **kwargs: Any) -> zarr.Array:
    """``zarr.create_array`` with every chunk stored and checksummed zstd frames."""
    kwargs.setdefault("compressors", ZstdCodec(level=0, checksum=True))
    config = dict(kwargs.pop("config", None) or {}, write_empty_chunks=True)
    return zarr.create_array(store=str(store), zarr_format=3, config=config, **kwargs)


def seal(array: zarr.Array) -> None:
    """Write the integrity record of a fully written local array (reads back its chunk files)."""
    folder = _folder(array)
    keys = _expected_keys(array.shape, array.chunks)
    crcs = []
    for key in keys:
        try:
            crcs.append(_crc32(folder / key))
        except FileNotFoundError:
            raise TwinStoreError(f"{folder}: chunk {key} was not written; the write was interrupted") from None
    array.attrs[RECORD_KEY] = {
        "version": _RECORD_VERSION, "shape": list(array.shape), "chunk_shape": list(array.chunks),
        "dtype": str(array.dtype), "chunks": len(keys), "crc32": crcs,
    }


def open_checked(path: str | os.PathLike, label: str) -> da.Array:
    """Open the zarr array at ``path`` as a dask array after the cheap checks (metadata, chunk files).

    ``label`` names the array in messages (e.g. ``"labels/phases/0"``).
    """
    array = _open(Path(path), label)
    record = array.attrs.get(RECORD_KEY)
    if record is not None:
        _check_metadata(array, record, label)
        missing = _missing_chunks(Path(path), _grid(array.shape, array.chunks))
        if missing:
            raise TwinStoreError(f"{label} is missing {_name_chunks(missing)} ({len(missing)} of its "
                                 f"{record['chunks']} chunk files); the twin is damaged: restore it from a "
                                 "backup or re-create it")
    source = _CheckedChunks(array, label)
    token = _token(Path(path))
    return da.from_array(source, chunks=array.chunks, name=f"twinlab-array-{token}", asarray=False,
                         lock=False, meta=np.empty((0,) * array.ndim, dtype=array.dtype))


def array_shape(path: str | os.PathLike, label: str) -> tuple[int, ...]:
    """The array's shape from its metadata alone: no chunk is listed or read."""
    return tuple(_open(Path(path), label).shape)


def verify_array(path: str | os.PathLike, label: str) -> dict[str, Any]:
    """Check every chunk file of the array at ``path`` against its record.

    Returns ``{"array", "chunks", "status"}`` with status ``"ok"`` or ``"no record"`` (written
    before integrity records existed); raises :class:`TwinStoreError` naming the bad chunks.
    """
    path = Path(path)
    array = _open(path, label)
    record = array.attrs.get(RECORD_KEY)
    if record is None:
        return {"array": label, "chunks": None, "status": "no record"}
    _check_metadata(array, record, label)
    missing, damaged = [], []
    for key, crc in zip(_expected_keys(array.shape, array.chunks), record["crc32"]):
        try:
            if _crc32(path / key) != crc:
                damaged.append(key)
        except FileNotFoundError:
            missing.append(key)
    problems = []
    if missing:
        problems.append(f"missing {_name_chunks(missing)}")
    if damaged:
        problems.append(f"damaged (checksum differs) {_name_chunks(damaged)}")
    if problems:
        raise TwinStoreError(f"{label}: {'; '.join(problems)}; restore the twin from a backup or re-create it")
    return {"array": label, "chunks": record["chunks"], "status": "ok"}


# ====================================================================================== helpers
class _CheckedChunks:
    """The zarr array as ``da.from_array`` sees it, with decode failures reported by chunk."""

    def __init__(self, array: zarr.Array, label: str):
        self.array, self.label = array, label
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, index: Any) -> np.ndarray:
        try:
            return self.array[index]
        except TwinlabError:
            raise
        except Exception as exc:  # codecs raise RuntimeError, ValueError, … for a garbled chunk
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        touched = _chunks_in(index, self.array.shape, self.array.chunks)
        bad = [key for key, region in touched if not self._decodes(region)] or [key for key, _ in touched]
        raise TwinStoreError(f"{self.label}: {_name_chunks(bad)} cannot be decoded ({reason}); the store is "
                             "damaged: restore it from a backup or re-create it")

    def _decodes(self, region: tuple[slice, ...]) -> bool:
        try:
            self.array[region]
        except Exception:  # only locating the damaged chunk here; the caller reports it
            return False
        return True


def _open(path: Path, label: str) -> zarr.Array:
    if not (path / "zarr.json").is_file() and not (path / ".zarray").is_file():  # zarr v3 / v2
        raise TwinStoreError(f"{label} has no zarr.json (looked in {path}); the store is damaged: "
                             "restore it from a backup or re-create it")
    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise TwinStoreError(f"{label}: zarr.json cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
                             "the store is damaged: restore it from a backup or re-create it") from None
    if not isinstance(array.chunks, tuple):
        raise TwinStoreError(f"{label} is not a regularly chunked array; the store is damaged or not OME-Zarr")
    return array


def _check_metadata(array: zarr.Array, record: Any, label: str) -> None:
    try:
        ok = (list(record["shape"]) == list(array.shape) and list(record["chunk_shape"]) == list(array.chunks)
              and record["dtype"] == str(array.dtype) and len(record["crc32"]) == record["chunks"]
              == math.prod(_grid(array.shape, array.chunks)))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise TwinStoreError(f"{label}: the array's metadata (shape {list(array.shape)}, chunks "
                             f"{list(array.chunks)}, dtype {array.dtype}) does not match its integrity record; "
                             "zarr.json was edited or damaged: restore it from a backup or re-create the twin")


def _grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-(-n // c) for n, c in zip(shape, chunks))


def _expected_keys(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[str]:
    """Chunk file names (zarr v3 default encoding, ``c/i/j/k``) in C order of the grid."""
    return [_key(idx) for idx in itertools.product(*(range(g) for g in _grid(shape, chunks)))]


def _key(idx: tuple[int, ...]) -> str:
    return "/".join(["c", *map(str, idx)])  # a 0-d array's one chunk is "c"


def _missing_chunks(folder: Path, grid: tuple[int, ...]) -> list[str]:
    """Chunk files the grid needs but ``folder`` lacks: one ``listdir`` per row of the grid's last
    axis (``c/i/j/``), names compared as a set; no file is opened or stat'ed."""
    if not grid:
        return [] if (folder / "c").is_file() else ["c"]
    if 0 in grid:
        return []
    row = {str(k) for k in range(grid[-1])}
    missing: list[str] = []
    for idx in itertools.product(*(range(g) for g in grid[:-1])):
        directory = os.path.join(folder, _key(idx))
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            names = []
        if len(names) < len(row) or not row.issubset(names):
            present = set(names)
            missing += [f"{_key(idx)}/{k}" for k in range(grid[-1]) if str(k) not in present]
    return missing


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _chunks_in(index: Any, shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[str, tuple[slice, ...]]]:
    """The chunks a block request touches: ``(file name c/i/j/k, the chunk's region)``."""
    index = index if isinstance(index, tuple) else (index,)
    ranges = []
    for axis, (n, c) in enumerate(zip(shape, chunks)):
        i = index[axis] if axis < len(index) else slice(None)
        if isinstance(i, slice):
            start, stop, _ = i.indices(n)
            ranges.append(range(start // c, max(start // c + 1, -(-stop // c))))
        else:
            ranges.append(range(int(i) % n // c, int(i) % n // c + 1))
    return [(_key(idx), tuple(slice(j * c, min((j + 1) * c, n))
                                                   for j, c, n in zip(idx, chunks, shape)))
            for idx in itertools.product(*ranges)]


def _name_chunks(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_NAMED])
    more = f" and {len(keys) - _MAX_NAMED} more" if len(keys) > _MAX_NAMED else ""
    return f"chunk{'s' if len(keys) > 1 else ''} {shown}{more}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"


def _token(path: Path) -> str:
    meta = path / "zarr.json"
    stat = (meta if meta.is_file() else path / ".zarray").stat()
    return tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _folder(array: zarr.Array) -> Path:
    root = getattr(array.store, "root", None)
    if root is None:
        raise TwinStoreError("integrity records need a local filesystem store")
    return Path(root) / array.path if array.path else Path(root)
