"""Material property library, each value with its source.

Units: density g cm⁻³, Young's modulus GPa, yield / fracture strength MPa, conductivity S m⁻¹.
``None`` means "not applicable" (e.g. no yield for a brittle or elastic material).
Values are the typical ones of SCIENCE.md (sections 1, 5, 6); override per call where a
user has measured their own.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import InputError


@dataclass(frozen=True)
class Material:
    name: str
    density_g_cm3: float | None
    youngs_modulus_gpa: float | None = None
    poisson_ratio: float | None = None
    yield_strength_mpa: float | None = None  # J2 perfect plasticity above this
    fracture_strength_mpa: float | None = None  # brittle: stiffness lost above this von Mises stress
    conductivity_s_m: float | None = None  # electronic conductivity
    source: str = ""
    particulate: bool = False  # comes as discrete particles (a powder): particle splitting makes sense
    friction_coefficient: float | None = None  # contact laws: Coulomb friction μ on the contact plane
    # contact laws: normal stiffness per unit contact area k_n (GPa/µm) of a compliant contact. The contact
    # interphase is one voxel on each side of the contact face, so its modulus is E = 2 h k_n at voxel edge h
    # (along the normal): the same contact at every voxel size. None: the interphase has the material's modulus
    normal_stiffness_gpa_um: float | None = None
    # contact laws: compaction cap (mechanics/_contacts.py). A contact crushes (the particles flatten,
    # slide and chip into the neighbouring pores) when its pressure exceeds the powder's compaction
    # pressure at the local packing fraction φ: the rearrangement pressure below the jamming fraction φ_j,
    # Heckel's law P_j + 3 σ_c ln((1 − φ_j)/(1 − φ)) above it (σ_c: the particles' crushing/yield strength;
    # inf: no crushing above jamming, for particles whose plastic flattening the voxels resolve — lithium).
    jamming_fraction: float | None = None
    crush_strength_mpa: float | None = None
    # below φ_j the packing rearranges: P = P_j exp((φ − φ_j)/m) (stage I of granule compaction), P_j the
    # pressure at which rearrangement ends (MPa), m the packing-fraction gain per e-fold of pressure
    rearrangement_pressure_mpa: float | None = None
    rearrangement_slope: float | None = None
    # contact laws: bond strength p_t (MPa) of the pore-bridging CBD/binder joined to these particles, the isotropic
    # tension its bonded Cam-clay ellipse reaches (mechanics/_interface.bridge_return; cracked-plane law only)
    bridge_bond_mpa: float | None = None
    # brittle films: Weibull modulus m of the strength scatter (the fracture strength is the characteristic
    # strength σ0: a patch survives σ with probability exp(−(σ/σ0)^m)); None = one strength everywhere
    weibull_modulus: float | None = None


    def with_(self, **changes: Any) -> "Material":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_S1 = "SCIENCE.md §1 (typical true densities)"
_S5 = "SCIENCE.md §5 (typical conductivities)"
_S6 = "SCIENCE.md §6 (typical mechanical properties)"

MATERIALS: dict[str, Material] = {m.name: m for m in (
    # No crush strength of NCM secondary particles is set (issue 16, stops 24–25): none with a number was
    # readable in the sources this project could search. What was read (openings and abstracts only):
    # * single-particle compression (IEST SPFT, https://iestbattery.com/case/single-particle-compression-
    #   characteristics): a probe compresses one particle (5–50 µm) at ~1 µm/s and the crush force is read
    #   at the break in the force curve; their "crushing strength" is a force per area (MPa) — for
    #   silicon–carbon and resin-carbon anode particles of 8.5 µm 339–1632 MPa, higher for smaller particles
    #   (https://iestbattery.com/case/anode-particle-size-strength-correlation/); no NCM value was readable;
    # * in-situ SEM micro-compression of NCM811 secondary particles (De Volder group, "Fracture testing of
    #   lithium-ion battery cathode secondary particles in-situ inside the scanning electron microscope",
    #   abstract at https://core.ac.uk/search?q=author%3A%28De+Volder%2C+M.F.L.%29): intergranular fracture,
    #   from the particle's centre between flat platens ("analogous to calendaring"), strength falling with
    #   particle size, cycling and state of charge — no number in the abstract;
    # * FEM calendering with particle fracture (Guichard, Mathieu & Woillez, arXiv:2601.02879, 2026,
    #   https://arxiv.org/html/2601.02879v1): calibrated with nano-indentation; three regimes along the
    #   compression — rearrangement, fracturing at moderate pressure, complete crushing — no strength or
    #   fractured share was readable.
    # A measured strength maps onto the particle-mean-stress measure of the calender
    # (mechanics/_metrics.particle_crackable): a sphere crushed between two platens by F has the mean stress
    # 6F/(πd²), so a Hiramatsu–Oka strength 2.8F/(πd²) is the threshold 2.14 × it, a force-per-cross-section
    # strength 4F/(πd²) the threshold 1.5 × it. The 100/150 MPa thresholds of SCIENCE.md §6 have no source.
    Material("NCM622", 4.75, 20.0, 0.3, None, None, 5e-3,
             f"{_S1}: 4.7–4.8; {_S6}: secondary particle E 10–150 GPa depending on its porosity, ν≈0.3 — 20 GPa: "
             "a porous secondary particle (the 10–30 GPa the mechanics sensitivity study of issue 8 recommends; "
             f"dense single crystals are stiffer); {_S5}: 1e-3–1e-2 S/m", particulate=True),
    Material("NCM811", 4.75, 20.0, 0.3, None, None, 5e-3, f"{_S1}: 4.7–4.8; as NCM622 otherwise", particulate=True),
    Material("carbon_black", 1.9, 10.0, 0.3, None, None, 1e3, f"{_S1}: 1.8–2.0"),
    Material("PVDF", 1.78, 2.0, 0.35, None, None, 1e-12, f"{_S1}: 1.78; {_S6}: E 1–3 GPa"),
    Material("PVdF-HFP", 1.77, 1.0, 0.35, None, None, 1e-12, f"{_S1}: 1.77; {_S6}: binder, E ~1 GPa"),
    Material("PTFE", 2.2, 0.5, 0.46, None, None, 1e-14, f"{_S1}: 2.2"),
    # The carbon-binder domain as segmented: nanoporous carbon + binder (SCIENCE.md §1, §5).
    Material("CBD", 1.0, 2.0, 0.3, None, None, 50.0,
             f"{_S5}: CBD 10–100 S/m effective; E of a porous carbon/PVDF film ~PVDF's ({_S6}); "
             "density of the nanoporous domain ~half the solid's"),
    Material("Al", 2.70, 70.0, 0.33, None, None, 3.5e7, f"{_S6}: Al E≈70 GPa; conductivity handbook 3.5e7 S/m"),
    Material("Cu", 8.96, 120.0, 0.34, 200.0, None, 5.8e7,
             f"{_S6}: Cu E 110–130 GPa, foil yield 100–300 MPa; conductivity handbook 5.8e7 S/m"),
    Material("Li", 0.534, 5.0, 0.4, 1.0, None, 1.1e7,
             f"{_S1}: 0.534; {_S6}: perfectly plastic, elastic limit ~1 MPa, E≈5 GPa, ν 0.36–0.42; {_S5}: 1.1e7 S/m; "
             "as a powder's contacts (mechanics/_contacts.py compaction cap): below the random-loose-packing "
             "fraction of frictional spheres 0.555 (Onoda & Liniger 1990) the contacts give way (rearrangement); "
             "above it no cap — the particles flatten by their own plastic flow at the 1 MPa yield, resolved in "
             "their voxels (a Heckel cap, K = 1/(3 σ_y), Heckel 1961, took that compaction in the one-voxel "
             "contact layer instead, whose strain the Li2CO3 films never saw: issue 16, stop 26)",
             True, jamming_fraction=0.555, crush_strength_mpa=math.inf),  # lithium-metal *powder*
    Material("Li2CO3", 2.11, 60.0, 0.3, None, 200.0, 1e-8,
             f"{_S1}: 2.11; {_S6}: brittle, fracture strength 200 MPa, E 50–70 GPa; {_S5}: ~1e-8 S/m; strength "
             "scatter: Weibull (weakest-link) statistics of brittle solids (Weibull, J. Appl. Mech. 18 (1951) 293), "
             "modulus m = 5, the low end of the 5–15 of technical ceramics and brittle films (Quinn & Quinn, "
             "Dent. Mater. 26 (2010) 135); no measured m of Li2CO3 passivation films was found",
             weibull_modulus=5.0),
    Material("LLZO", 5.1, 150.0, 0.26, None, None, 1e-8, f"{_S1}: 5.1"),
    # PAN-based standard-modulus fibre (gas-diffusion layers, fibre mats); axial values
    Material("carbon_fiber", 1.76, 230.0, 0.2, None, 3530.0, 5.9e4,
             "Toray T300 data sheet: 1.76 g/cm³, tensile modulus 230 GPa, strength 3530 MPa, "
             "resistivity 1.7e-3 Ω·cm (5.9e4 S/m)"),
    Material("electrolyte", None, 0.0, 0.0, None, None, 0.0, "pore space: no stiffness, no electronic conduction"),
    # Contact interphase of NCM particles (mechanics/_contacts.py): the one-voxel layer on each side of a
    # particle–particle / particle–collector face. A "crushable" layer: compliant (the contact flattens
    # its asperities and the porous particle rim) and yielding in shear (sliding), no tension.
    # Normal stiffness (SCIENCE notes, issue 16): a property of the contact, per unit contact area, k_n (GPa/µm).
    # The interphase voxels (one each side of the face, edge h along the normal) get the modulus E_c = 2 h k_n,
    # so the contact is equally stiff at every voxel size (stop 21 and before: a fixed E_c = 0.5 GPa, a spring
    # E_c/(2h) of 0.125 GPa/µm at 2 µm voxels but 0.25 at 1 µm and 0.28 at the demo's 0.9 µm). k_n = 0.125
    # GPa/µm keeps the value calibrated at 2 µm. No published value of it for NCM was found (issue 16, stops
    # 21–22); what was found brackets it (citations in the source text):
    # * a compliant layer of modulus E and thickness t is a spring E/t per area: the binder polymer PVDF,
    #   E 1–3 GPa (SCIENCE.md §6), or electrode-level coating moduli of the order of 0.1 GPa (indentation of
    #   hard-carbon/CMC coatings: 0.079–0.113 GPa for 1–4 % binder, Sawhney et al. 2024), over a CBD bridge or
    #   rough particle rim of ~1–4 µm: ~0.03–3 GPa/µm (own estimate; no measured CBD modulus was found);
    # * the elastic Hertz contact of two NCM622 secondary particles (R = 7 µm, E = 20 GPa, ν = 0.3, contact
    #   radius a ≈ 1.3 µm, the generated cathode's mean contact area 5.3 µm²) has a normal stiffness per
    #   unit area 2E*/(πa) ≈ 5.5 GPa/µm (own estimate): k_n stands for a contact ~40× more compliant than
    #   smooth elastic spheres — the rough, porous rim of a secondary particle (primary crystallites) and the
    #   CBD bridge, which is what makes it a model choice;
    # * DEM calendering models of NMC cathodes calibrate their contact/bond stiffness against indentation
    #   of electrodes (Sangrós Giménez et al. 2019; Ngandjong et al. 2021; Lippke et al., NMC-622): their
    #   parameter values were not readable in the sources available to this search.
    # Sensitivity of the generated NCM622 cathode (2 µm voxels, 32 µm window, 4 steps, seeds 1–3 mean, stop 20's
    # code, bench_calender_physics.py --quick --part cathode --runs 16x4 --seeds 1,2,3 --no-pores, then
    # --contact-e E; now --contact-kn E/4) at 2.6/3.0/3.4/3.8 g/cm³, roll pressure (MPa), crackable > 100 MPa (%):
    #   k_n 0.0625 GPa/µm: 10.0/25.6/40.4/52.7 MPa, 13.6/39.2/58.4/64.2 % (below the band at 3.8, flattening)
    #   k_n 0.125 GPa/µm:  10.5/32.8/54.6/81.6 MPa, 13.7/47.1/68.7/79.6 % (+22.3/+21.8/+27.0: not steeper 2.6→3.4)
    #   k_n 0.25 GPa/µm:   12.9/38.7/78.0/120.9 MPa, 18.2/55.8/81.2/90.8 % (steepening, in the band)
    #   k_n 0.5 GPa/µm:    15.3/44.5/96.4/172.0 MPa, 20.3/60.2/84.8/94.5 % (steepening, in the band)
    # The pressure at 3.8 g/cm³ scales as ~k_n^0.55; the crackable volume at 3.0 g/cm³ grows 39 → 60 % from
    # 0.0625 to 0.5 GPa/µm. 0.125 GPa/µm is kept: no source fixes a different value.
    Material("NCM_contact", None, None, 0.3, 1.0, None, None,
             "compliant normal stiffness per contact area k_n = 0.125 GPa/µm (the interphase modulus E_c = 2 h k_n: "
             "0.5 GPa at 2 µm voxels, 0.225 GPa at 0.9 µm): calibrated (as E_c = 0.5 GPa at 2 µm voxels in the mechanics "
             "sensitivity study of issue 8, stops.md), not measured — bracketed, as a compliant layer of 1–4 µm (spring E/t per area: ~0.03–3 GPa/µm), by the "
             "binder polymer (PVDF E 1–3 GPa, SCIENCE.md §6) above and electrode-coating moduli of ~0.1 GPa below (Sawhney, Shittu, Morgan, Sackett & Baker, 'Mechanical effects of "
             "carboxymethylcellulose binder in hard carbon electrodes', arXiv:2403.11668 (2024): 0.079–0.113 GPa); the "
             "DEM calendering models of NMC cathodes that calibrate contact stiffness against electrode indentation "
             "(Sangrós Giménez et al., Powder Technol. 349 (2019) 1, and C. L. Sangrós Giménez, 'DEM-based modelling of"
             " the structural, mechanical and electrical behaviour of lithium-ion battery electrodes', PhD thesis, TU "
             "Braunschweig, ISBN 978-3-96548-127-5; Ngandjong, Lombardo, Primo, Chouchane, Shodiev, Arcelus & Franco, "
             "J. Power Sources 485 (2021) 229320; Lippke et al., 'Simulation of the calendering process of NMC-622 "
             "cathodes for lithium-ion batteries', Energy Technol., DOI 10.1002/ente.202200442; Srivastava, "
             "Bolintineanu, Lechman & Roberts, ACS Appl. Mater. Interfaces 12 (2020) 34919 for the binder adhesion) "
             "give no value for the contact's normal spring per unit area; shear: "
             "Coulomb friction on the contact plane (shear traction ≤ (1 MPa + √3 μ × normal pressure)/√3) "
             "with the particle–particle friction coefficient μ = 0.3 typical of DEM calendering models of NCM "
             "cathodes (Sangrós Giménez et "
             "al. 2019; Ngandjong et al. 2021 use 0.3–0.4); 1 MPa cohesion from the binder (assumption). "
             "Compaction cap: jamming at the random-loose-packing fraction of frictional spheres φ_j = 0.555 "
             "(Onoda & Liniger, Phys. Rev. Lett. 64 (1990) 2727; the DEM stage of issue 16 jams the generated "
             "cathode's NCM skeleton at 2.55 g/cm³, φ ≈ 0.54), then Heckel's compaction law "
             "ln(1/(1−φ)) = K P + A with K = 1/(3 σ_c) (Heckel, Trans. Metall. Soc. AIME 221 (1961) 671 and "
             "1001) and A at φ_j (densification by rearrangement, the Heckel intercept); σ_c = 125 MPa, the "
             f"middle of the 100–150 MPa yield/crushing range of NCM secondary particles ({_S6}). Below jamming "
             "the packing rearranges with its density linear in ln P (stage I of the compaction of granules: "
             "Frey & Halloran, J. Am. Ceram. Soc. 67 (1984) 199; Reed, Principles of Ceramic Processing 1995, "
             "ch. 20): P = P_j exp((φ − φ_j)/m); P_j = 10 MPa and m = 0.03 are calibrated, not measured: they "
             "put the generated 96:2:2 NCM622 cathode's roll pressure at 2.6–3.0 g/cm³ into the low end of "
             "the published calendering pressures (line loads of 100–2000 N/mm over nips of a few mm, "
             "Meyer et al., J. Mater. Process. Technol. 249 (2017) 172; Schreiner et al., Energy Technol. 7 "
             "(2019) 1900840). The CBD/binder bridging these particles (cracked-plane law) is plastic on the modified "
             "Cam-clay ellipse (Roscoe & Burland 1968) shifted into tension by a bond strength p_t as for bonded "
             "soils (Gens & Nova 1993), q²/M² + (p − p_c)(p + p_t) ≤ 0: p_c the contacts' compaction cap, M = "
             "6 sin φ/(3 − sin φ) = 0.63 from the friction μ = tan φ = 0.3, p_t = 400 MPa an assumption, no CBD "
             "value being published: it sets the deviator a crushing bridge keeps in uniaxial flow, ~0.12 p_t "
             "(p_t 20 MPa made the CBD near void, von Mises 3 MPa; stop 32)",
             friction_coefficient=0.3, jamming_fraction=0.555, crush_strength_mpa=125.0,
             rearrangement_pressure_mpa=10.0, rearrangement_slope=0.03, normal_stiffness_gpa_um=0.125,
             bridge_bond_mpa=400.0),
)}


def is_particulate(material: str | None) -> bool:
    """Whether a phase of this material comes as particles (unknown or no material: no)."""
    return bool(material in MATERIALS and MATERIALS[material].particulate)


def parse_conductivities(text: str | None) -> dict[str, float]:
    """``"fiber=5e4,pore=0"`` → ``{"fiber": 50000.0, "pore": 0.0}`` (S/m per phase name)."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in (text or "").split(",")):
        if not item:
            continue
        name, sep, value = (t.strip() for t in item.partition("="))
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name or not math.isfinite(number) or number < 0:
            raise InputError(f"cannot read conductivity {item!r}; give PHASE=S_PER_M pairs ≥ 0, e.g. "
                             "--conductivity fiber=5e4,pore=0")
        out[name] = number
    return out


