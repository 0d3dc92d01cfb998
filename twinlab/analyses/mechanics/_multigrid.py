"""Geometric multigrid preconditioner for the element-by-element elasticity operator.

The fine operator is the fused one-point hexahedron of :mod:`._operator` (nodes at voxel corners,
periodic grid, 3 unknowns per node). The preconditioner is one cycle, in float32 inside the
solver's float64 flexible CG (as the transport solver does):

* **Coarse grids** halve every axis longer than 2 nodes (``ceil(n/2)`` nodes; on an odd periodic
  axis the last coarse element spans a single fine element). Coarse node ``I`` sits on fine node
  ``2I``; every fine node is interpolated from the ≤ 8 coarse nodes of the coarse face, edge or
  cell it lies in, and the restriction is the transpose ``R = Pᵀ`` — linear rather than the
  transport solver's piecewise-constant transfer (:mod:`twinlab.analyses._multigrid`) because
  elasticity needs the rigid rotations and linear fields represented on every level.
* **Connectivity-aware interpolation** (:func:`transfer_weights`): trilinear weights, except that a
  parent the fine node is not connected to gets none and the rest are rescaled to sum to one — on
  the finest level "connected" means sharing an element with stiffness, on coarse levels a coupling
  block of the Galerkin stencil stronger than ``STRENGTH`` × the diagonal blocks. Pure trilinear
  interpolation glues particles that a voxel gap separates inside one coarse element (their coarse
  space cannot move them apart); masking took the benchmark electrode from 31 / 47 / 97 / 144 to 21
  / 32 / 56 / 40 CG iterations at 32³ / 48³ / 64³ / 128³. The weights are stored per node as an
  8-bit mask of the parent slots kept (:class:`Transfer`: the masked weights are the trilinear ones
  renormalised, so the mask and a 8 × 256 × 8 table determine them) and drive the restriction, the
  prolongation and the Galerkin products.
* **Galerkin coarse operators** ``A_c = Pᵀ A P``: P is local (a fine node's parents are corners of
  every coarse element that holds it), so the product is a sum of coarse element matrices (24 × 24,
  packed), each the sum over its 8 children of ``P8ᵀ K_child P8`` with P8 the child's corners'
  weights (see the section below). Void children contribute nothing, so a coarse
  element that is partly pore carries only its solid children's stiffness, where they are; a
  coarse node whose elements are all void has no stiffness (left alone by the smoother, dropped
  from the coarsest solve). Rediscretisation (one-point coarse elements with the children's mean
  stiffness) was tried first: 61 → 119 iterations from 32³ to 48³ on the benchmark electrode,
  against 40 → 73 with Galerkin at the same smoother. On the first coarse level a child whose
  corners all keep trilinear weights adds 3 of 81 constant position products of the fine
  ``L, M, k_hg`` (plus the J2 rank-one terms of
  yielded voxels). The element matrices exist only while the hierarchy is built (the first coarse
  level's slab by slab of element planes, :meth:`ElasticMultigrid._first_elements`): every coarse
  level is **applied as an assembled 27-point stencil of 3 × 3 node blocks, stored once per
  symmetric pair** (the centre and 13 forward blocks; :func:`stencil_apply` reads each block once for
  its product and its transpose's, loops that vectorise along the last axis), ~4× faster per node than applying the 8 packed element matrices
  around each node (scalar triangular loops with a scatter; 38 ms vs a 16 ms fine sweep at 64³
  before).
* **Smoother**: fourth-kind Chebyshev polynomial of degree ``degree`` (fine) / ``coarse_degree`` in
  ``D⁻¹A`` with ``D`` the 3 × 3 node blocks of the operator (inverted per node; zero for nodes without
  stiffness) and the element bound ``λ_max(D⁻¹A) ≤ 8`` (:func:`_fourth_kind_steps`). Chebyshev–Jacobi
  is symmetric, needs no colouring and copes with 10⁵ stiffness contrasts and void nodes; the fourth
  kind needs no lower end of the spectrum (stop 34: the first kind's ``[λ_max/100, λ_max]`` took the
  welded 128³ ten-step 179 CG, the fourth kind 161).
* **Operator applications per cycle** (what a cycle costs): the finest level's post-smoothing
  skips its last residual update (nobody reads it), and a K-cycle step takes ``A z = b − r`` from
  the residual its V-cycle's post-smoothing leaves instead of applying ``A`` again. With the fine
  degree ``d`` that is d + 1 + (d − 1) fine applications per cycle: 12 with stop 23's d = 6 (6 with
  stop 21–22's 3, 9 before with 4), and 2 × (2 + 1 + 2) = 10 on level 1 (12 before; 5 where the
  K-cycle's second step is skipped, as at 128³). A K-cycle on fewer levels (a V-cycle on the level
  above the coarsest) was tried: 64³ 56 → 58 iterations but 128³ 40 → 58 (degree 3). On the finest
  level every Chebyshev step but the pre-smoothing's first rides in the residual sweep before it
  (stop 29, :func:`._operator.tangent_residual`'s ``step``): 1 separate step pass per cycle instead
  of 2d (the steps' re-reads of r and d come from cache).
* **K-cycle** (Notay & Vassilevski 2008) on the coarse levels: each coarse problem gets two
  flexible-CG steps preconditioned by the cycle below instead of one V-cycle. Measured at 66 × 64²:
  the V-cycle needs 142 CG iterations, the K-cycle 81 (97 with coarse degree 2); with an almost
  exact level-1 solve 37 at 48³ against 63 for the V-cycle, so most of the V-cycle's growth with
  the number of levels is inexact coarse solves.
* **Axis order** (:func:`axis_order`, stop 38): the levels hold the grid with its longest axis last, since
  every kernel vectorises along the last axis and pays per node row; the cycle's vectors cross between the
  caller's order and the levels' at its start and end. The demo cathode's calendering windows (101 × 39 ×
  35 nodes, thickness first; the coarsest null floor below in both): a cycle 58 → 42 ms, its calender stage
  91.8 → 73.7 s.
* **Coarsest grid** (≤ ``coarse_nodes`` nodes): the operator assembled from its stencil,
  restricted to the nodes with stiffness, applied as its pseudo-inverse (eigendecomposition; rigid
  motions of the periodic cell and of pieces floating at that level are its null space, recognised down
  to the precision the stencils were summed in: :data:`COARSE_NULL_ROUNDING`).
* **Rigid pieces** (:class:`RigidPieces`, stop 26): after the cycle, a Galerkin coarse correction with
  the translations and rotations of every face-connected piece of stiff voxels (particles, collector,
  roll; single stiff voxels too), one fine residual per cycle. A calendered electrode's particles are
  held by contact interphase voxels 10–100× softer than they are and by a carbon-binder domain 10³×
  softer: their near-rigid motions are the slow modes the geometric levels miss. Captured contact
  passes of the 128³ ten-step (increment 10 of 14): 34 / 31 / 26 / 21 / 17 CG with all pieces' modes
  solved together against 232 in all without; with the 20-odd pieces of ≥ 8 voxels alone 47 and 67 for
  passes 1 and 3 (34 and 26 with every piece): the single stiff voxels in soft surroundings matter.

Memory (float32 cycle): the level-1 stencil is 126 values per coarse node ≈ 63 B per fine voxel
(243 and 122 B before the symmetric storage), all coarser levels ≈ 9 B, the finest level's node
blocks, mask and 2 work vectors ≈ 53 B (a third went with the fused residual updates, stop 22), the
coarse levels' vectors ≈ 10 B, the parent masks 1 B (33 B as float32 weights and flags): ≈ 140 B per
fine voxel besides the fine coefficients, which
the hierarchy shares with a solver that has them in float32 (the calender's; a float64 caller's are
copied, 12 B). While a level is built, its packed element matrices add ≤ 19 B (the first level's,
≤ 1/8 at a time: 150 B at once before). A grid held in another axis order (:func:`axis_order`) adds the
fine coefficients' copy in that order (12 B, 36 B where voxels yield) and the cycle's two vectors in it (36 B:
the residual in its float64, not rounded to float32 before the finest level reads it). The solver adds its
float64 CG vectors x, r (in the right-hand side's memory) and q and float32 directions z, p (≈ 72 B + 24),
Newton's displacement, residual and stress (24 + 24 + 48; the strain is recomputed once at the end). A calendering
increment with contacts (the calender's float32 state ≈ 130 B) peaked at ≈ 500 B per electrode voxel
(tracemalloc at 64³; 809 before these cuts), peak RSS 0.97 GiB at 128³ (497 B/voxel with the
interpreter's 0.25 GiB; 888 before) — see tests/benchmarks/bench_mechanics.py for 256³.

Status: see the measured figures in :class:`._fft_solver.MechanicsSolver` and
tests/benchmarks/bench_mechanics.py. Iterations no longer grow steadily with the grid (21 / 32 / 56
/ 40 at 32³ / 48³ / 64³ / 128³; they depend on the electrode drawn at each size): the masked
interpolation keeps particles apart only where a gap crosses a coarse element; particles joined by a
neck of a few voxels keep near-rigid-body modes that no level represents well. pyamg's smoothed
aggregation (rigid-body near-null space, on the assembled fine matrix restricted to nodes with
stiffness) needs 24 CG iterations at both 32³ and 48³ on the same electrode — size-independent — but
its set-up on the assembled fine matrix (12–17 s there, ~500 M non-zeros at 128³) rules it out per
Newton step. The rigid pieces (above) add that near-null space where the stiffness contrast makes it
matter — per piece of stiff voxels rather than per aggregate of the assembled matrix.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numba
import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ._operator import active_rows, apply_tangent, jacobi_plane, tangent_residual

__all__ = ["ElasticMultigrid", "assemble", "transfer_tables", "node_block_inverse", "prolongation_matrix"]

#: grids with fewer nodes than this run their kernels on one thread (waking a second costs more)
PARALLEL_MIN_NODES = 1 << 14
#: the levels hold a grid with its longest axis last only where its last axis is shorter than this fraction of
#: the longest (:func:`axis_order`): a near-cube gains little, and the copies cost 48–72 B per voxel — a 256³
#: calendering increment (260 × 256² nodes at its start) peaks at 7.55 GiB of issue 17's 8
REORDER_BELOW = 0.9
#: Chebyshev steps per smoothing on the finest level. 6 (stop 23; 3 since stop 21): the benchmark's cold
#: elastic solve needs the same iterations with 3 or 4 steps, but the calender's solves — contact passes
#: warm-started from the previous pass, the cap's relaxation — stall on plateaus that the fine smoother
#: removes: 8 captured solves of a 64³ ten-step (two increments) took 530 / 407 / 354 / 296 / 256 CG
#: iterations and 30 / 24 / 25 / 20 / 21 CPU-s with degree 3 / 4 / 5 / 6 / 8 (one process after another,
#: load 6–8). (Reverted
#: at stop 23 for the Hertz test's peak pressure: that was the contact flip lock's holes, fixed at stop 24,
#: not the smoother — see solve_with_contacts). Measured with the first kind; with the fourth a captured
#: solve of the welded 128³ ten-step took 28 / 22 / 21 CG with 4 / 6 / 8 steps (stop 34)
DEGREE = 6
#: … on the coarse levels: a level-1 stencil application costs ~1.7 fine sweeps (243 multiply-adds per
#: node at an eighth of the nodes); degree 2 there needs 97 instead of 81 CG iterations at 64³ for
#: ~40 % less coarse work (the fourth kind, stop 34: 34 / 22 / 21 CG with 1 / 2 / 3 on the captured solve)
COARSE_DEGREE = 2
#: upper bound of D⁻¹A's spectrum: every element matrix K_e (8 node blocks, positive semi-definite)
#: satisfies K_e ≤ 8 blockdiag(K_e), so A ≤ 8 D. A power-iteration estimate (≈ 4.6 on electrodes)
#: is not safe: a voxel left floating by the remap has modes up to ≈ 8 that a random start misses,
#: and the Chebyshev polynomial then amplifies them (the V-cycle turned indefinite and CG stalled)
LMAX = 8.0
#: a K-cycle step is enough when it reduced the coarse residual by this factor
KCYCLE_REDUCTION = 0.25
#: a coarse-level coupling block weaker than this × its diagonal blocks' (Frobenius) does not
#: connect a node to a parent (:func:`transfer_weights`)
STRENGTH = 0.05
#: coarsest-level eigenvalues below this fraction of the largest are treated as its null space
COARSE_NULL = 1e-9
#: … or below this many rounding units of the hierarchy's precision: the coarse stencils' Galerkin products
#: are summed in it, so the exact null modes of a float32 coarsest level (rigid translations of the cell and
#: of the pieces it holds apart) come out at ±4e-7 of the largest eigenvalue (the demo cathode's calendering
#: window: 3 modes at −2.8e-7 … 3.8e-7, the next at > 1e-3; two Hertz spheres: 6 at −3.8e-8 … 8.2e-8, the
#: next at 3.2e-2). Kept above 1e-9, their inverses multiplied float32 round-off in the residual by up to
#: 1e9: the Hertz spheres' first solve ended with CG's residual at 8e-7 and the true one at 3.1e-5 (stop 38)
COARSE_NULL_ROUNDING = 100
#: a coarse node block whose trace is below this fraction of its level's largest is treated as
#: void (no inverse, out of the level's mask): a Galerkin product that cancels in exact arithmetic
#: leaves float32 round-off. A few-voxel piece floating in pores whose nodes all hang from one coarse
#: node moves rigidly with it (energy 0); its block came out ~1e-27 of the level's, passed
#: :func:`_store_inverse`'s test (which compares a block only with itself), and its ~1e27 inverse
#: overflowed the V-cycle (CG: NaN on the 0.75 µm calendered cathode, stop 34). There, blocks of
#: cancelling pieces sat at ≤ 4e-9 of the largest and the smallest others at ≥ 1e-6.
NODE_NULL = 1e-6


# ====================================================================== transfer operators
def transfer_tables(n: int):
    """Per-axis trilinear transfer between ``n`` fine and ``nc`` coarse periodic nodes.

    Returns ``nc`` and, for every fine node ``i``, its two coarse parents ``(c0[i], c1[i])`` with
    weights ``(w0[i], w1[i])`` (``w1 = 0`` where the fine node coincides with a coarse node), and
    the transpose lists for every coarse node ``I``: up to 3 fine children ``fi[I, :]`` with weights
    ``fw[I, :]`` (weight 0 pads). An axis of 1–2 nodes is not coarsened (identity).
    """
    if n <= 2:
        nc = n
        c0 = np.arange(n)
        c1 = np.arange(n)
        w0 = np.ones(n)
        w1 = np.zeros(n)
    else:
        nc = -(-n // 2)
        i = np.arange(n)
        c0 = i // 2
        c1 = np.where(i % 2 == 1, (i // 2 + 1) % nc, c0)
        w0 = np.where(i % 2 == 1, 0.5, 1.0)
        w1 = np.where(i % 2 == 1, 0.5, 0.0)
    fi = np.zeros((nc, 3), np.int64)
    fw = np.zeros((nc, 3))
    cnt = np.zeros(nc, np.int64)
    for i in range(n):
        for c, w in ((c0[i], w0[i]), (c1[i], w1[i])):
            if w > 0:
                fi[c, cnt[c]] = i
                fw[c, cnt[c]] = w
                cnt[c] += 1
    return nc, c0.astype(np.int64), c1.astype(np.int64), w0, w1, fi, fw


class _Axis:
    """Transfer tables of one axis (weights in the kernels' dtype).

    For every fine node ``i``: its two parent slots, coarse node ``cp[i, s]``, trilinear weight
    ``wp[i, s]`` and the fine node the parent sits on, ``gp[i, s]``. For every coarse node ``I``:
    its ≤ 3 fine children ``fi[I, t]`` and the slot ``fs[I, t]`` that ``I`` has among their
    parents (−1 pads). For every coarse element ``I``: the fine nodes at its local positions
    ``fl[I, l]``, l = 0 (its lower coarse node), 1 (the midpoint; −1 for a single-child element),
    2 (its upper coarse node), and its ≤ 2 fine elements ``ch[I, :]`` (−1 pads) with their
    positions ``pos[I, :]`` (0 lower half, 1 upper half, 2 the whole coarse element)."""

    def __init__(self, n: int, dtype):
        self.n = n
        self.nc, c0, c1, w0, w1, fi, fw = transfer_tables(n)
        nc = self.nc
        self.cp = np.ascontiguousarray(np.stack([c0, c1], 1))
        self.wp = np.ascontiguousarray(np.stack([w0, w1], 1)).astype(dtype)
        self.odd = (w1 != 0).astype(np.int64)  # nodes between two coarse nodes (two parents)
        self.gp = self.cp * 2 % n if n > 2 else self.cp.copy()
        self.fi = fi
        self.fs = np.where(fw > 0, np.where(c0[fi] == np.arange(nc)[:, None], 0, 1), -1).astype(np.int64)
        self.fl = np.full((nc, 3), -1, np.int64)
        up = (np.arange(nc) + 1) % nc
        self.fl[:, 0] = 2 * np.arange(nc) if n > 2 else np.arange(nc)
        self.fl[:, 2] = up * 2 if n > 2 else up
        if n > 2:
            two = 2 * np.arange(nc) + 1 < n  # the last element of an odd axis has a single child
            self.fl[two, 1] = 2 * np.arange(nc)[two] + 1
        self.ch, self.pos = _children(n)  # fine elements of every coarse element and their positions


def prolongation_matrix(shape, weights=None) -> sp.csr_matrix:
    """The prolongation of :class:`ElasticMultigrid` as a sparse matrix (3 components,
    component-major unknowns like the (3, n0, n1, n2) arrays): trilinear, or from the per-node
    parent weights of :func:`transfer_weights` (``weights``: a :class:`Transfer` or its
    (8, n0, n1, n2) weights); for tests."""
    axes = [_Axis(n, np.float64) for n in shape]
    if isinstance(weights, Transfer):
        weights = weights.weights()
    nc = tuple(a.nc for a in axes)
    nf = math.prod(shape)
    idx = np.arange(nf).reshape(shape)
    rows, cols, vals = [], [], []
    for s in range(8):
        sl = (s >> 2, (s >> 1) & 1, s & 1)
        w = (axes[0].wp[:, sl[0]][:, None, None] * axes[1].wp[:, sl[1]][None, :, None]
             * axes[2].wp[:, sl[2]][None, None, :]) if weights is None else weights[s]
        c = ((axes[0].cp[:, sl[0]][:, None, None] * nc[1] + axes[1].cp[:, sl[1]][None, :, None]) * nc[2]
             + axes[2].cp[:, sl[2]][None, None, :])
        c = np.broadcast_to(c, shape)
        keep = w != 0
        rows.append(idx[keep])
        cols.append(c[keep])
        vals.append(np.asarray(w, np.float64)[keep])
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(nf, math.prod(nc)))
    return sp.kron(sp.identity(3), m).tocsr()


#: the parent mask of a node that keeps its trilinear weights (every slot)
TRILINEAR = 255


@functools.lru_cache(maxsize=None)
def _weight_table_cached(dtype: str) -> np.ndarray:
    return _weight_table(np.dtype(dtype))


def _weight_table(dtype) -> np.ndarray:
    """(8, 256, 8): the weight of parent slot s of a node of class c (bit a of c: the node lies
    between two coarse nodes along axis 2 − a) with parent mask b (bit s: slot s kept): the trilinear
    weight of the slot over the kept slots' sum, or 0 for a dropped slot."""
    half = np.array([[1.0, 0.0], [0.5, 0.5]])
    tab = np.empty((8, 256, 8))
    for c in range(8):
        tri = np.array([half[c >> 2][s >> 2] * half[(c >> 1) & 1][(s >> 1) & 1] * half[c & 1][s & 1]
                        for s in range(8)])
        for b in range(256):
            kept = tri * np.array([(b >> s) & 1 for s in range(8)])
            tab[c, b] = kept / kept.sum() if kept.sum() > 0 else tri
    return tab.astype(dtype)


class Transfer:
    """The interpolation from a coarse level: per fine node an 8-bit mask of the parent slots it keeps
    (:data:`TRILINEAR` = all) and the table of :func:`_weight_table` — 1 byte per node instead of the
    8 weights (32 B in float32): the masked weights are the trilinear ones renormalised over the
    kept slots, so the mask determines them."""

    def __init__(self, axes, bits, dtype):
        self.axes = axes
        self.bits = bits
        # one table per dtype for every level and build (shared, never written): built in Python it
        # took 68 ms, once per level of every hierarchy build (14 s of a 64³ ten-step calendering)
        self.tab = _weight_table_cached(np.dtype(dtype).str)

    @property
    def changed(self) -> np.ndarray:
        """Nodes whose weights are not the trilinear ones."""
        return self.bits != TRILINEAR

    def args(self):
        """The kernels' arguments: table, masks and the three axes' node classes."""
        a0, a1, a2 = self.axes
        return self.tab, self.bits, a0.odd, a1.odd, a2.odd

    def weights(self) -> np.ndarray:
        """The weights of every node's 8 parent slots, (8, n0, n1, n2) float64 (tests)."""
        a0, a1, a2 = self.axes
        cls = 4 * a0.odd[:, None, None] + 2 * a1.odd[None, :, None] + a2.odd[None, None, :]
        return np.moveaxis(self.tab.astype(np.float64)[cls, self.bits], -1, 0)

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes + self.tab.nbytes


def transfer_weights(axes, dtype=np.float32, *, solid=None, stencil=None, theta=STRENGTH) -> Transfer:
    """Per fine node, which of its 8 parent slots keep their weight (:class:`Transfer`).

    With ``solid`` (the finest level: elements with stiffness) a parent whose fine node shares no
    solid element with the node, and with ``stencil`` (a coarse level's node stencil) a parent
    whose coupling block to the node is weak (Frobenius norm ≤ ``theta`` × the geometric mean of
    the two diagonal blocks'), gets no weight, and the rest are rescaled to sum to one (rigid
    translations stay in the coarse space); a node without a connected parent keeps the trilinear
    weights, and without either argument all nodes do. So a node of one particle is not
    interpolated from a coarse node across a pore gap in another particle: trilinear interpolation
    glues the two, and the coarse space then cannot move them apart (measured on the benchmark
    electrode: 31 → 25 → 22 CG iterations at 32³ and 47 → 39 → 33 at 48³, trilinear → masked
    first level → every level masked, in a sparse-matrix experiment)."""
    shp = tuple(a.n for a in axes)
    bits = np.full(shp, TRILINEAR, np.uint8)
    a0, a1, a2 = axes
    mode = 0 if solid is None and stencil is None else (1 if stencil is None else 2)
    solid = np.zeros((1, 1, 1), np.bool_) if solid is None else solid
    stencil = np.zeros((1, 1, NST, 1), np.float32) if stencil is None else stencil
    if mode:
        _weights(mode, solid, stencil, float(theta) ** 2, a0.wp, a0.gp, a1.wp, a1.gp, a2.wp, a2.gp, bits)
    return Transfer(axes, bits, dtype)


@numba.njit(cache=True, inline="always")
def _w(tab, bits, o0, o1, o2, s, i, j, k):
    """Weight of parent slot s of fine node (i, j, k) (see :class:`Transfer`)."""
    return tab[4 * o0[i] + 2 * o1[j] + o2[k], bits[i, j, k], s]


@numba.njit(cache=True, inline="always")
def _sides(f, g, n):
    """Which elements along one axis, (f − 1, f), hold both fine node f and fine node g (|f − g| ≤ 1)."""
    d = (f - g) % n
    return d == 0 or d == 1, d == 0 or d == n - 1


@numba.njit(cache=True, inline="always")
def _offset(f, g, n):
    """g − f ∈ {−1, 0, 1} on a periodic axis of n nodes."""
    d = (g - f) % n
    return -1 if d == n - 1 and n > 2 else d


@numba.njit(cache=True)
def _block_norm2(st, i, j, k, g0, g1, g2, o):
    """Squared Frobenius norm of the coupling block of node (i, j, k) to its neighbour (g0, g1, g2)
    at stencil offset o (a backward offset is stored, transposed, at the neighbour)."""
    v = 0.0
    for t in range(9):
        x = np.float64(st[i, j, 9 * (o - 13) + t, k] if o >= 13 else st[g0, g1, 9 * (13 - o) + t, g2])
        v += x * x
    return v


@numba.njit(parallel=True, cache=True)
def _weights(mode, solid, st, theta2, wp0, gp0, wp1, gp1, wp2, gp2, bits):
    n0, n1, n2 = bits.shape[0], bits.shape[1], bits.shape[2]
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                kept = 0  # slots with a weight that stay
                full = 0  # slots with a trilinear weight
                total = 0
                dropped = 0
                for s in range(8):
                    s0, s1, s2 = s >> 2, (s >> 1) & 1, s & 1
                    tri = np.float64(wp0[i, s0]) * wp1[j, s1] * wp2[k, s2]
                    w = tri
                    if tri != 0:
                        full |= 1 << s
                    g0, g1, g2 = gp0[i, s0], gp1[j, s1], gp2[k, s2]
                    if w != 0 and mode == 1:  # a solid element holds both nodes
                        lo0, hi0 = _sides(i, g0, n0)
                        lo1, hi1 = _sides(j, g1, n1)
                        lo2, hi2 = _sides(k, g2, n2)
                        conn = False
                        for e in range(8):
                            e0, e1, e2 = e >> 2, (e >> 1) & 1, e & 1
                            if not ((hi0 if e0 else lo0) and (hi1 if e1 else lo1) and (hi2 if e2 else lo2)):
                                continue
                            if solid[i - 1 + e0 if i - 1 + e0 >= 0 else n0 - 1,
                                     j - 1 + e1 if j - 1 + e1 >= 0 else n1 - 1,
                                     k - 1 + e2 if k - 1 + e2 >= 0 else n2 - 1]:
                                conn = True
                                break
                        if not conn:
                            w = 0.0
                    elif w != 0 and mode == 2 and (g0 != i or g1 != j or g2 != k):  # a strong coupling
                        o = 9 * (_offset(i, g0, n0) + 1) + 3 * (_offset(j, g1, n1) + 1) + _offset(k, g2, n2) + 1
                        if _block_norm2(st, i, j, k, g0, g1, g2, o) ** 2 <= (
                                theta2 * theta2 * _block_norm2(st, i, j, k, i, j, k, 13)
                                * _block_norm2(st, g0, g1, g2, g0, g1, g2, 13)):
                            w = 0.0
                    if w != 0:
                        kept |= 1 << s
                        total += 1
                    elif tri != 0:
                        dropped += 1
                if dropped > 0 and total > 0:  # no connected parent at all: trilinear
                    bits[i, j, k] = kept | (255 ^ full)


@numba.njit(cache=True, inline="always")
def _add3(rc, I, J, K, w, r0, r1, r2):
    """rc[:, I, J, K] += w (r0, r1, r2)."""
    rc[0, I, J, K] += w * r0
    rc[1, I, J, K] += w * r1
    rc[2, I, J, K] += w * r2


@numba.njit(parallel=True, cache=True)
def _restrict(r, rc, f0, s0, cp1, cp2, tab, bits, o0, o1, o2, mask):
    """rc = Pᵀ (mask ∘ r) (the transpose of :func:`_prolong_add`; nodes without stiffness are skipped).

    Each coarse plane I (one parallel task, the only one writing it) takes its ≤ 3 fine planes
    ``f0[I, :]`` (its slot ``s0[I, :]`` among their parents); every fine node of such a plane adds
    its 4 slot weights × r to its 4 parents in plane I (a scatter over ≤ 1.5 visits per fine node).
    The gather it replaced (every coarse node collecting its 27 children with a weight look-up each)
    cost 4.0 ms at 64³ on one thread, twice a fine operator application; this one 2.5 ms (same run).
    A node that sits on a coarse node along axis 1 or 2 (even j or k) has no weight on that axis's
    second parent in any mask (:func:`_weight_table`), so those adds are skipped: 2.25 instead of 4 per
    visit, the same sums in the same order (an add of 0 changes no sum)."""
    nc0 = rc.shape[1]
    n1, n2 = r.shape[2], r.shape[3]
    for I in numba.prange(nc0):
        for m in range(3):
            rc[m, I] = 0.0
        for t0 in range(3):
            sl0 = s0[I, t0]
            if sl0 < 0:
                continue
            i = f0[I, t0]
            for j in range(n1):
                J0 = cp1[j, 0]
                J1 = cp1[j, 1]
                oj = o1[j]
                for k in range(n2):
                    if not mask[i, j, k]:
                        continue
                    ok = o2[k]
                    wrow = tab[4 * o0[i] + 2 * oj + ok, bits[i, j, k]]
                    K0 = cp2[k, 0]
                    K1 = cp2[k, 1]
                    r0 = r[0, i, j, k]
                    r1 = r[1, i, j, k]
                    r2 = r[2, i, j, k]
                    _add3(rc, I, J0, K0, wrow[4 * sl0], r0, r1, r2)
                    if ok:
                        _add3(rc, I, J0, K1, wrow[4 * sl0 + 1], r0, r1, r2)
                    if oj:
                        _add3(rc, I, J1, K0, wrow[4 * sl0 + 2], r0, r1, r2)
                        if ok:
                            _add3(rc, I, J1, K1, wrow[4 * sl0 + 3], r0, r1, r2)


@numba.njit(parallel=True, cache=True)
def _prolong_add(x, xc, cp0, cp1, cp2, tab, bits, o0, o1, o2, mask):
    """x += P xc at nodes with stiffness (``mask``; other nodes are left at zero). The parent slots
    that a node's position gives no weight in any mask (the second parent along an axis where the node
    sits on a coarse node, :func:`_weight_table`) are skipped: 27 instead of 64 products per 8 nodes, the
    same sum in the same order (an added 0 changes no sum)."""
    n0, n1, n2 = x.shape[1], x.shape[2], x.shape[3]
    for i in numba.prange(n0):
        I0 = cp0[i, 0]
        I1 = cp0[i, 1]
        oi = o0[i]
        for j in range(n1):
            J0 = cp1[j, 0]
            J1 = cp1[j, 1]
            oj = o1[j]
            for k in range(n2):
                if not mask[i, j, k]:
                    continue
                ok = o2[k]
                w = tab[4 * oi + 2 * oj + ok, bits[i, j, k]]
                K0 = cp2[k, 0]
                K1 = cp2[k, 1]
                for m in range(3):
                    v = _add_plane(w[0] * xc[m, I0, J0, K0], w, 0, xc, m, I0, J0, J1, K0, K1, oj, ok)
                    if oi:
                        v = _add_plane(v + w[4] * xc[m, I1, J0, K0], w, 4, xc, m, I1, J0, J1, K0, K1, oj, ok)
                    x[m, i, j, k] += v


@numba.njit(cache=True, inline="always")
def _add_plane(v, w, s, xc, m, I, J0, J1, K0, K1, oj, ok):
    """v + the weighted values of parent slots s + 1 … s + 3 (coarse plane I; slot s is in v) that the
    node's position gives a weight (``oj``, ``ok``: it lies between two coarse nodes along axis 1, 2), in
    slot order (:func:`_prolong_add`)."""
    if ok:
        v += w[s + 1] * xc[m, I, J0, K1]
    if oj:
        v += w[s + 2] * xc[m, I, J1, K0]
        if ok:
            v += w[s + 3] * xc[m, I, J1, K1]
    return v


# ====================================================================== node blocks and smoother
def node_block_inverse(coef, pvec, q, out=None):
    """Inverses of the operator's 3 × 3 diagonal node blocks, (6, n0, n1, n2) in the order
    (00, 11, 22, 12, 02, 01); zero at nodes without stiffness.

    The block of a node is the sum over its 8 elements of ``(L + M) b bᵀ + (M |b|² + 4 k_hg) I −
    (p b)(p b)ᵀ`` with ``b = (s_0 q_0, s_1 q_1, s_2 q_2)``, ``s = ±1`` the side of the element the
    node sits on along each axis (one-point strain of a single node's displacement).
    """
    shp = coef.shape[1:]
    if out is None:
        out = np.empty((6, *shp), coef.dtype)
    has_p = pvec is not None
    _node_blocks(coef, pvec if has_p else coef[:1], has_p, q.astype(np.float64), out)
    return out


@numba.njit(parallel=True, cache=True)
def _node_blocks(coef, pvec, has_p, q, out):
    n0, n1, n2 = coef.shape[1], coef.shape[2], coef.shape[3]
    qq = q[0] * q[0] + q[1] * q[1] + q[2] * q[2]
    for i in numba.prange(n0):
        d = np.empty((3, 3))
        b = np.empty(3)
        pb = np.empty(3)
        for j in range(n1):
            for k in range(n2):
                d[:, :] = 0.0
                for a in range(2):
                    e0 = i - 1 + a if i - 1 + a >= 0 else n0 - 1  # element whose corner a (axis 0) is node i
                    b[0] = q[0] if a == 1 else -q[0]
                    for bb in range(2):
                        e1 = j - 1 + bb if j - 1 + bb >= 0 else n1 - 1
                        b[1] = q[1] if bb == 1 else -q[1]
                        for c in range(2):
                            e2 = k - 1 + c if k - 1 + c >= 0 else n2 - 1
                            b[2] = q[2] if c == 1 else -q[2]
                            L = np.float64(coef[0, e0, e1, e2])
                            M = np.float64(coef[1, e0, e1, e2])
                            kh = np.float64(coef[2, e0, e1, e2])
                            lm = L + M
                            diag = M * qq + 4.0 * kh
                            for r in range(3):
                                for s in range(3):
                                    d[r, s] += lm * b[r] * b[s]
                                d[r, r] += diag
                            if has_p:
                                p0 = np.float64(pvec[0, e0, e1, e2])
                                p1 = np.float64(pvec[1, e0, e1, e2])
                                p2 = np.float64(pvec[2, e0, e1, e2])
                                p3 = np.float64(pvec[3, e0, e1, e2])
                                p4 = np.float64(pvec[4, e0, e1, e2])
                                p5 = np.float64(pvec[5, e0, e1, e2])
                                pb[0] = p0 * b[0] + p5 * b[1] + p4 * b[2]
                                pb[1] = p5 * b[0] + p1 * b[1] + p3 * b[2]
                                pb[2] = p4 * b[0] + p3 * b[1] + p2 * b[2]
                                for r in range(3):
                                    for s in range(3):
                                        d[r, s] -= pb[r] * pb[s]
                _store_inverse(d, out, i, j, k)


@numba.njit(cache=True, inline="always")
def _store_inverse(d, out, i, j, k):
    """out[:, i, j, k] ← the inverse of the symmetric 3 × 3 block d (packed); zero for a block
    without stiffness (a node that only touches void elements)."""
    c00 = d[1, 1] * d[2, 2] - d[1, 2] * d[2, 1]
    c01 = d[0, 2] * d[2, 1] - d[0, 1] * d[2, 2]
    c02 = d[0, 1] * d[1, 2] - d[0, 2] * d[1, 1]
    det = d[0, 0] * c00 + d[1, 0] * c01 + d[2, 0] * c02
    tr = d[0, 0] + d[1, 1] + d[2, 2]
    if tr > 0.0 and det > 1e-12 * tr * tr * tr:
        inv = 1.0 / det
        out[0, i, j, k] = c00 * inv
        out[1, i, j, k] = (d[0, 0] * d[2, 2] - d[0, 2] * d[2, 0]) * inv
        out[2, i, j, k] = (d[0, 0] * d[1, 1] - d[0, 1] * d[1, 0]) * inv
        out[3, i, j, k] = (d[0, 2] * d[1, 0] - d[0, 0] * d[1, 2]) * inv
        out[4, i, j, k] = c02 * inv
        out[5, i, j, k] = c01 * inv
    else:
        for r in range(6):
            out[r, i, j, k] = 0.0


@numba.njit(cache=True, fastmath={"reassoc"})  # reassoc: the row sums vectorise
def _coarse_solve(v, inv, active, b, x):
    """x[active] = V diag(inv) Vᵀ b[active] (the coarsest level's pseudo-inverse, in float64) on one thread.

    Not numpy's ``@``: OpenBLAS threads a matrix–vector product of this size (~200 × 200), so every cycle
    woke its threads 8 times between numba's parallel sweeps: the demo's calender stage, profiled beside one other
    2-thread process, spent 1.75 ms per coarsest solve (14 s of 136) against 0.09 ms alone. (Whole cycles timed
    alternately under such load did not differ measurably; one thread here costs nothing: 13 against 15 µs alone.)"""
    n, k = v.shape
    c = np.zeros(k)
    for i in range(n):
        bi = np.float64(b[active[i]])
        row = v[i]  # a row view: its loop vectorises (v[i, m] did not: 49 against 14 µs at 189 × 187)
        for m in range(k):
            c[m] += row[m] * bi
    for m in range(k):
        c[m] *= inv[m]
    for i in range(n):
        row = v[i]
        acc = 0.0
        for m in range(k):
            acc += row[m] * c[m]
        x[active[i]] = acc


def _fourth_kind_steps(degree: int, lmax: float) -> list[tuple[float, float]]:
    """The smoother's steps ``d ← a d + c D⁻¹ r, x += d`` (r the current residual, d = 0 before the
    first): the fourth-kind Chebyshev smoother of Lottes (Numer. Linear Algebra Appl. 2023, "Optimal
    polynomial smoothers for multigrid V-cycles"; Phillips & Fischer 2022). After k steps the error is
    ``W_k(1 − 2λ/λ_max) / (2k + 1)`` times its start on an eigenvector of D⁻¹A with eigenvalue λ, W_k the
    fourth-kind Chebyshev polynomial, ``W_k(cos θ) = sin((k + ½)θ) / sin(θ/2)``: the polynomial with
    p(0) = 1 that minimises ``max √(λ/λ_max) |p(λ)|`` on (0, λ_max]. It damps the whole upper part of the
    spectrum without a lower end to choose — the first kind on [λ_max/ratio, λ_max] needs the ratio, and
    on the calender's electrodes (stiff particles welded by a 10× softer binder, 10³ in the test's
    cubes) every ratio traded one case for the other (stop 32); the fourth kind took the welded 128³
    ten-step from 179 to 161 CG at the same cost per step and kept the cubes' 10³ case (stop 34)."""
    return [(0.0, 4.0 / (3.0 * lmax))] + [((2 * i - 1) / (2 * i + 3), (8 * i + 4) / ((2 * i + 3) * lmax))
                                          for i in range(1, degree)]


@numba.njit(parallel=True, cache=True)
def _cheb_step(dinv, r, d, x, a, b, init):
    """d = a d + b D⁻¹ r; x += d, or x = d with ``init`` (one Chebyshev step with node-block Jacobi;
    d is not read when a = 0, x not with ``init``): :func:`._operator.jacobi_plane` on every plane. On
    the finest level the steps after a residual update are fused into it (:meth:`_Level.residual`)."""
    for i in numba.prange(r.shape[1]):
        jacobi_plane(dinv, r, d, x, a, b, init, i)


@numba.njit(parallel=True, cache=True)
def _residual_image(b, r, out):
    """out = b − r (A x from the residual r = b − A x; or the residual from A x)."""
    bf = b.reshape(-1)
    rf = r.reshape(-1)
    of = out.reshape(-1)
    for i in numba.prange(of.size):
        of[i] = bf[i] - rf[i]


@numba.njit(parallel=True, cache=True)
def _axpy(y, x, a):
    """y += a x."""
    yf = y.reshape(-1)
    xf = x.reshape(-1)
    a = yf.dtype.type(a)
    for i in numba.prange(yf.size):
        yf[i] += a * xf[i]


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _dot(a, b):
    af = a.reshape(-1)
    bf = b.reshape(-1)
    acc = 0.0
    for i in numba.prange(af.size):
        acc += np.float64(af[i]) * np.float64(bf[i])
    return acc


# ====================================================================== Galerkin element matrices
# P is local: the fine nodes inside a coarse element are interpolated from its 8 corners only
# (masked or not) and every fine element lies in one coarse element, so Pᵀ A P is again a sum of
# element matrices, K_E = Σ_children P8ᵀ K_child P8, with P8 (⊗ I₃) the interpolation of the child's
# corners from the coarse corners, read from the corners' parent weights (:func:`_child_p8`). Where
# those are trilinear, P8 = P_pos depends only on the child's position per axis: lower half, upper
# half, or the whole coarse element on an axis that is not coarsened or on the single-child last
# element of an odd periodic axis. Coarse element matrices are stored packed (the 300 entries of
# the lower triangle, row-major: (r, c ≤ r) at r(r+1)/2 + c).
NPACK = 300
_P1 = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
_CORNERS = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _pack_index() -> np.ndarray:
    idx = np.empty((24, 24), np.int64)
    for r in range(24):
        for c in range(24):
            hi, lo = max(r, c), min(r, c)
            idx[r, c] = hi * (hi + 1) // 2 + lo
    return idx


_PACK = _pack_index()
_TRIL = np.tril_indices(24)


def _p8(pos) -> np.ndarray:
    """8 × 8 interpolation of a child's corners from the coarse corners (positions per axis)."""
    p = np.empty((8, 8))
    for fi, (a, b, c) in enumerate(_CORNERS):
        for ci, (A, B, C) in enumerate(_CORNERS):
            p[fi, ci] = _P1[pos[0]][a, A] * _P1[pos[1]][b, B] * _P1[pos[2]][c, C]
    return p


def _element_maps(q):
    """The one-point hexahedron's 9 × 24 gradient map G (d_mn = G[3m + n] · u_e) and 12 × 24 map of
    its 4 hourglass modes × 3 components; unknowns ordered (component, corner abc)."""
    g = np.zeros((9, 24))
    h = np.zeros((12, 24))
    for ci, abc in enumerate(_CORNERS):
        s = [2 * t - 1 for t in abc]
        modes = (s[0] * s[1], s[0] * s[2], s[1] * s[2], s[0] * s[1] * s[2])
        for m in range(3):
            for n in range(3):
                g[3 * m + n, 8 * m + ci] = s[n] * q[n]
            for al, w in enumerate(modes):
                h[3 * al + m, 8 * m + ci] = w
    return g, h


def _element_matrices(q):
    """Constant 24 × 24 element matrices of the one-point hexahedron for unit L, M, k_hg and the
    9 × 24 gradient map G (:func:`_element_maps`)."""
    g, h = _element_maps(q)
    tr = g[0] + g[4] + g[8]
    sym = np.zeros((9, 24))  # rows of d + dᵀ
    for m in range(3):
        for n in range(3):
            sym[3 * m + n] = g[3 * m + n] + g[3 * n + m]
    # L tr(ε)², 2 M ε:ε = M/2 (d + dᵀ):(d + dᵀ), k_hg Σ modes²
    return g, np.outer(tr, tr), 0.5 * sym.T @ sym, h.T @ h


def _first_coarse_basis(q) -> np.ndarray:
    """(81, 300): packed P_posᵀ K_t P_pos for the 27 position combinations × t ∈ (L, M, k_hg)."""
    _, k_l, k_m, k_h = _element_matrices(np.asarray(q, float))
    out = np.empty((81, NPACK))
    for combo in range(27):
        p24 = np.kron(np.eye(3), _p8((combo // 9, (combo // 3) % 3, combo % 3)))
        for t, k in enumerate((k_l, k_m, k_h)):
            out[3 * combo + t] = (p24.T @ k @ p24)[_TRIL[0], _TRIL[1]]
    return out


def _corner_vectors(q) -> np.ndarray:
    """(7, 8): the one-point hexahedron's gradient vectors ``γ_n`` (``d_mn = γ_n · u_m`` over the 8 corners of
    component m) and its 4 hourglass modes ``η_α``, from which its element matrix follows entrywise
    (:func:`_add_child`)."""
    g, h = _element_maps(np.asarray(q, float))
    return np.vstack([g[:3, :8], h[::3, :8]])


def _first_coarse_gradients(q) -> np.ndarray:
    """(27, 9, 24): the gradient map G P_pos of a child at each position combination (for the J2
    rank-one term ``(P_posᵀ Gᵀ p)(P_posᵀ Gᵀ p)ᵀ`` of a yielded child)."""
    g = _element_matrices(np.asarray(q, float))[0]
    return np.stack([g @ np.kron(np.eye(3), _p8((c // 9, (c // 3) % 3, c % 3))) for c in range(27)])


def _children(n: int):
    """Per coarse element of an axis: its ≤ 2 fine children (−1 pads) and their positions."""
    nc = n if n <= 2 else -(-n // 2)
    ch = np.full((nc, 2), -1, np.int64)
    pos = np.full((nc, 2), 2, np.int64)
    for i in range(n):
        if n <= 2:
            ch[i, 0], pos[i, 0] = i, 2
        elif n % 2 == 1 and i == n - 1:
            ch[i // 2, 0], pos[i // 2, 0] = i, 2
        else:
            ch[i // 2, i % 2], pos[i // 2, i % 2] = i, i % 2
    return ch, pos


#: E corner (0 lower, 1 upper; −1 none) of parent slot s of the fine node at local position l
#: (0, 1, 2) of a coarse element along one axis
_SLOT_CORNER = np.array([[0, -1], [0, 1], [1, -1]], np.int64)


@numba.njit(cache=True, inline="always")
def _local(pos, c):
    """Local position (0, 1, 2) in its coarse element of corner c of a child at position pos."""
    return pos + c if pos < 2 else 2 * c


@numba.njit(cache=True, inline="always")
def _child_p8(tab, bits, o0, o1, o2, fl0, fl1, fl2, I, J, K, pa, pb, pc, corner_of, p8):
    """p8 ← the 8 × 8 interpolation of a child's corners (at positions pa, pb, pc in coarse element
    (I, J, K)) from the coarse element's corners, read from the fine nodes' parent weights."""
    p8[:, :] = 0.0
    for ci in range(8):
        l0 = _local(pa, ci >> 2)
        l1 = _local(pb, (ci >> 1) & 1)
        l2 = _local(pc, ci & 1)
        f0, f1, f2 = fl0[I, l0], fl1[J, l1], fl2[K, l2]
        for s in range(8):
            ws = _w(tab, bits, o0, o1, o2, s, f0, f1, f2)
            if ws != 0:
                p8[ci, 4 * corner_of[l0, s >> 2] + 2 * corner_of[l1, (s >> 1) & 1] + corner_of[l2, s & 1]] += ws


@numba.njit(cache=True, inline="always")
def _add_ptkp(k24, p8, tmp, e):
    """e (packed lower triangle) += (I₃ ⊗ P8)ᵀ k24 (I₃ ⊗ P8), block by block."""
    for m in range(3):
        for n in range(m + 1):
            for r in range(8):  # tmp = K_mn P8
                for c in range(8):
                    v = 0.0
                    for t in range(8):
                        v += k24[8 * m + r, 8 * n + t] * p8[t, c]
                    tmp[r, c] = v
            for r in range(8):  # += P8ᵀ tmp, lower triangle
                row = 8 * m + r
                for c in range(8 if m > n else r + 1):
                    v = 0.0
                    for t in range(8):
                        v += p8[t, r] * tmp[t, c]
                    e[row * (row + 1) // 2 + 8 * n + c] += v


@numba.njit(cache=True, inline="always")
def _add_child(p8, vec, L, M, kh, yielded, pf, cv, wv, e):
    """e (packed lower triangle) += (I₃ ⊗ P8)ᵀ K (I₃ ⊗ P8) for a fine element with coefficients L, M, kh (and
    the J2 rank-one term of ``pf`` when ``yielded``), from its corner vectors ``vec`` (:func:`_corner_vectors`)
    mapped to the coarse corners, ``cv = P8ᵀ vec``. The one-point hexahedron's matrix is, entrywise in
    (component a, corner r) × (component b, corner c),
    ``K = L γ_a[r] γ_b[c] + M (δ_ab Σ_n γ_n[r] γ_n[c] + γ_b[r] γ_a[c]) + kh δ_ab Σ_α η_α[r] η_α[c]
    − w[a, r] w[b, c]`` with ``w[m] = Σ_n p_mn γ_n``, so the product needs the 7 mapped vectors (448
    multiply-adds) instead of P8ᵀ K P8 block by block (~7000 with forming K): the masked children of the
    first coarse level were half of a hierarchy build (stop 31)."""
    for t in range(7):
        for c in range(8):
            v = 0.0
            for f in range(8):
                v += vec[t, f] * p8[f, c]
            cv[t, c] = v
    for a in range(3):
        for r in range(8):
            row = 8 * a + r
            o = row * (row + 1) // 2
            for b in range(a + 1):
                for c in range(8 if b < a else r + 1):
                    v = L * cv[a, r] * cv[b, c] + M * cv[b, r] * cv[a, c]
                    if a == b:
                        v += M * (cv[0, r] * cv[0, c] + cv[1, r] * cv[1, c] + cv[2, r] * cv[2, c]) + kh * (
                            cv[3, r] * cv[3, c] + cv[4, r] * cv[4, c] + cv[5, r] * cv[5, c] + cv[6, r] * cv[6, c])
                    e[o + 8 * b + c] += v
    if yielded:
        for m in range(3):
            for r in range(8):
                wv[8 * m + r] = pf[3 * m] * cv[0, r] + pf[3 * m + 1] * cv[1, r] + pf[3 * m + 2] * cv[2, r]
        _sub_rank_one(wv, e)


@numba.njit(cache=True, inline="always")
def _sub_rank_one(wv, e):
    """e (packed lower triangle, 24 × 24) −= wv wvᵀ: a yielded child's J2 rank-one term."""
    o = 0
    for r in range(24):
        for c in range(r + 1):
            e[o + c] -= wv[r] * wv[c]
        o += r + 1


@numba.njit(parallel=True, cache=True)
def _galerkin_first(coef, pvec, has_p, tab, bits, o0, o1, o2, ke, i0, ch0, ps0, fl0, ch1, ps1, fl1, ch2, ps2, fl2,
                    basis, vec, gpos, corner_of):
    """ke[E − (i0, 0, 0)] = Σ_children P8ᵀ K_child P8 for the first coarse level's element planes
    i0 … i0 + len(ke) − 1 (packed; a slab: the whole level's would take 150 B per fine voxel).

    A child whose 8 corner nodes all keep trilinear weights adds the precomputed products of its
    position (``basis``, (81, 300): three coefficients, plus the J2 rank-one term through ``gpos``);
    any other child builds its 8 × 8 interpolation from the node weights ``w`` and adds P8ᵀ K P8 from
    its corner vectors ``vec`` (:func:`_add_child`)."""
    nc0, nc1, nc2 = ke.shape[0], ke.shape[1], ke.shape[2]
    for Il in numba.prange(nc0):
        I = Il + i0
        p8 = np.empty((8, 8))
        cv = np.empty((7, 8))
        wv = np.empty(24)
        pf = np.empty(9)
        for J in range(nc1):
            for K in range(nc2):
                e = ke[Il, J, K]
                e[:] = 0.0
                for a in range(2):
                    i = ch0[I, a]
                    if i < 0:
                        continue
                    for b in range(2):
                        j = ch1[J, b]
                        if j < 0:
                            continue
                        for cc in range(2):
                            k = ch2[K, cc]
                            if k < 0:
                                continue
                            L = coef[0, i, j, k]
                            M = coef[1, i, j, k]
                            kh = coef[2, i, j, k]
                            yielded = False
                            if has_p:
                                for t in range(6):
                                    if pvec[t, i, j, k] != 0:
                                        yielded = True
                                p0, p1, p2 = pvec[0, i, j, k], pvec[1, i, j, k], pvec[2, i, j, k]
                                p3, p4, p5 = pvec[3, i, j, k], pvec[4, i, j, k], pvec[5, i, j, k]
                                pf[0], pf[1], pf[2] = p0, p5, p4
                                pf[3], pf[4], pf[5] = p5, p1, p3
                                pf[6], pf[7], pf[8] = p4, p3, p2
                            if L == 0 and M == 0 and kh == 0 and not yielded:
                                continue
                            pa, pb, pc = ps0[I, a], ps1[J, b], ps2[K, cc]
                            standard = True
                            for ci in range(8):
                                if bits[fl0[I, _local(pa, ci >> 2)], fl1[J, _local(pb, (ci >> 1) & 1)],
                                        fl2[K, _local(pc, ci & 1)]] != TRILINEAR:
                                    standard = False
                            if standard:
                                combo = pa * 9 + pb * 3 + pc
                                for o in range(NPACK):
                                    e[o] += (L * basis[3 * combo, o] + M * basis[3 * combo + 1, o]
                                             + kh * basis[3 * combo + 2, o])
                                if yielded:
                                    g = gpos[combo]
                                    for r in range(24):
                                        v = 0.0
                                        for t in range(9):
                                            v += g[t, r] * pf[t]
                                        wv[r] = v
                                    _sub_rank_one(wv, e)
                                continue
                            _child_p8(tab, bits, o0, o1, o2, fl0, fl1, fl2, I, J, K, pa, pb, pc, corner_of, p8)
                            _add_child(p8, vec, L, M, kh, yielded, pf, cv, wv, e)


@numba.njit(parallel=True, cache=True)
def _galerkin_dense(kf, i0, kc, c0, c1, ch0, ps0, fl0, ch1, ps1, fl1, ch2, ps2, fl2, tab, bits, o0, o1, o2,
                    corner_of, pack):
    """kc[E] = Σ_children P8ᵀ kf[child] P8 (packed element matrices; P8 from the parent weights) for
    the coarse element planes c0 … c1 − 1, whose children are in the slab ``kf`` of fine element
    planes from i0."""
    nc1, nc2 = kc.shape[1], kc.shape[2]
    for Ic in numba.prange(c1 - c0):
        I = Ic + c0
        f = np.empty((24, 24))
        p8 = np.empty((8, 8))
        tmp = np.empty((8, 8))
        for J in range(nc1):
            for K in range(nc2):
                e = kc[I, J, K]
                e[:] = 0.0
                for a in range(2):
                    i = ch0[I, a]
                    if i < 0:
                        continue
                    for b in range(2):
                        j = ch1[J, b]
                        if j < 0:
                            continue
                        for cc in range(2):
                            k = ch2[K, cc]
                            if k < 0:
                                continue
                            _child_p8(tab, bits, o0, o1, o2, fl0, fl1, fl2, I, J, K, ps0[I, a], ps1[J, b], ps2[K, cc],
                                      corner_of, p8)
                            for r in range(24):
                                for c in range(24):
                                    f[r, c] = kf[i - i0, j, k, pack[r, c]]
                            _add_ptkp(f, p8, tmp, e)


# ====================================================================== coarse levels as node stencils
# A coarse level is applied as an assembled 27-point stencil of 3 × 3 node blocks, stored once per
# symmetric pair: the operator is symmetric, so the block of node x to its neighbour at −d is the
# transpose of that neighbour's block at +d. Only the centre and the 13 "forward" offsets d
# (lexicographically positive; neighbour index o = 9 (d0 + 1) + 3 (d1 + 1) + (d2 + 1) ≥ 13) are kept:
# st[i, j, 9 (o − 13) + 3 m + n, k] is the coupling of component m of the node to component n of its
# neighbour. 126 instead of 243 values per node (the level-1 stencil: 63 instead of 122 B per fine
# voxel), and each stored block is read once per application for both of its products.
NST = 126


def stencil_from_elements(ke, st, pack):
    """st ← the node stencil of the operator Σ_E scatter(K_E) (packed element matrices ke)."""
    st[...] = 0
    stencil_add_elements(ke, 0, st, pack)
    return st


@numba.njit(parallel=True, cache=True)
def stencil_add_elements(ke, i0, st, pack):
    """st += the node stencil of Σ_E scatter(K_E) over the slab ``ke`` of element planes i0 … i0 +
    len(ke) − 1 (packed element matrices; it touches node planes i0 … i0 + len(ke))."""
    s = ke.shape[0]
    n0, n1, n2 = st.shape[0], st.shape[1], st.shape[3]
    for t in numba.prange(min(s + 1, n0)):
        i = (i0 + t) % n0
        for j in range(n1):
            for k in range(n2):
                for ci in range(8):
                    a, b, c = ci >> 2, (ci >> 1) & 1, ci & 1
                    el = (i - a - i0) % n0  # the element whose corner ci is this node, in the slab
                    if el >= s:
                        continue
                    e1 = j - b if j - b >= 0 else n1 - 1
                    e2 = k - c if k - c >= 0 else n2 - 1
                    e = ke[el, e1, e2]
                    for cj in range(8):
                        o = 9 * ((cj >> 2) - a + 1) + 3 * (((cj >> 1) & 1) - b + 1) + ((cj & 1) - c + 1)
                        if o < 13:  # stored at the neighbour (transposed)
                            continue
                        so = 9 * (o - 13)
                        for m in range(3):
                            for n in range(3):
                                st[i, j, so + 3 * m + n, k] += e[pack[8 * m + ci, 8 * n + cj]]


def stencil_apply(st, x, out):
    """out = A x for a node stencil st (periodic, one stored block per symmetric pair; see
    :func:`_stencil_sweep`)."""
    _stencil_sweep(st, x, out, out, False, numba.get_num_threads())
    return out


def stencil_residual(st, x, b, out):
    """out = b − A x for a node stencil st in one pass (``b`` may be ``out``: r −= A x in place)."""
    _stencil_sweep(st, x, b, out, True, numba.get_num_threads())
    return out


@numba.njit(cache=True, inline="always")
def _block_madd(a0, a1, a2, r00, r01, r02, r10, r11, r12, r20, r21, r22, x0, x1, x2, n):
    """a_m[k] += Σ_n r_mn[k] x_n[k] for k < n: one 3 × 3 stencil block along a node row."""
    for k in range(n):
        v0 = x0[k]
        v1 = x1[k]
        v2 = x2[k]
        a0[k] += r00[k] * v0 + r01[k] * v1 + r02[k] * v2
        a1[k] += r10[k] * v0 + r11[k] * v1 + r12[k] * v2
        a2[k] += r20[k] * v0 + r21[k] * v1 + r22[k] * v2


@numba.njit(cache=True, inline="always")
def _load_row(xb, slot, w, x, i, j):
    """xb's slot (3 component rows of w = n2 + 2) ← node row (i, j) of x with its periodic halo."""
    n2 = x.shape[3]
    for n in range(3):
        base = (3 * slot + n) * w
        xr = x[n, i, j]
        xb[base] = xr[n2 - 1]
        for k in range(n2):
            xb[base + 1 + k] = xr[k]
        xb[base + n2 + 1] = xr[0]


@numba.njit(cache=True, inline="always")
def _scatter_transposed(s, r, xb, w, acc, row, d2, n2):
    """acc[:, row, 1 + k + d2] += Bᵀ x(node k) for the block B = s[r : r + 9] of a node row (x in xb's
    slot 0, without its halo; acc has a one-element halo on either side of k)."""
    a0 = acc[0, row, 1 + d2:]
    a1 = acc[1, row, 1 + d2:]
    a2 = acc[2, row, 1 + d2:]
    _block_madd(a0, a1, a2, s[r], s[r + 3], s[r + 6], s[r + 1], s[r + 4], s[r + 7], s[r + 2], s[r + 5], s[r + 8],
                xb[1:], xb[w + 1:], xb[2 * w + 1:], n2)


@numba.njit(parallel=True, cache=True)
def _stencil_sweep(st, x, rhs, out, residual, threads):
    """out = A x, or rhs − A x with ``residual``, for a node stencil st (periodic, one stored block per
    symmetric pair).

    Each stored block B (node → node + d) is read from memory once: B x(node + d) goes to the node's
    row and Bᵀ x(node) to the neighbour's (two loops over k; the second finds the block in L1), into
    accumulators of the current node plane and of the next one (d0 = 1), each with a one-element halo
    along k that is folded back (periodic) when the plane is complete. The planes are cut into
    ``threads`` contiguous chunks; a chunk recomputes the contributions to its first plane from the
    plane before it (another chunk's) from that plane's d0 = 1 blocks, so no two threads write the same
    plane. Stop 22–28 gathered instead: each block again for the neighbour, transposed, one plane later
    and out of cache — the traffic of the full stencil. Level 1 at 128³ (65 × 64², random stencil, one
    thread, old and new alternating, load 7): 25.1 → 17.2 CPU-ms. Tried and dropped (stop 29): both
    products in one loop (not vectorised: 20–22 ms); the off-diagonal blocks in bfloat16 with the centre
    blocks corrected to keep every row sum (simulated on the bench electrode at 64³: its 47 / 64 CG
    iterations kept — 114 / 166 uncorrected — but a sweep took 15.0 instead of 16.8 ms against 144 CPU-ms per 128³ build
    for the conversion: a wash). Each product is one contiguous loop
    over k (:func:`_block_madd`, the 3 × 3 block into three rows at once) over slices (views), so that
    every index is provably non-negative (numba's negative-index wrap-around kept LLVM from vectorising,
    2× slower)."""
    n0, n1, n2 = x.shape[1], x.shape[2], x.shape[3]
    w = n2 + 2
    chunks = min(threads, n0)
    for t in numba.prange(chunks):
        i_start = t * n0 // chunks
        i_end = (t + 1) * n0 // chunks
        xb = np.empty(6 * 3 * w, x.dtype)  # slot 3 d0 + d1 + 1: x rows (i + d0, j + d1) the blocks reach
        acc = np.zeros((2, 3, n1, w), x.dtype)  # the current plane's accumulators and the next one's
        ip = (i_start - 1) % n0  # the previous plane's blocks into plane i_start (d0 = 1, transposed)
        cur = acc[0]
        for j in range(n1):
            _load_row(xb, 0, w, x, ip, j)
            s = st[ip, j]
            for o in range(18, 27):
                _scatter_transposed(s, 9 * (o - 13), xb, w, cur, (j + (o // 3) % 3 - 1) % n1, o % 3 - 1, n2)
        for i in range(i_start, i_end):
            cur = acc[(i - i_start) & 1]
            nxt = acc[(i - i_start + 1) & 1]
            i1 = (i + 1) % n0
            for j in range(n1):
                _load_row(xb, 0, w, x, i, j)  # slot 0 is (i, j) (slot 3 d0 + d1 + 1 = 0 is never reached)
                _load_row(xb, 2, w, x, i, (j + 1) % n1)
                for d1 in range(-1, 2):
                    _load_row(xb, 4 + d1, w, x, i1, (j + d1) % n1)
                s = st[i, j]
                a0 = cur[0, j, 1:]
                a1 = cur[1, j, 1:]
                a2 = cur[2, j, 1:]
                for o in range(13, 27):
                    d0, d1, d2 = o // 9 - 1, (o // 3) % 3 - 1, o % 3 - 1
                    r = 9 * (o - 13)
                    slot = 3 * d0 + d1 + 1
                    if slot == 1:
                        slot = 0
                    bx = 3 * slot * w + 1 + d2  # x(node + d): slot's row shifted by d2
                    _block_madd(a0, a1, a2, s[r], s[r + 1], s[r + 2], s[r + 3], s[r + 4], s[r + 5], s[r + 6],
                                s[r + 7], s[r + 8], xb[bx:], xb[bx + w:], xb[bx + 2 * w:], n2)
                    if o > 13:
                        _scatter_transposed(s, r, xb, w, nxt if d0 else cur, (j + d1) % n1, d2, n2)
            for m in range(3):
                for j in range(n1):
                    a = cur[m, j]
                    a[n2] += a[0]  # the halo: k = −1 is k = n2 − 1, k = n2 is k = 0
                    a[1] += a[n2 + 1]
                    orow = out[m, i, j]
                    if residual:
                        brow = rhs[m, i, j]
                        for k in range(n2):
                            orow[k] = brow[k] - a[1 + k]
                    else:
                        for k in range(n2):
                            orow[k] = a[1 + k]
            cur[...] = 0


@numba.njit(parallel=True, cache=True)
def _stencil_node_blocks(st, out):
    """Node-block inverses from the stencil's centre blocks (offset 13)."""
    n0, n1, n2 = st.shape[0], st.shape[1], st.shape[3]
    for i in numba.prange(n0):
        d = np.empty((3, 3))
        for j in range(n1):
            for k in range(n2):
                for m in range(3):
                    for n in range(3):
                        d[m, n] = st[i, j, 3 * m + n, k]
                _store_inverse(d, out, i, j, k)


def _drop_null_blocks(st, dinv) -> None:
    """Zero the inverses of node blocks whose trace is below :data:`NODE_NULL` × the level's largest."""
    tr = st[:, :, 0, :].astype(np.float64) + st[:, :, 4, :] + st[:, :, 8, :]
    dinv[:, tr < NODE_NULL * tr.max()] = 0


# ====================================================================== assembly (coarsest level, tests)
def _assemble_elements(vals, shp) -> sp.csr_matrix:
    """Sparse matrix from per-element 24 × 24 matrices (elements and nodes in C order, periodic)."""
    n = math.prod(shp)
    idx = np.arange(n).reshape(shp)
    nodes = np.stack([np.roll(idx, (-a, -b, -c), axis=(0, 1, 2)).reshape(-1) for a, b, c in _CORNERS], axis=1)
    dofs = np.concatenate([nodes + m * n for m in range(3)], axis=1)  # (n, 24)
    rows = np.broadcast_to(dofs[:, :, None], vals.shape).reshape(-1)
    cols = np.broadcast_to(dofs[:, None, :], vals.shape).reshape(-1)
    return sp.csr_matrix((vals.reshape(-1), (rows, cols)), shape=(3 * n, 3 * n))


def assemble(coef, pvec, q) -> sp.csr_matrix:
    """The tangent operator of :func:`._operator.apply_tangent` as a sparse matrix (float64,
    component-major unknowns). For small grids: the coarsest level and the kernel tests."""
    shp = coef.shape[1:]
    n = math.prod(shp)
    g, k_l, k_m, k_h = _element_matrices(np.asarray(q, float))
    c = coef.reshape(3, n).astype(np.float64)
    vals = (c[0, :, None, None] * k_l + c[1, :, None, None] * k_m + c[2, :, None, None] * k_h)
    if pvec is not None:
        pv = pvec.reshape(6, n).astype(np.float64)
        full = np.stack([pv[0], pv[5], pv[4], pv[5], pv[1], pv[3], pv[4], pv[3], pv[2]])  # p_mn, row-major
        w = full.T @ g  # (n, 24): p : d(u_e)
        vals -= w[:, :, None] * w[:, None, :]
    return _assemble_elements(vals, shp)


def assemble_stencil(st) -> sp.csr_matrix:
    """Sparse matrix of a node stencil (n0, n1, NST, n2) (a coarse level; the coarsest solve, tests)."""
    shp = (st.shape[0], st.shape[1], st.shape[3])
    n = math.prod(shp)
    idx = np.arange(n).reshape(shp)
    rows, cols, vals = [], [], []
    for o in range(13, 27):
        d = (o // 9 - 1, (o // 3) % 3 - 1, o % 3 - 1)
        nb = np.roll(idx, tuple(-v for v in d), axis=(0, 1, 2)).reshape(-1)  # the neighbour at +d
        for m in range(3):
            for mm in range(3):
                v = st[:, :, 9 * (o - 13) + 3 * m + mm].reshape(-1).astype(np.float64)
                rows.append(idx.reshape(-1) + m * n)
                cols.append(nb + mm * n)
                vals.append(v)
                if o > 13:  # the neighbour's block to this node: the transpose
                    rows.append(nb + mm * n)
                    cols.append(idx.reshape(-1) + m * n)
                    vals.append(v)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(3 * n, 3 * n))


# ====================================================================== rigid pieces (a coarse space)
#: the rigid pieces' coarse correction (:class:`RigidPieces`) after every cycle (``ElasticMultigrid(pieces=)``).
#: Off by default (stop 26): it cuts the 128³ ten-step's CG by 39 % (2884 → 1749), but the calendering's contact
#: passes do not converge their active set, so the changed iterates move the series' answers by up to 10 % of
#: the roll pressure at 3.0 g/cm³, and a zero-strain re-solve no longer holds within 2 %
#: (tests/test_calender_resolve.py: −2.4 %, −2.2 % at 10 passes, vs −0.4 % without). On once the active set
#: converges on its own criterion. Stop 27: not the pieces' fault — the series' answers move as much with the CG
#: tolerance (benchmark cathode seed 1, 5 passes, roll pressure at 3.0 g/cm³: 35.2 / 29.8 / 37.2 MPa at tol
#: 2e-4 / 1e-4 / 5e-5; pieces on: 38.5 MPa, 984 vs 2031 CG) and with the pass budget (12 passes: 37.7 off,
#: 41.8 on, 2140 vs 3087 CG); ``_contacts.solve_with_contacts`` says why.
PIECES = False
#: a voxel at least this fraction as stiff (shear modulus) as the median voxel with stiffness is part of
#: a piece: in a calendered electrode the particles, the collector and the roll, not the contact
#: interphase (0.1 of a particle's stiffness, 0.01 crushed) nor the carbon-binder domain (10⁻³)
PIECE_STIFFNESS = 0.5
#: at most this many pieces (the largest) get rigid-body modes: the coarse matrix is dense, 6 per piece
MAX_PIECES = 100000
PIECE_MIN_VOXELS = 1
#: pieces of at least this many voxels (at most PIECES_COUPLED of them, the largest) are solved together
#: (their coupled Galerkin matrix); the rest each on its own
PIECE_COUPLED_VOXELS = 8
PIECES_COUPLED = 300


def piece_labels(mu):
    """``(labels, count)``: the face-connected pieces of stiff voxels (:data:`PIECE_STIFFNESS`) on the
    periodic grid, numbered 1 … count by decreasing size (0: not in a piece); None without stiffness."""
    from scipy import ndimage
    from scipy.sparse.csgraph import connected_components

    mu = np.asarray(mu)
    pos = mu[mu > 0]
    if pos.size == 0:
        return None
    lab, n = ndimage.label(mu >= PIECE_STIFFNESS * np.median(pos))
    if n == 0:
        return None
    pairs = []
    for ax in range(3):  # a piece that leaves the cell through a face comes back through the opposite one
        a, b = np.take(lab, -1, axis=ax), np.take(lab, 0, axis=ax)
        both = (a > 0) & (b > 0)
        pairs.append(np.stack([a[both], b[both]]))
    pairs = np.concatenate(pairs, axis=1)
    graph = sp.coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(n + 1, n + 1))
    _, comp = connected_components(graph, directed=False)
    size = np.bincount(comp[lab[lab > 0]], minlength=comp.max() + 1)
    order = np.argsort(-size, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    count = min(int((size >= PIECE_MIN_VOXELS).sum()), MAX_PIECES)
    new = np.where(rank[comp] < count, rank[comp] + 1, 0)
    new[0] = 0
    return new[lab].astype(np.int32), count


@numba.njit(cache=True, inline="always")
def _wrapped(i, ref, n):
    """Offset of index i from ref on a periodic axis of n, in [−n/2, n/2)."""
    return (i - ref + n // 2) % n - n // 2


@numba.njit(cache=True, inline="always")
def _position(p, i, j, k, ref, cen, h, n0, n1, n2):
    """Position of node (i, j, k) relative to the centre of its piece p (length units)."""
    return ((_wrapped(i, ref[p, 0], n0) - cen[p, 0]) * h[0], (_wrapped(j, ref[p, 1], n1) - cen[p, 1]) * h[1],
            (_wrapped(k, ref[p, 2], n2) - cen[p, 2]) * h[2])


@numba.njit(cache=True, inline="always")
def _modes(x0, x1, x2, z):
    """z (6, 3) ← the displacement at x of the 6 rigid modes: translations, rotations e_a × x."""
    z[:, :] = 0.0
    z[0, 0] = z[1, 1] = z[2, 2] = 1.0
    z[3, 1], z[3, 2] = -x2, x1
    z[4, 0], z[4, 2] = x2, -x0
    z[5, 0], z[5, 1] = -x1, x0


@numba.njit(parallel=True, cache=True)
def _pieces_restrict(r, node, ref, cen, h, out):
    """out (chunks, P, 6) ← the force and moment of ``r`` on every piece (partial sums per chunk of planes)."""
    n0, n1, n2 = node.shape
    nch = out.shape[0]
    out[...] = 0.0
    for c in numba.prange(nch):
        for i in range(c * n0 // nch, (c + 1) * n0 // nch):
            for j in range(n1):
                for k in range(n2):
                    p = node[i, j, k] - 1
                    if p < 0:
                        continue
                    x0, x1, x2 = _position(p, i, j, k, ref, cen, h, n0, n1, n2)
                    f0, f1, f2 = np.float64(r[0, i, j, k]), np.float64(r[1, i, j, k]), np.float64(r[2, i, j, k])
                    out[c, p, 0] += f0
                    out[c, p, 1] += f1
                    out[c, p, 2] += f2
                    out[c, p, 3] += x1 * f2 - x2 * f1
                    out[c, p, 4] += x2 * f0 - x0 * f2
                    out[c, p, 5] += x0 * f1 - x1 * f0


@numba.njit(parallel=True, cache=True)
def _pieces_prolong_add(x, node, ref, cen, h, y):
    """x += Σ_pieces their rigid motion y (P, 6): translation y[:3], rotation y[3:] × position."""
    n0, n1, n2 = node.shape
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                p = node[i, j, k] - 1
                if p < 0:
                    continue
                x0, x1, x2 = _position(p, i, j, k, ref, cen, h, n0, n1, n2)
                x[0, i, j, k] += y[p, 0] + y[p, 4] * x2 - y[p, 5] * x1
                x[1, i, j, k] += y[p, 1] + y[p, 5] * x0 - y[p, 3] * x2
                x[2, i, j, k] += y[p, 2] + y[p, 3] * x1 - y[p, 4] * x0


@numba.njit(cache=True)
def _pieces_galerkin(coef, pvec, has_p, node, ref, cen, h, g, hg, ac, blocks):
    """Zᵀ K Z for the rigid modes Z of the pieces, summed over the elements whose corners are not all one
    piece's (inside a piece a rigid motion strains nothing): ``ac`` (6B, 6B) += the couplings among the first
    B pieces, ``blocks`` (P − B, 6, 6) += the diagonal blocks of the others (couplings of those are left
    out). Each mode's element features — trace, symmetric gradient, hourglass modes, J2 term — give the
    energy products L tr tr' + M/2 (d + dᵀ):(d' + dᵀ') + k_hg H·H' − (p:ε)(p:ε')."""
    nb = ac.shape[0] // 6
    n0, n1, n2 = node.shape
    lab = np.empty(8, np.int64)
    pl = np.empty(8, np.int64)
    zc = np.empty((6, 3))
    ue = np.empty((48, 24))
    feat = np.empty((48, 23))
    col = np.empty(48, np.int64)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                lam, mu, khg = coef[0, i, j, k], coef[1, i, j, k], coef[2, i, j, k]
                plastic = False
                if has_p:
                    for c in range(6):
                        if pvec[c, i, j, k] != 0:
                            plastic = True
                if lam == 0 and mu == 0 and khg == 0 and not plastic:
                    continue
                same = True
                anyp = False
                for ci in range(8):
                    lab[ci] = node[(i + (ci >> 2)) % n0, (j + ((ci >> 1) & 1)) % n1, (k + (ci & 1)) % n2] - 1
                    if lab[ci] >= 0:
                        anyp = True
                    if lab[ci] != lab[0]:
                        same = False
                if same or not anyp:
                    continue
                npl = 0
                for ci in range(8):
                    p = lab[ci]
                    if p < 0:
                        continue
                    seen = False
                    for t in range(npl):
                        if pl[t] == p:
                            seen = True
                    if not seen:
                        pl[npl] = p
                        npl += 1
                ncol = 6 * npl
                ue[:ncol, :] = 0.0
                for t in range(npl):
                    p = pl[t]
                    for ci in range(8):
                        if lab[ci] != p:
                            continue
                        x0, x1, x2 = _position(p, (i + (ci >> 2)) % n0, (j + ((ci >> 1) & 1)) % n1,
                                               (k + (ci & 1)) % n2, ref, cen, h, n0, n1, n2)
                        _modes(x0, x1, x2, zc)
                        for m in range(6):
                            for comp in range(3):
                                ue[6 * t + m, 8 * comp + ci] = zc[m, comp]
                    for m in range(6):
                        col[6 * t + m] = 6 * p + m
                for a in range(ncol):
                    d = np.zeros(9)
                    for r in range(9):
                        v = 0.0
                        for s in range(24):
                            v += g[r, s] * ue[a, s]
                        d[r] = v
                    feat[a, 0] = d[0] + d[4] + d[8]
                    for m in range(3):
                        for n in range(3):
                            feat[a, 1 + 3 * m + n] = d[3 * m + n] + d[3 * n + m]
                    for r in range(12):
                        v = 0.0
                        for s in range(24):
                            v += hg[r, s] * ue[a, s]
                        feat[a, 10 + r] = v
                    pe = 0.0
                    if plastic:
                        pe = (pvec[0, i, j, k] * d[0] + pvec[1, i, j, k] * d[4] + pvec[2, i, j, k] * d[8]
                              + pvec[3, i, j, k] * (d[5] + d[7]) + pvec[4, i, j, k] * (d[2] + d[6])
                              + pvec[5, i, j, k] * (d[1] + d[3]))
                    feat[a, 22] = pe
                for a in range(ncol):
                    for b in range(a + 1):
                        e = lam * feat[a, 0] * feat[b, 0] - feat[a, 22] * feat[b, 22]
                        s2 = 0.0
                        for r in range(1, 10):
                            s2 += feat[a, r] * feat[b, r]
                        hh = 0.0
                        for r in range(10, 22):
                            hh += feat[a, r] * feat[b, r]
                        e += 0.5 * mu * s2 + khg * hh
                        pa, pb = col[a] // 6, col[b] // 6
                        if pa < nb and pb < nb:
                            ac[col[a], col[b]] += e
                            if col[a] != col[b]:
                                ac[col[b], col[a]] += e
                        elif pa == pb:
                            blocks[pa - nb, col[a] % 6, col[b] % 6] += e
                            if col[a] != col[b]:
                                blocks[pa - nb, col[b] % 6, col[a] % 6] += e


class RigidPieces:
    """A coarse space of the rigid-body motions of every stiff piece, applied after the multigrid cycle.

    Why: once the contacts of a calendered electrode open, slide and crush, its particles are stiff
    pieces joined by interphase voxels 10–100× softer than they are and by a carbon-binder domain 10³×
    softer — a high-contrast problem whose slow modes are the particles' near-rigid motions. The geometric
    levels cannot represent a particle moving as a body inside a coarse element it shares with its
    neighbours (the masked interpolation separates them only across a zero-stiffness gap), so CG spends its
    iterations on them. The coarse space spanned by the translations and rotations of each piece (face-
    connected stiff voxels, :func:`piece_labels`; a piece that spans half the cell gets translations
    only) captures them, with its Galerkin matrix ``Zᵀ A Z`` (:func:`_pieces_galerkin`, summed over the
    soft elements between pieces only). The pieces of ≥ :data:`PIECE_COUPLED_VOXELS` voxels (≤
    :data:`PIECES_COUPLED`, ~20 at 128³) are solved together (pivoted Cholesky: the modes it leaves out
    are null, the cell's translation or a piece held by nothing); the many small ones (~600 single stiff
    voxels at 128³) each by its own 6 × 6 block — all together as one dense matrix cost 5 s a build (3800
    modes) for 2–3 % fewer iterations. The correction is multiplicative: ``x += Z Â⁻¹ Zᵀ (b − A x)``
    after the cycle, one fine residual (≈ 5–10 % of a cycle at 128³). This is the two-level idea of
    aggregation with rigid-body near-null spaces (Vaněk, Mandel & Brezina 1996) with the particles as
    the aggregates, and of deflation for composite materials with stiff inclusions (Vuik, Segal &
    Meijerink 1999: one deflation vector per inclusion for the Poisson problem).
    """

    def __init__(self, coef, pvec, q):
        self.count = 0
        found = piece_labels(coef[1])
        if found is None:
            return
        node_of = np.zeros(coef.shape[1:], np.int32)
        lab, count = found
        for a in (0, 1):  # a node is in the piece of any of its 8 voxels (voxel i − a … owns node i)
            for b in (0, 1):
                for c in (0, 1):
                    np.maximum(node_of, np.roll(lab, (a, b, c), axis=(0, 1, 2)), out=node_of)
        idx = np.nonzero(node_of)
        pid = node_of[idx].astype(np.int64) - 1
        n = np.array(node_of.shape)[:, None]
        first = np.zeros(count, np.int64)
        first[pid[::-1]] = np.arange(pid.size)[::-1]  # each piece's first node in flat order
        ref = np.stack(idx)[:, first]
        off = (np.stack(idx) - ref[:, pid] + n // 2) % n - n // 2
        nodes = np.bincount(pid, minlength=count)
        cen = np.stack([np.bincount(pid, off[a], count) for a in range(3)]) / np.maximum(nodes, 1)
        order, starts = np.argsort(pid, kind="stable"), np.r_[0, np.cumsum(nodes)[:-1]]
        span = np.stack([np.maximum.reduceat(o[order], starts) - np.minimum.reduceat(o[order], starts) for o in off])
        compact = (span < n // 2 - 1).all(axis=0)  # the unwrapped positions are a piece's own
        self.rotates = compact  # pieces with rotation modes (the others span the cell: translations only)
        self.node = node_of
        self.ref = np.ascontiguousarray(ref.T)
        self.cen = np.ascontiguousarray(cen.T)
        self.h = 0.25 / np.asarray(q, float)
        g, hg = _element_maps(np.asarray(q, float))
        voxels = np.bincount(lab.reshape(-1), minlength=count + 1)[1:count + 1]
        nb = int(min((voxels >= PIECE_COUPLED_VOXELS).sum(), PIECES_COUPLED))  # numbered by decreasing size
        ac = np.zeros((6 * nb, 6 * nb))
        blocks = np.zeros((count - nb, 6, 6))
        _pieces_galerkin(coef, pvec if pvec is not None else coef[:1], pvec is not None, self.node, self.ref,
                         self.cen, self.h, g, hg, ac, blocks)
        self.coupled = nb
        # the small pieces (single stiff voxels and a few more, left by the remap or cut off by contacts):
        # each by its own 6 × 6 block, pseudo-inverted (a piece held on one side turns freely)
        w, v = np.linalg.eigh(blocks)
        wmax = w.max(axis=1, keepdims=True)
        winv = np.where(w > COARSE_NULL * wmax, 1.0 / np.where(w > 0, w, 1.0), 0.0)
        rot = compact[nb:, None, None] | (np.arange(6) < 3)[None, :, None] & (np.arange(6) < 3)[None, None, :]
        self.block_inverse = np.einsum("pij,pj,pkj->pik", v, winv, v) * rot
        keep = np.ones((nb, 6), bool)
        keep[~compact[:nb], 3:] = False
        keep = keep.reshape(-1) & (np.diag(ac) > 0)
        self.keep = np.flatnonzero(keep)
        a = ac[np.ix_(self.keep, self.keep)]
        self.scale = 1.0 / np.sqrt(np.diag(a))
        a *= self.scale[:, None] * self.scale[None, :]
        # pivoted Cholesky of the diagonally scaled matrix, stopped at pivots below COARSE_NULL: the modes
        # left out are (numerically) null — the periodic cell's rigid translation, a piece held by nothing —
        # and the rest span a coarse space of their own, solved exactly. (A shifted Cholesky put a huge
        # translation into the correction, whose round-off in the strain broke the solve's tolerance; an
        # eigendecomposition, as on the coarsest level, took 2 s for ~1000 modes)
        with threadpool_limits(limits=1, user_api="blas"):
            c, piv, rank, _ = scipy.linalg.lapack.dpstrf(a, tol=COARSE_NULL, lower=1)
        self.modes = self.keep[piv[:rank] - 1]
        self.scale = self.scale[piv[:rank] - 1]
        self.factor = np.tril(c[:rank, :rank])
        self.count = count
        self._part = np.zeros((max(1, min(16, node_of.shape[0])), count, 6))
        self._y = np.zeros((count, 6))

    def correct(self, res, x) -> None:
        """x += Z (ZᵀAZ)⁺ Zᵀ res."""
        if self.count == 0:
            return
        _pieces_restrict(res, self.node, self.ref, self.cen, self.h, self._part)
        f = self._part.sum(axis=0).reshape(-1)
        y = self._y.reshape(-1)
        y[:] = 0.0
        t = scipy.linalg.solve_triangular(self.factor, self.scale * f[self.modes], lower=True, check_finite=False)
        y[self.modes] = self.scale * scipy.linalg.solve_triangular(self.factor, t, lower=True, trans="T",
                                                                   check_finite=False)
        fs = f.reshape(-1, 6)[self.coupled:]
        self._y[self.coupled:] = np.einsum("pij,pj->pi", self.block_inverse, fs)
        _pieces_prolong_add(x, self.node, self.ref, self.cen, self.h, self._y)

    @property
    def nbytes(self) -> int:
        return 0 if self.count == 0 else self.node.nbytes + self.factor.nbytes + self._part.nbytes


# ====================================================================== the hierarchy
def _solid(coef, pvec):
    """Voxels with stiffness (the pattern the finest interpolation weights are built on)."""
    solid = (coef != 0).any(axis=0)
    if pvec is not None:
        solid |= (pvec != 0).any(axis=0)
    return solid


def _fingerprint(coef, pvec) -> bytes:
    """A digest of the fine coefficients (whether a refresh brings back the ones of the last build)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (coef, pvec):
        h.update(b"-" if a is None else np.ascontiguousarray(a).view(np.uint8).reshape(-1).data)
        h.update(str(None if a is None else (a.dtype.str, a.shape)).encode())
    return h.digest()


def _threads(nodes: int, full: int) -> int:
    return full if nodes >= PARALLEL_MIN_NODES else 1


#: symmetric tensor components in the solver's order (00, 11, 22, 12, 02, 01), by axis pair
_TENSOR = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def axis_order(shape) -> tuple:
    """The order in which the hierarchy holds a grid's axes: by length, the longest last (ties as given), where
    the last axis is shorter than :data:`REORDER_BELOW` × the longest; else as given.

    Why: every kernel vectorises along the last axis (node rows) and pays a fixed cost per row. The
    demo cathode's calendering window is 101 × 39 × 35 nodes (thickness first): its fine sweep took 2.48
    ms and a level-1 stencil sweep 1.82 ms; on the same grid held as 35 × 39 × 101, 1.48 and 1.00 ms
    (stop 38, ``/tmp/lead38/shape.py``). Whole cycles on random porous material, the two orders alternating
    in one process (``/tmp/lead38/thr2.py``, float32, 2 threads, beside a niced job): 101 × 39 × 35 0.49×,
    70 × 40 × 40 0.59×, 64 × 48 × 40 0.80×, 80 × 64 × 64 0.80×, 64 × 64 × 60 0.95× the time of the given
    order, the vectors' two crossings per cycle included (0.7 ms at 101 × 39 × 35). A grid whose last
    axis is the longest or nearly (:data:`REORDER_BELOW`; cubes, the ten-step's 130 × 128² start and its thinning
    128² windows) is held as given."""
    shape = [int(n) for n in shape]
    if shape[2] >= REORDER_BELOW * max(shape):
        return (0, 1, 2)
    return tuple(sorted(range(3), key=lambda a: shape[a]))


def _reordered(a, order, components, dtype, out=None):
    """``out[i] = a[components[i]]`` with the grid axes of ``a`` (c, n0, n1, n2) taken in ``order``, in
    ``dtype`` (into ``out`` when it fits: the hierarchy's copy of the fine coefficients, its cycle's
    vectors)."""
    shape = (len(components), *(a.shape[1 + o] for o in order))
    if out is None or out.shape != shape or out.dtype != dtype:
        out = np.empty(shape, dtype)
    for i, c in enumerate(components):
        out[i] = a[c].transpose(order)
    return out


def _restored(x, order, out) -> None:
    """The inverse of :func:`_reordered` for a vector field (components = ``order``): ``out`` in the
    caller's axis order from the hierarchy's ``x``."""
    for i, c in enumerate(order):
        out[c].transpose(order)[...] = x[i]


class _Level:
    """One grid of the hierarchy: the fused fine operator (``coef``) or a Galerkin node stencil
    (``st``), node-block inverses, spectral bound and work vectors."""

    def __init__(self, shape, dtype, *, coef=None, pvec=None, q=None, st=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.coef, self.pvec, self.q, self.st = coef, pvec, q, st
        self.nodes = math.prod(self.shape)
        self.axes = None  # transfer to the next level
        self.active = None if coef is None else active_rows(coef, pvec)
        self.dinv = self.mask = None
        self.tr = None  # the interpolation from the next level (:class:`Transfer`)
        self.lmax = 1.0
        self.b = self.x = self.r = self.d = None
        self.kvec = []  # K-cycle work vectors (coarse levels)
        self.copied = False

    def threads(self, full: int) -> int:
        return _threads(self.nodes, full)

    def apply(self, u, out):
        if self.st is None:
            apply_tangent(u, self.coef, self.pvec, self.active, self.q, out)
        else:
            stencil_apply(self.st, u, out)
        return out

    def residual(self, u, b, out, step=None, lead=None):
        """out = b − A u in one pass (``b`` may be ``out``); then, with ``step = (d, x, a, c)``, the
        smoother's Chebyshev step ``d = a d + c D⁻¹ out, x += d`` (fused into the same sweep on the finest
        level, where ``u`` may be ``d`` or ``x``). ``lead = c``: first the step from x = 0, ``d = x = c D⁻¹ b``
        (``u`` is ``d``; on the finest level inside the same sweep, :func:`._operator.tangent_residual`)."""
        if self.st is None:
            tangent_residual(u, b, self.coef, self.pvec, self.active, self.q, out,
                             None if step is None else (self.dinv, *step), lead)
        else:
            if lead is not None:
                _cheb_step(self.dinv, b, step[0], step[1], lead * 0, lead, True)
            stencil_residual(self.st, u, b, out)
            if step is not None:
                _cheb_step(self.dinv, out, *step, False)
        return out

    def assemble(self) -> sp.csr_matrix:
        return assemble(self.coef, self.pvec, self.q) if self.st is None else assemble_stencil(self.st)

    @property
    def nbytes(self) -> int:
        arrays = [self.st, self.dinv, self.mask, None if self.tr is None else self.tr.bits, self.b, self.x, self.r,
                  self.d, *self.kvec]
        if self.copied:  # the fine coefficients in the hierarchy's precision
            arrays += [self.coef, self.pvec]
        return sum(a.nbytes for a in arrays if a is not None)


class ElasticMultigrid:
    """V-cycle preconditioner for ``apply_tangent(·, coef, pvec, …)`` on a periodic grid.

    Parameters
    ----------
    coef : (3, n0, n1, n2) array
        ``L, M, k_hg`` per voxel (from :func:`._operator.tangent_coefficients`); kept by reference
        when it has the hierarchy's dtype, else copied.
    pvec : (6, n0, n1, n2) array or None
        Scaled J2 flow directions of yielded voxels.
    q : 3 floats
        Gradient weights ``1/(4 h_j)`` of the finest grid.
    degree, coarse_degree : int
        Chebyshev smoothing steps before and after the coarse correction on the finest level
        (default :data:`DEGREE`, read when the hierarchy is made) and on the coarse levels.
    coarse_nodes : int
        Stop coarsening once a level has at most this many nodes (solved directly).
    dtype : numpy dtype, optional
        Precision of the hierarchy and the cycle (default: ``coef``'s). :meth:`apply` accepts
        vectors of another precision (a float64 CG with a float32 cycle: half the memory traffic).
    kcycle : bool
        Coarse levels solved by two flexible-CG steps (K-cycle; a nonlinear preconditioner, for a
        flexible outer CG) instead of one V-cycle: 142 → 81 CG iterations at 64³.
    masked : bool
        Connectivity-aware first prolongation (:func:`transfer_weights`): a fine node is not
        interpolated from coarse nodes it shares no solid element with. False: trilinear.
    pieces : bool, optional
        After each cycle, the coarse correction of the stiff pieces' rigid-body modes
        (:class:`RigidPieces`; default :data:`PIECES`, read when the hierarchy is made). Built with
        the levels, lagged with them by :meth:`refresh_fine`.
    order : 3 ints, optional
        The order in which the levels hold the grid's axes (default :func:`axis_order`: longest last
        where that pays). The interface — ``coef``, ``pvec``, ``q``, :meth:`apply`'s vectors,
        :attr:`shape`, :attr:`fine_mask` — stays in the caller's order; :attr:`levels` are in this one.

    Call :meth:`update` with new coefficients (same grid) after the stiffness changes: it rebuilds
    the Galerkin stencils, node blocks and the coarsest pseudo-inverse (reusing every buffer).
    """

    def __init__(self, coef, pvec, q, *, degree: int | None = None, coarse_nodes: int = 256, dtype=None,
                 kcycle: bool = True, coarse_degree: int = COARSE_DEGREE, masked: bool = True,
                 pieces: bool | None = None, order=None):
        self.dtype = np.dtype(coef.dtype if dtype is None else dtype)
        self.shape = tuple(coef.shape[1:])  # the element grid, in the caller's axis order
        self.order = axis_order(self.shape) if order is None else tuple(int(a) for a in order)
        self._tensor = tuple(_TENSOR.index(tuple(sorted((self.order[a], self.order[b])))) for a, b in _TENSOR)
        self.q = np.asarray(q, float)
        self._q = self.q[list(self.order)]  # the levels' gradient weights
        self.degree = int(DEGREE if degree is None else degree)  # read here, not at import
        self.coarse_degree = int(coarse_degree)
        self.kcycle = bool(kcycle)
        self.threads = numba.get_num_threads()
        self._shapes = [tuple(self.shape[a] for a in self.order)]
        while math.prod(self._shapes[-1]) > coarse_nodes:
            nshape = tuple(n if n <= 2 else -(-n // 2) for n in self._shapes[-1])
            if nshape == self._shapes[-1]:
                break
            self._shapes.append(nshape)
        self.masked = bool(masked)
        self.use_pieces = bool(PIECES if pieces is None else pieces)  # read here, not at import
        self.pieces = None
        self._basis = _first_coarse_basis(self._q) if len(self._shapes) > 1 else None
        self._gpos = _first_coarse_gradients(self._q)
        self._vec = _corner_vectors(self._q)
        self._io = None  # (b, x) of the finest level for apply()'s vectors of another precision or axis order
        self._nt = None  # the thread count the cycle set last (see _threads_for)
        self.levels: list[_Level] = []
        self.update(coef, pvec)

    @property
    def fine_mask(self) -> np.ndarray:
        """The finest level's nodes with stiffness (a view in the caller's axis order)."""
        mask = self.levels[0].mask if len(self.levels) > 1 else self._coarse_mask
        return mask.transpose(np.argsort(self.order))

    def _fine(self, coef, pvec, into=None):
        """The fine coefficients in the levels' axis order and precision, into ``into``'s buffers (a level)
        where they fit."""
        coef = _reordered(coef, self.order, range(3), self.dtype, None if into is None else into.coef)
        if pvec is not None:
            pvec = _reordered(pvec, self.order, self._tensor, self.dtype, None if into is None else into.pvec)
        return coef, pvec

    # ------------------------------------------------------------------ set-up
    def update(self, coef, pvec=None) -> None:
        """(Re)build every level for new fine coefficients (same grid)."""
        self.lagged = False  # coarse levels built from the finest level's current coefficients
        self._built = _fingerprint(coef, pvec)  # … and which ones (refresh_fine recognises them again)
        # CG's convergence rate right after this build and on the latest lagged solve (set by the solver)
        self.rate = self.last_rate = None
        dt = self.dtype
        copied = coef.dtype != dt or self.order != (0, 1, 2)
        if copied:
            coef, pvec = self._fine(coef, pvec, self.levels[0] if self.levels and self.levels[0].copied else None)
        old = self.levels
        nlev = len(self._shapes)
        self.levels = []
        ke_fine = None  # packed Galerkin element matrices of the previous level (build only)
        try:
            for li, shape in enumerate(self._shapes):
                prev = old[li] if li < len(old) else None
                if li == 0:
                    lev = _Level(shape, dt, coef=coef, pvec=pvec, q=self._q.astype(dt))
                    lev.copied = copied
                else:
                    fine = self.levels[-1]
                    st = prev.st if prev is not None else np.empty((shape[0], shape[1], NST, shape[2]), dt)
                    if li == 1:
                        # P₀ᵀ A P₀ from the fine coefficients, slab by slab of element planes
                        st[...] = 0
                        for a, b, ke in self._first_elements(coef, pvec):
                            numba.set_num_threads(_threads(math.prod(shape), self.threads))
                            stencil_add_elements(ke, a, st, _PACK)
                        ke = None
                    else:
                        ke = np.empty((*shape, NPACK), dt)
                        a0, a1, a2 = fine.axes
                        if li == 2:
                            # the first level's element matrices again, slab by slab (their Galerkin
                            # products needed that level's weights, i.e. its finished stencil)
                            n = self._shapes[1][0]
                            for a, b, kf in self._first_elements(coef, pvec):
                                numba.set_num_threads(fine.threads(self.threads))
                                _galerkin_dense(kf, a, ke, a // 2 if n > 2 else a, -(-b // 2) if n > 2 else b,
                                                a0.ch, a0.pos, a0.fl, a1.ch, a1.pos, a1.fl, a2.ch, a2.pos, a2.fl,
                                                *fine.tr.args(), _SLOT_CORNER, _PACK)
                        else:
                            numba.set_num_threads(fine.threads(self.threads))
                            _galerkin_dense(ke_fine, 0, ke, 0, shape[0], a0.ch, a0.pos, a0.fl, a1.ch, a1.pos,
                                            a1.fl, a2.ch, a2.pos, a2.fl, *fine.tr.args(), _SLOT_CORNER, _PACK)
                        numba.set_num_threads(_threads(math.prod(shape), self.threads))
                        stencil_from_elements(ke, st, _PACK)
                    ke_fine = ke
                    lev = _Level(shape, dt, st=st)
                    lev.b = prev.b if prev is not None else np.zeros((3, *shape), dt)
                    lev.x = prev.x if prev is not None else np.zeros((3, *shape), dt)
                numba.set_num_threads(lev.threads(self.threads))
                self.levels.append(lev)
                if li == nlev - 1:
                    self._factor(lev)
                    break
                lev.axes = prev.axes if prev is not None else [_Axis(n, dt) for n in shape]
                lev.dinv = prev.dinv if prev is not None else np.empty((6, *shape), dt)
                if li == 0:
                    node_block_inverse(coef, pvec, lev.q, lev.dinv)
                    solid = _solid(coef, pvec)
                    self._solid = solid
                    lev.tr = transfer_weights(lev.axes, dt, solid=solid if self.masked else None)
                else:
                    _stencil_node_blocks(lev.st, lev.dinv)
                    _drop_null_blocks(lev.st, lev.dinv)
                    lev.tr = transfer_weights(lev.axes, dt, stencil=lev.st if self.masked else None)
                lev.mask = np.ascontiguousarray(lev.dinv[0] != 0)
                for name in ("r", "d"):
                    setattr(lev, name, getattr(prev, name) if prev is not None else np.zeros((3, *shape), dt))
                if li > 0 and self.kcycle:
                    lev.kvec = prev.kvec if prev is not None else [np.zeros((3, *shape), dt) for _ in range(5)]
                lev.lmax = LMAX
            if self.use_pieces and nlev > 1:
                numba.set_num_threads(self.levels[0].threads(self.threads))
                self.pieces = RigidPieces(coef, pvec, self._q)
        finally:
            numba.set_num_threads(self.threads)

    def _first_elements(self, coef, pvec):
        """The first coarse level's packed Galerkin element matrices P₀ᵀ K P₀ (the constant position
        products where the interpolation is trilinear, explicit P8ᵀ K P8 where it is masked), slab by
        slab of element planes: yields ``(first plane, end plane, matrices)`` with the matrices in one
        reused buffer of ≤ 1/8 of the level (the whole level's would be 150 B per fine voxel, the
        peak of a build)."""
        fine = self.levels[0]
        shape = self._shapes[1]
        n = shape[0]
        step = n if n <= 2 else 2 * -(-n // 16)  # even: a slab holds whole elements of the level below
        buf = np.empty((min(step, n), *shape[1:], NPACK), self.dtype)
        a0, a1, a2 = fine.axes
        for a in range(0, n, step):
            b = min(a + step, n)
            ke = buf[:b - a]
            numba.set_num_threads(fine.threads(self.threads))
            _galerkin_first(coef, pvec if pvec is not None else coef[:1], pvec is not None, *fine.tr.args(),
                            ke, a, a0.ch, a0.pos, a0.fl, a1.ch, a1.pos, a1.fl, a2.ch, a2.pos, a2.fl,
                            self._basis, self._vec, self._gpos, _SLOT_CORNER)
            yield a, b, ke

    def refresh_fine(self, coef, pvec=None) -> None:
        """Bring only the finest level to new coefficients (same grid) and keep the coarse levels.

        The fine operator, its node blocks (smoother) and the mask of nodes with stiffness follow
        ``coef``; the interpolation weights and the Galerkin coarse operators stay those of the
        coefficients of the last :meth:`update` (a *lagged* coarse correction: still a symmetric
        positive preconditioner, only a less accurate one). O(voxels), a fraction of a rebuild: for
        the tangent changes between Newton steps of a yielding solve. Whether the lagged coarse
        levels are still good enough is the caller's to judge (:attr:`rate`: the solver rebuilds when
        CG converges markedly slower than right after a build).

        When the *pattern* changed — a voxel gained or lost all stiffness (a contact opening or
        closing, a shell breaking) — every level is rebuilt instead (:meth:`update`, reusing the
        buffers): lagged coarse levels then glue or split pieces wrongly, and on the 64³ ten-step
        calendering CG with them reached in 38 iterations what a rebuilt hierarchy reached in 12,
        while a rebuild costs about 4 iterations.
        """
        if len(self._shapes) == 1 or not np.array_equal(_solid(coef, pvec).transpose(self.order), self._solid):
            self.update(coef, pvec)
            return
        built = _fingerprint(coef, pvec) == self._built  # before a conversion, as update() takes it
        lev = self.levels[0]
        dt = self.dtype
        if lev.copied or coef.dtype != dt:  # (the first build kept a caller's array of its precision)
            coef, pvec = self._fine(coef, pvec, lev if lev.copied else None)
            lev.copied = True
        numba.set_num_threads(lev.threads(self.threads))
        try:
            lev.coef, lev.pvec = coef, pvec
            lev.active = active_rows(coef, pvec)
            node_block_inverse(coef, pvec, lev.q, lev.dinv)
            lev.mask = np.ascontiguousarray(lev.dinv[0] != 0)
        finally:
            numba.set_num_threads(self.threads)
        # the coefficients the coarse levels were built from again (a solve that continues the last one
        # with the same stiffness: the contact cap's relaxation): nothing lags. Marked lagged, its CG was
        # cut off at the lagged iteration limit and restarted on a rebuilt — identical — hierarchy, in
        # every increment of the demo cathode: its 10 relaxations took 1151 CG, 886 without the restarts
        self.lagged = not built

    def _factor(self, lev: _Level) -> None:
        """Pseudo-inverse of the coarsest operator on its nodes with stiffness (eigendecomposition:
        the restricted residual need not be consistent with the coarse null space — rigid motions
        of the cell and of pieces that float at this level — which a factorisation would amplify)."""
        a = lev.assemble()
        diag = a.diagonal()
        act = np.flatnonzero(diag > 1e-12 * max(diag.max(), 1e-300))
        self._coarse_active = act
        mask = np.zeros(3 * lev.nodes, bool)
        mask[act] = True
        self._coarse_mask = mask.reshape(3, *lev.shape)[0].copy()
        self._coarse_basis = None
        if act.size == 0:
            return
        s = 1.0 / np.sqrt(diag[act])  # symmetric diagonal scaling: the threshold sees relative stiffness
        dense = a[act][:, act].toarray() * s[:, None] * s[None, :]
        # one BLAS thread: on a shared machine a threaded eigh of a few hundred unknowns took 0.4–1.2 s
        # instead of 0.01 s (it ran once per Newton step of a calendering increment)
        with threadpool_limits(limits=1, user_api="blas"):
            w, v = np.linalg.eigh(dense)
        keep = w > max(COARSE_NULL, COARSE_NULL_ROUNDING * np.finfo(self.dtype).eps) * w.max()
        self._coarse_basis = np.ascontiguousarray(v[:, keep] * s[:, None])  # rows for _coarse_solve
        self._coarse_inv = 1.0 / w[keep]

    def _solve_coarsest(self, b, x) -> None:
        x[...] = 0
        if self._coarse_basis is None:
            return
        _coarse_solve(self._coarse_basis, self._coarse_inv, self._coarse_active, b.reshape(-1), x.reshape(-1))

    # ------------------------------------------------------------------ the cycle
    def apply(self, r, z) -> None:
        """z ≈ A⁻¹ r by one V-cycle (z overwritten; zero at nodes without stiffness). ``r`` may have
        another precision (the finest level reads it only through casting copies); a ``z`` of
        another precision, or a hierarchy in another axis order (:attr:`order`), goes through buffers."""
        self._nt = None  # the thread count the cycle set last (None: unknown, set on first use)
        try:
            if z.dtype == self.dtype and self.order == (0, 1, 2):
                self._cycle(0, r, z)
                self._correct_pieces(r, z)
                return
            if self._io is None or self._io[0].dtype != r.dtype:
                self._io = (np.empty((3, *self._shapes[0]), r.dtype), np.empty((3, *self._shapes[0]), self.dtype))
            b, x = self._io
            _reordered(r, self.order, self.order, r.dtype, b)
            self._cycle(0, b, x)
            self._correct_pieces(b, x)
            _restored(x, self.order, z)
        finally:
            numba.set_num_threads(self.threads)
            self._nt = self.threads

    def _correct_pieces(self, b, x) -> None:
        """The rigid pieces' coarse correction of the cycle's x (:class:`RigidPieces`)."""
        if self.pieces is None or self.pieces.count == 0:
            return
        lev = self.levels[0]
        self._threads_for(lev)
        lev.residual(x, b, lev.r)
        self.pieces.correct(lev.r, x)

    def _threads_for(self, lev: _Level) -> None:
        """The level's thread count for the kernels that follow, set only when it changes: a cycle
        passes between levels ~45 times at 64³, and each ``numba.set_num_threads`` costs 10–40 µs."""
        n = lev.threads(self.threads)
        if n != self._nt:
            numba.set_num_threads(n)
            self._nt = n

    def smooth(self, li: int, b, x, r, *, residual: bool = True, first: bool = False) -> None:
        """``degree`` fourth-kind Chebyshev–Jacobi steps (:func:`_fourth_kind_steps`) on level ``li`` for
        A x = b from the x given (r need not hold anything); with ``residual``, r = b − A x on exit.
        ``first`` (a pre-smoothing): x = 0 on entry, so neither x nor r is read (they are set here, from
        b). Without ``residual`` the last step's operator application is skipped (r is then stale): the
        finest level's post-smoothing, whose residual nobody reads: one fine application fewer. Each
        residual update r −= A d is one fused pass (:meth:`_Level.residual`: no separate product and
        subtraction) that also takes the next step."""
        lev = self.levels[li]
        dt = self.dtype.type
        d = lev.d
        (_, c0), *rest = _fourth_kind_steps(self.degree if li == 0 else self.coarse_degree, lev.lmax)
        lead = None
        if first and rest:  # x = 0: the residual is b; the first step x = d = c₀ D⁻¹ b is taken inside
            lead, src = dt(c0), b  # the next residual update (r = b − A d), plane by plane
        elif first:
            _cheb_step(lev.dinv, b, d, x, dt(0), dt(c0), True)
            src = b
        else:
            lev.residual(x, b, r, (d, x, dt(0), dt(c0)))
            src = r
        for a, c in rest:
            lev.residual(d, src, r, (d, x, dt(a), dt(c)), lead)
            lead = None
            src = r
        if residual:
            lev.residual(d, src, r)

    def _cycle(self, li: int, b, x) -> None:
        """x ≈ A_li⁻¹ b: the coarsest solve, a K-cycle on the coarse levels, a V-cycle otherwise."""
        if li == len(self.levels) - 1:
            self._solve_coarsest(b, x)
        elif li > 0 and self.kcycle:
            self._kcycle(li, b, x)
        else:
            self._vcycle(li, b, x)

    def _vcycle(self, li: int, b, x, *, residual: bool = False) -> None:
        """x ≈ A_li⁻¹ b by one V-cycle from level li; with ``residual`` the level's ``r`` holds
        b − A x on exit (the K-cycle reads A x = b − r from it instead of applying A again)."""
        lev = self.levels[li]
        self._threads_for(lev)
        r = lev.r
        self.smooth(li, b, x, r, first=True)
        coarse = self.levels[li + 1]
        a0, a1, a2 = lev.axes
        _restrict(r, coarse.b, a0.fi, a0.fs, a1.cp, a2.cp, *lev.tr.args(), lev.mask)
        self._cycle(li + 1, coarse.b, coarse.x)
        self._threads_for(lev)
        _prolong_add(x, coarse.x, a0.cp, a1.cp, a2.cp, *lev.tr.args(), lev.mask)
        self.smooth(li, b, x, r, residual=residual)  # from r = b − A x

    def _kcycle(self, li: int, b, x) -> None:
        """Two steps of flexible CG on level li, each preconditioned by a cycle from li (Notay &
        Vassilevski 2008): the coarse problems are solved well enough that the iteration count stops
        growing with the number of levels, at ~2× the (small) coarse-level work. The second step is
        skipped when the first already reduced the residual 4×. Nonlinear in b: the outer CG is flexible."""
        lev = self.levels[li]
        z1, w1, r2, z2, w2 = lev.kvec
        self._vcycle(li, b, z1, residual=True)
        self._threads_for(lev)
        _residual_image(b, lev.r, w1)  # A z1 = b − r: the smoother's residual, no extra application
        rho1 = _dot(z1, w1)
        if not rho1 > 0:
            x[...] = z1
            return
        a1 = _dot(z1, b) / rho1
        r2[...] = b
        _axpy(r2, w1, -a1)
        if _dot(r2, r2) <= KCYCLE_REDUCTION ** 2 * _dot(b, b):
            x[...] = z1
            x *= a1
            return
        self._vcycle(li, r2, z2, residual=True)
        self._threads_for(lev)
        _residual_image(r2, lev.r, w2)
        g = _dot(z2, w1) / rho1
        _axpy(z2, z1, -g)  # d2 = z2 − g z1, A d2 = w2 − g w1
        _axpy(w2, w1, -g)
        rho2 = _dot(z2, w2)
        a2 = _dot(z2, r2) / rho2 if rho2 > 0 else 0.0
        x[...] = z1
        x *= a1
        _axpy(x, z2, a2)

    @property
    def nbytes(self) -> int:
        """Memory of the hierarchy (the finest coefficients belong to the caller)."""
        total = sum(lev.nbytes for lev in self.levels) + (0 if self.pieces is None else self.pieces.nbytes)
        if getattr(self, "_coarse_basis", None) is not None:
            total += self._coarse_basis.nbytes
        return total
