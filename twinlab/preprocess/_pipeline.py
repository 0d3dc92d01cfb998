"""The preprocessing chain (align → destripe → flatten → denoise → resample) and its twin step."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import dask.array as da
import numpy as np

from .._chunked import is_dask
from .._memory import return_freed_heap_promptly
from .._results import Result
from .._outputs import check_output, make_staging
from .._validation import VoxelSize, axis_index, check_options, require_chunks, require_ndim
from ..errors import InputError
from ._align import align_slices, drift_reference
from ._common import SLAB_BYTES, as_float32, even_chunks, sample_blocks
from ._denoise import denoise, estimate_noise_sigma, nlm_parameters
from ._destripe import flatten_background, remove_curtaining
from ._resample import resample_isotropic

STEPS = ("align", "destripe", "flatten", "denoise", "resample")
DEFAULT_CHUNK = 128


@dataclasses.dataclass(frozen=True)
class PreprocessResult(Result):
    """What :func:`preprocess_volume` did. ``image`` is lazy for dask input (not in ``to_dict``)."""

    image: Any
    voxel_size: VoxelSize
    input_voxel_size: VoxelSize
    steps: tuple[str, ...]
    params: dict[str, Any]
    warnings: tuple[str, ...] = ()  # e.g. a noise estimate of 0 (denoising did nothing)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.image.shape), "dtype": str(self.image.dtype),
                "voxel_size_um": self.voxel_size.to_dict(), "input_voxel_size_um": self.input_voxel_size.to_dict(),
                "steps": list(self.steps), "params": self.params, "warnings": list(self.warnings)}


def parse_steps(steps: str | Sequence[str] | None) -> tuple[str, ...]:
    """'align,denoise' or a list → the steps in canonical order (the order of :data:`STEPS`)."""
    if steps is None:
        return STEPS
    items = [s.strip().lower() for s in (steps.split(",") if isinstance(steps, str) else steps) if s.strip()]
    aliases = {"curtaining": "destripe", "background": "flatten", "nlm": "denoise", "rescale": "resample"}
    items = [aliases.get(s, s) for s in items]
    unknown = [s for s in items if s not in STEPS]
    if unknown:
        raise InputError(f"unknown preprocessing step(s) {unknown}; choose from {','.join(STEPS)}")
    return tuple(s for s in STEPS if s in items)


def check_step_options(options: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Refuse options for unknown steps and option names a step's function does not take."""
    funcs = {"align": align_slices, "destripe": remove_curtaining, "flatten": flatten_background,
             "denoise": denoise, "resample": resample_isotropic}
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise InputError(f"preprocessing options must be a table per step, got {options!r}")
    bad = [k for k in options if k not in STEPS]
    if bad:
        raise InputError(f"options given for unknown step(s) {bad}; steps are {','.join(STEPS)}")
    for step, opts in options.items():
        # resample's voxel size is the input's, set here; the others may override theirs
        check_options(funcs[step], dict(opts) if isinstance(opts, Mapping) else opts, f"options of step {step!r}",
                      reserved=("voxel_size",) if step == "resample" else ())


def output_dtype(dtype: Any, input_dtype: Any = None) -> np.dtype | None:
    """The output type of :func:`preprocess_volume`: "input", a float type, or an integer type that
    holds every value of the input type (a narrower one would clip the grey values)."""
    if isinstance(dtype, str) and dtype == "input":
        if input_dtype is None:
            return None
        return np.dtype(input_dtype)
    try:
        out = np.dtype(dtype)
    except TypeError:
        raise InputError(f"unknown output dtype {dtype!r}; use input, float32 or float64") from None
    if out.kind not in "fiu":
        raise InputError(f"output dtype {out} is not a number type; use input, float32 or float64")
    if input_dtype is not None and out.kind in "iu" and not np.can_cast(np.dtype(input_dtype), out, "safe"):
        raise InputError(f"output dtype {out} cannot hold the input's {np.dtype(input_dtype)} grey values (they "
                         "would be clipped); use input, float32 or a wider integer type")
    return out


