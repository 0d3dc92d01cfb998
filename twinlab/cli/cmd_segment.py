"""`twinlab segment` (image → labels/phases, labels/particles) and `twinlab check` (REV + design)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analyses import run_analysis
from ..phases import parse_phase_materials
from ..twin import Twin
from ._app import app, emit, warn


@app.command()
def segment(
    twin: Annotated[Path, typer.Argument(help="A *.twin.zarr store (preprocessed image).")],
    method: Annotated[str, typer.Option(help="multiotsu, gmm or classifier.")] = "multiotsu",
    phases: Annotated[str, typer.Option(
        help="Phase names, dark → bright (classifier: scribble order); your own names are fine.")]
    = "pore,cbd,active",
    scribbles: Annotated[Optional[Path], typer.Option(
        help="Classifier training labels (npy/npz/tif, image shape): 0 unlabelled, k = k-th phase.")] = None,
    phase: Annotated[Optional[list[str]], typer.Option(
        "--phase", help="A phase's material, NAME:MATERIAL (e.g. fiber:carbon_fiber); repeatable. Names are free; "
        "defaults (conductivity, …) only for a material twinlab knows.")] = None,
    particles: Annotated[Optional[bool], typer.Option(
        "--particles/--no-particles", help="Split a particulate phase into particles (watershed); default: only "
        "when a phase's material is particulate (NCM, Li powder), never for fibres.")] = None,
    h_um: Annotated[Optional[float], typer.Option(help="Watershed marker dynamic in µm (default half a voxel).")]
    = None,
    min_distance_um: Annotated[Optional[float], typer.Option(
        help="Markers = distance maxima at least this far apart (µm) instead of h-maxima.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fit's sampling.")] = 0,
    refine: Annotated[bool, typer.Option(
        help="Correct FIB-SEM shine-through and partial-volume rims of the three darkest phases.")] = True,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Segment the twin's image into named phases (and particles); writes labels/phases, labels/particles."""
    from ..segment import segment_twin

    report = segment_twin(Twin.open(twin), method=method, phases=phases, scribbles=scribbles, particles=particles,
                          materials=parse_phase_materials(phase), h_um=h_um, min_distance_um=min_distance_um,
                          seed=seed, refine=refine)
    emit(report, as_json=json_)
    warn(report.warnings)


@app.command()
def check(
    twin: Annotated[Path, typer.Argument(help="A *.twin.zarr store with labels/phases.")],
    design: Annotated[Optional[Path], typer.Option(help="Design TOML; default: the design stored in the twin.")]
    = None,
    tolerance: Annotated[float, typer.Option(help="Design check tolerance (absolute fraction).")] = 0.02,
    cbd_as: Annotated[Optional[str], typer.Option(
        help="Compare CBD as 'domain' (nanoporous) or 'solid'; default: as the twin records, else domain.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """REV checks (size ratio, statistical REV) and the design check; stored as result 'rev'."""
    from ..design import load_design

    result = run_analysis("rev", Twin.open(twin), design=load_design(design) if design else None,
                          design_tolerance=tolerance, cbd_as=cbd_as)
    emit(result, as_json=json_)
