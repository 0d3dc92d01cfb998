"""The twin store: an OME-Zarr (NGFF 0.5, zarr v3) directory holding a digital twin.

Layout (DESIGN.md)::

    sample.twin.zarr/
      zarr.json        "ome" multiscales + "twinlab" block (schema, voxel size, thickness axis,
                       collector side, phase table, design, provenance, complete flag)
      0/ 1/ …          grayscale pyramid
      labels/<name>/   label images (phases, particles, pores) with NGFF image-label metadata
      twinlab/         non-image results: fields/<name> arrays, results/<name> (JSON + arrays)

Writes are atomic. A new twin is written under a hidden temporary name beside the target and
renamed into place once its ``complete`` flag is set; a layer added to an existing twin is
written under a hidden name inside the store and renamed into place; metadata files are
replaced with ``os.replace``. A crash or Ctrl-C therefore never leaves something that opens
as a valid (but partial) twin. Local filesystem stores only (atomic rename needs one).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import dask.array as da
import numpy as np

from . import __version__, _integrity
from ._chunked import is_dask
from ._results import to_jsonable
from ._outputs import check_output, is_foreign_staging, make_staging, publish
from ._validation import (AXES, VoxelSize, axis_index, check_finite_block, require_chunks, require_integer_labels,
                          require_ndim)
from .design import check_cbd_as
from .errors import InputError, TwinStoreError
from .phases import DEFAULT_PHASES, PhaseTable

SCHEMA_VERSION = 1
TWIN_SUFFIX = ".twin.zarr"
DEFAULT_CHUNK = 128
_UNCHANGED = object()  # update_metadata: an argument not given
_MIN_LEVEL_SIZE = 32  # stop the pyramid once a level would be smaller than this along any axis
_MAX_LEVELS = 6


@dataclass(frozen=True)
class Step:
    """One entry of the provenance: what was done, with which parameters, by which version."""

    name: str
    params: dict[str, Any]
    version: str = __version__
    time: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "params": to_jsonable(self.params), "twinlab_version": self.version,
                "time": self.time or _now()}


class Twin:
    """An opened twin store. Use :func:`create_twin` to make one and :meth:`Twin.open` to open one."""

    def __init__(self, path: Path, attrs: dict[str, Any]):
        self.path = Path(path)
        self._attrs = attrs

    # ------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike) -> "Twin":
        path = Path(path)
        if not path.exists():
            raise TwinStoreError(f"{path} does not exist; create a twin with `twinlab import` first")
        if is_foreign_staging(path):
            raise TwinStoreError(f"{path} is a staging folder of an unfinished twinlab write, not a twin; "
                                 "open the output it was writing (a rerun of that command cleans it up)")
        meta_file = path / "zarr.json"
        if not path.is_dir() or not meta_file.is_file():
            raise TwinStoreError(f"{path} is not a zarr v3 store (no zarr.json); is it the right path?")
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise TwinStoreError(f"{meta_file} is damaged ({exc}); re-create the twin") from None
        attrs = meta.get("attributes", {})
        block = attrs.get("twinlab")
        if block is None:
            raise TwinStoreError(f"{path} is a zarr store but not a twinlab twin (no 'twinlab' attributes)")
        schema = block.get("schema_version")
        if schema != SCHEMA_VERSION:
            raise TwinStoreError(
                f"{path} has twin schema version {schema!r}, this twinlab ({__version__}) reads "
                f"version {SCHEMA_VERSION}; open it with a matching twinlab or re-import the data")
        if not block.get("complete", False):
            raise TwinStoreError(f"{path} is an incomplete twin (a write was interrupted); delete it and re-run")
        if "ome" not in attrs or not attrs["ome"].get("multiscales"):
            raise TwinStoreError(f"{path} lacks OME-Zarr multiscales metadata; it is damaged, re-create it")
        return cls(path, attrs)

    def reload(self) -> "Twin":
        return Twin.open(self.path)

    # ------------------------------------------------------------------------------ metadata
    @property
    def _block(self) -> dict[str, Any]:
        return self._attrs["twinlab"]

    @property
    def voxel_size(self) -> VoxelSize:
        return VoxelSize(**self._block["voxel_size_um"])

    @property
    def thickness_axis(self) -> int:
        return axis_index(self._block["thickness_axis"])

    @property
    def collector_side(self) -> str:
        return self._block["collector_side"]

    @property
    def phases(self) -> PhaseTable:
        return PhaseTable.from_list(self._block["phases"])

    @property
    def design(self) -> dict[str, Any] | None:
        return self._block.get("design")

    @property
    def cbd_as(self) -> str | None:
        """What the "cbd" voxels of ``labels/phases`` stand for: "domain" (the nanoporous carbon-binder
        domain, as segmentation of a FIB-SEM image finds it), "solid" (its solid carbon + binder, as
        generators draw it by default) or None (not known: labels imported from elsewhere). Set with
        the phase labels; the design check and calendering read it as their default."""
        return self._block.get("cbd_as")

    @property
    def provenance(self) -> list[dict[str, Any]]:
        return list(self._block.get("provenance", []))

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self._block.get("sources", []))

    @property
    def name(self) -> str:
        n = self.path.name
        return n[: -len(TWIN_SUFFIX)] if n.endswith(TWIN_SUFFIX) else self.path.stem

    @property
    def shape(self) -> tuple[int, ...]:
        # metadata only: asking a twin its shape must not fail on (or pay for) a chunk check
        path = self._attrs["ome"]["multiscales"][0]["datasets"][0]["path"]
        return _integrity.array_shape(self.path / path, f"image level {path}")

    @property
    def levels(self) -> int:
        return len(self._attrs["ome"]["multiscales"][0]["datasets"])

    def summary(self) -> dict[str, Any]:
        """What `twinlab info` prints."""
        img = self.image(0)
        return {
            "path": str(self.path), "name": self.name, "shape": list(img.shape), "dtype": str(img.dtype),
            # a one-slice twin is 2D data: 3D-only analyses refuse it (twinlab.analyses.NEEDS_3D)
            "dimensionality": "2D (single slice)" if 1 in img.shape else "3D",
            "voxel_size_um": self.voxel_size.to_dict(),
            "size_um": [n * s for n, s in zip(img.shape, self.voxel_size.as_tuple())],
            "levels": self.levels, "chunks": list(img.chunksize),
            "thickness_axis": AXES[self.thickness_axis], "collector_side": self.collector_side,
            "phases": self.phases.to_list(), "labels": self.label_names, "fields": self.field_names,
            "results": self.result_names, "design": self.design,
            "provenance": [p["step"] for p in self.provenance], "schema_version": SCHEMA_VERSION,
        }

    def update_metadata(self, *, thickness_axis: int | str | None = None, collector_side: str | None = None,
                        design: Mapping[str, Any] | None = None, phases: PhaseTable | None = None,
                        cbd_as: str | None | object = _UNCHANGED, step: Step | None = None) -> None:
        """Change twin-level metadata (atomically) and record the change in the provenance.

        Arguments left out (None; for ``cbd_as``, not given) keep their value; ``cbd_as=None``
        records that the CBD representation is not known."""
        block = dict(self._block)
        if cbd_as is not _UNCHANGED:
            block["cbd_as"] = None if cbd_as is None else check_cbd_as(cbd_as)
        if thickness_axis is not None:
            block["thickness_axis"] = AXES[axis_index(thickness_axis)]
        if collector_side is not None:
            block["collector_side"] = _check_side(collector_side)
        if design is not None:
            block["design"] = to_jsonable(dict(design))
        if phases is not None:
            block["phases"] = phases.to_list()
        if step is not None:
            block["provenance"] = [*block.get("provenance", []), step.to_dict()]
        attrs = dict(self._attrs, twinlab=block)
        _write_group_json(self.path, attrs)
        self._attrs = attrs

    # ------------------------------------------------------------------------------ image
    def image(self, level: int = 0) -> da.Array:
        datasets = self._attrs["ome"]["multiscales"][0]["datasets"]
        if not 0 <= level < len(datasets):
            raise InputError(f"level {level} does not exist; this twin has levels 0..{len(datasets) - 1}")
        path = datasets[level]["path"]
        return _integrity.open_checked(self.path / path, f"image level {path}")

    def level_voxel_size(self, level: int) -> VoxelSize:
        ds = self._attrs["ome"]["multiscales"][0]["datasets"][level]
        return VoxelSize(*ds["coordinateTransformations"][0]["scale"])

    def write_image(self, image: Any, *, voxel_size: VoxelSize | None = None, step: Step,
                    chunks: int | None = None, progress: bool = False) -> None:
        """Replace the grayscale pyramid (e.g. with a preprocessed one; the voxel size may change,
        e.g. after isotropic resampling). Existing labels must still match the new shape."""
        voxel_size = voxel_size or self.voxel_size
        image = _as_dask(image, chunks)
        require_ndim(image, 3, name="image")
        for name in self.label_names:
            if tuple(self.labels(name).shape) != tuple(image.shape):
                raise InputError(f"new image shape {image.shape} differs from labels/{name} "
                                 f"{self.labels(name).shape}; drop or recompute the labels first")
        with _staging_dir(self.path, "image") as tmp:
            datasets = _write_pyramid(tmp, image, voxel_size, chunks=chunks, labels=False, progress=progress)
            block = dict(self._block, voxel_size_um=voxel_size.to_dict())
            block["provenance"] = [*block.get("provenance", []), step.to_dict()]
            attrs = dict(self._attrs, ome=_multiscales_meta(self.name, datasets), twinlab=block)
            # rename new levels in: first move the old ones aside, so readers never see a mix;
            # any failure (a full disk at the metadata write) puts the old levels back
            trash = self.path / f".old-image-{uuid.uuid4().hex[:8]}"
            moved_old: list[str] = []
            moved_new: list[str] = []
            try:
                trash.mkdir()
                for p in [p for p in self.path.iterdir() if p.name.isdigit()]:
                    p.rename(trash / p.name)
                    moved_old.append(p.name)
                for p in list(tmp.iterdir()):
                    p.rename(self.path / p.name)
                    moved_new.append(p.name)
                _write_group_json(self.path, attrs)
            except BaseException:
                for name in moved_new:
                    (self.path / name).rename(tmp / name)
                for name in moved_old:
                    (trash / name).rename(self.path / name)
                shutil.rmtree(trash, ignore_errors=True)
                raise
        self._attrs = attrs
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------------------ labels
    @property
    def label_names(self) -> list[str]:
        meta = self.path / "labels" / "zarr.json"
        if not meta.is_file():
            return []
        return list(json.loads(meta.read_text()).get("attributes", {}).get("ome", {}).get("labels", []))

    def has_labels(self, name: str) -> bool:
        return name in self.label_names

    def labels(self, name: str = "phases", level: int = 0) -> da.Array:
        if name not in self.label_names:
            hint = " (run `twinlab segment` first)" if name == "phases" else ""
            raise InputError(f"twin {self.name!r} has no labels {name!r}; it has {self.label_names}{hint}")
        return _integrity.open_checked(self.path / "labels" / name / str(level), f"labels/{name}/{level}")

    def write_labels(self, name: str, labels: Any, *, step: Step, phases: PhaseTable | None = None,
                     cbd_as: str | None | object = _UNCHANGED, chunks: int | None = None,
                     progress: bool = False) -> None:
        """Write (or replace) ``labels/<name>``; ``phases`` gives colours/names for a phase image and
        ``cbd_as`` what its "cbd" voxels stand for (:attr:`cbd_as`; None: not known; not given: as
        before, e.g. for a hand-corrected segmentation)."""
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"invalid labels name {name!r}")
        labels = _as_dask(labels, chunks)
        require_ndim(labels, 3, name=f"labels {name!r}")
        require_integer_labels(labels, name=f"labels {name!r}")
        if tuple(labels.shape) != self.shape:
            raise InputError(f"labels {name!r} have shape {labels.shape}, the twin's image {self.shape}")
        group = self.path / "labels"
        if not (group / "zarr.json").is_file():
            group.mkdir(exist_ok=True)
            _write_group_json(group, {"ome": {"version": "0.5", "labels": []}})
        with _staging_dir(group, name) as tmp:
            datasets = _write_pyramid(tmp, labels, self.voxel_size, chunks=chunks, labels=True,
                                      progress=progress, n_levels=self.levels)
            meta = _multiscales_meta(name, datasets)
            meta["image-label"] = _image_label_meta(labels, phases)
            _write_group_json(tmp, {"ome": meta})
            _replace_dir(tmp, group / name)
        names = self.label_names
        if name not in names:
            _write_group_json(group, {"ome": {"version": "0.5", "labels": [*names, name]}})
        changes: dict[str, Any] = {"step": step}
        if name == "phases":
            changes["cbd_as"] = cbd_as
            if phases is not None:
                changes["phases"] = phases
        self.update_metadata(**changes)

    # ------------------------------------------------------------------------------ fields and results
    @property
    def field_names(self) -> list[str]:
        return _children(self.path / "twinlab" / "fields")

    @property
    def result_names(self) -> list[str]:
        return _children(self.path / "twinlab" / "results")

    def write_field(self, name: str, array: Any, *, unit: str, step: Step, chunks: int | None = None) -> None:
        """A volume-shaped result (stress, concentration, …) stored under ``twinlab/fields/<name>``."""
        array = _as_dask(array, chunks)
        parent = _ensure_group(self.path, "twinlab", "fields")
        with _staging_dir(parent, name) as tmp:
            arr = _integrity.create_array(tmp, shape=array.shape, chunks=_chunk_shape(array.shape, chunks),
                                          dtype=array.dtype, attributes={"unit": unit, "step": step.to_dict()})
            _store(_rechunk_like(array, arr.chunks), arr)
            _integrity.seal(arr)
            _replace_dir(tmp, parent / name)
        self.update_metadata(step=step)

    def read_field(self, name: str) -> da.Array:
        path = self.path / "twinlab" / "fields" / name
        if not path.is_dir():
            raise InputError(f"twin {self.name!r} has no field {name!r}; it has {self.field_names}")
        return _integrity.open_checked(path, f"twinlab/fields/{name}")

    def save_result(self, name: str, result: Any, *, step: Step,
                    arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """Store an analysis result (a dataclass with ``to_dict()`` or a mapping) with its provenance.

        ``arrays`` are stored as zarr arrays beside the JSON (e.g. a network's ``pore.*`` arrays).
        """
        data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        parent = _ensure_group(self.path, "twinlab", "results")
        with _staging_dir(parent, name) as tmp:
            _write_group_json(tmp, {"result": to_jsonable(data), "step": step.to_dict()})
            for key, value in (arrays or {}).items():
                value = np.asarray(value)
                if value.dtype == object:
                    raise InputError(f"result array {key!r} has dtype object; store numbers only")
                _integrity.seal(_integrity.create_array(tmp / key, data=value))
            _replace_dir(tmp, parent / name)
        self.update_metadata(step=step)

    def load_result(self, name: str) -> dict[str, Any]:
        meta = self.path / "twinlab" / "results" / name / "zarr.json"
        if not meta.is_file():
            raise InputError(f"twin {self.name!r} has no result {name!r}; it has {self.result_names}")
        return json.loads(meta.read_text())["attributes"]["result"]

    def load_result_arrays(self, name: str) -> dict[str, np.ndarray]:
        folder = self.path / "twinlab" / "results" / name
        return {p.name: np.asarray(_integrity.open_checked(p, f"twinlab/results/{name}/{p.name}"))
                for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}

    def verify(self) -> dict[str, Any]:
        """Re-read every chunk file of every array and compare it with the array's integrity record.

        Returns ``{"arrays": n, "chunks": n verified, "without_record": [array, …]}`` (arrays
        written before twinlab kept records); raises :class:`TwinStoreError` naming every missing
        or damaged chunk.
        """
        checked, problems = [], []
        for label, path in self._arrays():
            try:
                checked.append(_integrity.verify_array(path, label))
            except TwinStoreError as exc:
                problems.append(str(exc))
        if problems:
            raise TwinStoreError(f"{self.path} is damaged: " + " | ".join(problems))
        return {"arrays": len(checked), "chunks": sum(c["chunks"] or 0 for c in checked),
                "without_record": [c["array"] for c in checked if c["status"] == "no record"]}

    def _arrays(self) -> list[tuple[str, Path]]:
        """Every array of the twin as ``(label, folder)``: image levels, labels, fields, result arrays."""
        out = [(f"image level {d['path']}", self.path / d["path"])
               for d in self._attrs["ome"]["multiscales"][0]["datasets"]]
        for name in self.label_names:
            out += [(f"labels/{name}/{p.name}", p) for p in sorted((self.path / "labels" / name).iterdir())
                    if p.is_dir() and p.name.isdigit()]
        out += [(f"twinlab/fields/{name}", self.path / "twinlab" / "fields" / name) for name in self.field_names]
        for name in self.result_names:
            folder = self.path / "twinlab" / "results" / name
            out += [(f"twinlab/results/{name}/{p.name}", p) for p in sorted(folder.iterdir())
                    if p.is_dir() and not p.name.startswith(".")]
        return out

    def __repr__(self) -> str:
        try:
            shape: Any = self.shape
        except TwinStoreError:  # a damaged twin still has a printable name
            shape = "damaged"
        return f"Twin({str(self.path)!r}, shape={shape}, voxel_size={self.voxel_size.as_tuple()})"


# ====================================================================================== create
def create_twin(
    path: str | os.PathLike,
    image: Any,
    *,
    voxel_size: VoxelSize | Any,
    phases: PhaseTable | None = None,
    labels: Mapping[str, Any] | None = None,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    design: Mapping[str, Any] | None = None,
    sources: list[dict[str, Any]] | None = None,
    cbd_as: str | None = None,
    step: Step | None = None,
    overwrite: bool = False,
    chunks: int | None = None,
    progress: bool = False,
) -> Twin:
    """Write a new twin from a grayscale volume (numpy or dask) and optional label volumes.

    Nothing is loaded whole: a dask ``image`` streams chunk by chunk into the store. The twin
    is written under a temporary name and renamed to ``path`` only when complete.
    ``thickness_axis`` is the electrode's through-plane axis (in FIB-SEM cross-sections usually
    image y); ``collector_side`` says whether the current collector sits at the low or high
    index end of that axis. ``cbd_as`` says what the "cbd" voxels of ``labels["phases"]`` stand for
    (:attr:`Twin.cbd_as`).
    """
    path = Path(path)
    voxel_size = VoxelSize.parse(voxel_size)
    chunks = require_chunks(chunks)
    image = _as_dask(image, chunks)
    require_ndim(image, 3, name="image")
    if image.dtype.kind not in "biuf":
        raise InputError(f"image dtype {image.dtype} is not a real number type; convert it first")
    if image.dtype.kind == "f":
        image = image.map_blocks(check_finite_block, dtype=image.dtype)
    thickness = AXES[axis_index(thickness_axis)]
    side = _check_side(collector_side)
    check_output(path, overwrite=overwrite)
    phases = phases or DEFAULT_PHASES
    tmp = make_staging(path.parent, path.name, "partial")
    try:
        datasets = _write_pyramid(tmp, image, voxel_size, chunks=chunks, labels=False, progress=progress)
        block = {
            "schema_version": SCHEMA_VERSION, "complete": False, "voxel_size_um": voxel_size.to_dict(),
            "thickness_axis": thickness, "collector_side": side, "phases": phases.to_list(),
            "design": to_jsonable(dict(design)) if design is not None else None,
            "sources": sources or [],
            "provenance": [(step or Step("create", {})).to_dict()],
        }
        attrs = {"ome": _multiscales_meta(path.name.removesuffix(TWIN_SUFFIX), datasets), "twinlab": block}
        _write_group_json(tmp, attrs)
        twin = Twin(tmp, attrs)
        for name, lab in (labels or {}).items():
            is_phases = name == "phases"
            twin.write_labels(name, lab, phases=phases if is_phases else None, cbd_as=cbd_as if is_phases else None,
                              chunks=chunks, step=Step("add_labels", {"name": name}), progress=progress)
        block = dict(twin._block, complete=True)
        _write_group_json(tmp, dict(twin._attrs, twinlab=block))
        publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Twin.open(path)


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def describe_sources(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Provenance of input files: path, size and SHA-256 (streamed, so large stacks are fine)."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            out.append({"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": file_sha256(f)})
    return out


# ====================================================================================== helpers
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_side(side: str) -> str:
    if side not in ("low", "high"):
        raise InputError(f"collector side {side!r} must be 'low' or 'high' (index end of the thickness axis)")
    return side


check_collector_side = _check_side  # public: front ends check it before any work


def _write_group_json(folder: Path, attributes: Mapping[str, Any]) -> None:
    """Write a zarr v3 group's zarr.json atomically (temp file + os.replace)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"zarr_format": 3, "node_type": "group", "attributes": to_jsonable(dict(attributes))}
    text = json.dumps(doc, indent=1, allow_nan=False)
    tmp = folder / f".zarr.json.{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text)
        os.replace(tmp, folder / "zarr.json")
    except BaseException:  # e.g. a full disk: leave no temp file in the store
        tmp.unlink(missing_ok=True)
        raise


