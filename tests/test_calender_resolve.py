"""A converged calendering increment is a converged state: re-solved without further strain it stays (issue 16).

The solver is incremental (hypo-elastic): an increment starts from the stress the last one left. Until stop 26
a zero-strain re-solve of a recorded state of the benchmark cathode (seed 1, 48 µm, 3.0 g/cm³) lowered its
roll pressure 43.8 → 31.4 → 25.3 → 22.3 MPa, so the answer depended on the number of solves. Measured causes
(stop 26): the hourglass forces dropped at every increment's start (``MechanicsSolver.solve_increment``'s
``hourglass_old``), the remap moving voxels by the drift of nodes that nothing stiff holds
(``calender._voxel_displacement``), the friction limit returned after the last solve without equilibrium
(``_contacts.friction_slip``), and the reset of every particle's body to its mean stress at each increment's
start (``relieve_particle_residuals``, which keeps the remap's residue out of the crackable volume: without it
74.6 vs 50.2 % over 100 MPa at 3.0 g/cm³ on that cathode) — now only of the particles the remap reshaped
(``_contacts.reshaped_particles``). Not fixed: the first re-solve after a real increment still settles (that
cathode: 48.2 → 41.1 MPa, −10 % without any reset) — in the contact tests of its second pass, not in the
remapped stress (its first, elastic pass keeps 48.7 MPa), and not from the cap's packing estimate (with the
packing the increment was solved with: 40.5 MPa). Since stop 30 the re-solve test runs with the cracked plane
(``contact_law="plane"``), whose contacts are solved to the Newton tolerance; the passes do not reach their
fixed point (see the test)."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

from twinlab.analyses.mechanics import calender

CAL = sys.modules["twinlab.analyses.mechanics.calender"]  # the module (the package exports the function)


def test_a_voxel_moves_with_the_stiff_side_of_its_corners():
    """The remap moves a voxel by the mean of its corner nodes weighted by the stiffness around each node: a
    node that only empty or soft voxels hold is all but free in the solve (here it drifted 50 voxels), and the
    plain mean carried a surface voxel half that far."""
    shape = (4, 4, 4)
    mu = np.zeros(shape)
    mu[1, 1, 1] = 1e4  # a stiff voxel; its neighbour (2, 1, 1) is empty (an open contact: no stiffness)
    u = np.zeros((3, *shape))
    u[:, 1:3, 1:3, 1:3] = 0.1  # the stiff voxel's 8 corner nodes move by 0.1
    u[:, 3, 1:3, 1:3] = 50.0  # the empty voxel's far corners drift
    uc = CAL._voxel_displacement(u, mu)
    np.testing.assert_allclose(uc[:, 1, 1, 1], 0.1)
    np.testing.assert_allclose(uc[:, 2, 1, 1], 0.1)  # the plain mean: 25.05
    mu[2, 1, 1] = 1.0  # a soft contact voxel: its far nodes weigh 1e-4 of the stiff ones
    assert np.abs(CAL._voxel_displacement(u, mu)[:, 2, 1, 1] - 0.1).max() < 1e-2


#: the re-solve tests' contact law and Newton tolerance: the cracked plane, solved to its tolerance (see
#: :func:`test_a_zero_strain_re_solve_holds_the_roll_pressure` for why not the passes)
LAW, TOL = "plane", 2.5e-5


def _record_state():
    """The state a small generated cathode (32 µm, 2 µm voxels, seed 1) calendered to 3.0 g/cm³ with the cracked
    plane (``LAW``, ``TOL``) hands to ``_record``."""
    from twinlab.datasets.generators import make_cathode
    from twinlab.design import ncm622_cathode

    design = ncm622_cathode()
    gen = make_cathode(domain_um=(32, 4 + design.thickness_um, 32), voxel_size_um=2.0, collector_um=4, seed=1)
    seen = {}

    def record(kind, value, lab, img, stress, strain, disp, broken, **kw):
        seen.update(state=(lab, img, stress, strain, disp, broken), kw=kw)
        raise StopIteration  # the state is all this test needs

    mp = pytest.MonkeyPatch()
    mp.setattr(CAL, "_record", record)
    try:
        with pytest.raises(StopIteration):
            calender(gen.phases, particles=gen.particles, densities=[3.0], steps=2, design=design,
                     voxel_size_um=2.0, thickness_axis="y", collector_side="low", workers=1, contact_law=LAW, tol=TOL)
    finally:
        mp.undo()
    return seen


@pytest.fixture(scope="module")
def recorded():
    return _record_state()


def _roll_pressures(recorded, n=3):
    """The roll pressure (MPa) of ``n`` zero-strain re-solves (``_increment`` with m_next = m_cur) in a row."""
    kw = recorded["kw"]
    pore_v, coll_v = kw["pore_v"], kw["coll_v"]
    cstate = copy.deepcopy(kw["cstate"])
    state = [None if a is None else a.copy() for a in recorded["state"]]  # the relief changes its stress in place
    hourglass = None
    out = []
    for _ in range(n):
        stats = {}
        *state, hourglass, _, _, _ = CAL._increment(
            *state, hourglass=hourglass, moving_value=lambda a: (a != pore_v) & (a != coll_v), lut=kw["lut"],
            h=kw["h"], n_coll=kw["n_coll"], m_cur=kw["m_cur"], m_next=kw["m_cur"], roll_layers=2, roll_factor=2.0,
            reg=1e-2, dtype=np.dtype("float32"), tol=TOL, maxiter=20000, workers=1, seed=0, pore_gray=0,
            preconditioner="multigrid", cstate=cstate, stats=stats)
        out.append(stats["pressure"])
    return out


def test_a_zero_strain_re_solve_holds_the_roll_pressure(recorded):
    """The first re-solve settles what the last increment's remap moved (voxels rounded into whole cells, new
    contact faces); after it, a re-solve of the converged state changes the roll pressure by < 1 %: measured
    (stop 30, first → second → third re-solve, MPa) 42.29 → 42.24 → 42.19 (−0.12 %) on stop 29's main and with
    the fine-level sweep of ``s29-fine`` merged, 40.05 → 39.90 → 39.88 (−0.06 %) with the generator of ``s28-pack``.

    Why the cracked plane: the claim holds for a law solved to its fixed point, and the plane's contacts are solved
    inside Newton to ``TOL``. The passes (``contact_law="passes"``, the test's law until stop 29, bound 2 %) stop
    at ``contact_passes`` before the fixed point (``residual_load`` 0.06–0.11 of the normal load at 5 passes), and
    their unconverged active set follows the float32 summation order of the solver: measured re-solves at 5 / 12
    passes, tol 1e-4: stop 29's main 26.93 → 26.05 → 25.90 (−0.6 %) / 27.83 → 22.89 → 22.46 (−1.9 %); with
    ``s29-fine`` 26.57 → 24.51 → 23.82 (−2.8 %) / 27.12 → 25.74 → 25.08 (−2.6 %); with ``s28-pack`` 23.77 → 23.30 →
    22.78 (−2.2 %) / 22.55 → 21.42 → 21.37 (−0.2 %) — more passes do not bring the three codes under 2 %.
    Earlier (passes): stop 25's code 29.9 → 20.1 → 16.2 MPa (−33 %, −20 %); stop 26 with every particle's body
    reset to its mean stress at each start: 27.31 → 23.72 → 22.09 (−13 %, −7 %)."""
    p = _roll_pressures(recorded)
    assert p[2] == pytest.approx(p[1], rel=1e-2), p


def test_only_the_particles_the_remap_reshaped_are_reset():
    """reshaped_particles: a particle whose voxels all moved by one offset (also across the periodic side) is
    not reshaped; one whose voxels moved by two offsets is."""
    from twinlab.analyses.mechanics._contacts import reshaped_particles

    old = np.zeros((6, 5, 5), np.int32)
    old[1:3, 1:3, 1:3] = 1
    old[3:5, 1:3, 3:5] = 2
    old[1:3, 3, 0] = 3
    shift = {1: (1, 0, 0), 2: (-1, 0, 1), 3: (0, 0, -1)}  # particle 3 wraps round axis 2
    source = np.full(old.shape, -1, np.int64)
    new = np.zeros(old.shape, np.int32)
    for pid, (a, b, c) in shift.items():
        for i, j, k in zip(*np.nonzero(old == pid)):
            cell = (i + a, (j + b) % 5, (k + c) % 5)
            source[cell], new[cell] = np.ravel_multi_index((i, j, k), old.shape), pid
    assert not reshaped_particles(source, new, old.shape)[1:].any()
    # one voxel of particle 2, (4, 1, 4) → (3, 1, 0), pushed one cell back along axis 0, to (4, 1, 0)
    source[3, 1, 0], new[3, 1, 0] = -1, 0
    source[4, 1, 0], new[4, 1, 0] = np.ravel_multi_index((4, 1, 4), old.shape), 2
    assert reshaped_particles(source, new, old.shape).tolist() == [False, False, True, False]


def test_a_roll_that_starts_below_the_grids_top_imposes_the_travel_from_there():
    """``_increment(roll_below=…)``: after a DEM stage that jammed between layer planes, the stress solve's roll
    starts at the jam, ``roll_below`` layers under the grid's top (the packing was stretched to that plane; the
    remap takes the stretch back). An elastic slab with posts (no contacts), 10 → 9 layers: with the roll
    starting half a layer down the roll pressure is half the full layer's (linear elasticity), the coating
    still ends at 9 layers with every solid voxel, and it took the same share of the travel (the stiff roll layers
    the rest)."""
    from twinlab.analyses.mechanics import lame_from_young

    e = 1000.0
    lam0, mu0 = lame_from_young(e, 0.3)
    lut = {"lam": np.array([0.0, lam0]), "mu": np.array([0.0, mu0]), "e": np.array([0.0, e]),
           "code": np.zeros(2, np.uint8), "sy": np.full(2, np.inf), "frac": np.full(2, np.inf)}
    lab = np.zeros((10, 8, 8), np.uint8)
    lab[:4] = 1
    lab[4:, 2:6, 2:6] = 1  # a post on the base: porosity to take the remap's squeeze
    pressure, share = {}, {}
    for below in (0.0, 0.5):
        stats = {}
        arrs = [np.zeros((6, *lab.shape), np.float64), np.zeros((6, *lab.shape), np.float64),
                np.zeros((3, *lab.shape), np.float64), np.zeros(lab.shape, bool)]
        new_lab, _, *_, share[below], _, _ = CAL._increment(
            lab, None, *arrs, moving_value=lambda a: a != 0, lut=lut, h=(1.0, 1.0, 1.0), n_coll=0, m_cur=10,
            m_next=9, roll_layers=2, roll_factor=2.0, reg=1e-2, dtype=np.dtype("float64"), tol=1e-8, maxiter=20000,
            workers=1, seed=0, pore_gray=0, stats=stats, roll_below=below)
        pressure[below] = stats["pressure"]
        assert (new_lab != 0).sum() == (lab != 0).sum() and not new_lab[9:].any()
    assert pressure[0.0] > 0 and pressure[0.5] == pytest.approx(pressure[0.0] / 2, rel=1e-6), pressure
    assert share[0.0] > 0.95 and share[0.5] == pytest.approx(share[0.0], rel=1e-9), share  # the roll layers: the rest
