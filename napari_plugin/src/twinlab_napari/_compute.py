"""Plain typed functions behind the widgets: arrays / twin paths in, layer data and results out.

No Qt and no viewer here, so each is testable on its own. Functions that change a twin do so
only through twinlab's atomic writers, as their last action; long ones take ``check_cancel``
(a callable that raises :class:`Cancelled`), called between stages, so a cancelled job never
reaches its write and leaves the twin as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from twinlab.twin import Step, Twin

if TYPE_CHECKING:
    from twinlab.analyses.mechanics import CalenderOptions

LayerData = tuple[Any, dict[str, Any], str]
_UNITS = ("micrometer",) * 3
CancelCheck = Callable[[], None]


class Cancelled(Exception):
    """Raised by a cancel check to stop a job before it writes anything."""


def _never() -> None:
    return None


# ============================================================================ preprocess
def preview_preprocess(image: Any, *, voxel_size: Any, z: int, steps: Sequence[str] = ("denoise",),
                       half_depth: int = 6, options: dict[str, dict[str, Any]] | None = None) -> np.ndarray:
    """Preprocess only a slab of ``2·half_depth + 1`` slices around ``z`` (the live preview)."""
    from twinlab.preprocess import preprocess_volume

    z0, z1 = max(0, z - half_depth), min(image.shape[0], z + half_depth + 1)
    slab = np.asarray(image[z0:z1])
    result = preprocess_volume(slab, voxel_size=voxel_size, steps=[s for s in steps if s != "resample"],
                               options=options)
    return np.asarray(result.image)


def preprocess_twin(twin_path: str, *, steps: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                    check_cancel: CancelCheck = _never) -> LayerData:
    """Preprocess a twin's image and replace its grayscale pyramid (written only when complete)."""
    from twinlab.preprocess import preprocess_volume

    twin = Twin.open(twin_path)
    result = preprocess_volume(twin.image(), voxel_size=twin.voxel_size, steps=list(steps), options=options)
    check_cancel()
    image = np.asarray(result.image)  # computed before the write, so a cancel here changes nothing
    check_cancel()
    twin.write_image(image, voxel_size=result.voxel_size, step=Step("preprocess", result.params))
    return image, {"name": f"{twin.name} image", "scale": result.voxel_size.as_tuple(), "units": _UNITS,
                   "metadata": {"twin_path": str(twin.path)}}, "image"


# ============================================================================ segment
def segment_image(image: Any, *, method: str = "multiotsu", phases: Sequence[str] = ("pore", "cbd", "active"),
                  scribbles: np.ndarray | None = None) -> np.ndarray:
    """Phase labels of ``image``: multi-Otsu / GMM, or the classifier trained on ``scribbles``
    (napari convention: 0 = unlabelled, k = the k-th phase of ``phases``)."""
    from twinlab.segment import segment_phases, train_classifier

    if method == "classifier":
        if scribbles is None:
            from twinlab.errors import InputError

            raise InputError("the classifier needs scribbles: paint a labels layer (1, 2, … = the phases in order)")
        model = train_classifier(image, scribbles, phases=phases)
        return np.asarray(segment_phases(image, classifier=model, phases=phases))
    return np.asarray(segment_phases(image, method=method, phases=phases))


def save_labels(twin_path: str, name: str, labels: np.ndarray, params: dict[str, Any]) -> LayerData:
    twin = Twin.open(twin_path)
    twin.write_labels(name, labels, step=Step(f"napari:{name}", params))
    twin = twin.reload()
    return labels, {"name": f"{twin.name} {name}", "scale": twin.voxel_size.as_tuple(), "units": _UNITS,
                    "metadata": {"twin_path": str(twin.path), "labels": name}}, "labels"


# ============================================================================ checks
def run_checks(twin_path: str, *, design: str | None = None) -> dict[str, Any]:
    from twinlab.analyses.rev import analyze_twin
    from twinlab.pipeline import resolve_design

    twin = Twin.open(twin_path)
    return analyze_twin(twin, design=resolve_design(design) if design else None).to_dict()


# ============================================================================ network
def network_layers(twin_path: str) -> tuple[list[LayerData], dict[str, Any]]:
    """Pores as points (size = diameter, µm) and throats as vectors, from the twin's network result
    (extracted first if missing)."""
    from twinlab.analyses.network import analyze_twin

    twin = Twin.open(twin_path)
    if "network" not in twin.result_names:
        analyze_twin(twin)
    arrays = twin.load_result_arrays("network")
    coords = np.asarray(arrays["pore.coords"], dtype=float)  # µm, (z, y, x)
    diameter = np.asarray(arrays["pore.equivalent_diameter"], dtype=float)
    conns = np.asarray(arrays["throat.conns"], dtype=int)
    vectors = np.stack([coords[conns[:, 0]], coords[conns[:, 1]] - coords[conns[:, 0]]], axis=1)
    metrics = twin.load_result("network")["metrics"]
    return [
        (coords, {"name": f"{twin.name} pores", "size": diameter, "face_color": "orange", "units": _UNITS,
                  "features": {"diameter_um": diameter}}, "points"),
        (vectors, {"name": f"{twin.name} throats", "edge_width": 0.2, "edge_color": "cyan", "units": _UNITS},
         "vectors"),
    ], metrics


