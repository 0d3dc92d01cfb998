"""The particle-level crackable measure (issue 16): the share of the active volume in particles whose *mean*
stress — the stress their contact forces set — exceeds a threshold, beside the voxel measure that also counts
each particle's contact zones (``_metrics.particle_crackable``)."""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.mechanics._laws import von_mises
from twinlab.analyses.mechanics._metrics import crackable, particle_crackable


def _uniaxial(szz):
    s = np.zeros((6, *np.shape(szz)))
    s[0] = szz
    return s


def test_particle_measure_counts_particles_by_their_mean_stress_not_their_hot_spots():
    # three particles on one row of voxels (known truth):
    #   1: 80 voxels at −50 MPa and a contact zone of 20 at −250 → mean −90: below 100 MPa, 20 hot voxels;
    #   2: 50 voxels at −110 → above 100 (and below 150);
    #   3: 30 voxels under −500 MPa hydrostatic pressure → von Mises 0, never crackable.
    inst = np.zeros((1, 1, 200), np.int32)
    inst[..., :100] = 1
    inst[..., 100:150] = 2
    inst[..., 150:180] = 3
    szz = np.zeros(inst.shape)
    szz[..., :80] = -50
    szz[..., 80:100] = -250
    szz[..., 100:150] = -110
    s = _uniaxial(szz)
    s[:3, ..., 150:180] = -500
    active = inst > 0
    total = 180
    by_particle, _ = particle_crackable(s, inst, active, (100, 150))
    assert by_particle == pytest.approx({"100": 100 * 50 / total, "150": 0.0})
    by_voxel, _ = crackable(von_mises(s), active, (100, 150), n_coll=0, bins=1)
    assert by_voxel == pytest.approx({"100": 100 * 70 / total, "150": 100 * 20 / total})
    # only the voxels asked for count (the calender leaves out edges and the contact interphase): without
    # particle 1's cool part its mean is −250 MPa, over both thresholds
    part = active.copy()
    part[..., :80] = False
    assert particle_crackable(s, inst, part, (100, 150))[0] == pytest.approx(
        {"100": 100 * 70 / 100, "150": 100 * 20 / 100})
    # voxels without a particle id (0) are in the total but in no particle
    inst0 = inst.copy()
    inst0[..., 100:150] = 0
    assert particle_crackable(s, inst0, active, (100,))[0]["100"] == 0.0


def test_uniform_stress_in_every_particle_gives_the_voxel_measure():
    rng = np.random.default_rng(0)
    inst = rng.integers(1, 6, size=(6, 7, 8)).astype(np.int32)
    level = np.array([0, 40, 90, 120, 160, 300.0])
    s = _uniaxial(-level[inst])
    active = np.ones(inst.shape, bool)
    by_voxel, _ = crackable(von_mises(s), active, (100, 150), n_coll=0, bins=1)
    assert particle_crackable(s, inst, active, (100, 150))[0] == pytest.approx(by_voxel)


def test_the_sampling_error_is_that_of_whole_particles():
    # n equal particles, k of them over 100 MPa: the share is k/n and its standard error the binomial
    # one of n − 1 degrees of freedom, √(p(1 − p)/(n − 1)) (Cochran's ratio estimate, equal clusters)
    n, k, size = 20, 5, 7
    inst = np.repeat(np.arange(1, n + 1), size).astype(np.int32).reshape(1, 1, -1)
    level = np.where(np.arange(n + 1) <= k, 130.0, 60.0)
    level[0] = 0.0
    s = _uniaxial(-level[inst])
    pct, se = particle_crackable(s, inst, inst > 0, (100, 150))
    p = k / n
    assert pct == pytest.approx({"100": 100 * p, "150": 0.0})
    assert se == pytest.approx({"100": 100 * np.sqrt(p * (1 - p) / (n - 1)), "150": 0.0})
    # the same share carried by one large particle instead of five small ones is a far less certain one
    # (the window holds fewer independent particles), and with a single particle there is no error to tell
    big = inst.copy()
    big[big <= k] = 1
    _, se_big = particle_crackable(s, big, big > 0, (100,))
    assert se_big["100"] > 1.5 * se["100"]
    one = np.ones((1, 1, 10), np.int32)
    assert particle_crackable(_uniaxial(np.full(one.shape, -130.0)), one, one > 0, (100,)) == ({"100": 100.0},
                                                                                               {"100": 0.0})
