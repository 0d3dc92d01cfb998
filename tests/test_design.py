"""Electrode design → theoretical numbers: analytic values (SCIENCE.md §1) and error paths."""

from __future__ import annotations

import math

import pytest

from twinlab.design import (
    Component, ElectrodeDesign, dry_film_cathode, lmp_anode, load_design, ncm622_cathode, shell_mass_fraction,
)
from twinlab.errors import InputError, ReadError

# hand-computed: 1/ρ_s = 0.96/4.75 + 0.02/1.9 + 0.02/1.78
_SPEC = 0.96 / 4.75 + 0.02 / 1.9 + 0.02 / 1.78
RHO_S = 1.0 / _SPEC


def test_ncm622_solid_density_and_porosity():
    d = ncm622_cathode(2.3)
    assert d.solid_density_g_cm3 == pytest.approx(RHO_S, rel=1e-12)
    assert d.solid_density_g_cm3 == pytest.approx(4.466927303465765, rel=1e-12)
    assert d.porosity == pytest.approx(1 - 2.3 / RHO_S, rel=1e-12)


@pytest.mark.parametrize("rho", [2.3, 3.0, 3.6])
def test_ncm622_volume_fractions_analytic(rho):
    d = ncm622_cathode(rho)
    eps = 1 - rho / RHO_S
    f = d.volume_fractions()
    assert f["pore"] == pytest.approx(eps, rel=1e-12)
    assert f["active"] == pytest.approx((1 - eps) * (0.96 / 4.75) / _SPEC, rel=1e-12)
    assert f["cbd"] == pytest.approx((1 - eps) * (0.02 / 1.9 + 0.02 / 1.78) / _SPEC, rel=1e-12)
    assert sum(f.values()) == pytest.approx(1.0, abs=1e-12)
    # ρ(1−ε)... the active fraction is simply ρ_el w_AM / ρ_AM
    assert f["active"] == pytest.approx(rho * 0.96 / 4.75, rel=1e-12)


def test_ncm622_geometry_matches_publication():
    assert ncm622_cathode(3.6).thickness_um == pytest.approx(55.0, rel=1e-12)  # 19.8 / 3.6 × 10
    assert ncm622_cathode(2.3).thickness_um == pytest.approx(198 / 2.3, rel=1e-12)  # 86.1 ≈ "85 µm"
    d = ncm622_cathode()
    assert d.loading_mg_cm2 == 19.8 and d.collector_material == "Al" and d.collector_thickness_um == 15.0
    assert d.phase_wt_percent() == {"active": 96.0, "cbd": 4.0}


def test_cbd_as_domain_expands_cbd_and_shrinks_pore():
    d = ncm622_cathode(3.0)
    solid, domain = d.volume_fractions("solid"), d.volume_fractions("domain")
    assert domain["cbd"] == pytest.approx(2 * solid["cbd"], rel=1e-12)  # nanoporosity 0.5
    assert domain["pore"] == pytest.approx(solid["pore"] - solid["cbd"], rel=1e-12)
    assert domain["active"] == solid["active"]
    assert sum(domain.values()) == pytest.approx(1.0, abs=1e-12)


def test_cbd_domain_that_does_not_fit_raises():
    d = ElectrodeDesign([Component("NCM622", 50, "active"), Component("PVDF", 50, "cbd")],
                        porosity=0.05, cbd_nanoporosity=0.9)
    with pytest.raises(InputError, match="does not fit"):
        d.volume_fractions("domain")
    with pytest.raises(InputError, match="cbd_as"):
        d.volume_fractions("nano")


def test_two_of_three_determine_the_third():
    comps = ncm622_cathode().components
    a = ElectrodeDesign(comps, loading_mg_cm2=19.8, thickness_um=55.0)
    assert a.density_g_cm3 == pytest.approx(3.6, rel=1e-12)
    b = ElectrodeDesign(comps, thickness_um=55.0, density_g_cm3=3.6)
    assert b.loading_mg_cm2 == pytest.approx(19.8, rel=1e-12)
    c = ElectrodeDesign(comps, loading_mg_cm2=19.8, density_g_cm3=3.6)
    assert c.thickness_um == pytest.approx(55.0, rel=1e-12)
    # porosity given directly
    e = ElectrodeDesign(comps, porosity=0.3, loading_mg_cm2=19.8)
    assert e.density_g_cm3 == pytest.approx(0.7 * RHO_S, rel=1e-12)
    assert e.thickness_um == pytest.approx(198 / (0.7 * RHO_S), rel=1e-12)
    # all three given and (to rounding) consistent: kept as given
    f = ElectrodeDesign(comps, loading_mg_cm2=19.8, thickness_um=85.0, density_g_cm3=2.3)
    assert f.thickness_um == 85.0 and f.density_g_cm3 == 2.3


def test_calendering_at_constant_loading():
    d0 = ncm622_cathode(2.3)
    r = d0.calendering_ratio_to(3.6)
    assert r == pytest.approx(1 - 2.3 / 3.6, rel=1e-12)
    d1 = d0.at_ratio(r)
    assert d1.density_g_cm3 == pytest.approx(3.6, rel=1e-12)
    assert d1.thickness_um == pytest.approx(55.0, rel=1e-12)
    assert d1.loading_mg_cm2 == pytest.approx(19.8, rel=1e-12)
    assert d0.at_thickness(55.0).density_g_cm3 == pytest.approx(3.6, rel=1e-12)
    assert d0.at_density(3.0).thickness_um == pytest.approx(66.0, rel=1e-12)
    assert d0.at_porosity(0.25).porosity == 0.25


