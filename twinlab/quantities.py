"""Named quantities with units, read from the results a twin stores.

One catalogue (:data:`QUANTITIES`) names every number a person reads in a report, a study table
or a design criterion: its key, label, unit and where it comes from. :func:`twin_quantities`
reads them from a twin's stored results (nothing is recomputed), so a report headline, a study
row and the single analysis run on that twin always agree. :func:`summarize` is the raw flat
key list (every stored number) that reports keep in their appendix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .twin import Twin


@dataclass(frozen=True)
class Quantity:
    """A reported number: ``key`` (column / criterion name), ``label`` for people, ``unit``
    ("1" for a dimensionless number), and one sentence saying what it is and where it comes from."""

    key: str
    label: str
    unit: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "description": self.description}


def _q(key: str, label: str, unit: str, description: str) -> Quantity:
    return Quantity(key, label, unit, description)


#: Quantities of one twin (or one calendered member), in the order a headline lists them.
#: Per-threshold and per-C-rate quantities (crackable volume, L_d, Q_eff) are made by
#: :func:`crackable_quantity` and the study's electrochemistry (``twinlab.study``).
QUANTITIES: dict[str, Quantity] = {q.key: q for q in (
    _q("density", "electrode density", "g/cm³", "coating density ρ0·h0/h of the calendered member (calender)"),
    _q("ratio", "calendering ratio", "1", "thickness reduction 1 − h/h0 (calender)"),
    _q("thickness", "twin coating thickness", "µm", "coating thickness of the twin (calender)"),
    _q("design_thickness", "electrode thickness", "µm",
       "coating thickness of the real electrode at this density: design loading / density"),
    _q("porosity", "porosity", "1", "pore fraction of the coating (calender; morphology for an uncalendered twin)"),
    _q("tortuosity_factor", "tortuosity factor τ²", "1",
       "τ² in D_eff = ε D/τ², through the thickness, Dirichlet faces normal to it (transport)"),
    _q("tortuosity_tau", "tortuosity τ", "1", "τ = √τ² (transport)"),
    _q("d_eff_ratio", "D_eff/D0 = ε/τ²", "1", "effective over bulk electrolyte diffusivity (transport)"),
    _q("electronic_conductivity", "effective electronic conductivity", "S/m",
       "Ohm's law through the thickness, ΔV = 1 V, each solid phase with its own conductivity (transport)"),
    _q("specific_surface", "specific surface of active material", "m²/m³",
       "active–electrolyte (AM–pore) interface area per volume (morphology)"),
    _q("contact_active_cbd", "active–CBD contact area", "m²/m³",
       "active–carbon-binder interface area per volume (morphology)"),
    _q("mean_coordination", "mean pore coordination", "1", "internal pores' mean neighbour count (network)"),
    _q("mean_pore_radius", "mean pore radius", "µm", "mean equivalent radius of the network's pores (network)"),
    _q("pore_unresolved_fraction", "pore space below the network's resolution", "1",
       "pore volume thinner than the watershed's smallest pore (2 voxels to solid), given to neighbouring pores: "
       "above ~0.5, pores merge as they thin and the network's pore count and mean radii follow the voxel size "
       "(network)"),
    _q("mean_pore_inscribed_radius", "mean inscribed pore radius", "µm",
       "mean radius of the largest sphere inscribed in each of the network's pores (network)"),
    _q("pore_inscribed_radius_volume_mean", "volume-mean inscribed pore radius", "µm",
       "inscribed radius of the network's pores weighted by pore volume, Σ V r / Σ V (network)"),
    _q("connectivity_band_std", "connectivity band std", "1",
       "std of the connectivity-matrix band PDF, projections normalised to (−1, 1) (network)"),
    _q("crack_volume", "crack volume", "%", "void inside particle envelopes, % of particle volume (cracks)"),
    _q("von_mises_active_mean", "mean von Mises stress in active material", "MPa", "(calender)"),
    _q("activation", "activation (collector-connected fraction)", "1",
       "active volume in clusters touching the collector / all active volume (conductive)"),
    _q("largest_cluster_fraction", "largest conductive cluster", "1",
       "active volume of the largest cluster / all active volume (conductive)"),
    _q("shell_intact_fraction", "intact shell fraction", "1", "Li2CO3 shell voxels not broken (calender, LMP)"),
    _q("contact_collector_rel", "Li–collector contact through broken shell", "1",
       "exposed / all particle faces at the collector (calender, LMP)"),
    _q("contact_electrolyte_rel", "Li–electrolyte contact through broken shell", "1",
       "exposed / all particle faces at the pore space (calender, LMP)"),
)}


def crackable_quantity(strength_mpa: float) -> Quantity:
    """Crackable volume above one von Mises strength (key ``crackable_<strength>_mpa``)."""
    s = f"{float(strength_mpa):g}"
    return Quantity(f"crackable_{s}_mpa", f"crackable volume > {s} MPa", "%",
                    f"% of active-material volume whose von Mises stress exceeds {s} MPa (calender)")


def twin_quantities(twin: Twin) -> dict[str, Any]:
    """Every catalogue quantity that ``twin``'s stored results hold (absent ones are left out).

    Calendered members take porosity, density and ratio from their ``calender`` result; an
    uncalendered twin takes its porosity from ``morphology``.
    """
    results = {name: twin.load_result(name) for name in twin.result_names}
    out: dict[str, Any] = {}
    for key, reader in _READERS:
        try:
            value = reader(results)
        except (KeyError, TypeError, IndexError, ValueError):
            continue
        if value is not None:
            out.update(value if isinstance(value, dict) else {key: value})
    design = twin.design or {}
    if design.get("thickness_um") is not None and design.get("loading_mg_cm2") is not None:
        out["design_thickness"] = float(design["thickness_um"])
    return out


def quantity(key: str) -> Quantity:
    """The catalogue entry of ``key``, including per-strength crackable volumes."""
    if key in QUANTITIES:
        return QUANTITIES[key]
    if key.startswith("crackable_") and key.endswith("_mpa"):
        return crackable_quantity(float(key[len("crackable_"):-len("_mpa")]))
    raise KeyError(key)


def summarize(twin: Twin) -> dict[str, Any]:
    """A short, flat table of headline numbers from the results stored in a twin: numbers and
    short strings of each result and of its nested tables (``transport.tortuosity.tortuosity_factor``), no arrays."""
    out: dict[str, Any] = {"shape": list(twin.shape), "voxel_size_um": list(twin.voxel_size.as_tuple())}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, dict) and depth < 2:
            for key, item in value.items():
                walk(f"{prefix}.{key}", item, depth + 1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = value
        elif isinstance(value, str) and len(value) <= 80:
            out[prefix] = value

    for name in twin.result_names:
        walk(name, twin.load_result(name), 0)
    return out


# ====================================================================================== readers
def _num(value: Any) -> float:
    return float(value)  # stored inf/nan come back as strings; float() reads them


def _pair(contacts: dict[str, float], a: str, b: str) -> float:
    return _num(contacts[f"{a}|{b}"] if f"{a}|{b}" in contacts else contacts[f"{b}|{a}"])


def _active_name(fractions: dict[str, float]) -> str:
    return "active" if "active" in fractions else "lithium"


def _porosity(r: dict[str, Any]) -> float | None:
    if "calender" in r:
        return _num(r["calender"]["porosity"])
    return _num(r["morphology"]["fractions"]["porosity"])


def _crackable(r: dict[str, Any]) -> dict[str, float] | None:
    cal = r["calender"]
    if cal.get("von_mises_active_mean_mpa") is None:  # no active material: nothing can crack
        return None
    return {crackable_quantity(float(t)).key: _num(v) for t, v in cal["crackable_volume_pct"].items()}


def _tort(r: dict[str, Any], key: str) -> float:
    t = r["transport"]["tortuosity"]
    return _num(t[key])


def _morph(r: dict[str, Any]) -> dict[str, float]:
    m = r["morphology"]
    active = _active_name(m["fractions"]["fractions"])
    contacts = m["interfaces"]["specific_contact_m2_m3"]
    out = {"specific_surface": _pair(contacts, active, "pore")}
    if "cbd" in m["fractions"]["fractions"] and m["fractions"]["fractions"]["cbd"] > 0:
        out["contact_active_cbd"] = _pair(contacts, active, "cbd")
    return out


def _connectivity_std(r: dict[str, Any]) -> float | None:
    conn = r["network"]["connectivity"]
    return _num(conn["std"]) if "std" in conn else None


_READERS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("density", lambda r: _num(r["calender"]["density_g_cm3"])),
    ("ratio", lambda r: _num(r["calender"]["ratio"])),
    ("thickness", lambda r: _num(r["calender"]["thickness_um"])),
    ("porosity", _porosity),
    ("tortuosity_factor", lambda r: _tort(r, "tortuosity_factor")),
    ("tortuosity_tau", lambda r: _tort(r, "tortuosity_tau")),
    ("d_eff_ratio", lambda r: _tort(r, "d_eff_ratio")),
    ("electronic_conductivity", lambda r: _num(r["transport"]["conductivity"]["effective_conductivity_s_m"])),
    ("morphology", _morph),
    ("mean_coordination", lambda r: _num(r["network"]["metrics"]["mean_coordination"])),
    ("mean_pore_radius", lambda r: _num(r["network"]["metrics"]["mean_equivalent_radius_um"])),
    ("pore_unresolved_fraction", lambda r: _num(r["network"]["metrics"]["unresolved_pore_fraction"])),
    ("mean_pore_inscribed_radius", lambda r: _num(r["network"]["metrics"]["mean_inscribed_radius_um"])),
    ("pore_inscribed_radius_volume_mean",
     lambda r: _num(r["network"]["metrics"]["volume_mean_inscribed_radius_um"])),
    ("connectivity_band_std", _connectivity_std),
    ("crack_volume", lambda r: _num(r["cracks"]["crack_volume_percent"])),
    ("von_mises_active_mean", lambda r: r["calender"]["von_mises_active_mean_mpa"]),
    ("crackable", _crackable),
    ("activation", lambda r: _num(r["conductive"]["activation"])),
    ("largest_cluster_fraction", lambda r: _num(r["conductive"]["largest_cluster_fraction"])),
    ("shell_intact_fraction", lambda r: r["calender"]["shell_intact_fraction"]),
    ("contact_collector_rel", lambda r: r["calender"]["contact_collector_rel"]),
    ("contact_electrolyte_rel", lambda r: r["calender"]["contact_electrolyte_rel"]),
)

__all__ = ["QUANTITIES", "Quantity", "crackable_quantity", "quantity", "summarize", "twin_quantities"]