def _ensure_group(root: Path, *parts: str) -> Path:
    folder = root
    for part in parts:
        folder = folder / part
        if not (folder / "zarr.json").is_file():
            _write_group_json(folder, {})
    return folder


def _children(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@contextmanager
def _staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A hidden folder beside the final location; removed if the block fails."""
    tmp = Path(parent) / f".{name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)  # no-op when the content was renamed away


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an existing target is moved aside first and deleted after."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
        try:
            new.rename(target)
        except BaseException:
            old.rename(target)  # the old one stays in place when the new one cannot be put there
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


def _as_dask(array: Any, chunks: int | None) -> da.Array:
    if is_dask(array):
        return array
    array = np.asarray(array)
    return da.from_array(array, chunks=_chunk_shape(array.shape, chunks))


def _chunk_shape(shape: tuple[int, ...], chunks: int | None) -> tuple[int, ...]:
    c = int(chunks or DEFAULT_CHUNK)
    if c < 1:
        raise InputError(f"chunk size must be positive, got {chunks}")
    return tuple(max(1, min(c, n)) for n in shape)


def _rechunk_like(array: da.Array, chunks: tuple[int, ...]) -> da.Array:
    return array.rechunk(chunks) if array.chunksize != tuple(chunks) or len(set(array.chunks[0][:-1])) > 1 \
        else array


def _pyramid_factors(shape: tuple[int, ...], voxel: VoxelSize, n_levels: int | None) -> list[tuple[int, int, int]]:
    """Per-level downsampling factors: halve the finest axes first while voxels are anisotropic."""
    factors: list[tuple[int, int, int]] = []
    size = list(voxel.as_tuple())
    dims = list(shape)
    while n_levels is None or len(factors) < n_levels - 1:
        if n_levels is None and (len(factors) >= _MAX_LEVELS - 1):
            break
        finest = min(size)
        f = tuple(2 if size[i] <= finest * 1.5 else 1 for i in range(3))
        if n_levels is None and any(dims[i] // f[i] < _MIN_LEVEL_SIZE for i in range(3) if f[i] > 1):
            break
        if any(dims[i] // f[i] < 1 for i in range(3)):
            break
        factors.append(f)
        size = [s * fi for s, fi in zip(size, f)]
        dims = [d // fi for d, fi in zip(dims, f)]
    return factors


def _write_pyramid(folder: Path, image: da.Array, voxel: VoxelSize, *, chunks: int | None, labels: bool,
                   progress: bool, n_levels: int | None = None) -> list[dict[str, Any]]:
    """Write level 0 then each coarser level read back from the one before (bounded memory)."""
    datasets = []
    level_voxel = voxel
    source: da.Array = image
    for level, factor in enumerate([None, *_pyramid_factors(image.shape, voxel, n_levels)]):
        if factor is not None:
            source = _downsample(source, factor, labels=labels)
            level_voxel = VoxelSize(*(s * f for s, f in zip(level_voxel.as_tuple(), factor)))
        chunk = _chunk_shape(source.shape, chunks)
        arr = _integrity.create_array(folder / str(level), shape=source.shape, chunks=chunk, dtype=source.dtype,
                                      fill_value=0, dimension_names=list(AXES))
        _store(_rechunk_like(source, chunk), arr, progress=progress)
        _integrity.seal(arr)
        source = da.from_zarr(arr)  # the next level reads what was written, not the whole graph again
        datasets.append({"path": str(level),
                         "coordinateTransformations": [{"type": "scale", "scale": list(level_voxel.as_tuple())}]})
    return datasets


def _downsample(array: da.Array, factor: tuple[int, int, int], *, labels: bool) -> da.Array:
    if labels:  # nearest: keep label values exact
        return array[:: factor[0], :: factor[1], :: factor[2]]
    trimmed = array[tuple(slice(0, (n // f) * f) for n, f in zip(array.shape, factor))]
    chunks = tuple(max(f, (c // f) * f) for c, f in zip(trimmed.chunksize, factor))
    trimmed = trimmed.rechunk(chunks)
    out = da.coarsen(np.mean, trimmed, dict(enumerate(factor)), trim_excess=True, dtype=np.float64)
    if np.issubdtype(array.dtype, np.integer):
        out = da.round(out)
    return out.astype(array.dtype)


def _store(array: da.Array, target: Any, *, progress: bool = False) -> None:
    """``da.store`` that, on the local threaded scheduler, waits for in-flight chunk writes when a
    chunk fails or Ctrl-C arrives, so the caller's clean-up cannot race with late writes."""
    import dask
    from dask.base import get_scheduler

    kwargs: dict[str, Any] = {"lock": False}
    pool = None
    if get_scheduler(collections=[array]) is dask.threaded.get:
        pool = ThreadPoolExecutor(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        kwargs.update(scheduler="threads", pool=pool)
    try:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                da.store(array, target, **kwargs)
        else:
            da.store(array, target, **kwargs)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _multiscales_meta(name: str, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "0.5", "multiscales": [{
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in AXES],
        "datasets": datasets,
    }]}


def _image_label_meta(labels: da.Array, phases: PhaseTable | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": {"image": "../../"}}
    if phases is not None:
        meta["colors"] = [{"label-value": p.value, "rgba": list(p.color)} for p in phases]
        meta["properties"] = [{"label-value": p.value, "name": p.name,
                               **({"material": p.material} if p.material else {})} for p in phases]
    return meta
