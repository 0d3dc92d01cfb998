"""Conjugate gradients preconditioned by aggregation multigrid on the voxel grid.

The operator is the 7-point finite-volume stencil of :mod:`._stencil` (transport axis = axis 0,
Dirichlet planes half a voxel outside the first and last layers). The preconditioner is one
symmetric V-cycle:

* coarse grids aggregate 2×2×2 voxels (1 along an axis that is already 1–2 voxels thin);
* coarse face conductances are the fine faces crossing each coarse face, summed (Galerkin
  ``Pᵀ A P`` with piecewise-constant ``P``) and divided by the aggregation factor: this keeps
  every coarse operator a 7-point M-matrix, keeps connectivity (a coarse voxel is active iff one
  of its fine voxels is) and is exact for layered media;
* red-black Gauss–Seidel smoothing (red→black before, black→red after: symmetric) in float32;
* a sparse LU solve on the coarsest grid (≤ ``coarse_cells`` unknowns);
* in a high-contrast medium (face conductances spanning more than :data:`ISLAND_CONTRAST`), a
  coarse correction on its islands (:class:`IslandDeflation`): the 2×2×2 aggregates mix the
  strongly coupled voxels of a carbon-binder film or a lithium particle with the weak ones around
  them, so the cycle cannot move such an island as a whole; one unknown per island can.

The outer iteration is flexible (Polak–Ribière) preconditioned CG in float64, so the float32
V-cycle only has to be a good approximate inverse. It stops on the physical criterion: the
relative spread of the flux through every plane normal to the axis (inlet, all inner planes,
outlet; TauFactor's criterion plus the two boundary planes) — together with the residual norm
relative to the boundary source, because plane fluxes cannot see an imbalance inside a plane.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage as ndi

from ..errors import ConvergenceError
from . import _stencil as st


#: grids smaller than this run their kernels on one thread
PARALLEL_MIN_CELLS = 1 << 15

#: the hierarchy stops coarsening at this many cells and factorises that level: one more 2×2×2
#: aggregation of a high-contrast medium merges conducting paths that a direct solve keeps apart.
#: Demo cathode's conductivity (289 × 117 × 105, CBD 1e4× the NCM): coarsest 7770 instead of 1064
#: cells, 205 → 122 PCG iterations, CPU 28 → 16 s. The factor's fill grows fast with a cube's edge
#: (symmetric-mode LU, all cells active: 16³ 0.4 s, 20³ 1.0 s, 25³ 4.7 s and 7.4M non-zeros)
COARSE_CELLS = 1 << 13

#: SuperLU for the symmetric positive definite coarse operators: a symmetric ordering and no pivoting
#: (the default column ordering of a 20³ grid fills in 2.1× more: factor 2.6 s, each solve 6× slower)
SPD_LU = {"permc_spec": "MMD_AT_PLUS_A", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}


@dataclass
class _Level:
    g0: np.ndarray
    g1: np.ndarray
    g2: np.ndarray
    bclo: np.ndarray
    bchi: np.ndarray
    shifts: tuple[int, int, int] = (0, 0, 0)  # aggregation to the next level: factors 2**shift
    x: np.ndarray | None = None  # correction on this level (float32)
    b: np.ndarray | None = None  # right-hand side on this level (float32; None on the finest)
    work: list = field(default_factory=list)  # K-cycle vectors
    runs: tuple[np.ndarray, np.ndarray] | None = None  # the active voxels (see _stencil.active_runs)

    def __post_init__(self) -> None:
        if self.runs is None:
            self.runs = st.active_runs(self.g0, self.g1, self.g2, self.bclo, self.bchi)

    @property
    def ops(self) -> tuple:
        """The operator's arguments to the stencil kernels."""
        return (self.g0, self.g1, self.g2, self.bclo, self.bchi)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.g0.shape

    @property
    def nbytes(self) -> int:
        arrays = [self.g0, self.g1, self.g2, self.bclo, self.bchi, self.x, self.b, *self.work, *self.runs]
        return sum(a.nbytes for a in arrays if a is not None)


@dataclass
class SolveInfo:
    iterations: int
    flux_error: float
    residual_ratio: float
    layer_fluxes: np.ndarray
    levels: int
    setup_s: float
    solve_s: float
    hierarchy_bytes: int
    history: list[float] = field(default_factory=list)


