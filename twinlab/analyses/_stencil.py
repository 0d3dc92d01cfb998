"""Numba kernels of the voxel transport solver (7-point finite-volume stencil).

Conventions shared by every kernel (the caller moves the transport axis to axis 0):

* the unknown lives at voxel centres of a C-ordered ``(n0, n1, n2)`` grid;
* ``g0[i, j, k]`` is the conductance of the face between voxels ``(i, j, k)`` and ``(i + 1, j, k)``;
  likewise ``g1`` (axis 1) and ``g2`` (axis 2). The slot of the last layer (``g1[:, n1 - 1, :]``)
  holds the face that wraps around to index 0 when that axis is periodic, and 0 otherwise, so
  every kernel can index neighbours modulo ``n`` without a branch on periodicity. ``g0``'s last
  slot is unused (axis 0 carries the Dirichlet condition and is never periodic);
* ``bclo[j, k]`` / ``bchi[j, k]`` are the conductances from the first / last layer to the
  Dirichlet planes (half a voxel away);
* sums of conductances (the diagonal) are formed in float64: in float32 their rounding breaks the
  exact flux conservation between planes at the 1e-4 level for non-integer conductances;
* a voxel whose conductances all vanish is inactive: the operator row is zero there and the
  smoothers leave it alone, so the kernels need no mask.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True)


@njit(parallel=True, **_OPTS)
def build_faces(labels, keep, lut, w0, w1, w2, periodic1, periodic2, g0, g1, g2, bclo, bchi):
    """Face conductances from per-label conductivities ``lut`` (harmonic mean of the two voxels).

    ``keep`` (bool) switches voxels off (non-percolating); ``w0..w2`` are the geometric factors
    face area / centre distance of each axis. ``bclo``/``bchi`` use half the voxel length.
    """
    n0, n1, n2 = labels.shape
    for i in prange(n0):
        for j in range(n1):
            jp = j + 1 if j < n1 - 1 else 0
            for k in range(n2):
                kp = k + 1 if k < n2 - 1 else 0
                a = lut[labels[i, j, k]] if keep[i, j, k] else np.float32(0.0)
                # axis 0
                v = np.float32(0.0)
                if i < n0 - 1 and a > 0 and keep[i + 1, j, k]:
                    b = lut[labels[i + 1, j, k]]
                    if b > 0:
                        v = np.float32(w0 * 2.0 * a * b / (a + b))
                g0[i, j, k] = v
                # axis 1
                v = np.float32(0.0)
                if (j < n1 - 1 or periodic1) and n1 > 1 and a > 0 and keep[i, jp, k]:
                    b = lut[labels[i, jp, k]]
                    if b > 0:
                        v = np.float32(w1 * 2.0 * a * b / (a + b))
                g1[i, j, k] = v
                # axis 2
                v = np.float32(0.0)
                if (k < n2 - 1 or periodic2) and n2 > 1 and a > 0 and keep[i, j, kp]:
                    b = lut[labels[i, j, kp]]
                    if b > 0:
                        v = np.float32(w2 * 2.0 * a * b / (a + b))
                g2[i, j, k] = v
                if i == 0:
                    bclo[j, k] = np.float32(2.0 * w0 * a)
                if i == n0 - 1:
                    bchi[j, k] = np.float32(2.0 * w0 * a)


@njit(inline="always", **_OPTS)
def _axis0_rows(g0, bclo, bchi, x, zero, i, j):
    """Conductances and values of the two axis-0 neighbours of row (i, j), as rows.

    On the first/last layer the neighbour is the Dirichlet plane: its conductance row is
    ``bclo``/``bchi`` and its value row ``zero`` (the boundary value enters the right-hand side,
    not the operator). This makes every row kernel branch-free, so LLVM vectorises it.
    """
    n0 = x.shape[0]
    if i > 0:
        gm = g0[i - 1, j]
        xm = x[i - 1, j]
    else:
        gm = bclo[j]
        xm = zero
    if i < n0 - 1:
        gp = g0[i, j]
        xp = x[i + 1, j]
    else:
        gp = bchi[j]
        xp = zero
    return gm, xm, gp, xp


@njit(inline="always", **_OPTS)
def _apply_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, k, km, kp):
    c2p = np.float64(h[k])
    c2m = np.float64(h[km])
    c1p = np.float64(a1p[k])
    c1m = np.float64(a1m[k])
    c0m = np.float64(gm[k])
    c0p = np.float64(gp[k])
    d = (c2p + c2m) + (c1p + c1m) + (c0m + c0p)
    s = (c2p * xr[kp] + c2m * xr[km]) + (c1p * xjp[k] + c1m * xjm[k]) + (c0m * xm[k] + c0p * xp[k])
    return d * xr[k] - s


@njit(inline="always", **_OPTS)
def _apply_row(g0, g1, g2, bclo, bchi, x, zero, i, j, out):
    """``out[k] = (A x)[i, j, k]`` for one row (float64)."""
    n1, n2 = x.shape[1], x.shape[2]
    jm = j - 1 if j > 0 else n1 - 1
    jp = j + 1 if j < n1 - 1 else 0
    gm, xm, gp, xp = _axis0_rows(g0, bclo, bchi, x, zero, i, j)
    h = g2[i, j]
    a1p = g1[i, j]
    a1m = g1[i, jm]
    xr = x[i, j]
    xjp = x[i, jp]
    xjm = x[i, jm]
    # the row's two ends wrap along axis 2 (conductance 0 there unless the axis is periodic);
    # the interior is a plain loop that vectorises
    out[0] = _apply_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, 0, n2 - 1, 1 % n2)
    for k in range(1, n2 - 1):
        out[k] = _apply_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, k, k - 1, k + 1)
    if n2 > 1:
        out[n2 - 1] = _apply_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, n2 - 1, n2 - 2, 0)


def active_runs(g0, g1, g2, bclo, bchi) -> tuple[np.ndarray, np.ndarray]:
    """The active voxels (any conductance > 0) as runs along axis 2, row by row (for the smoother).

    Returns ``(starts, runs)``: the runs of row (i, j) are ``runs[starts[r]:starts[r + 1]]`` with
    ``r = i * n1 + j``, each ``(k0, k1)`` half-open. Gauss–Seidel visits only these: an
    inactive voxel's row of the operator is zero, and at the porosities of electrodes and rocks
    (20–50 % percolating) most of the grid is inactive.
    """
    n0, n1, _ = g0.shape
    counts = np.zeros(n0 * n1 + 1, np.int64)
    runs = np.empty((0, 2), np.int32)
    _scan_runs(g0, g1, g2, bclo, bchi, counts, runs, False)
    starts = np.cumsum(counts)
    runs = np.empty((int(starts[-1]), 2), np.int32)
    _scan_runs(g0, g1, g2, bclo, bchi, starts, runs, True)
    return starts, runs


@njit(parallel=True, **_OPTS)
def _scan_runs(g0, g1, g2, bclo, bchi, index, runs, fill):
    """Count the runs of every row into ``index[row + 1]`` or, with ``fill``, write them at
    ``runs[index[row]:]``."""
    n0, n1, n2 = g0.shape
    for i in prange(n0):
        zero = np.zeros(n2, g0.dtype)
        for j in range(n1):
            jm = j - 1 if j > 0 else n1 - 1
            gm, xm, gp, xp = _axis0_rows(g0, bclo, bchi, g0, zero, i, j)
            h = g2[i, j]
            a1p = g1[i, j]
            a1m = g1[i, jm]
            row = i * n1 + j
            c = 0
            inside = False
            for k in range(n2):
                km = k - 1 if k > 0 else n2 - 1
                active = (h[k] + h[km] + a1p[k] + a1m[k] + gm[k] + gp[k]) > 0
                if active and not inside:
                    if fill:
                        runs[index[row] + c, 0] = k
                    c += 1
                elif inside and not active and fill:
                    runs[index[row] + c - 1, 1] = k
                inside = active
            if fill:
                if inside:
                    runs[index[row] + c - 1, 1] = n2
            else:
                index[row + 1] = c


@njit(parallel=True, **_OPTS)
def matvec(g0, g1, g2, bclo, bchi, x, y):
    """``y = A x`` for the finite-volume operator (Dirichlet terms on the diagonal only);
    returns ``x · y`` (the curvature CG needs, without a second pass over both arrays)."""
    n0, n1, n2 = x.shape
    total = 0.0
    for i in prange(n0):
        zero = np.zeros(n2, x.dtype)
        row = np.empty(n2, np.float64)
        part = 0.0
        for j in range(n1):
            _apply_row(g0, g1, g2, bclo, bchi, x, zero, i, j, row)
            xr = x[i, j]
            yr = y[i, j]
            for k in range(n2):
                yr[k] = row[k]
                part += np.float64(xr[k]) * row[k]
        total += part
    return total


@njit(inline="always", **_OPTS)
def _relax_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, br, k, km, kp, backward, carry):
    """Gauss–Seidel update of one voxel; ``carry`` is the row neighbour updated just before.

    Only that neighbour's term sits on the row's dependency chain (one multiply-add and one
    multiply, the diagonal is inverted off the chain): the sweep runs ~2× faster than with the
    division and all terms on it (measured).
    """
    c2p = np.float64(h[k])
    c2m = np.float64(h[km])
    c1p = np.float64(a1p[k])
    c1m = np.float64(a1m[k])
    c0m = np.float64(gm[k])
    c0p = np.float64(gp[k])
    d = (c2p + c2m) + (c1p + c1m) + (c0m + c0p)
    s = np.float64(br[k]) + (c1p * xjp[k] + c1m * xjm[k]) + (c0m * xm[k] + c0p * xp[k])
    if backward:
        s += c2m * xr[km]
        chained = c2p
    else:
        s += c2p * xr[kp]
        chained = c2m
    if d > 0:
        v = (s + chained * carry) * (1.0 / d)
        xr[k] = v
        return v
    return np.float64(xr[k])


@njit(parallel=True, **_OPTS)
def gauss_seidel(g0, g1, g2, bclo, bchi, starts, runs, x, b, parity, backward):
    """Gauss–Seidel on the planes i with i % 2 == parity, lexicographic within each plane.

    Planes of one parity do not touch each other, so they run in parallel; ``backward`` runs
    each plane in reverse order, which makes (even, odd forward) followed by (odd, even backward)
    a symmetric smoother. Each call reads half of the grid (red-black point colouring would
    stream all of it twice). Only the active runs are visited.
    """
    n0, n1, n2 = x.shape
    nplanes = (n0 - parity + 1) // 2
    for p in prange(nplanes):
        i = parity + 2 * p
        zero = np.zeros(n2, x.dtype)
        for jj in range(n1):
            j = n1 - 1 - jj if backward else jj
            r = i * n1 + j
            first = starts[r]
            count = starts[r + 1] - first
            if count == 0:
                continue
            jm = j - 1 if j > 0 else n1 - 1
            jp = j + 1 if j < n1 - 1 else 0
            gm, xm, gp, xp = _axis0_rows(g0, bclo, bchi, x, zero, i, j)
            h = g2[i, j]
            a1p = g1[i, j]
            a1m = g1[i, jm]
            xr = x[i, j]
            xjp = x[i, jp]
            xjm = x[i, jm]
            br = b[i, j]
            for qq in range(count):
                q = first + (count - 1 - qq if backward else qq)
                k0 = runs[q, 0]
                k1 = runs[q, 1]
                # the neighbour before the run's start (inactive, or the wrap-around voxel)
                if backward:
                    carry = np.float64(xr[k1 if k1 < n2 else 0])
                else:
                    carry = np.float64(xr[k0 - 1 if k0 > 0 else n2 - 1])
                for kk in range(k1 - k0):
                    k = k1 - 1 - kk if backward else k0 + kk
                    km = k - 1 if k > 0 else n2 - 1
                    kp = k + 1 if k < n2 - 1 else 0
                    carry = _relax_point(h, a1p, a1m, gm, gp, xr, xjp, xjm, xm, xp, br, k, km, kp, backward, carry)


@njit(parallel=True, **_OPTS)
def residual_restrict(g0, g1, g2, bclo, bchi, x, b, rc, s0, s1, s2):
    """``rc = Pᵀ (b − A x)``: the residual summed over each 2^s0 × 2^s1 × 2^s2 block (aggregation
    factors 1 or 2 as bit shifts: an integer division per voxel costs more than the stencil)."""
    n0, n1, n2 = x.shape
    nc0, nc1, nc2 = rc.shape
    for ci in prange(nc0):
        zero = np.zeros(n2, x.dtype)
        row = np.empty(n2, np.float64)
        acc = np.zeros((nc1, nc2), np.float64)
        for i in range(ci << s0, min((ci + 1) << s0, n0)):
            for j in range(n1):
                _apply_row(g0, g1, g2, bclo, bchi, x, zero, i, j, row)
                br = b[i, j]
                out = acc[j >> s1]
                for k in range(n2):
                    out[k >> s2] += br[k] - row[k]
        for cj in range(nc1):
            for ck in range(nc2):
                rc[ci, cj, ck] = acc[cj, ck]


@njit(parallel=True, **_OPTS)
def prolong_add(x, xc, s0, s1, s2):
    """``x += P xc`` with piecewise-constant prolongation (aggregation factors as bit shifts)."""
    n0, n1, n2 = x.shape
    nc0, nc1, nc2 = xc.shape
    for ci in prange(nc0):
        row = np.empty(n2, x.dtype)  # a coarse row expanded to the fine row length
        for cj in range(nc1):
            for k in range(n2):
                row[k] = xc[ci, cj, k >> s2]
            for i in range(ci << s0, min((ci + 1) << s0, n0)):
                for j in range(cj << s1, min((cj + 1) << s1, n1)):
                    for k in range(n2):
                        x[i, j, k] += row[k]


@njit(parallel=True, **_OPTS)
def coarsen_faces(g0, g1, g2, bclo, bchi, f0, f1, f2, g0c, g1c, g2c, bcloc, bchic):
    """Coarse conductances: the fine faces crossing each coarse face, summed and scaled by 1/f.

    The plain sum is the Galerkin operator Pᵀ A P of piecewise-constant aggregation; it counts a
    coarse face's area right but its centre distance f times too short, hence the 1/f (it also
    makes the coarse correction an over-correction, which is what aggregation multigrid needs).
    """
    n0, n1, n2 = g0.shape
    nc0, nc1, nc2 = g0c.shape
    s0 = np.float32(1.0 / f0)
    s1 = np.float32(1.0 / f1)
    s2 = np.float32(1.0 / f2)
    for ci in prange(nc0):
        g0c[ci, :, :] = 0
        g1c[ci, :, :] = 0
        g2c[ci, :, :] = 0
        ilast = min(ci * f0 + f0, n0) - 1
        for i in range(ci * f0, ilast + 1):
            for j in range(n1):
                cj = j // f1
                jlast = j == min(cj * f1 + f1, n1) - 1
                for k in range(n2):
                    ck = k // f2
                    if i == ilast:
                        g0c[ci, cj, ck] += s0 * g0[i, j, k]
                    if jlast:
                        g1c[ci, cj, ck] += s1 * g1[i, j, k]
                    if k == min(ck * f2 + f2, n2) - 1:
                        g2c[ci, cj, ck] += s2 * g2[i, j, k]
    bcloc[:, :] = 0
    bchic[:, :] = 0
    for j in range(n1):
        for k in range(n2):
            bcloc[j // f1, k // f2] += s0 * bclo[j, k]
            bchic[j // f1, k // f2] += s0 * bchi[j, k]


@njit(parallel=True, **_OPTS)
def layer_fluxes(g0, bclo, bchi, x, out):
    """Flux through every plane normal to axis 0 (inlet, the n0 − 1 inner planes, outlet).

    Boundary values are C = 1 at the inlet and C = 0 at the outlet; ``out`` has n0 + 1 entries.
    """
    n0, n1, n2 = x.shape
    for p in prange(n0 + 1):
        s = 0.0
        for j in range(n1):
            for k in range(n2):
                if p == 0:
                    s += bclo[j, k] * (1.0 - x[0, j, k])
                elif p == n0:
                    s += bchi[j, k] * x[n0 - 1, j, k]
                else:
                    s += g0[p - 1, j, k] * (x[p - 1, j, k] - x[p, j, k])
        out[p] = s


@njit(parallel=True, **_OPTS)
def dot(a, b):
    """Σ a·b in float64 over two same-shaped 3-D arrays of any float types (no temporaries)."""
    n0 = a.shape[0]
    s = 0.0
    for i in prange(n0):
        t = 0.0
        for j in range(a.shape[1]):
            for k in range(a.shape[2]):
                t += np.float64(a[i, j, k]) * np.float64(b[i, j, k])
        s += t
    return s


@njit(parallel=True, **_OPTS)
def axpy_pair(x, r, p, q, alpha):
    """x += α p and r −= α q in one pass; returns r · r."""
    n0 = x.shape[0]
    total = 0.0
    for i in prange(n0):
        part = 0.0
        for j in range(x.shape[1]):
            for k in range(x.shape[2]):
                x[i, j, k] += alpha * p[i, j, k]
                v = r[i, j, k] - alpha * q[i, j, k]
                r[i, j, k] = v
                part += v * v
        total += part
    return total


@njit(parallel=True, **_OPTS)
def dot2(a, b, c):
    """(a · b, b · c) in float64 in one pass."""
    n0 = a.shape[0]
    s1 = 0.0
    s2 = 0.0
    for i in prange(n0):
        t1 = 0.0
        t2 = 0.0
        for j in range(a.shape[1]):
            for k in range(a.shape[2]):
                bv = np.float64(b[i, j, k])
                t1 += np.float64(a[i, j, k]) * bv
                t2 += bv * np.float64(c[i, j, k])
        s1 += t1
        s2 += t2
    return s1, s2


@njit(parallel=True, **_OPTS)
def lincomb(out, a, x, b, y):
    """out = a x + b y (any float arrays of one shape); returns out · out."""
    n0 = out.shape[0]
    total = 0.0
    for i in prange(n0):
        part = 0.0
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                v = a * np.float64(x[i, j, k]) + b * np.float64(y[i, j, k])
                out[i, j, k] = v
                part += v * v
        total += part
    return total


@njit(parallel=True, **_OPTS)
def update_direction(p, z, beta):
    """p = z + β p."""
    n0 = p.shape[0]
    for i in prange(n0):
        for j in range(p.shape[1]):
            for k in range(p.shape[2]):
                p[i, j, k] = z[i, j, k] + beta * p[i, j, k]
