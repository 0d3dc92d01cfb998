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
    view = (lambda r: r.to_dict()) if as_json else _summary
    if len(results) == 1:
        emit({"map": str(maps[0]), **view(results[0])}, as_json=as_json)
        return
    names = labels.split(",") if labels else [p.stem for p in maps]
    comparison = compare_ebac(results, names).to_dict()
    if not as_json:
        comparison = {k: v for k, v in comparison.items() if k not in ("depth_um", "profiles", "connected_profiles")}
    emit({"maps": {n: view(r) for n, r in zip(names, results)}, "comparison": comparison}, as_json=as_json)


_PROFILES = ("depth_um", "profile_mean", "profile_std", "conductive_fraction_profile", "connected_fraction_profile")


def _summary(result) -> dict:
    """The human-readable view: scalars, and the line scan as a few depths (``--json`` has all lines)."""
    d = result.to_dict()
    depth = d["depth_um"]
    picks = sorted({round(i * (len(depth) - 1) / 4) for i in range(5)})
    scan = {f"{depth[i]:.3g} um": f"{d['profile_mean'][i]:.4g} ± {d['profile_std'][i]:.3g}, "
                                  f"conductive {d['conductive_fraction_profile'][i]:.2f}" for i in picks}
    out = {k: v for k, v in d.items() if k not in _PROFILES}
    out["line_scan"] = scan
    out["line_scan_lines"] = f"{len(depth)} lines (all of them with --json)"
    return out


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
