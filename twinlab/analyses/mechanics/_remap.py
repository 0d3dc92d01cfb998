"""Volume-conserving voxel move: every moving solid voxel goes to (near) its displaced position.

Each moving voxel claims the grid cell nearest to its continuous target position. If that cell is
taken (two voxels collide), the collision is resolved by ``collisions``:

* ``"push"`` (default): the voxel takes its cell and *pushes the solid ahead of it* one cell on
  along its own displacement, chain-wise, into the first free (pore) cell on that ray — the solid
  in front of a moving voxel shifts, so the pore that closes is the one the press drives the solid
  into, as in a real press (pores flatten along the pressing direction, large and small alike).
  Rays that meet fixed solid (the collector) or leave the slab, and voxels that do not move, fall
  back to "nearest".
* ``"nearest"``: the voxel takes the free cell nearest (Euclidean) to its target, searched in
  growing cubes. Colliding solid then spills into the closest pore cells — the narrow necks and
  wedges next to contacts — so small pores fill first and large ones are left (issue 16: the mean
  pore size of a calendered cathode hardly falls; ``tests/benchmarks/bench_pore_space.py``).

Every voxel ends in exactly one cell and every cell holds at most one voxel, so the voxel count of
each phase is conserved *exactly*; the pore space absorbs the volume change. Voxels are processed in
a seeded random order so no voxel is favoured; the result is deterministic for a given seed.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import ndimage

from ..._morphology import label_periodic
from ...errors import InputError


def remap_voxels(labels: np.ndarray, moving: np.ndarray, target: np.ndarray, *, n_allowed: int,
                 seed: int = 0, collisions: str = "push", owner: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
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
    collisions : "push" or "nearest"
        How a voxel whose cell is taken is placed (module docstring).
    owner : (n0, n1, n2) int, optional
        Particle instance id of each voxel (0: none). Given, the pieces of a particle that the move
        left sharing no face with any other solid are put back against their particle
        (:func:`reattach_debris`).

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
    if collisions not in ("push", "nearest"):
        raise InputError(f"collisions must be 'push' or 'nearest', got {collisions!r}")
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
    target = np.ascontiguousarray(target, dtype=np.float64)
    if collisions == "push":
        # the displacement of each voxel: target minus its voxel centre (the press direction locally)
        disp = target - (np.stack(np.unravel_index(src_idx, labels.shape)) + 0.5)
        for ax, n in ((1, n1), (2, n2)):  # periodic axes: the short way round
            disp[ax] -= n * np.round(disp[ax] / n)
        _claim(source, target, src_idx, order, np.ascontiguousarray(disp), fixed[:n_allowed].copy(), True)
    else:
        _claim(source, target, src_idx, order, np.zeros((3, 0)), np.zeros((1, 1, 1), bool), False)
    if owner is not None:
        reattach_debris(source, owner.reshape(-1))
    flat = labels.reshape(-1)
    new = np.zeros((n_allowed, n1, n2), labels.dtype)
    taken = source >= 0
    new[taken] = flat[source[taken]]
    return new, source


def take_sources(arr: np.ndarray, source: np.ndarray, fill=0) -> np.ndarray:
    """Voxel data ``arr`` (…, n0, n1, n2) carried by a remap: each cell of ``source``'s grid (from
    :func:`remap_voxels`) gets the data of the voxel whose flat index it holds, ``fill`` where it holds
    −1 (a pore). One parallel gather pass per leading row (numba), read in place where the row is contiguous
    (a leading slice of the solver's taller fields is): numpy's ``full`` + boolean-mask gather and scatter took
    6.7 s of the welded 128³ ten-step (84 calls), one serial pass over a contiguous copy 3.7 s (stop 38), this
    1.1–1.6 s (stop 39)."""
    lead = arr.shape[:-3]
    rows = arr.reshape(-1, *arr.shape[-3:])
    out = np.empty((rows.shape[0], source.size), arr.dtype)
    src = np.ascontiguousarray(source).reshape(-1)
    for r in range(rows.shape[0]):
        _gather(np.ascontiguousarray(rows[r]).reshape(-1), src, arr.dtype.type(fill), out[r])
    return out.reshape(*lead, *source.shape)


@numba.njit(parallel=True, cache=True)
def _gather(row, src, fill, out):
    for i in numba.prange(src.size):
        s = src[i]
        out[i] = row[s] if s >= 0 else fill


def reattach_debris(source: np.ndarray, owner: np.ndarray) -> None:
    """Put the debris of a remap back against its particle (``source`` changed in place).

    Each voxel lands in a whole cell, so a particle moved by a sub-voxel amount or rotated (a DEM
    clump, a sheared particle) can leave a voxel or two joined to it by an edge or a corner only. Such
    a piece shares no face with any other solid: it is held by nothing, and the stress solve's
    operator is singular on it (the 480 µm LMP anode at 4 µm, true-sphere DEM start, increment 8:
    a lithium voxel of this kind stopped CG at a residual of 3.8e-4 with rᵀMr = 0). A face-connected
    piece of solid (laterally periodic, ``source ≥ 0``) made only of particle voxels none of which lies
    in its particle's largest piece is debris; its voxels move, one by one, to the free cell nearest to
    them (periodic lateral distance) that shares a face with their particle's largest piece, which
    then includes them. Voxel counts stay exact; a piece with no free cell next to its particle stays.
    ``owner``: flat instance id (0: none) of each source voxel."""
    solid = source >= 0
    pid = np.where(solid, owner[np.maximum(source, 0)], 0)
    comp = label_periodic(solid, (1, 2))
    parts = pid > 0
    if not parts.any():
        return
    # each particle's largest piece: the component holding most of its voxels. The (particle, piece)
    # pairs as one int64 key (a 1-D sort): np.unique(axis=1) on the stacked pairs sorted rows of a
    # structured view, 0.29 s per call on the 128³ ten-step, ~9 s of its ~200 s wall
    span = np.int64(comp.max()) + 1
    keys, count = np.unique(pid[parts].astype(np.int64) * span + comp[parts], return_counts=True)
    pairs = np.stack([keys // span, keys % span])
    main = {}
    for (p, c), k in zip(pairs.T.tolist(), count.tolist()):
        if k > main.get(p, (0, 0))[1]:
            main[p] = (c, k)
    main_comps = {c for c, _ in main.values()}
    debris = parts & ~np.isin(comp, list(main_comps))
    debris &= ~np.isin(comp, np.unique(comp[solid & ~parts]))  # a piece touching other solid is held by it
    for v in np.argwhere(debris).tolist():
        v = tuple(v)
        p = int(pid[v])
        c = _free_cell_next_to(v, pid, comp, p, main[p][0], solid)
        if c is None:
            continue
        source[c], source[v] = source[v], -1
        solid[c], solid[v] = True, False
        pid[c], pid[v] = p, 0
        comp[c], comp[v] = main[p][0], 0


def _free_cell_next_to(v, pid, comp, p, c, solid):
    """The cell nearest to ``v`` (periodic lateral distance) that is free (not ``solid``) and shares a face
    with particle ``p``'s piece ``c`` (``pid``, ``comp``: particle and piece of each cell), searched in
    growing cubes around ``v`` (debris lies next to its particle); None if there is none."""
    n0, n1, n2 = solid.shape
    cross = ndimage.generate_binary_structure(3, 1)
    for r in range(1, max(solid.shape) + 1):
        off = np.arange(-r - 1, r + 2)  # the cube and one ring more, for the face test
        keep = (v[0] + off >= 0) & (v[0] + off < n0)
        o0 = off[keep]
        win = np.ix_(v[0] + o0, (v[1] + off) % n1, (v[2] + off) % n2)
        near = ndimage.binary_dilation((pid[win] == p) & (comp[win] == c), cross) & ~solid[win]
        near &= (np.abs(o0) <= r)[:, None, None] & (np.abs(off) <= r)[None, :, None] & (np.abs(off) <= r)[None, None, :]
        if near.any():
            i, j, k = np.argwhere(near).T
            d = np.stack([o0[i], off[j], off[k]], axis=1)
            b = int(np.argmin((d ** 2).sum(axis=1)))
            return v[0] + int(d[b, 0]), (v[1] + int(d[b, 1])) % n1, (v[2] + int(d[b, 2])) % n2
    return None


def remap_affine(labels: np.ndarray, n_coll: int, height: int, *, seed: int = 0,
                 collisions: str = "push") -> tuple[np.ndarray, np.ndarray]:
    """The coating of ``labels`` (axis 0 the compression axis, ``n_coll`` fixed collector layers at
    its start) compressed affinely toward the collector to ``height`` layers by :func:`remap_voxels`:
    every solid voxel's centre scaled to ``n_coll + (z − n_coll)·height/h0`` — the remap alone,
    without mechanics (the reference compression of the remap tests and ``bench_pore_space.py``)."""
    h0 = labels.shape[0] - n_coll
    moving = labels != 0
    moving[:n_coll] = False
    idx = np.nonzero(moving)
    target = np.empty((3, idx[0].size))
    target[0] = n_coll + (idx[0] + 0.5 - n_coll) * (height / h0)
    target[1] = idx[1] + 0.5
    target[2] = idx[2] + 0.5
    return remap_voxels(labels, moving, target, n_allowed=n_coll + height, seed=seed, collisions=collisions)


@numba.njit(cache=True)
def _push(source, fixed, c0, c1, c2, d0, d1, d2, voxel, ray0, ray1, ray2):
    """Put ``voxel`` in the taken cell (c0, c1, c2) and shift the solid ahead of it one cell on along
    the unit direction (d0, d1, d2), chain-wise, into the first free cell of that ray. False (nothing
    changed) when the ray meets fixed solid or leaves the slab first."""
    n0, n1, n2 = source.shape
    k = 0
    ray0[0], ray1[0], ray2[0] = c0, c1, c2
    s = 0
    while True:
        s += 1
        a0 = int(np.floor(c0 + 0.5 + s * d0))
        if a0 < 0 or a0 >= n0 or k + 1 >= ray0.size:
            return False
        a1 = int(np.floor(c1 + 0.5 + s * d1)) % n1
        a2 = int(np.floor(c2 + 0.5 + s * d2)) % n2
        if a0 == ray0[k] and a1 == ray1[k] and a2 == ray2[k]:
            continue  # same cell again (steps shorter than a cell diagonal)
        if fixed[a0, a1, a2]:
            return False
        for j in range(k):  # came round a periodic axis to a cell of its own chain: give up
            if a0 == ray0[j] and a1 == ray1[j] and a2 == ray2[j]:
                return False
        k += 1
        ray0[k], ray1[k], ray2[k] = a0, a1, a2
        if source[a0, a1, a2] < 0:
            break
    for j in range(k, 0, -1):  # shift the chain one cell on, from the free end
        source[ray0[j], ray1[j], ray2[j]] = source[ray0[j - 1], ray1[j - 1], ray2[j - 1]]
    source[c0, c1, c2] = voxel
    return True


@numba.njit(cache=True)
def _claim(source, target, src_idx, order, disp, fixed, push):
    n0, n1, n2 = source.shape
    big = max(n0, n1, n2)
    ray0 = np.empty(4 * (n0 + n1 + n2), np.int64)
    ray1 = np.empty_like(ray0)
    ray2 = np.empty_like(ray0)
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
        if push and not fixed[c0, c1, c2]:
            d0, d1, d2 = disp[0, v], disp[1, v], disp[2, v]
            norm = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            if norm > 1e-6 and _push(source, fixed, c0, c1, c2, d0 / norm, d1 / norm, d2 / norm, src_idx[v],
                                     ray0, ray1, ray2):
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
