"""Binary morphology whose cost does not grow with the structuring-element radius.

A dilation by an ellipsoid of semi-axes ``r`` (voxels per axis) is a threshold of the distance to
the mask, and an erosion a threshold of the distance to the complement, both measured with the
metric ``Σ (k_i / r_i)²`` (the Euclidean distance transform of the ``edt`` package with per-axis
``anisotropy = 1/r``). Two linear-time transforms replace a scipy dilation whose cost is the
element's volume (∝ r³) per voxel, so a 30-voxel closing costs what a 3-voxel one does. The
element is exactly scipy's ``Σ (k_i/r_i)² ≤ 1`` ellipsoid (tested against ``binary_closing``).

Hole filling labels the complement once (``scipy.ndimage.label``, linear) instead of scipy's
iterated ``binary_fill_holes``, and may keep holes larger than a given size.

:func:`label_periodic` labels face-connected components with chosen sides joined periodically
(one scipy labelling and a graph of the face pairs, not a flood fill).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

_TOL = 1e-5  # float32 distances; lattice points nearest to the unit ellipsoid differ by ≥ 1/r² ≫ this


def closing_radius_vox(width_um: float, voxel_um: Sequence[float]) -> tuple[int, ...]:
    """Semi-axes (voxels per axis) of the element that bridges gaps up to ``width_um`` wide.

    Half the width rounded up, plus one voxel: an oblique gap of width w is up to ~w·√3 wide
    along the grid axes once digitised.
    """
    return tuple(int(np.ceil(width_um / (2.0 * s) - 1e-9)) + 1 for s in voxel_um)


def dilate(mask: np.ndarray, radius_vox: Sequence[float], *, threads: int = 1) -> np.ndarray:
    """Dilation by the ellipsoid of semi-axes ``radius_vox`` (the array's edge is open space)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    return _distance(~mask, radius_vox, threads, black_border=False) <= 1.0 + _TOL


def erode(mask: np.ndarray, radius_vox: Sequence[float], *, threads: int = 1) -> np.ndarray:
    """Erosion by the ellipsoid of semi-axes ``radius_vox``; outside the array counts as background."""
    mask = np.asarray(mask, dtype=bool)
    return _distance(mask, radius_vox, threads, black_border=True) > 1.0 + _TOL


def close(mask: np.ndarray, radius_vox: Sequence[float], *, threads: int = 1,
          mirror: bool | Sequence[tuple[bool, bool]] = False) -> np.ndarray:
    """Closing (dilation then erosion) by the ellipsoid of semi-axes ``radius_vox``; always ⊇ ``mask``.

    By default the array is embedded in empty space (no wall is invented at its edge).
    ``mirror`` — True, or per axis a (low, high) pair — names the edges that are cuts of a larger
    volume: beyond them is unknown, not empty, so the array is mirrored across them first. A gap
    that runs out through such an edge then has walls on both sides there and is bridged like
    one inside (in open space its mouth stays open for a radius from the edge).
    The transforms run on the array grown by the radius (the only cost that grows with it)."""
    mask = np.asarray(mask, dtype=bool)
    pads = [int(np.ceil(r)) + 1 for r in radius_vox]  # the closing reaches one radius beyond an edge
    sides = [(bool(mirror),) * 2] * mask.ndim if isinstance(mirror, bool) else [tuple(map(bool, m)) for m in mirror]
    if len(sides) != mask.ndim:
        raise ValueError(f"mirror needs one (low, high) pair per axis ({mask.ndim}), got {len(sides)}")
    mirrored = [(p * lo, p * hi) for p, (lo, hi) in zip(pads, sides)]
    grown = np.pad(mask, mirrored, mode="symmetric") if any(map(any, sides)) else mask
    padded = np.pad(grown, [(p, p) for p in pads])
    closed = erode(dilate(padded, radius_vox, threads=threads), radius_vox, threads=threads)
    crop = tuple(slice(p + lo, p + lo + n) for p, (lo, _), n in zip(pads, mirrored, mask.shape))
    return closed[crop] | mask


def fill_holes(mask: np.ndarray, *, max_hole_voxels: float | None = None) -> np.ndarray:
    """``mask`` with its holes filled: background components that do not touch the array's edge
    (face connectivity), all of them or only those of at most ``max_hole_voxels`` voxels."""
    mask = np.asarray(mask, dtype=bool)
    holes, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    keep = np.ones(n + 1, dtype=bool)  # True = stays background
    edge = np.zeros(n + 1, dtype=bool)
    for ax in range(mask.ndim):
        for end in (0, -1):
            edge[np.unique(np.take(holes, end, axis=ax))] = True
    keep[1:] = edge[1:]
    if max_hole_voxels is not None:
        keep |= np.bincount(holes.ravel(), minlength=n + 1) > max_hole_voxels
    keep[0] = False
    return ~keep[holes]


def label_periodic(mask: np.ndarray, periodic_axes: Sequence[int] = ()) -> np.ndarray:
    """Face-connected components of ``mask``, components that meet across the two sides of a
    periodic axis joined: a label per voxel, 0 outside ``mask``, components numbered from 1 (the
    numbers need not be consecutive)."""
    labels, count = ndi.label(mask, structure=ndi.generate_binary_structure(mask.ndim, 1))
    if not periodic_axes or count == 0:
        return labels
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # a graph of the labels facing each other across each periodic side
    first = np.concatenate([np.take(labels, 0, axis=a).ravel() for a in periodic_axes])
    last = np.concatenate([np.take(labels, -1, axis=a).ravel() for a in periodic_axes])
    both = (first > 0) & (last > 0)
    graph = coo_matrix((np.ones(int(both.sum())), (first[both], last[both])), shape=(count + 1,) * 2)
    component = connected_components(graph, directed=False)[1] + 1
    component[0] = 0  # the background (its own component) stays 0
    return component[labels]


def face_neighbour(a: np.ndarray, ax: int, shift: int, fill) -> np.ndarray:
    """Each voxel's face neighbour along ``ax`` on a coating grid (thickness axis 0, axes 1 and 2
    laterally periodic): ``a`` shifted by one voxel (``shift`` ±1; the result at ``i`` is ``a[i − shift]``),
    ``fill`` beyond axis 0's ends (the collector side and the roll)."""
    if ax != 0:
        return np.roll(a, shift, axis=ax)
    out = np.empty_like(a)
    if shift == 1:
        out[1:] = a[:-1]
        out[0] = fill
    else:
        out[:-1] = a[1:]
        out[-1] = fill
    return out


def _distance(mask: np.ndarray, radius_vox: Sequence[float], threads: int, *, black_border: bool) -> np.ndarray:
    import edt

    anis = tuple(1.0 / float(r) for r in radius_vox)
    return edt.edt(np.ascontiguousarray(mask, dtype=np.uint8), anisotropy=anis, black_border=black_border,
                   parallel=max(1, int(threads)))