def preprocess_volume(
    stack: Any,
    *,
    voxel_size: Any,
    steps: str | Sequence[str] | None = None,
    chunks: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    dtype: Any = "input",
    scratch: str | os.PathLike | None = None,
) -> PreprocessResult:
    """Run the preprocessing chain on a (z, y, x) FIB-SEM stack.

    Parameters
    ----------
    stack : numpy or dask array
        The raw stack (z = milling direction). numpy input is processed in memory; dask input
        stays lazy, except for the global estimates (drift shifts: one streaming pass over the
        input; noise level and background reference: a few fixed sample cubes).
    voxel_size : VoxelSize or (dz, dy, dx) in µm
    steps : subset of ``align,destripe,flatten,denoise,resample`` (run in that order)
    chunks : int
        Chunk edge (voxels) for dask: 2D steps run on slabs of whole slices, 3D steps on cubes.
    options : {step: {option: value}}
        Keyword options of each step's function (:func:`align_slices`,
        :func:`remove_curtaining`, :func:`flatten_background`, :func:`denoise`,
        :func:`resample_isotropic`).
    dtype : "input", "float32" or a numpy dtype
        Output type; "input" rounds and clips back to the input's integer type.
    scratch : folder, optional
        For dask input: where the output of the 2D steps (align, destripe, flatten) is written,
        slab by slab, before the 3D steps read it back in cubes. Without it the 3D steps'
        cubes recompute the whole-slice slabs they overlap (once per row of cubes), which
        costs time and holds several slabs per cube. The caller removes the folder.

    Returns
    -------
    PreprocessResult
        ``image``, the new ``voxel_size`` and every parameter used (incl. the estimated noise
        sigma, NLM h and the drift shifts) in ``params``.
    """
    require_ndim(stack, 3, name="stack")
    vs = VoxelSize.parse(voxel_size)
    todo = parse_steps(steps)
    check_step_options(options)
    opts = {k: dict(v) for k, v in (options or {}).items()}
    in_dtype = np.dtype(stack.dtype)
    out_dtype = output_dtype(dtype, in_dtype)
    chunk = require_chunks(chunks) or DEFAULT_CHUNK
    data = stack
    if is_dask(data) and {"align", "destripe", "flatten"} & set(todo):
        plane = data.shape[1] * data.shape[2] * 4
        cz = max(1, min(chunk, SLAB_BYTES // max(plane, 1)))
        data = data.rechunk({0: cz, 1: -1, 2: -1})  # slabs of whole slices for the 2D steps
    params: dict[str, Any] = {"steps": list(todo), "chunks": chunk, "input_dtype": str(in_dtype),
                              "output_dtype": str(out_dtype), "input_voxel_size_um": vs.to_dict()}
    warnings: list[str] = []
    if "align" in todo:
        o = opts.get("align", {})
        # looked for once: recorded here and registered on by align_slices
        fiducial = drift_reference(data, o.get("reference", "auto"))
        data, shifts = align_slices(data, **{**o, "fiducial": fiducial})
        params["align"] = {**_plain(o), "shifts_px": shifts.tolist(),
                           "fiducial": None if fiducial is None else fiducial.to_dict(),
                           "drift_rms_step_px": float(np.sqrt(np.mean(np.diff(shifts, axis=0) ** 2)))
                           if len(shifts) > 1 else 0.0}
    if "destripe" in todo:
        o = {"sigma": 1.0, "wavelet": "db5", "orientation": "vertical", **opts.get("destripe", {})}
        data = remove_curtaining(data, **o)
        params["destripe"] = _plain(o)
    if "flatten" in todo:
        o = dict(opts.get("flatten", {}))
        if "sigma_um" not in o and "sigma" not in o:
            o["sigma_um"] = 5.0
        if "sigma_um" in o:
            o.setdefault("voxel_size", vs.as_tuple())
        if o.get("reference") == "global":  # estimate once here, so provenance records the number
            o["reference"] = float(np.mean([b.mean() for b in sample_blocks(as_float32(data))]))
        data = flatten_background(data, **o)
        params["flatten"] = _plain(o)
    if scratch is not None and is_dask(data) and {"align", "destripe", "flatten"} & set(todo):
        data = stream_to_zarr(data, Path(scratch), progress=False, chunks=(data.chunksize[0], chunk, chunk))
    if "denoise" in todo:
        o = {"method": "nlm", "voxel_size": vs.as_tuple(), **opts.get("denoise", {})}
        if is_dask(data):
            data = data.rechunk(even_chunks(data.shape, chunk))
        if o.get("sigma") is None and o["method"] in ("nlm", "bilateral"):
            o["sigma"] = estimate_noise_sigma(data)
            if o["sigma"] == 0 and o.get("h" if o["method"] == "nlm" else "sigma_color") is None:
                warnings.append("denoise: the noise estimate is 0 (constant or too thin sample blocks), so "
                                f"{o['method']} left the image unchanged; give h= (nlm) or sigma= explicitly")
        if o["method"] == "nlm":
            patch, dist = nlm_parameters(**{k: o[k] for k in ("voxel_size", "patch_size", "patch_distance",
                                                            "patch_size_um", "patch_distance_um") if k in o})
            o["patch_size"], o["patch_distance"] = list(patch), list(dist)
            o.pop("patch_size_um", None)
            o.pop("patch_distance_um", None)
            if o.get("h") is None:
                o["h"] = 0.8 * float(o["sigma"])
        data = denoise(data, **o)
        params["denoise"] = _plain(o)
    out_vs = vs
    if "resample" in todo:
        o = {"order": 1, **opts.get("resample", {})}
        if is_dask(data) and len(data.chunks[1]) == 1 and data.shape[1] > chunk:
            data = data.rechunk(even_chunks(data.shape, chunk))
        data, out_vs = resample_isotropic(data, voxel_size=vs, **o)
        params["resample"] = {**_plain(o), "voxel_size_um": out_vs.to_dict()}
    data = _cast(data, out_dtype)
    params["voxel_size_um"] = out_vs.to_dict()
    if warnings:
        params["warnings"] = list(warnings)
    return PreprocessResult(image=data, voxel_size=out_vs, input_voxel_size=vs, steps=todo, params=params,
                            warnings=tuple(warnings))


def preprocess_to_twin(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    voxel_size: Any = None,
    unit: str = "um",
    key: str | None = None,
    steps: str | Sequence[str] | None = None,
    chunks: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    dtype: Any = "input",
    overwrite: bool = False,
    progress: bool = False,
    thickness_axis: str = "y",
    collector_side: str = "low",
):
    """Read a stack lazily, preprocess it and stream it chunk by chunk into a new twin.

    Returns ``(twin, result)``; the twin's provenance holds a ``preprocess`` step with every
    parameter (estimated noise sigma, h, drift shifts, voxel sizes in and out).
    """
    from ..io import read_volume
    from ..twin import Step, create_twin, describe_sources

    from ..twin import check_collector_side

    return_freed_heap_promptly()
    # every option is checked before the input is read or anything computed
    parse_steps(steps)
    check_step_options(options)
    require_chunks(chunks)
    output_dtype(dtype)
    axis_index(thickness_axis)
    check_collector_side(collector_side)
    out = check_output(output, overwrite=overwrite)
    vol = read_volume(source, voxel_size=voxel_size, unit=unit, key=key, chunks=chunks)
    output_dtype(dtype, vol.data.dtype)
    staging = make_staging(out.parent, out.name, "stream")
    try:
        result = preprocess_volume(vol.data, voxel_size=vol.voxel_size, steps=steps, chunks=chunks,
                                   options=options, dtype=dtype, scratch=staging / "slices")
        params = {"source": os.fspath(source), **result.params}
        sources = describe_sources(list(vol.sources)) if vol.sources else None
        image = stream_to_zarr(result.image, staging / "image", progress=progress)
        twin = create_twin(out, image, voxel_size=result.voxel_size, chunks=chunks,
                           thickness_axis=thickness_axis, collector_side=collector_side, sources=sources,
                           step=Step("preprocess", params), overwrite=overwrite, progress=progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return twin, result


def stream_to_zarr(image: Any, folder: Path, *, progress: bool, chunks: tuple[int, int, int] | None = None) -> Any:
    """Compute ``image`` one row of chunks (one z-chunk × one y-chunk, all x) at a time into a
    zarr array (stored in ``chunks``, default the image's) and return it (dask).

    One ``da.store`` over the whole graph lets dask's scheduler run ahead and hold many
    float32 intermediates (measured: peak memory grew with the stack, ~2.4× its float32
    size); a whole z-layer of chunks is still a quarter of a 512-slice stack. Storing row by
    row bounds the working set to a row plus the halos the steps need, whatever the stack's
    size; neighbouring halos are recomputed (a few % for the usual halo/chunk ratios).
    """
    import zarr

    if not is_dask(image):
        return image
    chunks = chunks or tuple(max(c) for c in image.chunks)
    arr = zarr.create_array(store=str(folder), shape=image.shape, chunks=chunks, dtype=image.dtype,
                            zarr_format=3)
    zb = np.cumsum((0,) + image.chunks[0])
    yb = np.cumsum((0,) + image.chunks[1])
    for z0, z1 in zip(zb[:-1], zb[1:]):
        for y0, y1 in zip(yb[:-1], yb[1:]):
            region = (slice(int(z0), int(z1)), slice(int(y0), int(y1)))
            da.store(image[region], arr, regions=region, lock=False)
        if progress:
            print(f"\rpreprocess: {int(z1)}/{image.shape[0]} slices", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return da.from_zarr(arr)


def _cast(data: Any, dtype: np.dtype) -> Any:
    if np.dtype(data.dtype) == dtype:
        return data
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lib = da if is_dask(data) else np
        return lib.clip(lib.round(data), info.min, info.max).astype(dtype)
    return data.astype(dtype)


def _plain(o: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in o.items():
        if isinstance(v, VoxelSize):
            v = v.as_tuple()
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out