def load_phase_materials(path: str | os.PathLike) -> tuple[dict[str, str | None], dict[str, float]]:
    """Read a materials TOML: one table per phase, with an optional known ``material`` and/or a
    ``conductivity_s_m`` (S/m) that overrides the material's::

        [fiber]
        material = "carbon_fiber"
        conductivity_s_m = 5e4

    Returns ``({phase: material}, {phase: conductivity S/m})``.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read materials file {path} ({exc.strerror}); check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"materials file {path.name} is not valid TOML ({exc})") from None
    materials: dict[str, str | None] = {}
    conductivities: dict[str, float] = {}
    for phase, table in doc.items():
        unknown = set(table) - {"material", "conductivity_s_m"} if isinstance(table, dict) else {"(not a table)"}
        if unknown:
            raise InputError(f"materials file {path.name}: [{phase}] has {sorted(unknown)}; each phase table "
                             "takes material = \"NAME\" and/or conductivity_s_m = NUMBER")
        if "material" in table:
            materials[phase] = str(table["material"])
        if "conductivity_s_m" in table:
            conductivities.update(parse_conductivities(f"{phase}={table['conductivity_s_m']}"))
    return materials, conductivities


def phase_conductivities(materials: Mapping[str, str | None], conductivities: Mapping[str, float] | None = None,
                         *, given: Mapping[str, float] | None = None) -> dict[str, float]:
    """Conductivity overrides (S/m per phase): a named known material's value, then a file's
    ``conductivities``, then ``given`` (e.g. the command line) — later ones win."""
    out = {phase: float(MATERIALS[m].conductivity_s_m) for phase, m in materials.items()
           if m in MATERIALS and MATERIALS[m].conductivity_s_m is not None}
    out.update(conductivities or {})
    out.update(given or {})
    return out


def get_material(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise InputError(
            f"no material {name!r} in twinlab.materials; known: {sorted(MATERIALS)}. "
            "Pass its properties explicitly (a twinlab.materials.Material)"
        ) from None
