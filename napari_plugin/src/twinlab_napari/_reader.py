"""Reader: a ``*.twin.zarr`` → grayscale pyramid image layer + one labels layer per label group;
a label volume segmented elsewhere, named ``*.labels.<ext>`` (tif, npy, npz, nrrd, mha, nii, png)
→ one phases labels layer.

Lazy (dask arrays over zarr), anisotropic scale and micrometre units from the twin, phase
names/colours from its phase table. Returns ``None`` for anything else, so napari-ome-zarr
keeps plain ``.zarr`` stores. A label volume's values are mapped to phases as by
``twinlab import --labels``: the default table (0 pore, 1 active, 2 cbd, …), or the phase map
in a sidecar file ``<file>.phase-map`` holding one line such as ``0=pore,1=fiber,2=cbd``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from twinlab.errors import InputError, TwinlabError
from twinlab.twin import TWIN_SUFFIX, Twin

LABEL_VOLUME_SUFFIXES = tuple(f".labels{s}" for s in (".tif", ".tiff", ".npy", ".npz", ".nrrd", ".mha", ".nii",
                                                      ".nii.gz", ".png"))


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path).rstrip("/"))
    if p.name.lower().endswith(LABEL_VOLUME_SUFFIXES) and p.is_file():
        return read_label_volume
    if not p.name.endswith(TWIN_SUFFIX) or not (p / "zarr.json").is_file():
        return None
    try:
        Twin.open(p)
    except TwinlabError:
        return None
    return read_twin


def read_twin(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    if isinstance(path, list):
        path = path[0]
    return twin_layers(Twin.open(str(path).rstrip("/")))


def twin_layers(twin: Twin) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples for a twin (also used by the widgets after writing new layers)."""
    scale = twin.voxel_size.as_tuple()
    units = ("micrometer",) * 3
    pyramid = [twin.image(level) for level in range(twin.levels)]
    layers: list[tuple[Any, dict[str, Any], str]] = [(
        pyramid if len(pyramid) > 1 else pyramid[0],
        {"name": f"{twin.name} image", "scale": scale, "units": units, "multiscale": len(pyramid) > 1,
         "metadata": {"twin_path": str(twin.path)}},
        "image",
    )]
    for name in twin.label_names:
        levels = [twin.labels(name, level) for level in range(twin.levels)]
        kwargs: dict[str, Any] = {"name": f"{twin.name} {name}", "scale": scale, "units": units,
                                  "multiscale": len(levels) > 1,
                                  "metadata": {"twin_path": str(twin.path), "labels": name}}
        if name == "phases":
            phases = twin.phases
            kwargs["colormap"] = {None: (0, 0, 0, 0), **{p.value: tuple(c / 255 for c in p.color) for p in phases}}
            kwargs["features"] = {"index": [p.value for p in phases], "phase": phases.names}
        layers.append((levels if len(levels) > 1 else levels[0], kwargs, "labels"))
    return layers


def read_label_volume(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """A segmented label volume as a phases labels layer (values mapped to the twin phase table)."""
    from twinlab.io import read_volume
    from twinlab.labelmap import map_labels

    p = Path(path[0] if isinstance(path, list) else path)
    try:
        volume = read_volume(p)
        scale, note = volume.voxel_size.as_tuple(), None
    except InputError:  # no voxel size in the file: show it in voxels
        volume = read_volume(p, voxel_size=1.0)
        scale, note = (1.0, 1.0, 1.0), "no voxel size in the file: shown in voxels"
    sidecar = Path(str(p) + ".phase-map")
    phase_map = sidecar.read_text().strip() if sidecar.is_file() else None
    mapped = map_labels(volume.data, phase_map)
    phases = mapped.phases
    kwargs: dict[str, Any] = {
        "name": f"{p.name} phases", "scale": scale, "units": ("micrometer",) * 3,
        "colormap": {None: (0, 0, 0, 0), **{ph.value: tuple(c / 255 for c in ph.color) for ph in phases}},
        "features": {"index": [ph.value for ph in phases], "phase": phases.names},
        "metadata": {"labels": "phases", "phase_map": mapped.phase_map, "fractions": mapped.fractions,
                     "single_slice": bool(volume.metadata.get("single_slice")), "note": note},
    }
    return [(mapped.labels, kwargs, "labels")]
