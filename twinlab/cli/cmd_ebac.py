"""``twinlab ebac``: analyse one or several EBAC maps (line scan, conductive regions, connected fraction)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..analyses.ebac import analyze_ebac_file, compare_ebac
from ..errors import InputError, OutputExistsError
from ._app import app, emit


@app.command("ebac")
def ebac(
    maps: List[Path] = typer.Argument(..., help="EBAC map(s): 2D TIFF/PNG; several maps are also compared."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size",
                                               help="Pixel size in µm (default: from the TIFF tags)."),
    collector: str = typer.Option("bottom", "--collector", help="Image edge of the current collector: "
                                  "bottom, top, left or right."),
    method: str = typer.Option("otsu", "--method", help="Threshold: otsu, li, yen, triangle or a number."),
    flatten_sigma: Optional[float] = typer.Option(None, "--flatten-sigma",
                                                  help="Background flattening σ in µm (default: none)."),
    collector_offset: float = typer.Option(0.0, "--collector-offset",
                                           help="Depth (µm) within which a region counts as touching the "
                                                "collector (e.g. the visible foil thickness)."),
    page: Optional[int] = typer.Option(None, "--page", help="Section of a multi-page TIFF (0-based)."),
    labels: Optional[str] = typer.Option(None, "--labels",
                                         help="Comma-separated names of the maps for the comparison, "
                                              "e.g. 20%,30%,40%."),
    map_out: Optional[Path] = typer.Option(None, "--map-out", help="Write the region map of the (single) "
                                           "input as a uint8 TIFF: 0 dark, 1 conductive, 2 collector-connected."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Line scan vs depth from the collector, conductive-region map and the bright area connected to it."""
    thr: str | float = method
    try:
        thr = float(method)
    except ValueError:
        pass
    results = [analyze_ebac_file(p, pixel_size_um=pixel_size, page=page, collector_side=collector, method=thr,
                                 flatten_sigma_um=flatten_sigma, collector_offset_um=collector_offset)
               for p in maps]
    if map_out is not None:
        _write_map(map_out, results)
    if len(results) == 1:
        emit({"map": str(maps[0]), **results[0].to_dict()}, as_json=as_json)
        return
    names = labels.split(",") if labels else [p.stem for p in maps]
    comparison = compare_ebac(results, names)
    emit({"maps": {n: r.to_dict() for n, r in zip(names, results)}, "comparison": comparison.to_dict()},
         as_json=as_json)


def _write_map(path: Path, results: list) -> None:
    import numpy as np
    import tifffile

    if len(results) != 1:
        raise InputError("--map-out writes the map of a single input; run one map at a time")
    if path.exists():
        raise OutputExistsError(f"{path} already exists; choose another --map-out")
    r = results[0]
    out = r.conductive_map.astype(np.uint8) + r.connected_map.astype(np.uint8)
    tifffile.imwrite(path, out)
