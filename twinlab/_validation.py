"""Shared input checks and the :class:`VoxelSize` that travels with every volume."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .errors import InputError

AXES = ("z", "y", "x")
_UNIT_TO_UM = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "micron": 1.0,
               "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3}


@dataclass(frozen=True)
class VoxelSize:
    """Voxel edge lengths (dz, dy, dx) in micrometres; z is the milling (slice) direction."""

    dz: float
    dy: float
    dx: float

    def __post_init__(self) -> None:
        for name, value in zip(("dz", "dy", "dx"), self.as_tuple()):
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
                raise InputError(
                    f"voxel size {name}={value!r} must be a positive finite number of micrometres; "
                    "give it as DZ,DY,DX (e.g. --voxel-size 0.0325,0.03722,0.03722)"
                )
        # normalise numpy scalars to plain floats so the object serialises as JSON
        for name in ("dz", "dy", "dx"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def parse(cls, value: Any, unit: str = "um") -> "VoxelSize":
        """Build from "DZ,DY,DX", a single number (isotropic), a sequence or a VoxelSize.

        ``unit`` is one of um/µm, nm, mm and scales the numbers to micrometres.
        """
        if isinstance(value, VoxelSize):
            return value
        try:
            scale = _UNIT_TO_UM[unit.strip().lower()]
        except KeyError:
            raise InputError(f"unknown length unit {unit!r}; use one of um, nm, mm") from None
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                raise InputError(
                    f"cannot read voxel size {value!r}; give three numbers DZ,DY,DX or one number"
                ) from None
        elif isinstance(value, (int, float, np.number)):
            numbers = [float(value)]
        else:
            numbers = [float(v) for v in value]
        if len(numbers) == 1:
            numbers = numbers * 3
        if len(numbers) != 3:
            raise InputError(f"voxel size needs 3 values DZ,DY,DX (or 1 for isotropic), got {len(numbers)}")
        return cls(*(n * scale for n in numbers))

    @classmethod
    def isotropic(cls, size_um: float) -> "VoxelSize":
        return cls(size_um, size_um, size_um)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.dz, self.dy, self.dx)

    def to_dict(self) -> dict[str, float]:
        return {"dz": self.dz, "dy": self.dy, "dx": self.dx}

    def __iter__(self):
        return iter(self.as_tuple())

    def __getitem__(self, axis: int) -> float:
        return self.as_tuple()[axis]

    @property
    def volume_um3(self) -> float:
        return self.dz * self.dy * self.dx

    @property
    def is_isotropic(self) -> bool:
        return max(self.as_tuple()) - min(self.as_tuple()) <= 1e-9 * max(self.as_tuple())

    def along(self, axis: int | str) -> float:
        return self.as_tuple()[axis_index(axis)]

    def face_area_um2(self, axis: int | str) -> float:
        """Area of the voxel face normal to ``axis``."""
        a = axis_index(axis)
        others = [s for i, s in enumerate(self.as_tuple()) if i != a]
        return others[0] * others[1]


def axis_index(axis: int | str) -> int:
    """Accept 0/1/2, -3..-1 or 'z'/'y'/'x' and return 0, 1 or 2."""
    if isinstance(axis, str):
        key = axis.strip().lower()
        if key not in AXES:
            raise InputError(f"axis {axis!r} is not one of z, y, x (or 0, 1, 2)")
        return AXES.index(key)
    if isinstance(axis, (int, np.integer)) and -3 <= int(axis) <= 2:
        return int(axis) % 3
    raise InputError(f"axis {axis!r} is not one of z, y, x (or 0, 1, 2)")


def require_ndim(array: Any, ndim: int = 3, *, name: str = "volume") -> None:
    """Raise an :class:`InputError` unless ``array`` has ``ndim`` dimensions."""
    got = getattr(array, "ndim", None)
    if got != ndim:
        hint = " (a single slice? stack several slices into a (z, y, x) volume)" if got == 2 and ndim == 3 else ""
        raise InputError(f"{name} must be {ndim}D, got shape {getattr(array, 'shape', None)}{hint}")


def single_slice_axis(shape: Iterable[int]) -> int | None:
    """The axis of a one-slice (2D) volume such as (1, Y, X), or None for a real 3D volume."""
    ones = [a for a, n in enumerate(shape) if int(n) == 1]
    return ones[0] if ones else None


def require_3d_volume(shape: Iterable[int], *, analysis: str) -> None:
    """Refuse a one-slice (2D) volume for an analysis that needs 3D (network, transport, REV, …)."""
    shape = tuple(int(n) for n in shape)
    if single_slice_axis(shape) is not None:
        raise InputError(f"{analysis} needs a 3D volume, but this one is a single 2D slice {shape}; run it on a "
                         "stack of slices (2D data supports segment, particles, cracks and EBAC)")


def require_integer_labels(array: Any, *, name: str = "labels") -> None:
    dtype = np.dtype(getattr(array, "dtype", None))
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise InputError(f"{name} must hold integer labels, got dtype {dtype}; segment the image first")


def require_positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def require_fraction(value: float, name: str, *, open_interval: bool = True) -> float:
    ok = 0 < value < 1 if open_interval else 0 <= value <= 1
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and ok):
        bounds = "(0, 1)" if open_interval else "[0, 1]"
        raise InputError(f"{name} must lie in {bounds}, got {value!r}")
    return float(value)


def check_finite_block(block: np.ndarray) -> np.ndarray:
    """Pass a block through unchanged, or raise if it holds NaN/Inf (used lazily on dask chunks)."""
    if block.dtype.kind in "fc" and not np.isfinite(block).all():
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        raise InputError(
            f"the volume contains {bad} NaN/Inf voxels in one chunk; replace them "
            "(e.g. numpy.nan_to_num) or crop them away before importing"
        )
    return block


def as_tuple_of_ints(values: Iterable[Any], name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be integers, got {values!r}") from None


def require_chunks(chunks: Any) -> int | None:
    """A chunk edge in voxels: None (the default) or a positive integer; 0 is not "the default"."""
    if chunks is None:
        return None
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or int(chunks) < 1:
        raise InputError(f"chunks must be a positive number of voxels per chunk edge (e.g. 128), got {chunks!r}")
    return int(chunks)


def check_options(func: Any, options: Any, where: str, *, reserved: Iterable[str] = ()) -> None:
    """Refuse option names ``func`` does not take (checked against its signature, before any work).

    ``options`` is a mapping of keyword options for ``func``; its first parameter (the data) and
    the ``reserved`` names (set by the caller itself) are not options. Functions taking
    ``**kwargs`` accept anything; ``**_`` (options shared by all analyses, ignored where unused)
    does not make an unknown name valid.
    """
    import inspect

    if not isinstance(options, dict):
        raise InputError(f"{where} must be a table of option = value, got {options!r}")
    params = list(inspect.signature(func).parameters.values())
    if any(p.kind is p.VAR_KEYWORD and p.name != "_" for p in params):
        return
    allowed = {p.name for p in params[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - set(reserved)
    unknown = sorted(str(k) for k in options if k not in allowed)
    if unknown:
        raise InputError(f"{where}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}")
