"""Voxelise ellipsoidal particles and place filler phases (private numba/scipy kernels)."""

from __future__ import annotations

import numba
import numpy as np
from scipy import ndimage as ndi


def draw_ellipsoids(shape: tuple[int, int, int], centres_vox: np.ndarray, semi_vox: np.ndarray, *,
                    periodic: tuple[bool, bool, bool], kmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-particle map of axis-aligned ellipsoids.

    For every voxel (centre at integer index) returns ``s2`` = min over particles of the squared
    normalised distance ``Σ ((x − c)/a)²`` (float32, ``kmax²`` where no particle reaches) and the
    1-based index of that particle (int32, 0 where none). A voxel belongs to particle p grown by
    factor k iff ``s2 ≤ k²``; overlaps go to the particle with the smaller normalised distance
    (a multiplicatively weighted Voronoi split — flat contact facets between equal particles).
    """
    s2 = np.full(shape, kmax * kmax, dtype=np.float32)
    lab = np.zeros(shape, dtype=np.int32)
    _draw(np.ascontiguousarray(centres_vox, dtype=np.float64), np.ascontiguousarray(semi_vox, dtype=np.float64),
          np.array(periodic, dtype=np.bool_), float(kmax), s2, lab)
    return s2, lab


@numba.njit(cache=True)
def _draw(centres, semi, periodic, kmax, s2, lab):
    n0, n1, n2 = s2.shape
    k2 = kmax * kmax
    for p in range(centres.shape[0]):
        c0, c1, c2 = centres[p, 0], centres[p, 1], centres[p, 2]
        a0, a1, a2 = semi[p, 0] * kmax, semi[p, 1] * kmax, semi[p, 2] * kmax
        for i in range(int(np.ceil(c0 - a0)), int(np.floor(c0 + a0)) + 1):
            ii = i
            if periodic[0]:
                ii = i % n0
            elif i < 0 or i >= n0:
                continue
            d0 = (i - c0) / semi[p, 0]
            d0 *= d0
            if d0 > k2:
                continue
            for j in range(int(np.ceil(c1 - a1)), int(np.floor(c1 + a1)) + 1):
                jj = j
                if periodic[1]:
                    jj = j % n1
                elif j < 0 or j >= n1:
                    continue
                d1 = (j - c1) / semi[p, 1]
                d1 = d0 + d1 * d1
                if d1 > k2:
                    continue
                for k in range(int(np.ceil(c2 - a2)), int(np.floor(c2 + a2)) + 1):
                    kk = k
                    if periodic[2]:
                        kk = k % n2
                    elif k < 0 or k >= n2:
                        continue
                    d2 = (k - c2) / semi[p, 2]
                    d2 = d1 + d2 * d2
                    if d2 < s2[ii, jj, kk]:
                        s2[ii, jj, kk] = d2
                        lab[ii, jj, kk] = p + 1


def select_lowest(score: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray:
    """Boolean array: the ``count`` voxels inside ``mask`` with the lowest ``score`` (ties by index)."""
    out = np.zeros(score.shape, dtype=bool)
    idx = np.flatnonzero(mask)
    count = int(min(max(count, 0), idx.size))
    if count == 0:
        return out
    values = score.ravel()[idx]
    if count < idx.size:
        part = np.argpartition(values, count - 1)[:count]
        idx = idx[part]
    out.ravel()[idx] = True
    return out


def neck_score(solid: np.ndarray, sigma_vox: tuple[float, float, float], *,
               periodic: tuple[bool, bool, bool], rng: np.random.Generator) -> np.ndarray:
    """Negative local solid density: lowest in crevices and necks between solids (float32).

    A Gaussian-smoothed solid indicator is highest in pore voxels surrounded by much solid —
    the contact necks between particles and the corners against the collector — which is where
    carbon-binder bridges and binder menisci sit. A tiny random term breaks ties.
    """
    modes = tuple("wrap" if p else "nearest" for p in periodic)
    smooth = ndi.gaussian_filter(solid.astype(np.float32), sigma=sigma_vox, mode=modes, truncate=3.0)
    smooth -= rng.random(solid.shape, dtype=np.float32) * np.float32(1e-3)
    return -smooth


def outer_layer(particles: np.ndarray, thickness_vox: int, *, periodic: tuple[bool, bool, bool]) -> np.ndarray:
    """Voxels of each particle within ``thickness_vox`` (6-connected steps) of any other label."""
    inner = particles.copy()
    for _ in range(max(1, int(thickness_vox))):
        keep = inner > 0
        for ax in range(3):
            for shift in (1, -1):
                nb = np.roll(inner, shift, axis=ax)
                if not periodic[ax]:
                    edge = [slice(None)] * 3
                    edge[ax] = slice(0, 1) if shift == 1 else slice(-1, None)
                    nb[tuple(edge)] = 0
                keep &= nb == inner
        inner = np.where(keep, inner, 0)
    return (particles > 0) & (inner == 0)


def draw_fibrils(phases: np.ndarray, centres_vox: np.ndarray, semi_vox: np.ndarray, *, free: np.ndarray,
                 count: int, value: int, periodic: tuple[bool, bool, bool], rng: np.random.Generator,
                 max_gap: float, batch: int = 512) -> int:
    """Draw 1-voxel-thick straight fibrils between neighbouring particles into ``free`` voxels.

    Each fibril joins random points on the surfaces of two particles whose centres are closer than
    their semi-axes sum plus ``max_gap`` voxels, so it spans the pore between them (a web of PTFE
    fibrils). Voxels along the segment (sampled every half voxel) that are ``free`` become ``value``
    until exactly ``count`` voxels are set (the last fibril is cut short). Returns the number set.
    """
    from scipy.spatial import cKDTree

    n = centres_vox.shape[0]
    if n < 2 or count <= 0:
        return 0
    shape = np.array(phases.shape)
    reach = semi_vox.max(axis=1)
    box = np.where(periodic, shape, shape * 4 + 4 * reach.max()).astype(float)
    pos = np.where(periodic, np.mod(centres_vox, shape), centres_vox + shape + 2 * reach.max())
    tree = cKDTree(pos, boxsize=box)
    pairs = tree.query_pairs(2 * reach.max() + max_gap, output_type="ndarray")
    if pairs.size == 0:
        return 0
    vec = centres_vox[pairs[:, 1]] - centres_vox[pairs[:, 0]]
    for ax in range(3):
        if periodic[ax]:
            vec[:, ax] -= shape[ax] * np.round(vec[:, ax] / shape[ax])
    dist = np.sqrt((vec ** 2).sum(axis=1))
    pairs = pairs[dist < reach[pairs[:, 0]] + reach[pairs[:, 1]] + max_gap]
    if pairs.size == 0:
        return 0
    flat_free = free.ravel()
    flat = phases.ravel()
    done = 0
    for _ in range(10_000):
        pick = pairs[rng.integers(0, len(pairs), batch)]
        towards = centres_vox[pick[:, 1]] - centres_vox[pick[:, 0]]
        for ax in range(3):
            if periodic[ax]:
                towards[:, ax] -= shape[ax] * np.round(towards[:, ax] / shape[ax])
        a = _surface_points(centres_vox[pick[:, 0]], semi_vox[pick[:, 0]], towards, rng)
        b = _surface_points(centres_vox[pick[:, 1]], semi_vox[pick[:, 1]], -towards, rng)
        d = b - a
        for ax in range(3):  # shortest periodic image of the partner point
            if periodic[ax]:
                d[:, ax] -= shape[ax] * np.round(d[:, ax] / shape[ax])
        steps = np.maximum(2, np.ceil(2 * np.sqrt((d ** 2).sum(axis=1))).astype(int))
        for k in range(len(pick)):
            u = np.linspace(0.0, 1.0, steps[k])[:, None]
            idx = np.rint(a[k] + u * d[k]).astype(np.int64)
            ok = np.ones(len(idx), bool)
            for ax in range(3):
                if periodic[ax]:
                    idx[:, ax] %= shape[ax]
                else:
                    ok &= (idx[:, ax] >= 0) & (idx[:, ax] < shape[ax])
            lin = np.ravel_multi_index(tuple(idx[ok].T), phases.shape)
            lin = lin[flat_free[lin]]
            lin = lin[np.sort(np.unique(lin, return_index=True)[1])]  # keep order along the fibril
            lin = lin[: count - done]
            flat[lin] = value
            flat_free[lin] = False
            done += lin.size
            if done >= count:
                return done
    return done


def _surface_points(centres: np.ndarray, semi: np.ndarray, facing: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Uniform random directions on the hemisphere facing ``facing``, mapped onto each ellipsoid."""
    v = rng.normal(size=centres.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v *= np.where((v * facing).sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    return centres + v * semi


def carve_damage(particles: np.ndarray, centres_vox: np.ndarray, voxel_um: np.ndarray,
                 plans: dict[int, list[tuple]], *, periodic: tuple[bool, bool, bool]) -> np.ndarray:
    """Boolean mask of the voxels that ``plans`` cut out of their particles (the cracks' truth).

    ``plans`` maps a particle label p (row p − 1 of ``centres_vox``) to a list of cuts, each a tuple
    whose first item names it; lengths in µm, positions relative to the particle centre:

    * ``("slab", normal, half_width, origin, axis, reach)``: voxels within ``half_width`` of the plane
      through ``origin`` with unit ``normal`` whose coordinate along the in-plane unit ``axis`` is at
      least ``reach`` (−inf: the whole plane) — a radial crack from the surface inwards;
    * ``("disc", normal, half_width, radius)``: within ``half_width`` of the plane through the centre
      and within ``radius`` of the centre in that plane — a core crack;
    * ``("core", semi_um, scale)``: inside the ellipsoid ``Σ (x / (scale·a))² ≤ 1`` — a hollow core.

    Only voxels of particle p are cut, so a crack never leaves its particle. Periodic axes are
    measured with the minimum image.
    """
    out = np.zeros(particles.shape, dtype=bool)
    if not plans:
        return out
    flat = particles.ravel()
    idx = np.flatnonzero(np.isin(flat, np.fromiter(plans, dtype=flat.dtype)))
    order = np.argsort(flat[idx], kind="stable")
    idx = idx[order]
    labels = flat[idx]
    starts = np.searchsorted(labels, list(plans))
    stops = np.searchsorted(labels, list(plans), side="right")
    shape = np.array(particles.shape)
    for (pid, cuts), a, b in zip(plans.items(), starts, stops):
        own = idx[a:b]
        rel = np.stack(np.unravel_index(own, particles.shape), axis=1).astype(np.float64) - centres_vox[pid - 1]
        for ax in range(3):
            if periodic[ax]:
                rel[:, ax] -= shape[ax] * np.round(rel[:, ax] / shape[ax])
        rel *= voxel_um
        cut = np.zeros(own.size, dtype=bool)
        for kind, *args in cuts:
            if kind == "slab":
                normal, half, origin, axis, reach = args
                cut |= (np.abs((rel - origin) @ normal) < half) & ((rel - origin) @ axis >= reach)
            elif kind == "disc":
                normal, half, radius = args
                along = rel @ normal
                cut |= (np.abs(along) < half) & ((rel ** 2).sum(axis=1) - along ** 2 <= radius ** 2)
            elif kind == "core":
                semi, scale = args
                cut |= ((rel / (scale * np.asarray(semi))) ** 2).sum(axis=1) <= 1.0
            else:  # pragma: no cover - plans are built by the generator
                raise ValueError(f"unknown cut {kind!r}")
        out.ravel()[own[cut]] = True
    return out