#: faces weaker than the strongest by more than this factor are weak: the voxels joined by strong
#: faces form the islands of :class:`IslandDeflation` (none when every face is within this range)
ISLAND_CONTRAST = 100.0


class IslandDeflation:
    """A coarse correction on the islands of strongly coupled voxels (adapted deflation, A-DEF2 of
    Tang, Nabben, Vuik & Erlangga 2009): after a cycle's ``z ≈ A⁻¹ r``,
    ``z += W (Wᵀ A W)⁻¹ Wᵀ (r − A z)`` with ``W`` the islands' indicator vectors.

    An island is a connected set of voxels joined by faces within :data:`ISLAND_CONTRAST` of the
    strongest; ``Wᵀ A W`` (one row per island: the conductance of the faces that leave it, and of its
    Dirichlet faces, on the diagonal; minus the faces to each other island off it) is factorised
    once. Demo cathode (CBD 50 vs NCM 0.005 S/m, 4083 islands): 480 → 231 iterations, CPU 30.3 →
    22.2 s on half its volume.
    """

    def __init__(self, ids: np.ndarray, count: int, g0, g1, g2, bclo, bchi):
        self.count = count
        flat = ids.reshape(-1)
        self.members = np.flatnonzero(flat)
        self.member_ids = (flat[self.members] - 1).astype(np.intp)
        diag = np.zeros(count + 1)
        rows, cols, vals = [], [], []
        n0 = g0.shape[0]
        pairs = [(ids[:-1], ids[1:], g0[: n0 - 1])]  # axis 0 never wraps
        pairs += [(ids, np.roll(ids, -1, axis=a), g) for a, g in ((1, g1), (2, g2))]
        for lo, hi, g in pairs:
            cross = (g > 0) & (lo != hi)
            i, j, c = lo[cross], hi[cross], g[cross].astype(np.float64)
            diag += np.bincount(i, c, minlength=count + 1) + np.bincount(j, c, minlength=count + 1)
            both = (i > 0) & (j > 0)
            rows += [i[both], j[both]]
            cols += [j[both], i[both]]
            vals += [-c[both], -c[both]]
        diag += np.bincount(ids[0].reshape(-1), bclo.reshape(-1).astype(np.float64), minlength=count + 1)
        diag += np.bincount(ids[-1].reshape(-1), bchi.reshape(-1).astype(np.float64), minlength=count + 1)
        every = np.arange(1, count + 1)
        coarse = sp.csc_matrix((np.concatenate(vals + [diag[1:]]),
                                (np.concatenate(rows + [every]) - 1, np.concatenate(cols + [every]) - 1)),
                               shape=(count, count))
        self.ids = ids
        self.matrix = coarse  # Wᵀ A W
        self._lu = spla.splu(coarse)
        self._z = np.empty(ids.shape, np.float64)
        self._az = np.empty(ids.shape, np.float64)

    @classmethod
    def of(cls, g0, g1, g2, bclo, bchi) -> "IslandDeflation | None":
        """The islands of the operator, or None when its faces span ≤ :data:`ISLAND_CONTRAST`."""
        positive = [g[g > 0] for g in (g0, g1, g2)]
        positive = [p for p in positive if p.size]
        if not positive:
            return None
        top = max(float(p.max()) for p in positive)
        if top <= ISLAND_CONTRAST * min(float(p.min()) for p in positive):
            return None
        strong = np.zeros(g0.shape, bool)
        for axis, g in enumerate((g0, g1, g2)):
            face = g >= top / ISLAND_CONTRAST
            if axis == 0:
                face[-1] = False
            strong |= face
            strong |= np.roll(face, 1, axis=axis)  # the voxel across the face
        ids, count = ndi.label(strong)
        return cls(ids, count, g0, g1, g2, bclo, bchi) if count else None

    @property
    def nbytes(self) -> int:
        return self.members.nbytes + self.member_ids.nbytes + self._z.nbytes + self._az.nbytes

    def correct(self, ops: tuple, r: np.ndarray, z: np.ndarray) -> None:
        """``z += W (Wᵀ A W)⁻¹ Wᵀ (r − A z)`` in place (``z`` float32, ``r`` float64)."""
        self._z[...] = z
        st.matvec(*ops, self._z, self._az)
        rest = r.reshape(-1)[self.members] - self._az.reshape(-1)[self.members]
        c = self._lu.solve(np.bincount(self.member_ids, rest, minlength=self.count))
        flat = z.reshape(-1)
        flat[self.members] += c[self.member_ids].astype(np.float32)


