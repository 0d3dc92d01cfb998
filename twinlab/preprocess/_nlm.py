"""Numba kernel of fast (Darbon et al. 2008) non-local means in 3D, float32.

The algorithm loops over search offsets ``t``; for each offset the squared difference of the
image with its shifted copy is box-summed over the patch, turned into a weight and
accumulated into both voxels of the pair (``q`` and ``q + t``), so each of the symmetric
offsets ``±t`` is visited once. Parallelism is inside the kernel: ``prange`` over z-slabs
of the output, each slab owning its output planes (no races, no per-thread copies).

Per offset the work streams plane by plane; every work plane has the padded volume's row stride,
so each step (squared difference with the x box sum, y box sum, z box sum with the weight) is one
long vectorised loop over a whole plane rather than a short loop per row, and the patch width of
the default patch (5: four voxels summed) is one fused pass. Sums keep a fixed order, so the
result does not depend on the chunking and matches the straightforward per-row sums bit for bit.

Conventions follow ``skimage.restoration.denoise_nl_means(fast_mode=True)`` so that ``h``
and ``sigma`` mean the same thing: the patch distance of a patch of nominal size ``s`` is
summed over ``2*(s//2)`` voxels per axis, from ``centre - s//2 + 1`` to ``centre + s//2``
(scikit-image's integral-image indexing), minus ``2 sigma^2`` per voxel, clipped at zero and
divided by ``h^2 * prod(s)``; offsets whose distance exceeds 5 get zero weight; the
centre voxel has weight 1. An axis with patch size 1 uses the centre voxel only.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

DISTANCE_CUTOFF = 5.0  # scikit-image's cut-off: weights below exp(-5) are dropped


def nlm_reach(patch: tuple[int, int, int], distance: tuple[int, int, int]) -> tuple[int, ...]:
    """Voxels of data beyond a voxel that its result depends on, per axis (the halo)."""
    return tuple(int(d) + int(s) // 2 for s, d in zip(patch, distance))


def half_offsets(distance: tuple[int, int, int]) -> np.ndarray:
    """One representative of each pair of opposite non-zero search offsets, shape (n, 3)."""
    dz, dy, dx = (int(v) for v in distance)
    out = []
    for tz in range(0, dz + 1):
        for ty in range(-dy, dy + 1):
            for tx in range(-dx, dx + 1):
                if tz > 0 or (tz == 0 and ty > 0) or (tz == 0 and ty == 0 and tx > 0):
                    out.append((tz, ty, tx))
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def nlm_block(block: np.ndarray, *, patch: tuple[int, int, int], distance: tuple[int, int, int],
              h: float, sigma: float, pad_axes: tuple[bool, bool, bool] = (True, True, True),
              n_slabs: int | None = None) -> np.ndarray:
    """Non-local means of a block, float32 out.

    Along axes in ``pad_axes`` the block is reflect-padded by the reach (a whole volume, as in
    scikit-image) and the output has the block's size; along the other axes the block already
    carries ``reach`` voxels of real (or pre-padded) data on each side and the output is the
    block without them. Voxels never see data beyond the reach, so chunked == whole.
    """
    data = np.ascontiguousarray(block, dtype=np.float32)
    reach = nlm_reach(patch, distance)
    padding = [(r, r) if p else (0, 0) for r, p in zip(reach, pad_axes)]
    padded = np.ascontiguousarray(np.pad(data, padding, mode="reflect")) if any(pad_axes) else data
    offs = np.array([s // 2 for s in patch], dtype=np.int64)
    lo = np.where(offs > 0, offs - 1, 0)
    hi = offs.copy()
    norm = float(h) ** 2 * float(np.prod(patch))
    inv_norm = np.float32(1.0 / norm)
    var2 = np.float32(2.0 * float(sigma) ** 2)
    nz = padded.shape[0] - 2 * reach[0]
    if n_slabs is None:
        n_slabs = numba.get_num_threads()
    n_slabs = max(1, min(int(n_slabs), nz))
    return _nlm_core(padded, np.asarray(reach, dtype=np.int64), lo, hi, half_offsets(distance),
                     inv_norm, var2, n_slabs)


@njit(cache=True, inline="always")
def _exp_neg(x):
    """exp(-x) for 0 <= x <= 5 in float32 arithmetic without a libm call, so loops vectorise.

    exp(-x) = exp(-x/16)**16 with a degree-7 Taylor polynomial on [0, 0.3125]: relative error
    below 5e-7 (the float32 rounding of the four squarings dominates).
    """
    y = -x * np.float32(0.0625)
    p = np.float32(1.0 / 5040.0) + y * np.float32(1.0 / 40320.0)
    p = np.float32(1.0 / 720.0) + y * p
    p = np.float32(1.0 / 120.0) + y * p
    p = np.float32(1.0 / 24.0) + y * p
    p = np.float32(1.0 / 6.0) + y * p
    p = np.float32(0.5) + y * p
    p = np.float32(1.0) + y * p
    p = np.float32(1.0) + y * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p


@njit(cache=True, inline="always")
def _weight(distance_sum, inv_norm):
    """NLM weight of a patch distance sum (minus 2 sigma^2 per voxel): 0 beyond the cut-off."""
    dist = max(distance_sum, np.float32(0.0)) * inv_norm
    cutoff = np.float32(DISTANCE_CUTOFF)
    w = _exp_neg(min(dist, cutoff))
    return w if dist <= cutoff else np.float32(0.0)


@njit(cache=True, inline="always")
def _sq_diff(a, b, var2):
    d = a - b
    return d * d - var2


@njit(cache=True, inline="always")
def _box(dst, src, n, w, step):
    """dst[i] = src[i] + src[i + step] + ... (w terms, in that order) for i < n."""
    if w == 4:  # the default patch (5): one pass
        s1 = src[step:step + n]
        s2 = src[2 * step:2 * step + n]
        s3 = src[3 * step:3 * step + n]
        for i in range(n):
            dst[i] = src[i] + s1[i] + s2[i] + s3[i]
    else:
        for i in range(n):
            dst[i] = src[i]
        for j in range(1, w):
            sj = src[j * step:j * step + n]
            for i in range(n):
                dst[i] += sj[i]


@njit(cache=True, inline="always")
def _diff_box(dst, diff, a, b, var2, n, w):
    """x box sums of (a - b)^2 - var2 over w voxels into dst[:n] (``diff`` is scratch)."""
    if w == 4:  # fused: the squared differences are recomputed rather than stored
        a1, a2, a3 = a[1:1 + n], a[2:2 + n], a[3:3 + n]
        b1, b2, b3 = b[1:1 + n], b[2:2 + n], b[3:3 + n]
        for i in range(n):
            dst[i] = (_sq_diff(a[i], b[i], var2) + _sq_diff(a1[i], b1[i], var2)
                      + _sq_diff(a2[i], b2[i], var2) + _sq_diff(a3[i], b3[i], var2))
    else:
        for i in range(n + w - 1):
            diff[i] = _sq_diff(a[i], b[i], var2)
        _box(dst, diff, n, w, 1)


@njit(cache=True, inline="always")
def _plane_weights(dst, ring, first, n, inv_norm):
    """dst[:n] = weights of the z box sum of the ring planes first, first+1, ... (in z order)."""
    wz = ring.shape[0]
    if wz == 4:  # the default patch: one pass
        e0, e1, e2, e3 = ring[first], ring[(first + 1) % 4], ring[(first + 2) % 4], ring[(first + 3) % 4]
        for i in range(n):
            dst[i] = _weight(e0[i] + e1[i] + e2[i] + e3[i], inv_norm)
    else:
        e0 = ring[first]
        for i in range(n):
            dst[i] = e0[i]
        for j in range(1, wz):
            ej = ring[(first + j) % wz]
            for i in range(n):
                dst[i] += ej[i]
        for i in range(n):
            dst[i] = _weight(dst[i], inv_norm)


@njit(parallel=True, cache=True)
def _nlm_core(P, R, lo, hi, offsets, inv_norm, var2, n_slabs):
    Rz, Ry, Rx = R[0], R[1], R[2]
    Z = P.shape[0] - 2 * Rz
    Y = P.shape[1] - 2 * Ry
    X = P.shape[2] - 2 * Rx
    out = np.empty((Z, Y, X), dtype=np.float32)
    wsum = np.empty((Z, Y, X), dtype=np.float32)
    wz = lo[0] + hi[0] + 1
    wy = lo[1] + hi[1] + 1
    wx = lo[2] + hi[2] + 1
    dmax_y = 0
    for k in range(offsets.shape[0]):
        dmax_y = max(dmax_y, abs(offsets[k, 1]))
    # q-plane extent: Y + |ty| rows at most (of P's row stride, which covers X + |tx| columns)
    QY = Y + dmax_y
    slab = (Z + n_slabs - 1) // n_slabs
    for s in prange(n_slabs):
        _nlm_slab(P, Rz, Ry, Rx, Z, Y, X, lo, hi, wz, wy, wx, QY, offsets, inv_norm, var2,
                  s * slab, min(Z, s * slab + slab), out, wsum)
    return out


@njit(cache=True)
def _nlm_slab(P, Rz, Ry, Rx, Z, Y, X, lo, hi, wz, wy, wx, QY, offsets, inv_norm, var2, z0, z1,
              out, wsum):
    if z0 >= z1:
        return
    S = P.shape[2]
    flat = P.reshape(P.shape[0], P.shape[1] * S)
    # every work plane shares P's row stride S, so each step is one long loop over a plane
    # (columns past a row's valid width hold sums that straddle rows and are never read)
    nrows = QY + wy - 1
    diff = np.empty(nrows * S, dtype=np.float32)
    rows = np.empty(nrows * S, dtype=np.float32)
    ring = np.empty((wz, QY * S), dtype=np.float32)
    wgt = np.empty(QY * S, dtype=np.float32)
    # the centre voxel: weight 1
    for z in range(z0, z1):
        for y in range(Y):
            src = P[z + Rz, y + Ry, Rx:Rx + X]
            o = out[z, y]
            w = wsum[z, y]
            for x in range(X):
                o[x] = src[x]
                w[x] = 1.0
    for k in range(offsets.shape[0]):
        tz = offsets[k, 0]
        ty = offsets[k, 1]
        tx = offsets[k, 2]
        # q ranges (output coordinates) whose pairs touch this slab: forward q = p, reverse q = p - t
        qz0 = z0 - tz  # tz >= 0 for the half set of offsets
        qz1 = z1
        qy0 = min(0, -ty)
        qy1 = max(Y, Y - ty)
        qx0 = min(0, -tx)
        qx1 = max(X, X - tx)
        ny = qy1 - qy0
        nx = qx1 - qx0
        nd = (ny + wy - 2) * S + nx + wx - 1  # diff entries up to the last valid one
        nr = (ny + wy - 2) * S + nx  # x-box sums
        ne = (ny - 1) * S + nx  # yx-box sums
        a0 = (qy0 - lo[1] + Ry) * S + qx0 - lo[2] + Rx
        b0 = a0 + ty * S + tx
        zstart = qz0 - lo[0]
        for zz in range(zstart, qz1 + hi[0]):
            slot = (zz - zstart) % wz
            a = flat[zz + Rz, a0:a0 + nd]
            b = flat[zz + Rz + tz, b0:b0 + nd]
            _diff_box(rows, diff, a, b, var2, nr, wx)
            _box(ring[slot], rows, ne, wy, S)
            qz = zz - hi[0]
            if qz < qz0:
                continue
            # weights of q plane qz from the wz ring planes summed in z order (a fixed order keeps
            # chunked and whole results bit-identical)
            first = (qz - lo[0] - zstart) % wz
            _plane_weights(wgt, ring, first, ne, inv_norm)
            # forward: p = q inside the slab gets w * I[q + t]
            if qz >= z0:
                for y in range(Y):
                    w0 = (y - qy0) * S - qx0
                    wr = wgt[w0:w0 + X]
                    src = P[qz + tz + Rz, y + ty + Ry, tx + Rx:tx + Rx + X]
                    o = out[qz, y]
                    ws = wsum[qz, y]
                    for x in range(X):
                        o[x] += wr[x] * src[x]
                        ws[x] += wr[x]
            # reverse: p = q + t inside the slab gets w * I[q]
            pz = qz + tz
            if pz < z1:
                for y in range(Y):
                    w0 = (y - ty - qy0) * S - tx - qx0
                    wr = wgt[w0:w0 + X]
                    src = P[qz + Rz, y - ty + Ry, Rx - tx:Rx - tx + X]
                    o = out[pz, y]
                    ws = wsum[pz, y]
                    for x in range(X):
                        o[x] += wr[x] * src[x]
                        ws[x] += wr[x]
    for z in range(z0, z1):
        for y in range(Y):
            o = out[z, y]
            ws = wsum[z, y]
            for x in range(X):
                o[x] /= ws[x]
