"""`twinlab import` (raw data → twin, no processing), `twinlab info`, `twinlab analyze`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analyses import ANALYSES, check_analysis_names, run_analysis
from ..errors import InputError
from ..io import read_volume
from ..materials import load_phase_materials, parse_conductivities, phase_conductivities
from ..phases import parse_phase_materials
from ..twin import Step, Twin, create_twin, describe_sources
from ._app import app, emit


@app.command("import")
def import_(
    input: Annotated[Path, typer.Argument(help="TIFF stack, folder of slices, mha/nrrd/nii, raw+JSON, npy/npz or OME-Zarr.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Twin to write, e.g. sample.twin.zarr.")],
    voxel_size: Annotated[Optional[str], typer.Option(help="DZ,DY,DX (or one number); overrides the file's.")] = None,
    unit: Annotated[str, typer.Option(help="Unit of --voxel-size: um or nm.")] = "um",
    thickness_axis: Annotated[str, typer.Option(help="Electrode through-plane axis: z, y or x.")] = "y",
    collector_side: Annotated[str, typer.Option(help="Where the current collector sits on that axis: low or high.")] = "low",
    key: Annotated[Optional[str], typer.Option(help="Array name inside an .npz file.")] = None,
    chunks: Annotated[int, typer.Option(help="Chunk edge length in voxels.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing twin at --output.")] = False,
    labels: Annotated[bool, typer.Option(
        "--labels", help="The input is a segmented label volume: write labels/phases directly.")] = False,
    phase_map: Annotated[Optional[str], typer.Option(
        help="With --labels: VALUE=PHASE pairs, e.g. 0=pore,1=active,2=cbd (names are free); default: the "
        "values of the default table (0 pore, 1 active, 2 cbd, 3 collector, …).")] = None,
    phase: Annotated[Optional[list[str]], typer.Option(
        "--phase", help="With --labels: a phase's material, NAME:MATERIAL (e.g. fiber:carbon_fiber); repeatable.")]
    = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the twin summary as JSON.")] = False,
) -> None:
    """Import raw data (or, with --labels, a segmented label volume) into a new twin without processing it."""
    if labels:
        from ..labelmap import import_labels

        twin = import_labels(input, output, phase_map=phase_map, materials=parse_phase_materials(phase),
                             voxel_size=voxel_size, unit=unit, key=key, chunks=chunks, thickness_axis=thickness_axis,
                             collector_side=collector_side, overwrite=overwrite, progress=not json_)
        emit(twin.summary(), as_json=json_, title=f"wrote {twin.path}")
        return
    if phase_map is not None or phase:
        raise InputError("--phase-map and --phase describe a label volume; add --labels (or segment the image "
                         "with `twinlab segment --phases … --phase …`)")
    volume = read_volume(input, voxel_size=voxel_size, unit=unit, key=key, chunks=chunks)
    params = {"input": str(input), "voxel_size_um": volume.voxel_size.to_dict(), "metadata": volume.metadata,
              "chunks": chunks}
    twin = create_twin(output, volume.data, voxel_size=volume.voxel_size, thickness_axis=thickness_axis,
                       collector_side=collector_side, sources=describe_sources(list(volume.sources)),
                       step=Step("import", params), overwrite=overwrite, chunks=chunks, progress=not json_)
    emit(twin.summary(), as_json=json_, title=f"wrote {twin.path}")


@app.command()
def info(
    twin: Annotated[Path, typer.Argument(help="A *.twin.zarr store.")],
    verify: Annotated[bool, typer.Option(help="Also re-read every chunk and compare its checksum "
                                               "(reads the whole store).")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a twin's shape, voxel size, phases, layers, results and provenance."""
    opened = Twin.open(twin)
    verified = opened.verify() if verify else None  # first: it names every damaged chunk, not only the first
    summary = opened.summary()
    if verified is not None:
        summary["verified"] = verified
    emit(summary, as_json=json_)


@app.command()
def analyze(
    twin: Annotated[Path, typer.Argument(help="A *.twin.zarr store with labels/phases.")],
    only: Annotated[Optional[str], typer.Option(help=f"Comma-separated subset of: {', '.join(ANALYSES)}.")] = None,
    axis: Annotated[Optional[str], typer.Option(help="Axis for transport (z, y, x); default the thickness axis.")] = None,
    write_fields: Annotated[bool, typer.Option(help="Also store fields (e.g. concentration) in the twin.")] = False,
    conductivity: Annotated[Optional[str], typer.Option(
        help="Electronic conductivities PHASE=S_PER_M, e.g. fiber=5e4,pore=0; override the materials' values.")]
    = None,
    materials: Annotated[Optional[Path], typer.Option(
        help="Materials TOML: a [PHASE] table per phase with material = \"NAME\" and/or conductivity_s_m.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run analyses on a twin and store their results in it."""
    opened = Twin.open(twin)
    names = [n.strip() for n in only.split(",") if n.strip()] if only else list(ANALYSES)
    check_analysis_names(names, where="--only")  # all of them before the first one runs
    conductivities = phase_conductivities(*(load_phase_materials(materials) if materials else ({}, {})),
                                          given=parse_conductivities(conductivity))
    results = {name: run_analysis(name, opened, axis=axis, write_fields=write_fields or None,
                                  conductivities=conductivities or None) for name in names}
    single = 1 in opened.shape  # say so: a slice's numbers are per area, not per volume
    emit(results, as_json=json_, title=f"2D twin (single slice {list(opened.shape)}): results per slice area"
         if single else None)
