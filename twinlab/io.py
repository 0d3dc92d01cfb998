"""Readers: every supported format → a lazy dask volume + voxel size (µm) + metadata.

Formats: multi-page TIFF (voxel size from ImageJ or OME metadata), a folder of 2D slices
(TIFF/PNG, natural sort), the formats SimpleITK reads (mha/mhd, nrrd, nii/nii.gz), raw binary
with a JSON header, npy/npz and OME-Zarr (incl. twins). EBAC maps and other 2D images:
:func:`read_image2d`.

Nothing is read until the dask array is computed: each reader wraps the file in a small
array-like whose ``__getitem__`` reads only the requested block (contiguous TIFF and raw
files with positioned reads, so peak memory is a few chunks, not the file). A voxel size
given by the user overrides the file's; a volume with neither is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import dask.array as da
import numpy as np

from ._validation import VoxelSize, require_ndim
from .errors import InputError, ReadError

TIFF_SUFFIXES = (".tif", ".tiff")
SLICE_SUFFIXES = (".tif", ".tiff", ".png")
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr", ".nii", ".nii.gz")
DEFAULT_CHUNK = 128
_UNIT_TO_UM = {"micrometer": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0, "\\u00B5m": 1.0, "nanometer": 1e-3,
               "nm": 1e-3, "millimeter": 1e3, "mm": 1e3, "centimeter": 1e4, "cm": 1e4, "meter": 1e6, "m": 1e6,
               "angstrom": 1e-4}


@dataclass(frozen=True)
class Volume:
    """A lazily read volume: ``data`` is (z, y, x), z the milling/slice direction."""

    data: da.Array
    voxel_size: VoxelSize
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()


def read_volume(
    path: str | os.PathLike,
    *,
    voxel_size: VoxelSize | str | Sequence[float] | None = None,
    unit: str = "um",
    key: str | None = None,
    chunks: int | None = None,
) -> Volume:
    """Open ``path`` lazily as a 3D volume; a single 2D image comes back as one slice (1, y, x)
    with ``metadata["single_slice"] = True``.

    Parameters
    ----------
    path
        A file (``.tif/.tiff``, ``.mha/.mhd/.nrrd/.nii[.gz]``, ``.raw`` with a JSON header
        ``NAME.json`` or ``NAME.raw.json``, ``.npy/.npz``), a folder of 2D slices, or an
        OME-Zarr store.
    voxel_size
        (dz, dy, dx) in ``unit``; overrides any size stored in the file. Required when the
        file states none.
    unit
        Unit of ``voxel_size`` and of unit-less spacings stored by SimpleITK formats.
    key
        Array name inside an ``.npz`` file.
    chunks
        Edge length of the dask chunks (default 128).
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(f"{path} does not exist; check the path")
    reader = _pick_reader(path)
    data, file_voxel, metadata = reader(path, key=key, unit=unit, chunks=chunks or DEFAULT_CHUNK)
    if data.ndim == 2:  # one SEM / nano-CT slice: a (1, y, x) volume, marked as 2D
        data = data[None]
    if data.shape[0] == 1:
        metadata["single_slice"] = True
    require_ndim(data, 3, name=f"image in {path.name}")
    if data.dtype.kind not in "biuf":
        raise InputError(f"{path.name} holds {data.dtype} voxels; twinlab reads real-valued images only")
    if voxel_size is not None:
        vs = VoxelSize.parse(voxel_size, unit=unit)
        metadata["voxel_size_source"] = "user"
        if file_voxel is not None:
            metadata["file_voxel_size_um"] = file_voxel.to_dict()
    elif file_voxel is not None:
        vs = file_voxel
        metadata["voxel_size_source"] = "file"
    else:
        invalid = metadata.get("file_voxel_size_invalid")
        states = f"states an unusable voxel size ({invalid})" if invalid else "states no voxel size"
        raise InputError(
            f"{path.name} {states}; pass it, e.g. --voxel-size 0.0325,0.03722,0.03722 "
            "(DZ,DY,DX; --unit nm|um)")
    sources = tuple(str(p) for p in metadata.pop("_files", [path]))
    return Volume(data=data, voxel_size=vs, metadata=metadata, sources=sources)


