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


@njit(**_OPTS)
def percolating_mask(conducting, periodic1, periodic2, queue):
    """Voxels of ``conducting`` face-connected to both planes i = 0 and i = n0 - 1.

    Two breadth-first floods: from the inlet plane, then from the outlet plane through the
    voxels the first flood reached. ``queue`` is scratch of at least ``conducting.sum()`` ints.
    Returns (uint8 state array: 3 = percolating, count of percolating voxels).
    """
    n0, n1, n2 = conducting.shape
    state = np.zeros((n0, n1, n2), np.uint8)
    for p in range(2):
        start_i = 0 if p == 0 else n0 - 1
        need = np.uint8(0) if p == 0 else np.uint8(1)
        mark = np.uint8(1) if p == 0 else np.uint8(3)
        head = 0
        tail = 0
        for j in range(n1):
            for k in range(n2):
                if conducting[start_i, j, k] and state[start_i, j, k] == need:
                    state[start_i, j, k] = mark
                    queue[tail] = (start_i * n1 + j) * n2 + k
                    tail += 1
        while head < tail:
            idx = queue[head]
            head += 1
            k = idx % n2
            j = (idx // n2) % n1
            i = idx // (n1 * n2)
            for d in range(6):
                ii, jj, kk = i, j, k
                if d == 0:
                    ii = i - 1
                elif d == 1:
                    ii = i + 1
                elif d == 2:
                    jj = j - 1
                elif d == 3:
                    jj = j + 1
                elif d == 4:
                    kk = k - 1
                else:
                    kk = k + 1
                if ii < 0 or ii >= n0:
                    continue
                if jj < 0 or jj >= n1:
                    if not periodic1:
                        continue
                    jj = jj % n1
                if kk < 0 or kk >= n2:
                    if not periodic2:
                        continue
                    kk = kk % n2
                if conducting[ii, jj, kk] and state[ii, jj, kk] == need:
                    state[ii, jj, kk] = mark
                    queue[tail] = (ii * n1 + jj) * n2 + kk
                    tail += 1
    count = 0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if state[i, j, k] == 3:
                    count += 1
    return state, count


@njit(parallel=True, **_OPTS)
def matvec(g0, g1, g2, bclo, bchi, x, y):
    """``y = A x`` for the finite-volume operator (Dirichlet terms on the diagonal only)."""
    n0, n1, n2 = x.shape
    for i in prange(n0):
        for j in range(n1):
            jm = j - 1 if j > 0 else n1 - 1
            jp = j + 1 if j < n1 - 1 else 0
            for k in range(n2):
                km = k - 1 if k > 0 else n2 - 1
                kp = k + 1 if k < n2 - 1 else 0
                a2p = np.float64(g2[i, j, k])
                a2m = np.float64(g2[i, j, km])
                a1p = np.float64(g1[i, j, k])
                a1m = np.float64(g1[i, jm, k])
                d = a2p + a2m + a1p + a1m
                s = a2p * x[i, j, kp] + a2m * x[i, j, km] + a1p * x[i, jp, k] + a1m * x[i, jm, k]
                if i > 0:
                    a = np.float64(g0[i - 1, j, k])
                    d += a
                    s += a * x[i - 1, j, k]
                else:
                    d += np.float64(bclo[j, k])
                if i < n0 - 1:
                    a = np.float64(g0[i, j, k])
                    d += a
                    s += a * x[i + 1, j, k]
                else:
                    d += np.float64(bchi[j, k])
                y[i, j, k] = d * x[i, j, k] - s


@njit(parallel=True, **_OPTS)
def gauss_seidel(g0, g1, g2, bclo, bchi, x, b, parity, backward):
    """Gauss–Seidel on the planes i with i % 2 == parity, lexicographic within each plane.

    Planes of one parity do not touch each other, so they run in parallel; ``backward`` runs
    each plane in reverse order, which makes (even, odd forward) followed by (odd, even backward)
    a symmetric smoother. Each call reads half of the grid (red-black point colouring would
    stream all of it twice).
    """
    n0, n1, n2 = x.shape
    nplanes = (n0 - parity + 1) // 2
    for p in prange(nplanes):
        i = parity + 2 * p
        for jj in range(n1):
            j = n1 - 1 - jj if backward else jj
            jm = j - 1 if j > 0 else n1 - 1
            jp = j + 1 if j < n1 - 1 else 0
            for kk in range(n2):
                k = n2 - 1 - kk if backward else kk
                km = k - 1 if k > 0 else n2 - 1
                kp = k + 1 if k < n2 - 1 else 0
                a2p = np.float64(g2[i, j, k])
                a2m = np.float64(g2[i, j, km])
                a1p = np.float64(g1[i, j, k])
                a1m = np.float64(g1[i, jm, k])
                d = a2p + a2m + a1p + a1m
                s = a2p * x[i, j, kp] + a2m * x[i, j, km] + a1p * x[i, jp, k] + a1m * x[i, jm, k]
                if i > 0:
                    a = np.float64(g0[i - 1, j, k])
                    d += a
                    s += a * x[i - 1, j, k]
                else:
                    d += np.float64(bclo[j, k])
                if i < n0 - 1:
                    a = np.float64(g0[i, j, k])
                    d += a
                    s += a * x[i + 1, j, k]
                else:
                    d += np.float64(bchi[j, k])
                if d > 0:
                    x[i, j, k] = (b[i, j, k] + s) / d


@njit(parallel=True, **_OPTS)
def residual_restrict(g0, g1, g2, bclo, bchi, x, b, rc, f0, f1, f2):
    """``rc = Pᵀ (b − A x)``: the residual summed over each f0×f1×f2 block (no fine residual array)."""
    n0, n1, n2 = x.shape
    nc0 = rc.shape[0]
    for ci in prange(nc0):
        rc[ci, :, :] = 0
        for i in range(ci * f0, min(ci * f0 + f0, n0)):
            for j in range(n1):
                jm = j - 1 if j > 0 else n1 - 1
                jp = j + 1 if j < n1 - 1 else 0
                cj = j // f1
                for k in range(n2):
                    km = k - 1 if k > 0 else n2 - 1
                    kp = k + 1 if k < n2 - 1 else 0
                    a2p = np.float64(g2[i, j, k])
                    a2m = np.float64(g2[i, j, km])
                    a1p = np.float64(g1[i, j, k])
                    a1m = np.float64(g1[i, jm, k])
                    d = a2p + a2m + a1p + a1m
                    s = a2p * x[i, j, kp] + a2m * x[i, j, km] + a1p * x[i, jp, k] + a1m * x[i, jm, k]
                    if i > 0:
                        a = np.float64(g0[i - 1, j, k])
                        d += a
                        s += a * x[i - 1, j, k]
                    else:
                        d += np.float64(bclo[j, k])
                    if i < n0 - 1:
                        a = np.float64(g0[i, j, k])
                        d += a
                        s += a * x[i + 1, j, k]
                    else:
                        d += np.float64(bchi[j, k])
                    rc[ci, cj, k // f2] += b[i, j, k] - (d * x[i, j, k] - s)


@njit(parallel=True, **_OPTS)
def prolong_add(x, xc, f0, f1, f2):
    """``x += P xc`` with piecewise-constant prolongation."""
    n0, n1, n2 = x.shape
    for i in prange(n0):
        ci = i // f0
        for j in range(n1):
            cj = j // f1
            for k in range(n2):
                x[i, j, k] += xc[ci, cj, k // f2]


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
    """x += α p and r −= α q in one pass."""
    n0 = x.shape[0]
    for i in prange(n0):
        for j in range(x.shape[1]):
            for k in range(x.shape[2]):
                x[i, j, k] += alpha * p[i, j, k]
                r[i, j, k] -= alpha * q[i, j, k]


@njit(parallel=True, **_OPTS)
def update_direction(p, z, beta):
    """p = z + β p."""
    n0 = p.shape[0]
    for i in prange(n0):
        for j in range(p.shape[1]):
            for k in range(p.shape[2]):
                p[i, j, k] = z[i, j, k] + beta * p[i, j, k]