class MultigridPreconditioner:
    """A V-cycle hierarchy built from the fine face conductances (kept by reference)."""

    def __init__(self, g0, g1, g2, bclo, bchi, *, coarse_cells: int = COARSE_CELLS, smoothing_steps: int = 1,
                 kcycle: bool = True, deflate: bool = True):
        self.smoothing_steps = int(smoothing_steps)
        self.kcycle = bool(kcycle)
        self.threads = numba.get_num_threads()
        self.levels = [_Level(g0, g1, g2, bclo, bchi)]
        while True:
            fine = self.levels[-1]
            n = fine.shape
            if math.prod(n) <= coarse_cells:
                break
            f = tuple(2 if s > 2 else 1 for s in n)
            if f == (1, 1, 1):
                break
            nc = tuple(-(-s // fa) for s, fa in zip(n, f))
            faces = [np.empty(nc, np.float32) for _ in range(3)] + [np.empty(nc[1:], np.float32) for _ in range(2)]
            numba.set_num_threads(self.threads if fine.g0.size >= PARALLEL_MIN_CELLS else 1)
            st.coarsen_faces(fine.g0, fine.g1, fine.g2, fine.bclo, fine.bchi, *f, *faces)
            coarse = _Level(*faces)
            fine.shifts = tuple(fa.bit_length() - 1 for fa in f)
            coarse.x = np.zeros(nc, np.float32)
            coarse.b = np.zeros(nc, np.float32)
            coarse.work = [np.zeros(nc, np.float32) for _ in range(5)] if kcycle else []
            self.levels.append(coarse)
        numba.set_num_threads(self.threads)
        self._factor_coarsest()
        self.deflation = IslandDeflation.of(g0, g1, g2, bclo, bchi) if deflate and len(self.levels) > 1 else None

    @property
    def nbytes(self) -> int:
        """Memory held by the hierarchy (the finest level's conductances belong to the caller)."""
        return (sum(level.nbytes for level in self.levels[1:]) + sum(a.nbytes for a in self.levels[0].runs)
                + (self.deflation.nbytes if self.deflation is not None else 0))

    def _factor_coarsest(self) -> None:
        last = self.levels[-1]
        a = _assemble(last.g0, last.g1, last.g2, last.bclo, last.bchi)
        diag = a.diagonal()
        self._active = np.flatnonzero(diag > 0)
        sub = a[self._active][:, self._active].tocsc()
        self._lu = spla.splu(sub, **SPD_LU) if sub.shape[0] else None

    def _solve_coarsest(self, level: _Level) -> None:
        level.x[...] = 0
        if self._lu is not None:
            flat = level.x.reshape(-1)
            flat[self._active] = self._lu.solve(level.b.reshape(-1)[self._active].astype(np.float64))

    def apply(self, r: np.ndarray, z: np.ndarray) -> None:
        """z ≈ A⁻¹ r by one cycle (z is overwritten)."""
        if len(self.levels) == 1:
            self._direct_finest(r, z)
        else:
            self._vcycle(0, r, z)
        numba.set_num_threads(self.threads)
        if self.deflation is not None:
            self.deflation.correct(self.levels[0].ops, r, z)

    def _vcycle(self, index: int, b: np.ndarray, x: np.ndarray) -> None:
        level = self.levels[index]
        # waking a second thread costs more than a tiny grid's sweep: levels under
        # PARALLEL_MIN_CELLS run on the calling thread (a 50³ level still sweeps 2.7× faster on two)
        numba.set_num_threads(self.threads if level.g0.size >= PARALLEL_MIN_CELLS else 1)
        ops = level.ops
        x[...] = 0
        for _ in range(self.smoothing_steps):
            st.gauss_seidel(*ops, *level.runs, x, b, 0, False)
            st.gauss_seidel(*ops, *level.runs, x, b, 1, False)
        coarse = self.levels[index + 1]
        st.residual_restrict(*ops, x, b, coarse.b, *level.shifts)
        if index + 1 == len(self.levels) - 1:
            self._solve_coarsest(coarse)
        elif self.kcycle:
            self._kcycle(index + 1)
        else:
            self._vcycle(index + 1, coarse.b, coarse.x)
        numba.set_num_threads(self.threads if level.g0.size >= PARALLEL_MIN_CELLS else 1)
        st.prolong_add(x, coarse.x, *level.shifts)
        for _ in range(self.smoothing_steps):
            st.gauss_seidel(*ops, *level.runs, x, b, 1, True)
            st.gauss_seidel(*ops, *level.runs, x, b, 0, True)

    def _kcycle(self, index: int) -> None:
        """Two flexible-CG steps on a coarse level, preconditioned by the cycle below it.

        Notay & Vassilevski's K-cycle: it restores level-independent convergence that plain
        aggregation V-cycles lose (piecewise-constant transfer is too low order for a V-cycle).
        """
        level = self.levels[index]
        ops = level.ops
        r = level.b
        c1, v1, c2, v2, rt = level.work
        self._vcycle(index, r, c1)
        numba.set_num_threads(self.threads if level.g0.size >= PARALLEL_MIN_CELLS else 1)
        rho1 = st.matvec(*ops, c1, v1)
        a1 = st.dot(c1, r)
        if not rho1 > 0:
            level.x[...] = 0
            return
        # residual after the first step; reduced ≥ 4×: one step suffices
        if st.lincomb(rt, 1.0, r, -a1 / rho1, v1) <= 0.0625 * st.dot(r, r):
            st.lincomb(level.x, a1 / rho1, c1, 0.0, c1)
            return
        self._vcycle(index, rt, c2)
        numba.set_num_threads(self.threads if level.g0.size >= PARALLEL_MIN_CELLS else 1)
        beta = st.matvec(*ops, c2, v2)
        gamma, a2 = st.dot2(v1, c2, rt)
        rho2 = beta - gamma * gamma / rho1
        if not rho2 > 0:
            st.lincomb(level.x, a1 / rho1, c1, 0.0, c1)
            return
        st.lincomb(level.x, a1 / rho1 - gamma * a2 / (rho1 * rho2), c1, a2 / rho2, c2)

    def _direct_finest(self, b: np.ndarray, x: np.ndarray) -> None:
        # the whole problem is small enough for the coarsest-grid LU
        x[...] = 0
        if self._lu is not None:
            flat = x.reshape(-1)
            flat[self._active] = self._lu.solve(b.reshape(-1)[self._active].astype(np.float64))


def _assemble(g0, g1, g2, bclo, bchi) -> sp.csr_matrix:
    """The operator as a scipy sparse matrix (small grids only: the coarsest level, tests)."""
    n0, n1, n2 = g0.shape
    idx = np.arange(n0 * n1 * n2).reshape(n0, n1, n2)
    rows, cols, vals = [], [], []
    diag = np.zeros((n0, n1, n2), np.float64)
    diag[0] += bclo
    diag[-1] += bchi
    for axis, g in enumerate((g0, g1, g2)):
        g = g.astype(np.float64)
        if axis == 0:
            g = g.copy()
            g[-1] = 0  # axis 0 never wraps
        nb = np.roll(idx, -1, axis=axis)
        diag += g
        diag += np.roll(g, 1, axis=axis)
        mask = g > 0
        rows += [idx[mask], nb[mask]]
        cols += [nb[mask], idx[mask]]
        vals += [-g[mask], -g[mask]]
    rows.append(idx.reshape(-1))
    cols.append(idx.reshape(-1))
    vals.append(diag.reshape(-1))
    n = idx.size
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def solve_potential(g0, g1, g2, bclo, bchi, *, rtol: float = 1e-4, max_iterations: int = 200,
                    x0: np.ndarray | None = None, coarse_cells: int = COARSE_CELLS,
                    smoothing_steps: int = 1, kcycle: bool = True,
                    deflate: bool = True) -> tuple[np.ndarray, SolveInfo]:
    """Solve A x = b (C = 1 at the inlet plane, 0 at the outlet plane) to a flux-balance ``rtol``.

    Returns the float64 potential on the grid (inactive voxels hold meaningless values: mask
    them) and a :class:`SolveInfo`. Raises :class:`ConvergenceError` past ``max_iterations``.
    Small grids run on one thread (a parallel launch costs milliseconds on a loaded machine).
    """
    threads = numba.get_num_threads()
    numba.set_num_threads(threads if g0.size >= PARALLEL_MIN_CELLS else 1)
    try:
        return _solve_potential(g0, g1, g2, bclo, bchi, rtol=rtol, max_iterations=max_iterations, x0=x0,
                                coarse_cells=coarse_cells, smoothing_steps=smoothing_steps, kcycle=kcycle,
                                deflate=deflate)
    finally:
        numba.set_num_threads(threads)


def _solve_potential(g0, g1, g2, bclo, bchi, *, rtol, max_iterations, x0, coarse_cells, smoothing_steps,
                     kcycle, deflate):
    t0 = time.perf_counter()
    n0 = g0.shape[0]
    pre = MultigridPreconditioner(g0, g1, g2, bclo, bchi, coarse_cells=coarse_cells,
                                  smoothing_steps=smoothing_steps, kcycle=kcycle, deflate=deflate)
    setup = time.perf_counter() - t0
    if x0 is None:
        # linear profile between the Dirichlet planes: exact for straight channels
        x = np.empty(g0.shape, np.float64)
        x[...] = (1.0 - (np.arange(n0, dtype=np.float64) + 0.5) / n0)[:, None, None]
    else:
        x = np.array(x0, dtype=np.float64, copy=True)
    r = np.empty_like(x)
    fine = pre.levels[0].ops
    st.matvec(*fine, x, r)
    np.negative(r, out=r)
    r[0] += bclo  # b = bclo · 1 on the inlet layer
    z = np.empty(x.shape, np.float32)
    q = np.empty_like(x)
    fluxes = np.empty(n0 + 1, np.float64)
    rr = st.dot(r, r)
    r0 = math.sqrt(rr)
    history: list[float] = []

    def flux_error() -> float:
        st.layer_fluxes(g0, bclo, bchi, x, fluxes)
        top = np.max(np.abs(fluxes))
        return float((fluxes.max() - fluxes.min()) / top) if top > 0 else 0.0

    bnorm = float(np.linalg.norm(bclo))
    err = flux_error()
    it = 0
    if (err > rtol or r0 > rtol * bnorm) and r0 > 0:
        pre.apply(r, z)
        p = z.astype(np.float64)
        rz = st.dot(r, z)
        while True:
            pq = st.matvec(*fine, p, q)
            if not pq > 0:
                # a non-positive curvature: the float32 preconditioner lost definiteness (extreme
                # coefficient contrast). Converged only if the balance already holds; never return
                # an unbalanced field as a result.
                if err <= rtol and math.sqrt(rr) <= rtol * bnorm:
                    break
                raise ConvergenceError(
                    f"transport solve broke down after {it} iterations at a flux balance of {err:.2e} "
                    f"(target {rtol:g}): the coefficient contrast is too extreme for the solver "
                    "(e.g. 1e7 vs 1e-12 S/m); give the insulating phases 0 S/m or a milder contrast")
            alpha = rz / pq
            rr = st.axpy_pair(x, r, p, q, alpha)
            it += 1
            err = flux_error()
            history.append(err)
            # the plane fluxes alone are blind to imbalance inside a plane (a detour that runs
            # within one layer), so the residual must be small as well
            if err <= rtol and math.sqrt(rr) <= rtol * bnorm:
                break
            if it >= max_iterations:
                raise ConvergenceError(
                    f"transport solve did not reach a flux balance of {rtol:g} in {max_iterations} "
                    f"iterations (reached {err:.2e}); raise max_iterations or loosen rtol"
                )
            pre.apply(r, z)
            rz_new, zq = st.dot2(r, z, q)
            beta = -alpha * zq / rz  # Polak–Ribière: robust to the float32 V-cycle
            rz = rz_new
            st.update_direction(p, z, max(beta, 0.0))
    rres = math.sqrt(rr) / r0 if r0 > 0 else 0.0
    info = SolveInfo(iterations=it, flux_error=err, residual_ratio=rres, layer_fluxes=fluxes.copy(),
                     levels=len(pre.levels), setup_s=setup, solve_s=time.perf_counter() - t0 - setup,
                     hierarchy_bytes=pre.nbytes + x.nbytes + r.nbytes + z.nbytes + 2 * q.nbytes,
                     history=history)
    return x, info