def test_lmp_anode_shell_and_calendering():
    # 100 nm outer shell on a 50 µm sphere: V_shell/V = 1 − (24.9/25)³
    v_shell = 1 - (24.9 / 25) ** 3
    m_shell = v_shell * 2.11
    f = m_shell / (m_shell + (1 - v_shell) * 0.534)
    assert shell_mass_fraction(50, 100, core_density_g_cm3=0.534, shell_density_g_cm3=2.11) == pytest.approx(f)
    a = lmp_anode()
    wt = a.phase_wt_percent()
    assert wt["shell"] == pytest.approx(95 * f, rel=1e-12)
    assert wt["lithium"] + wt["shell"] == pytest.approx(95.0, rel=1e-12)
    assert wt["binder"] == 5.0
    assert a.thickness_um == 84.0 and a.porosity == 0.5 and a.collector_material == "Cu"
    assert a.collector_thickness_um == 11.0
    b = lmp_anode(0.4)
    assert b.thickness_um == pytest.approx(84 * 0.6, rel=1e-12)  # "40 % → ~50 µm"
    assert b.loading_mg_cm2 == pytest.approx(a.loading_mg_cm2, rel=1e-12)
    assert b.porosity == pytest.approx(1 - 0.5 / 0.6, rel=1e-12)  # solid volume per area conserved
    assert set(b.volume_fractions()) == {"lithium", "shell", "binder", "pore"}


def test_dry_film_preset():
    d = dry_film_cathode()
    assert d.thickness_um == pytest.approx(500 / 3.0, rel=1e-12)  # 50 mg/cm² at 3.0 g/cm³
    f = d.volume_fractions()
    # φ_i = ρ_el w_i / ρ_i for each component
    assert f["active"] == pytest.approx(3.0 * 0.96 / 4.75, rel=1e-12)
    assert f["cbd"] == pytest.approx(3.0 * 0.02 / 1.9, rel=1e-12)
    assert f["binder"] == pytest.approx(3.0 * 0.02 / 2.2, rel=1e-12)


def test_dict_and_toml_round_trip(tmp_path):
    d = ncm622_cathode(3.0)
    again = ElectrodeDesign.from_dict(d.to_dict())
    assert again == d
    toml = tmp_path / "d.toml"
    toml.write_text(
        'name = "mine"\nloading_mg_cm2 = 19.8\ndensity_g_cm3 = 3.6\n'
        '[[components]]\nmaterial = "NCM622"\nwt_percent = 96\nphase = "active"\n'
        '[[components]]\nmaterial = "carbon_black"\nwt_percent = 2\nphase = "cbd"\n'
        '[[components]]\nmaterial = "PVDF"\nwt_percent = 2\nphase = "cbd"\ndensity_g_cm3 = 1.78\n')
    loaded = load_design(toml)
    assert loaded.name == "mine" and loaded.thickness_um == pytest.approx(55.0)
    assert loaded.volume_fractions() == pytest.approx(ncm622_cathode(3.6).volume_fractions())


# -- error paths: one test each ----------------------------------------------------------------------
def test_wt_percent_not_summing_to_100_names_the_sum():
    with pytest.raises(InputError, match="sum to 99"):
        ElectrodeDesign([Component("NCM622", 95, "active"), Component("PVDF", 4, "cbd")], porosity=0.4)


def test_negative_wt_percent():
    with pytest.raises(InputError, match="wt_percent"):
        Component("PVDF", -2, "cbd")


def test_negative_density():
    with pytest.raises(InputError, match="density"):
        Component("PVDF", 2, "cbd", density_g_cm3=-1.0)


def test_negative_thickness():
    with pytest.raises(InputError, match="thickness_um must be positive"):
        ElectrodeDesign(ncm622_cathode().components, thickness_um=-5, loading_mg_cm2=19.8)


@pytest.mark.parametrize("eps", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_porosity_outside_unit_interval(eps):
    with pytest.raises(InputError, match="porosity"):
        ElectrodeDesign(ncm622_cathode().components, porosity=eps)


def test_density_above_solid_density():
    with pytest.raises(InputError, match="not below the solid density"):
        ncm622_cathode(5.0)


def test_inconsistent_loading_thickness_density():
    with pytest.raises(InputError, match="disagree"):
        ElectrodeDesign(ncm622_cathode().components, loading_mg_cm2=19.8, thickness_um=55, density_g_cm3=2.3)


def test_inconsistent_porosity_and_density():
    with pytest.raises(InputError, match="disagree"):
        ElectrodeDesign(ncm622_cathode().components, porosity=0.3, density_g_cm3=2.3)


def test_undetermined_geometry():
    with pytest.raises(InputError, match="undetermined"):
        ElectrodeDesign(ncm622_cathode().components, thickness_um=80)


def test_unknown_material_without_density():
    with pytest.raises(InputError, match="no material"):
        Component("unobtainium", 100, "active")


def test_bad_ratio_and_calendering_target():
    d = ncm622_cathode()
    with pytest.raises(InputError, match="ratio"):
        d.at_ratio(1.2)
    with pytest.raises(InputError, match="only densifies"):
        d.calendering_ratio_to(2.0)


def test_bad_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ReadError):
        load_design(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_design(tmp_path / "missing.toml")
    unknown = tmp_path / "u.toml"
    unknown.write_text('porosity = 0.3\nfoo = 1\n[[components]]\nmaterial = "NCM622"\nwt_percent = 100\n'
                       'phase = "active"\n')
    with pytest.raises(InputError, match="unknown design keys"):
        load_design(unknown)
