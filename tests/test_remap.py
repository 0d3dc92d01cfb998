"""The calender's volume-conserving remap (mechanics/_remap.py): conservation and what happens to the pores.

Issue 16: calendering a cathode from 2.3 to 3.8 g/cm³ must shrink its pores as a real press does
(mercury porosimetry and tomography of calendered NCM cathodes show the pore-size distribution
shifting to smaller pores with density: e.g. Meyer et al., J. Mater. Process. Technol. 249 (2017) 172;
Schreiner et al., Energy Technol. 7 (2019) 1900840). What the two collision rules do to the pore
size of a calendered cathode is measured by ``tests/benchmarks/bench_pore_space.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.mechanics._remap import remap_voxels
from twinlab.errors import InputError

N_COLL = 4


def _compress(lab, density, collisions, rho0=2.3):
    """The coating of ``lab`` (thickness first) compressed affinely toward the collector to ``density``."""
    h0 = lab.shape[0] - N_COLL
    m = int(round(h0 * rho0 / density))
    mov = lab != 0
    mov[:N_COLL] = False
    idx = np.nonzero(mov)
    target = np.empty((3, idx[0].size))
    target[0] = N_COLL + (idx[0] + 0.5 - N_COLL) * (m / h0)
    target[1] = idx[1] + 0.5
    target[2] = idx[2] + 0.5
    return remap_voxels(lab, mov, target, n_allowed=N_COLL + m, seed=0, collisions=collisions)


@pytest.fixture(scope="module")
def coating():
    from twinlab.datasets.generators import make_cathode
    from twinlab.design import ncm622_cathode

    g = make_cathode(domain_um=(40, N_COLL + ncm622_cathode().thickness_um, 40), voxel_size_um=1.0,
                     collector_um=N_COLL, seed=1)
    return np.ascontiguousarray(np.moveaxis(g.phases, 1, 0))  # thickness first


@pytest.mark.parametrize("collisions", ["push", "nearest"])
def test_remap_conserves_every_voxel(coating, collisions):
    new, src = _compress(coating, 3.4, collisions)
    counts = np.bincount(coating.ravel(), minlength=8)
    np.testing.assert_array_equal(np.bincount(new.ravel(), minlength=8)[1:], counts[1:])
    taken = src[src >= 0]
    assert np.unique(taken).size == taken.size  # every source voxel lands exactly once
    assert (new[:N_COLL] == coating[:N_COLL]).all()  # the fixed collector stays


def test_push_carries_the_solid_ahead_along_the_displacement():
    """One column: voxel A stays in layer 2, voxel B moves down from layer 3 to just above A's cell
    centre. With ``push`` B takes the cell and A moves one cell on, down into the pore (the press
    direction) whatever the processing order; ``nearest`` puts B back up in layer 3 when A came
    first (the free cell nearest to B's target)."""
    lab = np.zeros((6, 1, 1), np.uint8)
    lab[0] = 9  # collector (fixed)
    lab[2] = 1  # A
    lab[3] = 2  # B
    mov = (lab == 1) | (lab == 2)
    target = np.array([[2.5, 2.9], [0.5, 0.5], [0.5, 0.5]])  # A stays, B moves down by 0.6 voxel
    up = {}
    for rule in ("push", "nearest"):
        up[rule] = []
        for seed in range(6):
            new, _ = remap_voxels(lab, mov, target, n_allowed=6, collisions=rule, seed=seed)
            assert sorted(new[:, 0, 0].tolist()) == [0, 0, 0, 1, 2, 9]
            up[rule].append(bool(new[3:].any()))
    assert not any(up["push"])
    assert any(up["nearest"])


def test_bad_collision_rule_is_an_error(coating):
    with pytest.raises(InputError, match="collisions"):
        _compress(coating, 3.0, "random")
