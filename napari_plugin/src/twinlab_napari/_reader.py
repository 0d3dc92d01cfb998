"""Reader: a ``*.twin.zarr`` → grayscale pyramid image layer + one labels layer per label group.

Lazy (dask arrays over zarr), anisotropic scale and micrometre units from the twin, phase
names/colours from its phase table. Returns ``None`` for anything that is not a twin, so
napari-ome-zarr keeps plain ``.zarr`` stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from twinlab.errors import TwinlabError
from twinlab.twin import TWIN_SUFFIX, Twin


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path).rstrip("/"))
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
