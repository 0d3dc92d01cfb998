"""Particles cut by the image edge in the crack analysis (``crack_volume(edge_particles=...)``)."""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.cracks import AUTO_EXCLUDE_MIN_PARTICLES, crack_volume
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


def test_section_leaves_out_particles_cut_by_a_lateral_edge_on_request():
    """Default "keep": every particle measured as seen (A, B, C). "exclude": B, whose solid stops
    within a crack width (2 pixels here) of the right edge, is left out of every number; C, on the
    low y end, stays: the thickness axis's ends (collector, top) are real ends, not crops."""
    lab, part, crack_a, crack_b = _section()
    assert not part[:, -1].any() and crack_b[:, -1].any()  # B's solid stops short of the edge, its crack not
    kw = dict(particles=part, crack_width_um=2.0, thickness_axis="y")
    kept = crack_volume(lab, **kw)
    out = crack_volume(lab, edge_particles="exclude", **kw)
    assert out.dimensions == "2D" and out.edge_particles == 1 and kept.edge_particles == 0
    assert kept.particle_ids == (1, 2, 3) and out.particle_ids == (1, 3)
    assert "left out" in out.method and "left out" not in kept.method
    assert crack_a.sum() <= out.crack_volume_um3 <= crack_a.sum() + 4  # A's crack (the mouth step: a pixel at each end)
    assert not (out.crack_mask & crack_b).any() and (kept.crack_mask & crack_b).any()
    assert out.crack_volume_um3 < kept.crack_volume_um3
    assert crack_volume(lab, **kw, edge_particles="keep").crack_volume_um3 == kept.crack_volume_um3
    # B two pixels farther from the edge than a crack width: kept
    far = crack_volume(np.pad(lab, ((0, 0), (0, 3))), edge_particles="exclude",
                       **{**kw, "particles": np.pad(part, ((0, 0), (0, 3)))})
    assert far.particle_ids == (1, 2, 3)


def test_volume_excludes_particles_cut_by_a_lateral_face_on_request():
    lab2, part2, _, _ = _section()
    lab, part = np.stack([lab2] * 9), np.stack([part2] * 9)  # (z, y, x): every disc a rod through both z faces
    kw = dict(particles=part, crack_width_um=2.0, thickness_axis="y")
    kept = crack_volume(lab, **kw)
    assert kept.dimensions == "3D" and kept.edge_particles == 0 and kept.particle_ids == (1, 2, 3)
    with pytest.raises(InputError, match="all 3 particles are cut by a lateral face"):
        crack_volume(lab, edge_particles="exclude", **kw)  # the rods reach the z faces: none left


def test_edge_particles_bad_value():
    lab, part, _, _ = _section()
    with pytest.raises(InputError, match="edge_particles must be one of 'auto', 'keep', 'exclude'"):
        crack_volume(lab, particles=part, edge_particles="outside")


def test_auto_edge_rule_excludes_cut_particles_only_when_enough_remain_whole():
    """"auto" (the default) in a 2D section keeps the particles cut by the image edge when fewer than
    AUTO_EXCLUDE_MIN_PARTICLES remain wholly in view (the three-disc section: 2 whole), and leaves
    them out when at least that many remain (the same section tiled 16 times along y, the thickness
    axis: 32 whole discs, 16 cut ones) — each result then equals the rule it chose; a volume keeps
    them."""
    lab, part, _, _ = _section()
    kw = dict(crack_width_um=2.0, thickness_axis="y")
    few = crack_volume(lab, particles=part, **kw)
    assert few.edge_rule == "keep" and few.edge_particles == 0 and "edge rule auto: keep" in few.method
    assert few.crack_volume_um3 == crack_volume(lab, particles=part, edge_particles="keep", **kw).crack_volume_um3
    tiles = 16
    assert 2 * tiles >= AUTO_EXCLUDE_MIN_PARTICLES > 2
    many_lab = np.concatenate([lab] * tiles)
    many_part = np.concatenate([np.where(part > 0, part + 3 * k, 0) for k in range(tiles)])
    many = crack_volume(many_lab, particles=many_part, **kw)
    excluded = crack_volume(many_lab, particles=many_part, edge_particles="exclude", **kw)
    assert many.edge_rule == "exclude" and many.edge_particles == tiles
    assert many.particle_ids == excluded.particle_ids and len(many.particle_ids) == 2 * tiles
    assert many.crack_volume_um3 == excluded.crack_volume_um3
    assert crack_volume(many_lab, particles=many_part, edge_particles="keep", **kw).edge_rule == "keep"
    # a volume keeps them: the same 32 whole and 16 cut particles as rods through a (z, y, x) block
    rods = crack_volume(np.stack([many_lab] * 3), particles=np.stack([many_part] * 3), **{**kw, "thickness_axis": "y"})
    assert rods.dimensions == "3D" and rods.edge_rule == "keep" and rods.edge_particles == 0
