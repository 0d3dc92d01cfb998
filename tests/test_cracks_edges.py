"""Particles cut by the image edge in the crack analysis (``crack_volume(edge_particles=...)``)."""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.cracks import crack_volume
from twinlab.errors import InputError

PORE, ACTIVE = 0, 1


def _section():
    """A 2D section (y, x), thickness along y: disc A inside the image with a 2-pixel crack through
    its centre; disc B cut by the right edge (x = 79), its crack running out through the edge
    while its solid stops 2 pixels short of it; disc C resting on the low y end (the collector
    side, a real end, not a crop)."""
    yy, xx = np.mgrid[0:70, 0:80]
    lab = np.zeros(yy.shape, np.uint8)
    part = np.zeros(yy.shape, np.int32)
    truth = np.zeros(yy.shape, bool)
    for pid, (cy, cx, r) in enumerate(((40, 22, 13), (40, 70, 12), (8, 50, 8)), start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if pid == 2:
            disc &= xx <= 77
        lab[disc] = ACTIVE
        part[disc] = pid
    crack_a = (part == 1) & (np.abs(yy - 40) < 1) & (np.abs(xx - 22) < 10)  # internal, 2 px wide
    crack_b = (np.abs(yy - 40) < 1) & (xx >= 64)  # from inside B out through the right edge
    crack_b &= ((yy - 40) ** 2 + (xx - 70) ** 2 <= 144) | (xx > 77)
    for c in (crack_a, crack_b):
        lab[c] = PORE
        truth |= c
    return lab, np.where(lab == ACTIVE, part, 0), crack_a, crack_b


def test_section_leaves_out_particles_cut_by_a_lateral_edge_by_default():
    lab, part, crack_a, crack_b = _section()
    assert not part[:, -1].any() and crack_b[:, -1].any()  # B's solid stops short of the edge, its crack not
    kw = dict(particles=part, crack_width_um=2.0, thickness_axis="y")
    auto = crack_volume(lab, **kw)
    kept = crack_volume(lab, edge_particles="keep", **kw)
    assert auto.dimensions == "2D" and auto.edge_particles == 1 and kept.edge_particles == 0
    assert auto.particle_ids == (1, 3)  # C on the collector side is kept: the thickness ends are no crop
    assert kept.particle_ids == (1, 2, 3)
    assert "left out" in auto.method
    # A's crack alone (the mouth step may add a pixel at each end of it)
    assert crack_a.sum() <= auto.crack_volume_um3 <= crack_a.sum() + 4
    assert not (auto.crack_mask & crack_b).any() and (kept.crack_mask & crack_b).any()
    assert auto.crack_volume_um3 < kept.crack_volume_um3
    assert crack_volume(lab, edge_particles="exclude", **kw).particle_ids == (1, 3)


def test_volume_keeps_particles_cut_by_a_lateral_face_by_default():
    lab2, part2, _, _ = _section()
    lab, part = np.stack([lab2] * 9), np.stack([part2] * 9)  # (z, y, x): every disc a rod along z, on both z faces
    kw = dict(particles=part, crack_width_um=2.0, thickness_axis="y")
    auto = crack_volume(lab, **kw)
    assert auto.dimensions == "3D" and auto.edge_particles == 0 and auto.particle_ids == (1, 2, 3)
    assert auto.crack_volume_um3 == crack_volume(lab, edge_particles="keep", **kw).crack_volume_um3
    with pytest.raises(InputError, match="all 3 particles are cut by a lateral face"):
        crack_volume(lab, edge_particles="exclude", **kw)  # the rods reach the z faces: none left


def test_edge_particles_bad_value():
    lab, part, _, _ = _section()
    with pytest.raises(InputError, match="edge_particles must be"):
        crack_volume(lab, particles=part, edge_particles="drop")
