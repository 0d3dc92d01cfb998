"""`twinlab preprocess`: raw FIB-SEM stack → aligned, destriped, flattened, denoised, isotropic twin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..preprocess import STEPS, preprocess_to_twin
from ._app import app, emit, warn


@app.command()
def preprocess(
    input: Annotated[Path, typer.Argument(help="TIFF stack, folder of slices, mha/nrrd/nii, raw+JSON, npy/npz or OME-Zarr.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Twin to write, e.g. sample.twin.zarr.")],
    voxel_size: Annotated[Optional[str], typer.Option(help="DZ,DY,DX (or one number); overrides the file's.")] = None,
    unit: Annotated[str, typer.Option(help="Unit of --voxel-size: um or nm.")] = "um",
    steps: Annotated[str, typer.Option(help=f"Comma-separated subset of {','.join(STEPS)} (run in that order).")]
    = ",".join(STEPS),
    chunks: Annotated[int, typer.Option(help="Chunk edge in voxels (2D steps use slabs of whole slices).")] = 128,
    denoise_method: Annotated[str, typer.Option(help="nlm, gaussian, median or bilateral.")] = "nlm",
    patch_size: Annotated[int, typer.Option(help="NLM patch size in voxels (odd).")] = 5,
    patch_distance: Annotated[int, typer.Option(help="NLM search distance in voxels.")] = 6,
    h: Annotated[Optional[float], typer.Option(help="NLM strength in gray levels; default 0.8 × estimated noise sigma.")] = None,
    destripe_sigma: Annotated[float, typer.Option(help="Curtaining filter damping width (frequency indices).")] = 1.0,
    flatten_sigma_um: Annotated[float, typer.Option(help="Background (shading) scale in µm.")] = 5.0,
    target_um: Annotated[Optional[float], typer.Option(help="Isotropic voxel edge in µm; default the pixel size.")] = None,
    dtype: Annotated[str, typer.Option(help="Output type: input (round/clip back) or float32.")] = "input",
    key: Annotated[Optional[str], typer.Option(help="Array name inside an .npz file.")] = None,
    thickness_axis: Annotated[str, typer.Option(help="Electrode through-plane axis: z, y or x.")] = "y",
    collector_side: Annotated[str, typer.Option(help="Current collector at the low or high end of that axis.")] = "low",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing twin at --output.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Preprocess a FIB-SEM stack chunk by chunk into a new twin (every parameter in its provenance)."""
    options = {
        "destripe": {"sigma": destripe_sigma},
        "flatten": {"sigma_um": flatten_sigma_um},
        "denoise": {"method": denoise_method, "patch_size": patch_size, "patch_distance": patch_distance, "h": h},
        "resample": {"target_um": target_um},
    }
    twin, result = preprocess_to_twin(input, output, voxel_size=voxel_size, unit=unit, key=key, steps=steps,
                                      chunks=chunks, options=options, dtype=dtype, overwrite=overwrite,
                                      progress=not json_, thickness_axis=thickness_axis,
                                      collector_side=collector_side)
    summary = result.to_dict()
    summary["twin"] = str(twin.path)
    if not json_:  # the shift list is long; the twin's provenance keeps it
        summary["params"].get("align", {}).pop("shifts_px", None)
    emit(summary, as_json=json_, title=f"wrote {twin.path}")
    warn(result.warnings)