# ============================================================================ transport
def transport_per_axis(twin_path: str, *, axes: Sequence[str] = ("z", "y", "x")) -> dict[str, dict[str, Any]]:
    """Tortuosity factor τ² (voxel solve; ``tortuosity_tau`` = τ, ``porosity`` = the ε of D_eff = ε D/τ²)
    and effective conductivity per axis (a quick look, not stored). The current
    collector's planes (and end planes without pore) are left out, as in ``twinlab analyze``; an
    axis along which the pore does not percolate gets a note instead of numbers."""
    from twinlab.analyses.electrode import electrode_labels
    from twinlab.analyses.transport import compute_conductivity, compute_tortuosity
    from twinlab.errors import TwinlabError

    twin = Twin.open(twin_path)
    labels, _ = electrode_labels(twin, in_memory=True)
    common = {"phases": twin.phases, "voxel_size_um": twin.voxel_size}
    out: dict[str, dict[str, Any]] = {}
    for axis in axes:
        try:
            tort = compute_tortuosity(labels, axis=axis, **common)
            row: dict[str, Any] = {"porosity": tort.porosity, "tortuosity_factor": tort.tortuosity_factor,
                                   "tortuosity_tau": tort.tortuosity_tau}
        except TwinlabError as exc:
            out[axis] = {"note": str(exc)}
            continue
        try:
            row["conductivity_s_m"] = compute_conductivity(labels, axis=axis, **common).effective_conductivity_s_m
        except TwinlabError as exc:
            row["conductivity_note"] = str(exc)
        out[axis] = row
    return out


# ============================================================================ calender
def calender_layers(twin_path: str, *, ratios: Sequence[float], steps: int = 4, output: str | None = None,
                    options: CalenderOptions | None = None,
                    check_cancel: CancelCheck = _never) -> tuple[list[LayerData], list[dict[str, Any]]]:
    """Calender a twin with ``options`` (default: CalenderOptions()); the series is written to
    ``output`` (default ``<twin>.series.zarr``) only when every step finished. Returns the last
    step's labels and von Mises layers and all step results."""
    from twinlab.analyses.mechanics import CalenderOptions, calender
    from twinlab.pipeline import series_dir

    twin = Twin.open(twin_path)
    out = Path(output) if output else series_dir(twin.path)

    def progress(done: int, total: int, message: str) -> None:
        check_cancel()  # raising here aborts the solver before its atomic write

    options = (options or CalenderOptions()).replace(keep_fields=True)  # the layers are the last step's fields
    series = calender(twin, ratios=list(ratios), steps=steps, options=options, output=out, overwrite=True,
                      progress=progress)
    last = series.states[-1]
    scale = twin.voxel_size.as_tuple()
    layers: list[LayerData] = [
        (last.labels, {"name": f"{twin.name} calendered r={series.steps[-1].ratio:.2f}", "scale": scale,
                       "units": _UNITS}, "labels"),
        (last.von_mises_mpa, {"name": "von Mises stress (MPa)", "scale": scale, "units": _UNITS,
                              "colormap": "inferno", "blending": "additive"}, "image"),
    ]
    return layers, [s.to_dict() for s in series.steps]


# ============================================================================ clusters
def cluster_layers(twin_path: str) -> tuple[list[LayerData], dict[str, Any]]:
    """Conductive clusters (stored in the twin) and the collector-connected ones highlighted."""
    from twinlab.analyses.conductive import analyze_twin

    twin = Twin.open(twin_path)
    result = analyze_twin(twin)
    clusters = np.asarray(result.labels)
    percolating = np.isin(clusters, np.asarray(result.percolating_ids)) & (clusters > 0)
    scale = twin.voxel_size.as_tuple()
    return [
        (clusters, {"name": f"{twin.name} clusters", "scale": scale, "units": _UNITS}, "labels"),
        (percolating.astype(np.uint8), {"name": f"{twin.name} collector-connected", "scale": scale, "units": _UNITS,
                                         "colormap": {0: (0, 0, 0, 0), 1: (1, 0.2, 0.2, 1), None: (0, 0, 0, 0)}},
         "labels"),
    ], result.to_dict()


# ============================================================================ EBAC
def ebac_layers(path: str, *, pixel_size_um: float, collector_side: str = "bottom",
                method: str = "otsu") -> tuple[list[LayerData], dict[str, Any]]:
    from twinlab.analyses.ebac import analyze_ebac
    from twinlab.io import read_image2d

    image, pixel, _ = read_image2d(path, pixel_size_um=pixel_size_um)
    result = analyze_ebac(image, pixel_size_um=pixel or pixel_size_um, collector_side=collector_side, method=method)
    grey = image if image.ndim == 2 else image[..., :3].mean(axis=-1)
    scale = (pixel_size_um, pixel_size_um)
    return [
        (grey, {"name": f"{Path(path).stem} EBAC", "scale": scale, "colormap": "gray"}, "image"),
        (result.conductive_map.astype(np.uint8) + result.connected_map.astype(np.uint8),
         {"name": f"{Path(path).stem} conductive (2 = collector-connected)", "scale": scale}, "labels"),
    ], result.to_dict()
