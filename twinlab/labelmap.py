"""Label volumes segmented elsewhere: label values → the twin's named phases.

A published or self-made segmentation (values 0/1/2, or 0/128/255, …) becomes a twin whose
``labels/phases`` hold the twin's phase values, without a segmentation step. The phase map
says which phase each value is (``0=pore,1=active,2=cbd``); without one the values must be
those of the default table (0 pore, 1 active, 2 cbd, 3 collector, 4 shell, 5 lithium,
6 binder). Phase names are free: a name twinlab does not know becomes a new phase, and
``materials`` attach a material to it (``{"fiber": "carbon_fiber"}``).

The image layer of such a twin is the label volume itself, as read (so the twin still holds
the data it came from); analyses read ``labels/phases``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import dask.array as da
import numpy as np

from ._validation import VoxelSize, require_integer_labels
from .errors import InputError
from .phases import DEFAULT_PHASES, PhaseTable

__all__ = ["LabelVolume", "parse_phase_map", "map_labels", "import_labels"]


@dataclass(frozen=True)
class LabelVolume:
    """A label volume mapped to named phases: ``labels`` (uint8, the table's values) and ``phases``."""

    labels: da.Array
    phases: PhaseTable
    phase_map: dict[int, str]
    fractions: dict[str, float]


def parse_phase_map(spec: str | Mapping[Any, str] | None) -> dict[int, str] | None:
    """``"0=pore,1=active,2=cbd"`` (or a mapping) → ``{0: "pore", 1: "active", 2: "cbd"}``."""
    if spec is None:
        return None
    items = spec.items() if isinstance(spec, Mapping) else \
        [tuple(t.strip() for t in part.partition("=")[::2]) for part in spec.split(",") if part.strip()]
    out: dict[int, str] = {}
    for value, name in items:
        try:
            key = int(value)
        except (TypeError, ValueError):
            key = -1
        if key < 0 or not name:
            raise InputError(f"cannot read phase map entry {value!r}={name!r}; give VALUE=PHASE pairs with "
                             "integer values ≥ 0, e.g. --phase-map 0=pore,1=active,2=cbd")
        if key in out:
            raise InputError(f"label value {key} appears twice in the phase map; give each value once")
        out[key] = str(name)
    if not out:
        raise InputError("the phase map is empty; give VALUE=PHASE pairs, e.g. --phase-map 0=pore,1=active,2=cbd")
    return out


def map_labels(data: Any, phase_map: Mapping[int, str] | str | None = None, *,
               materials: Mapping[str, str | None] | None = None,
               base: PhaseTable = DEFAULT_PHASES) -> LabelVolume:
    """Map a label volume's values to named phases (one pass over the data to find its values).

    Parameters
    ----------
    data : integer array (numpy or dask), any shape; floats are accepted when every value is whole
    phase_map : label value → phase name; default: the values of ``base`` (0 pore, 1 active, …)
    materials : phase name → material name for phases of the map (``{"fiber": "carbon_fiber"}``)
    base : the phase table the map extends

    Raises
    ------
    InputError
        Non-integer values; a value present in the data that the map does not name.
    """
    data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    if np.dtype(data.dtype).kind != "f":
        require_integer_labels(data, name="label volume")
    mapping = parse_phase_map(phase_map) if isinstance(phase_map, str) else phase_map
    mapping = dict(mapping) if mapping is not None else {p.value: p.name for p in base}
    table = base.with_phases(list(dict.fromkeys(mapping.values())), materials)
    present, n = _value_counts(data)  # the one pass over the data before the write
    if present.dtype.kind == "f":  # labels saved as floats (common in exports): whole numbers only
        odd = present[~np.isfinite(present) | (present != np.round(present))]
        if odd.size:
            raise InputError(f"label volume holds non-integer values (e.g. {odd[0]:g}); it looks like a grey image: "
                             "import it without --labels and run `twinlab segment`")
    unmapped = [int(v) for v in present if int(v) not in mapping]
    if unmapped:
        hint = "add them to --phase-map" if phase_map is not None else \
            "give a phase map, e.g. --phase-map 0=pore,1=active,2=cbd"
        raise InputError(f"label value(s) {unmapped[:10]} in the volume have no phase; {hint}")
    keys = np.array(sorted(mapping), dtype=np.int64)
    targets = np.array([table.value(mapping[int(k)]) for k in keys], dtype=np.uint8)
    labels = data.map_blocks(_remap_block, keys=keys, targets=targets, dtype=np.uint8)
    counts = {k: 0 for k in dict.fromkeys(mapping.values())}
    for v, c in zip(present, n):
        counts[mapping[int(v)]] += int(c)
    # a default map names every default phase: report those present; an explicit map, all it names
    fractions = {k: c / float(data.size) for k, c in counts.items() if c or phase_map is not None}
    return LabelVolume(labels=labels, phases=table, phase_map={int(k): v for k, v in mapping.items()},
                       fractions=fractions)


def import_labels(path: str | os.PathLike, output: str | os.PathLike, *,
                  phase_map: Mapping[int, str] | str | None = None,
                  materials: Mapping[str, str | None] | None = None,
                  voxel_size: VoxelSize | str | Sequence[float] | None = None, unit: str = "um",
                  key: str | None = None, chunks: int = 128, thickness_axis: str = "y",
                  collector_side: str = "low", overwrite: bool = False, progress: bool = False):
    """Read a label volume (any format of :func:`twinlab.io.read_volume`) into a new twin with
    ``labels/phases`` written directly; returns the opened :class:`~twinlab.twin.Twin`."""
    from .io import read_volume
    from .twin import Step, create_twin, describe_sources

    volume = read_volume(path, voxel_size=voxel_size, unit=unit, key=key, chunks=chunks)
    mapped = map_labels(volume.data, phase_map, materials=materials)
    params = {"input": str(path), "voxel_size_um": volume.voxel_size.to_dict(), "metadata": volume.metadata,
              "phase_map": {str(k): v for k, v in mapped.phase_map.items()},
              "materials": dict(materials or {}), "fractions": mapped.fractions, "chunks": chunks}
    return create_twin(Path(output), volume.data, voxel_size=volume.voxel_size, phases=mapped.phases,
                       labels={"phases": mapped.labels}, thickness_axis=thickness_axis,
                       collector_side=collector_side, sources=describe_sources(list(volume.sources)),
                       step=Step("import_labels", params), overwrite=overwrite, chunks=chunks, progress=progress)


def _remap_block(block: np.ndarray, *, keys: np.ndarray, targets: np.ndarray) -> np.ndarray:
    # every value is in keys and whole (checked above), so searchsorted finds its exact position
    return targets[np.searchsorted(keys, block.astype(np.int64, copy=False))]


def _value_counts(data: da.Array) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their voxel counts, chunk by chunk (any integer range: no bincount)."""
    import dask

    parts = dask.compute(*[dask.delayed(np.unique)(b, return_counts=True) for b in data.to_delayed().ravel()])
    values = np.concatenate([p[0] for p in parts])
    values = values.astype(np.int64) if values.dtype.kind in "biu" else values
    counts = np.concatenate([p[1] for p in parts]).astype(np.int64)
    keys, inverse = np.unique(values, return_inverse=True)
    return keys, np.bincount(inverse, weights=counts, minlength=keys.size).astype(np.int64)
