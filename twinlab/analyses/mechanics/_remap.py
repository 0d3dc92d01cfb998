"""Volume-conserving voxel move: every moving solid voxel goes to (near) its displaced position.

Each moving voxel claims the grid cell nearest to its continuous target position; if that cell is
taken (two voxels collide, or the cell is fixed/outside the allowed slab), it takes the free cell
nearest (Euclidean) to its target, searched in growing cubes. Every voxel ends in exactly one cell
and every cell holds at most one voxel, so the voxel count of each phase is conserved *exactly*;
the pore space absorbs the volume change. Voxels are processed in a seeded random order so no
direction is favoured; the result is deterministic for a given seed.
"""

from __future__ import annotations

import numba
import numpy as np

from ...errors import InputError


def remap_voxels(labels: np.ndarray, moving: np.ndarray, target: np.ndarray, *, n_allowed: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Move the ``moving`` voxels of ``labels`` to ``target`` positions without losing any.

    Parameters
    ----------
    labels : (n0, n1, n2) uint8
        Current phase labels; axis 0 is the compression axis. Non-moving, non-zero voxels stay
        where they are (e.g. the current collector) and block their cells.
    moving : (n0, n1, n2) bool
        Voxels that move (every solid voxel of the coating).
    target : (3, m) float
        Continuous target positions (voxel-centre coordinates, voxel units) of the moving voxels in
        C order of ``np.flatnonzero(moving)``. Axes 1 and 2 are periodic.
    n_allowed : int
        Moving voxels may only land in layers ``[0, n_allowed)`` of axis 0 (the compressed slab);
        the output has ``n_allowed`` layers along axis 0.

    Returns
    -------
    new_labels : (n_allowed, n1, n2) uint8
    source : (n_allowed, n1, n2) int64
        Flat index (into ``labels``) of the voxel now in each cell; -1 for pore cells. Fixed voxels
        map to themselves.
    """
    n0, n1, n2 = labels.shape
    src_idx = np.flatnonzero(moving)
    if target.shape != (3, src_idx.size):
        raise InputError(f"target must have shape (3, {src_idx.size}), got {target.shape}")
    if not 0 < n_allowed <= n0:
        raise InputError(f"n_allowed must lie in 1..{n0}, got {n_allowed}")
    fixed = (labels != 0) & ~moving
    if fixed[n_allowed:].any():
        raise InputError("fixed (non-moving) solid lies beyond the compressed slab; the slab must contain it")
    free = n_allowed * n1 * n2 - int(fixed[:n_allowed].sum())
    if src_idx.size > free:
        raise InputError(
            f"the compressed slab ({n_allowed} layers) has room for {free} solid voxels but {src_idx.size} "
            "must fit: the target density exceeds the solid density (porosity would be < 0); choose a "
            "smaller ratio or density")
    order = np.random.default_rng(seed).permutation(src_idx.size)
    source = np.full((n_allowed, n1, n2), -1, np.int64)
    fixed_idx = np.flatnonzero(fixed[:n_allowed])
    source.reshape(-1)[fixed_idx] = fixed_idx  # same flat index: fixed voxels lie in the kept layers
    _claim(source, np.ascontiguousarray(target, dtype=np.float64), src_idx, order)
    flat = labels.reshape(-1)
    new = np.zeros((n_allowed, n1, n2), labels.dtype)
    taken = source >= 0
    new[taken] = flat[source[taken]]
    return new, source


@numba.njit(cache=True)
def _claim(source, target, src_idx, order):
    n0, n1, n2 = source.shape
    big = max(n0, n1, n2)
    for oi in range(order.size):
        v = order[oi]
        t0, t1, t2 = target[0, v], target[1, v], target[2, v]
        # voxel-centre coordinates → cell index
        c0 = int(np.floor(t0))
        c0 = 0 if c0 < 0 else (n0 - 1 if c0 > n0 - 1 else c0)
        c1 = int(np.floor(t1)) % n1
        c2 = int(np.floor(t2)) % n2
        if source[c0, c1, c2] < 0:
            source[c0, c1, c2] = src_idx[v]
            continue
        placed = False
        for r in range(1, big + 1):
            best = 1e300
            b0 = b1 = b2 = -1
            for d0 in range(-r, r + 1):
                a0 = c0 + d0
                if a0 < 0 or a0 >= n0:
                    continue
                for d1 in range(-r, r + 1):
                    for d2 in range(-r, r + 1):
                        if abs(d0) < r and abs(d1) < r and abs(d2) < r:
                            continue  # inside: searched at a smaller radius
                        a1 = (c1 + d1) % n1
                        a2 = (c2 + d2) % n2
                        if source[a0, a1, a2] >= 0:
                            continue
                        e0 = a0 + 0.5 - t0
                        e1 = c1 + d1 + 0.5 - (t1 - np.floor(t1) + c1)
                        e2 = c2 + d2 + 0.5 - (t2 - np.floor(t2) + c2)
                        dist = e0 * e0 + e1 * e1 + e2 * e2
                        if dist < best:
                            best = dist
                            b0, b1, b2 = a0, a1, a2
            if b0 >= 0:
                source[b0, b1, b2] = src_idx[v]
                placed = True
                break
        if not placed:  # cannot happen after the capacity check; guard against silent loss
            raise RuntimeError("remap: no free cell left")
