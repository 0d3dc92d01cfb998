"""Material property library, each value with its source.

Units: density g cm⁻³, Young's modulus GPa, yield / fracture strength MPa, conductivity S m⁻¹.
``None`` means "not applicable" (e.g. no yield for a brittle or elastic material).
Values are the typical ones of SCIENCE.md (sections 1, 5, 6); override per call where a
user has measured their own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

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
    friction_coefficient: float | None = None  # contact laws: Drucker–Prager slope (Coulomb friction)

    def with_(self, **changes: Any) -> "Material":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_S1 = "SCIENCE.md §1 (typical true densities)"
_S5 = "SCIENCE.md §5 (typical conductivities)"
_S6 = "SCIENCE.md §6 (typical mechanical properties)"

MATERIALS: dict[str, Material] = {m.name: m for m in (
    Material("NCM622", 4.75, 20.0, 0.3, None, None, 5e-3,
             f"{_S1}: 4.7–4.8; {_S6}: secondary particle E 10–150 GPa depending on its porosity, ν≈0.3 — 20 GPa: "
             "a porous secondary particle (the 10–30 GPa the mechanics sensitivity study of issue 8 recommends; "
             f"dense single crystals are stiffer); {_S5}: 1e-3–1e-2 S/m"),
    Material("NCM811", 4.75, 20.0, 0.3, None, None, 5e-3, f"{_S1}: 4.7–4.8; as NCM622 otherwise"),
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
             f"{_S1}: 0.534; {_S6}: perfectly plastic, elastic limit ~1 MPa, E≈5 GPa, ν 0.36–0.42; {_S5}: 1.1e7 S/m"),
    Material("Li2CO3", 2.11, 60.0, 0.3, None, 200.0, 1e-8,
             f"{_S1}: 2.11; {_S6}: brittle, fracture strength 200 MPa, E 50–70 GPa; {_S5}: ~1e-8 S/m"),
    Material("LLZO", 5.1, 150.0, 0.26, None, None, 1e-8, f"{_S1}: 5.1"),
    Material("electrolyte", None, 0.0, 0.0, None, None, 0.0, "pore space: no stiffness, no electronic conduction"),
    # Contact interphase of NCM particles (mechanics/_contacts.py): the one-voxel layer on each side of a
    # particle–particle / particle–collector face. A "crushable" layer: compliant (the contact flattens
    # its asperities and the porous particle rim) and yielding in shear (sliding), no tension.
    Material("NCM_contact", None, 0.5, 0.3, 1.0, None, None,
             "compliant normal E ≈ 0.5 GPa from the mechanics sensitivity study (issue 8, stops.md); shear: "
             "frictional (Drucker–Prager, von Mises limit 1 MPa + √3 μ × pressure) with the particle–particle "
             "friction coefficient μ = 0.3 typical of DEM calendering models of NCM cathodes (Sangrós Giménez et "
             "al. 2019; Ngandjong et al. 2021 use 0.3–0.4); 1 MPa cohesion from the binder (assumption)",
             friction_coefficient=0.3),
)}


def get_material(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise InputError(
            f"no material {name!r} in twinlab.materials; known: {sorted(MATERIALS)}. "
            "Pass its properties explicitly (a twinlab.materials.Material)"
        ) from None