def read_image2d(path: str | os.PathLike, *, pixel_size_um: float | None = None) -> tuple[np.ndarray, float | None,
                                                                                        dict[str, Any]]:
    """Read a 2D image (an EBAC map, an SEM section): ``(image, pixel size µm or None, metadata)``.

    RGB(A) images come back with their colour axis last; the caller decides how to reduce them.
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path} is not a file; give a 2D image (TIFF or PNG)")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                image = tif.asarray()
                size = _tiff_voxel_size(tif)
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise ReadError(f"cannot read {path.name} as TIFF ({exc}); is the file complete?") from None
        pixel = size.dx if size is not None else None
    else:
        try:
            from PIL import Image

            with Image.open(path) as im:
                image = np.asarray(im)
        except Exception as exc:
            raise ReadError(f"cannot read {path.name} as an image ({exc})") from None
        pixel = None
    image = np.squeeze(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise InputError(f"{path.name} has shape {image.shape}; expected a 2D image (or RGB/RGBA)")
    return image, (pixel_size_um if pixel_size_um is not None else pixel), {"path": str(path)}


# ====================================================================================== dispatch
def _pick_reader(path: Path) -> Callable[..., tuple[da.Array, VoxelSize | None, dict[str, Any]]]:
    name = path.name.lower()
    if path.is_dir():
        if (path / "zarr.json").is_file() or (path / ".zattrs").is_file() or (path / ".zgroup").is_file():
            return _read_ome_zarr
        return _read_slice_folder
    if name.endswith(TIFF_SUFFIXES):
        return _read_tiff
    if name.endswith(SITK_SUFFIXES):
        return _read_sitk
    if name.endswith((".raw", ".bin", ".dat")):
        return _read_raw
    if name.endswith((".npy", ".npz")):
        return _read_numpy
    if name.endswith(".png"):
        return _read_png
    raise InputError(
        f"unsupported file type {path.name!r}; twinlab reads TIFF, a folder of TIFF/PNG slices, "
        "mha/mhd/nrrd/nii, raw + JSON header, npy/npz, PNG (one slice) and OME-Zarr")


def _from_arraylike(obj: Any, name: str, chunks: tuple[int, ...]) -> da.Array:
    return da.from_array(obj, chunks=chunks, name=name, asarray=False, lock=False,
                         meta=np.empty((0,) * len(obj.shape), dtype=obj.dtype))


def _token(path: Path, *extra: Any) -> str:
    stat = path.stat()
    return "twinlab-read-" + str(abs(hash((str(path.resolve()), stat.st_size, stat.st_mtime_ns, *extra))))


def _chunks_for(shape: tuple[int, ...], chunk: int, full_last: bool = True) -> tuple[int, ...]:
    """Chunks (c, c, X): whole rows along x make each block one contiguous read per (z, y) run."""
    out = [max(1, min(chunk, n)) for n in shape]
    if full_last:
        out[-1] = shape[-1]
    return tuple(out)


# ====================================================================================== raw blocks
class _BlockSource:
    """A lazily read (z, y, x) volume for ``da.from_array``: dask asks for slices, and (after its
    getitem optimisation) for integers, which drop their axis as in numpy."""

    ndim = 3
    shape: tuple[int, int, int]

    def __getitem__(self, index: Any) -> np.ndarray:
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (3 - len(index))
        ints = tuple(a for a, i in enumerate(index) if not isinstance(i, slice))
        slices = tuple(slice(int(i) % n, int(i) % n + 1) if a in ints else i
                       for a, (i, n) in enumerate(zip(index, self.shape)))
        out = self._read(slices)
        return out.squeeze(axis=ints) if ints else out

    def _read(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        raise NotImplementedError


class _RawBlocks(_BlockSource):
    """A C-ordered (z, y, x) array stored contiguously at ``offset`` in a file, read by blocks."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, int, int], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = path, int(offset), tuple(shape), np.dtype(dtype)

    def _read(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = (range(*s.indices(n)) for s, n in zip(index, self.shape))
        nz, ny, nx = self.shape
        item = self.dtype.itemsize
        out = np.empty((len(zs), len(ys), nx), dtype=self.dtype)
        if len(ys) == 0 or len(zs) == 0:
            return out[:, :, xs.start:xs.stop:xs.step]
        with open(self.path, "rb") as fh:
            for i, z in enumerate(zs):
                start = self.offset + ((z * ny + ys.start) * nx) * item
                count = len(ys) * nx  # ys is contiguous (dask asks for slices with step 1)
                buf = os.pread(fh.fileno(), count * item, start)
                if len(buf) != count * item:
                    raise ReadError(f"{self.path.name} ends early (truncated?) at slice {z}; re-export the file")
                out[i] = np.frombuffer(buf, dtype=self.dtype).reshape(len(ys), nx)
        return out[:, :, xs.start:xs.stop:xs.step]


def _read_raw(path: Path, *, chunks: int, **_: Any):
    header = next((h for h in (path.with_suffix(".json"), path.with_name(path.name + ".json")) if h.is_file()), None)
    if header is None:
        raise ReadError(f"raw file {path.name} needs a JSON header {path.stem}.json with shape, dtype "
                        '(e.g. {"shape": [z, y, x], "dtype": "uint16", "byte_order": "little", '
                        '"voxel_size_um": [dz, dy, dx]})')
    meta, shape, dtype, offset, vs = _parse_raw_header(header)
    expected = offset + math.prod(shape) * dtype.itemsize
    if path.stat().st_size < expected:
        raise ReadError(f"{path.name} has {path.stat().st_size} bytes but its header needs {expected}; "
                        "the file is truncated or the header is wrong")
    blocks = _RawBlocks(path, offset, shape, dtype)
    data = _from_arraylike(blocks, _token(path), _chunks_for(shape, chunks))
    if dtype.byteorder == ">":
        data = data.astype(dtype.newbyteorder("="))
    return data, vs, {"format": "raw", "header": meta, "_files": [path, header]}


def _parse_raw_header(header: Path) -> tuple[dict[str, Any], tuple[int, int, int], np.dtype, int, VoxelSize | None]:
    """Validate a raw file's JSON header strictly, before anything is allocated or read.

    A header that is merely close (``"little-endian"``, a shape of 16.5) is refused rather than
    guessed at: a wrong guess reads plausible-looking wrong voxels.
    """
    where = f"raw header {header.name}"
    try:
        meta = json.loads(header.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReadError(f"cannot read {where} as JSON ({exc}); fix or re-write the header") from None
    if not isinstance(meta, dict) or "shape" not in meta or "dtype" not in meta:
        raise InputError(f'{where} needs at least "shape": [z, y, x] and "dtype", e.g. {{"shape": [100, 512, 512], '
                         '"dtype": "uint16", "byte_order": "little", "voxel_size_um": [dz, dy, dx], "offset": 0}')
    shape = meta["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(n) and n > 0 for n in shape)):
        raise InputError(f"{where} gives shape {shape!r}; it must be three positive whole numbers [z, y, x]")
    byte_order = meta.get("byte_order", "little")
    if byte_order not in ("little", "big"):
        raise InputError(f'{where} gives byte_order {byte_order!r}; it must be exactly "little" or "big"')
    try:
        dtype = np.dtype(meta["dtype"]) if isinstance(meta["dtype"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.byteorder not in ("=", "|"):
        raise InputError(f"{where} gives dtype {meta['dtype']!r}; use a numeric type name such as uint8, "
                         'uint16, int16, float32 (and "byte_order" for the byte order)')
    offset = meta.get("offset", 0)
    if not (_is_int(offset) and offset >= 0):
        raise InputError(f"{where} gives offset {offset!r}; it must be a whole number of bytes >= 0")
    voxel = meta.get("voxel_size_um")
    if voxel is not None:
        if not (isinstance(voxel, (int, float)) and not isinstance(voxel, bool)
                or isinstance(voxel, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in voxel)):
            raise InputError(f"{where} gives voxel_size_um {voxel!r}; give [dz, dy, dx] in micrometres")
        voxel = VoxelSize.parse(voxel)
    dtype = dtype.newbyteorder("<" if byte_order == "little" else ">")
    return meta, tuple(shape), dtype, offset, voxel


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ====================================================================================== TIFF
class _TiffPages(_BlockSource):
    """Pages of a (possibly compressed) TIFF series, decoded page by page on demand."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype):
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)

    def _read(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        import tifffile

        zs, ys, xs = index
        keys = list(range(*zs.indices(self.shape[0])))
        if not keys:
            return np.empty((0,) + self.shape[1:], self.dtype)[:, ys, xs]
        try:
            with _quiet_tifffile():
                pages = tifffile.imread(self.path, key=keys, series=0)
        except Exception as exc:
            raise ReadError(f"cannot decode pages {keys[0]}–{keys[-1]} of {self.path.name} ({exc})") from None
        return pages.reshape((len(keys),) + self.shape[1:])[:, ys, xs]


def _read_tiff(path: Path, *, chunks: int, **_: Any):
    import tifffile

    with _quiet_tifffile():
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise ReadError(f"cannot read {path.name} as TIFF ({exc}); the file is damaged or not a TIFF") from None
        return _read_tiff_series(path, tif, chunks)


def _read_tiff_series(path: Path, tif: Any, chunks: int):
    with tif:
        try:
            series = tif.series[0]
            shape, dtype, axes = tuple(series.shape), series.dtype, str(series.axes)
            # colour samples (interleaved, or integer RGB/RGBA planes) are no grey-value stack; float
            # samples stored as separate planes (e.g. SuperRes' label sections, axes "SYX") are planes
            if "S" in axes and (axes.endswith("S") or np.dtype(dtype).kind in "iub"):
                raise InputError(f"{path.name} is a colour (RGB/RGBA) image, shape {shape} (axes {axes}); "
                                 "save it as a grey-value stack first")
            size = path.stat().st_size
            for page in tif.pages:  # metadata only: every page's data must lie inside the file
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    raise ReadError(f"{path.name} is truncated: page data extend past the end of the file "
                                    f"({max(ends)} > {size} bytes); re-export or re-copy it")
            contiguous_offset = series.dataoffset
            n_planes = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            # tifffile falls back to the pages it found when an ImageJ file is cut short
            declared = (tif.imagej_metadata or {}).get("images", 1) if tif.is_imagej else 1
            cut_short = isinstance(declared, int) and declared > n_planes
            n_planes = max(n_planes, declared) if cut_short else n_planes
            # planes may be samples of one page (axes "SYX", e.g. SuperRes' sem_image_stack.tif):
            # a contiguous series is checked by its byte range, only a paged one by its page count
            truncated = cut_short or (contiguous_offset is None and len(tif.pages) < n_planes) or (
                contiguous_offset is not None and contiguous_offset + series.nbytes > size)
            if truncated:
                raise ReadError(f"{path.name} is truncated: it declares {n_planes} images of {shape[-2:]} but the "
                                "file ends before their data; re-export or re-copy it")
            meta: dict[str, Any] = {"format": "tiff", "axes": series.axes,
                                    "imagej": bool(tif.is_imagej), "ome": bool(tif.is_ome)}
            try:
                voxel = _tiff_voxel_size(tif)
            except InputError as exc:  # e.g. an ImageJ spacing of 0: unusable, but the pixels are fine
                voxel, meta["file_voxel_size_invalid"] = None, str(exc).split(";")[0]
        except (ReadError, InputError):
            raise
        except Exception as exc:
            raise ReadError(f"cannot read {path.name} as TIFF ({exc}); the file is damaged") from None
    squeezed = tuple(n for n in shape if n != 1) if len(shape) > 3 else shape
    if len(squeezed) == 2:  # a single 2D image: one slice
        squeezed = (1, *squeezed)
    if len(squeezed) != 3:
        raise InputError(f"{path.name} has shape {shape} (axes {meta['axes']}); twinlab needs one (z, y, x) "
                         "grey-value stack (split channels/time points first)")
    shape = squeezed
    if contiguous_offset is not None:
        blocks: Any = _RawBlocks(path, contiguous_offset, shape, dtype)
    else:
        blocks = _TiffPages(path, shape, dtype)
    data = _from_arraylike(blocks, _token(path), _chunks_for(shape, chunks))
    if np.dtype(dtype).byteorder == ">":
        data = data.astype(np.dtype(dtype).newbyteorder("="))
    return data, voxel, meta


_TIFF_LOG_LOCK = threading.Lock()
_TIFF_LOG_USERS = [0]  # reads in progress, over all threads
_TIFF_LOG_FILTER = logging.Filter("twinlab-silences-tifffile")  # a name no record has: drops them all


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Hold back tifffile's log lines ("invalid page offset" …) while twinlab reads: a damaged
    file then reports one error, ours, instead of log noise before it. Re-entrant across threads."""
    with _TIFF_LOG_LOCK:
        if _TIFF_LOG_USERS[0] == 0:
            logging.getLogger("tifffile").addFilter(_TIFF_LOG_FILTER)
        _TIFF_LOG_USERS[0] += 1
    try:
        yield
    finally:
        with _TIFF_LOG_LOCK:
            _TIFF_LOG_USERS[0] -= 1
            if _TIFF_LOG_USERS[0] == 0:
                logging.getLogger("tifffile").removeFilter(_TIFF_LOG_FILTER)


def _tiff_voxel_size(tif: Any) -> VoxelSize | None:
    """Voxel size from OME-XML (PhysicalSize*) or ImageJ (resolution tags + 'spacing')."""
    if tif.is_ome and tif.ome_metadata:
        found = {}
        for ax in "XYZ":
            m = re.search(rf'PhysicalSize{ax}="([0-9.eE+-]+)"', tif.ome_metadata)
            u = re.search(rf'PhysicalSize{ax}Unit="([^"]+)"', tif.ome_metadata)
            if m:
                found[ax] = float(m.group(1)) * _UNIT_TO_UM.get((u.group(1) if u else "µm"), 1.0)
        if {"X", "Y", "Z"} <= found.keys():
            return VoxelSize(found["Z"], found["Y"], found["X"])
    if tif.is_imagej:
        ij = tif.imagej_metadata or {}
        page = tif.pages[0]
        try:
            xres = page.tags["XResolution"].value
            yres = page.tags["YResolution"].value
        except KeyError:
            return None
        unit = str(ij.get("unit", "")).replace("\\u00B5", "µ")
        scale = _UNIT_TO_UM.get(unit)
        spacing = ij.get("spacing")
        if scale is None or spacing is None or xres[0] == 0 or yres[0] == 0:
            return None
        dx = xres[1] / xres[0] * scale
        dy = yres[1] / yres[0] * scale
        return VoxelSize(float(spacing) * scale, dy, dx)
    return None


def _read_png(path: Path, **_: Any):
    """One grey-value PNG: a single slice (1, y, x)."""
    image, _, _ = read_image2d(path)
    if image.ndim != 2:
        raise InputError(f"{path.name} is a colour image {image.shape}; convert it to grey values first")
    return da.from_array(image[None]), None, {"format": "png"}


# ====================================================================================== slice folders
def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class _SliceFolder(_BlockSource):
    """A folder of 2D slices, one file per z, read on demand."""

    def __init__(self, files: list[Path], shape: tuple[int, int, int], dtype: np.dtype):
        self.files, self.shape, self.dtype = files, shape, np.dtype(dtype)

    def _read(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = index
        picked = self.files[zs]
        out = np.empty((len(picked),) + self.shape[1:], dtype=self.dtype)[:, ys, xs]
        for i, f in enumerate(picked):
            img = _read_slice(f)
            if img.shape != self.shape[1:] or img.dtype != self.dtype:
                raise ReadError(f"slice {f.name} is {img.shape} {img.dtype}, the others "
                                f"{self.shape[1:]} {self.dtype}; all slices must match")
            out[i] = img[ys, xs]
        return out


def _read_slice(f: Path) -> np.ndarray:
    try:
        if f.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with _quiet_tifffile():
                return tifffile.imread(f)
        from PIL import Image

        with Image.open(f) as im:
            return np.asarray(im)
    except Exception as exc:
        raise ReadError(f"cannot read slice {f.name} ({exc})") from None


def _slice_header(f: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the file header, without decoding pixels."""
    try:
        if f.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with _quiet_tifffile(), tifffile.TiffFile(f) as tif:
                s = tif.series[0]
                return tuple(s.shape), np.dtype(s.dtype)
        from PIL import Image

        with Image.open(f) as im:
            arr = np.asarray(im.crop((0, 0, 1, 1)))
            return (im.size[1], im.size[0]) + tuple(arr.shape[2:]), arr.dtype
    except Exception as exc:
        raise ReadError(f"cannot read slice {f.name} ({exc}); is it a complete TIFF/PNG?") from None


def _read_slice_folder(path: Path, *, chunks: int, **_: Any):
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in SLICE_SUFFIXES),
                   key=lambda f: _natural_key(f.name))
    if not files:
        raise InputError(f"{path} is a folder without TIFF/PNG slices (and not an OME-Zarr store)")
    first_shape, first_dtype = _slice_header(files[0])
    for f in files[1:]:
        shape, dtype = _slice_header(f)
        if shape != first_shape or dtype != first_dtype:
            raise InputError(f"slices differ: {files[0].name} is {first_shape} {first_dtype} but {f.name} is "
                             f"{shape} {dtype}; all slices of a stack must have one shape and dtype")
    if len(first_shape) != 2:
        raise InputError(f"slices are {first_shape}; grey-value 2D slices are needed (convert RGB to grey)")
    shape = (len(files),) + first_shape
    blocks = _SliceFolder(files, shape, first_dtype)
    token = _token(path, tuple(f.name for f in files))
    data = _from_arraylike(blocks, token, (min(chunks, len(files)),) + first_shape)
    return data, None, {"format": "slices", "n_slices": len(files), "_files": files}


# ====================================================================================== SimpleITK
def _read_sitk(path: Path, *, unit: str, chunks: int, **_: Any):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ReadError(f"cannot read {path.name} with SimpleITK ({str(exc).strip().splitlines()[-1]})") from None
    size_xyz = reader.GetSize()
    if len(size_xyz) != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(f"{path.name} has size {size_xyz} with {reader.GetNumberOfComponents()} components; "
                         "a 3D single-channel image is needed")
    spacing = reader.GetSpacing()
    # ITK files store spacing without a unit: read it in `unit`. All-ones is ITK's default
    # for "not set", so it is treated as missing rather than trusted as 1 µm.
    voxel = None if all(abs(s - 1.0) < 1e-12 for s in spacing) else VoxelSize.parse(spacing[::-1], unit=unit)
    if path.name.lower().endswith((".mha", ".mhd")):
        _check_metaimage_size(path, int(np.prod(size_xyz)) * _sitk_itemsize(reader.GetPixelID()))
    try:
        image = sitk.ReadImage(str(path))  # ITK streams only some formats; read once, keep as dask
    except RuntimeError as exc:
        raise ReadError(f"cannot read {path.name} with SimpleITK ({str(exc).strip().splitlines()[-1]}); "
                        "is the file complete?") from None
    array = sitk.GetArrayFromImage(image)  # (z, y, x)
    data = da.from_array(array, chunks=_chunks_for(array.shape, chunks, full_last=False))
    return data, voxel, {"format": "sitk", "itk_spacing": list(spacing), "itk_origin": list(reader.GetOrigin())}


def _sitk_itemsize(pixel_id: int) -> int:
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], pixel_id)).dtype.itemsize


def _check_metaimage_size(path: Path, nbytes: int) -> None:
    """Refuse a MetaImage whose (uncompressed) data is shorter than its header says, before
    SimpleITK allocates the whole image and fails half-way through reading it."""
    header: dict[str, str] = {}
    with open(path, "rb") as fh:
        for raw in fh:
            key, _, value = raw.decode("latin-1").partition("=")
            header[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                local_end = fh.tell()
                break
        else:
            return  # no data file line: SimpleITK will refuse the header itself
    if header.get("CompressedData", "False").lower() == "true":
        return  # compressed size says nothing; SimpleITK's decoder reports a short stream
    name = header["ElementDataFile"]
    if name == "LOCAL":
        data, start = path, local_end
    elif name.startswith("LIST") or " " in name or "%" in name:
        return  # one file per slice: SimpleITK checks each
    else:
        data, start = path.parent / name, 0
    try:
        skip = int(header.get("HeaderSize", "0"))
        available = data.stat().st_size - start
    except (ValueError, OSError):
        return  # an odd header or a missing data file: SimpleITK's own message names it
    if skip > 0:
        available -= skip
    if available < nbytes:
        raise ReadError(f"{data.name} holds {max(available, 0)} bytes of image data but {path.name} declares "
                        f"{nbytes}; the data file is truncated or the header is wrong")


# ====================================================================================== numpy
def _read_numpy(path: Path, *, key: str | None, chunks: int, **_: Any):
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            used = None
        else:
            with np.load(path, allow_pickle=False) as npz:
                names = list(npz.files)
                if key is None:
                    if len(names) != 1:
                        raise InputError(f"{path.name} holds arrays {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise InputError(f"{path.name} has no array {key!r}; it holds {names}")
                array = npz[key]
                used = key
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ReadError(f"cannot read {path.name} as numpy data ({exc})") from None
    if array.dtype == bool:
        array = array.view(np.uint8) if array.flags.c_contiguous else array.astype(np.uint8)
    data = da.from_array(array, chunks=_chunks_for(array.shape, chunks, full_last=False)) \
        if array.ndim == 3 else da.from_array(array)
    return data, None, {"format": "numpy", "key": used}


# ====================================================================================== OME-Zarr
def _read_ome_zarr(path: Path, **_: Any):
    import zarr

    from ._integrity import open_checked

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise ReadError(f"cannot open {path} as a zarr group ({exc})") from None
    try:
        return _ome_zarr_level0(path, attrs, open_checked)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise ReadError(f"{path} has malformed OME-Zarr metadata ({type(exc).__name__}: {exc}); "
                        "re-export the store") from None


def _ome_zarr_level0(path: Path, attrs: dict[str, Any], open_checked: Callable[..., da.Array]):
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"; 0.4 keeps multiscales at the top
    multiscales = ome.get("multiscales")
    if not multiscales:
        raise InputError(f"{path} is a zarr store without OME multiscales metadata")
    ms = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
    dataset = ms["datasets"][0]
    level = str(dataset["path"])
    if not level or level.startswith(("/", ".")) or "\\" in level or ".." in level.split("/"):
        raise ReadError(f"{path} names dataset path {level!r}, which is not inside the store")
    data = open_checked(path / level, f"{path.name}/{level}")  # chunk files checked, decode errors named
    spatial = [i for i, a in enumerate(axes) if a in ("z", "y", "x")] if axes else list(range(data.ndim))
    if data.ndim > 3:  # drop singleton channel/time axes
        drop = tuple(i for i in range(data.ndim) if i not in spatial)
        if any(data.shape[i] != 1 for i in drop):
            raise InputError(f"{path} has axes {axes} with more than one channel/time point; export one")
        data = data[tuple(0 if i in drop else slice(None) for i in range(data.ndim))]
    scale = next((t["scale"] for t in dataset.get("coordinateTransformations", []) if t["type"] == "scale"), None)
    voxel = None
    if scale is not None and len(spatial) == 3:
        units = [(ms["axes"][i].get("unit") if isinstance(ms["axes"][i], dict) else None) for i in spatial]
        factors = [_UNIT_TO_UM.get(u or "micrometer", 1.0) for u in units]
        voxel = VoxelSize(*(float(scale[i]) * f for i, f in zip(spatial, factors)))
    return data, voxel, {"format": "ome-zarr", "axes": axes, "is_twin": "twinlab" in attrs}
