"""Electrode design → theoretical numbers (SCIENCE.md §1).

An :class:`ElectrodeDesign` is the recipe of an electrode coating: its components (material,
weight percent, the phase each one shows up as in a segmented twin) and its geometry (areal
loading, thickness, density or porosity). From it twinlab derives the theoretical solid density,
porosity and per-phase volume fractions that a segmented twin is checked against, and the
designs reached by calendering.

Conventions
-----------
- Units: loading mg cm⁻², thickness µm, densities g cm⁻³, fractions in [0, 1], wt% in [0, 100].
- Solid density of the mixture ``1/ρ_s = Σ w_i/ρ_i`` (w_i mass fractions).
- Porosity ``ε = 1 − ρ_el/ρ_s``; electrode density ``ρ_el = loading/thickness``.
- Volume fraction of component i: ``φ_i = (1 − ε)(w_i/ρ_i) / Σ_j (w_j/ρ_j)``; components that
  map to the same phase are summed. All fractions are of the coating only (the current collector
  is not part of the volume).
- Calendering at constant loading: ratio ``r = 1 − h/h0``, so ``ρ = ρ0/(1 − r)``.

Example
-------
>>> d = ncm622_cathode(density_g_cm3=3.6)
>>> round(d.thickness_um, 3)
55.0
>>> round(sum(d.volume_fractions().values()), 12)
1.0
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._results import Result, to_jsonable
from .errors import InputError, ReadError
from .materials import get_material

__all__ = [
    "Component", "ElectrodeDesign", "load_design", "ncm622_cathode", "lmp_anode", "dry_film_cathode",
    "shell_mass_fraction",
    "CBD_PHASE", "PORE_PHASE", "CBD_REPRESENTATIONS", "DEFAULT_CBD_NANOPOROSITY", "check_cbd_as",
]

#: Phase name whose solid volume ``cbd_as="domain"`` expands to the nanoporous domain.
CBD_PHASE = "cbd"
#: Phase name of the pore space in the returned fractions.
PORE_PHASE = "pore"

#: Relative tolerance when loading, thickness and density are all given (rounded published
#: numbers such as 19.8 mg cm⁻², 85 µm, 2.3 g cm⁻³ agree to ~1.3 %).
GEOMETRY_RTOL = 0.02
_WT_SUM_TOL = 0.01

#: What a twin's "cbd" voxels stand for: the solid carbon + binder ("solid", as generators draw it by
#: default) or the nanoporous carbon-binder domain a FIB-SEM segmentation sees ("domain").
CBD_REPRESENTATIONS = ("solid", "domain")
#: Internal porosity of the carbon-binder domain when a design does not state it: about half solid.
DEFAULT_CBD_NANOPOROSITY = 0.5


def check_cbd_as(cbd_as: str) -> str:
    """``cbd_as`` if it is one of :data:`CBD_REPRESENTATIONS`, else an InputError saying so."""
    if cbd_as not in CBD_REPRESENTATIONS:
        raise InputError(f"cbd_as must be 'solid' or 'domain', got {cbd_as!r}")
    return cbd_as


@dataclasses.dataclass(frozen=True)
class Component:
    """One ingredient of an electrode coating.

    Parameters
    ----------
    material : str
        Name of the material (a key of :mod:`twinlab.materials` when ``density_g_cm3`` is omitted).
    wt_percent : float
        Mass percent of the dry coating, 0–100.
    phase : str
        Phase name it appears as in a segmented twin (e.g. "active", "cbd", "lithium").
    density_g_cm3 : float, optional
        True (skeletal) density; defaults to the material library's value.
    film_on, film_nm : str and float, optional
        The component is a surface film of ``film_nm`` nanometres on the particles of phase
        ``film_on`` (e.g. the Li2CO3 passivation of lithium powder). A film thinner than a voxel
        cannot be measured by counting voxels: the design check compares it together with its host.
    """

    material: str
    wt_percent: float
    phase: str
    density_g_cm3: float | None = None
    film_on: str | None = None
    film_nm: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.material, str) or not self.material:
            raise InputError(f"component material must be a non-empty name, got {self.material!r}")
        if not isinstance(self.phase, str) or not self.phase:
            raise InputError(f"component {self.material!r} needs a phase name (e.g. 'active', 'cbd')")
        wt = _finite(self.wt_percent, f"wt_percent of {self.material!r}")
        if wt < 0 or wt > 100:
            raise InputError(f"wt_percent of {self.material!r} is {wt}; it must lie in [0, 100]")
        object.__setattr__(self, "wt_percent", wt)
        density = self.density_g_cm3
        if density is None:
            density = get_material(self.material).density_g_cm3
            if density is None:
                raise InputError(f"material {self.material!r} has no density in twinlab.materials; "
                                 "pass density_g_cm3 explicitly")
        density = _finite(density, f"density of {self.material!r}")
        if density <= 0:
            raise InputError(f"density of {self.material!r} is {density} g/cm³; it must be positive")
        object.__setattr__(self, "density_g_cm3", density)
        if (self.film_on is None) != (self.film_nm is None):
            raise InputError(f"component {self.material!r}: give film_on (the host phase) and film_nm (the film "
                             "thickness) together, or neither")
        if self.film_on is not None:
            if not isinstance(self.film_on, str) or not self.film_on or self.film_on == self.phase:
                raise InputError(f"component {self.material!r}: film_on must name another phase than its own "
                                 f"({self.phase!r}), got {self.film_on!r}")
            film = _finite(self.film_nm, f"film_nm of {self.material!r}")
            if film <= 0:
                raise InputError(f"film_nm of {self.material!r} is {film}; a film thickness must be positive (nm)")
            object.__setattr__(self, "film_nm", film)

    def to_dict(self) -> dict[str, Any]:
        out = {"material": self.material, "wt_percent": self.wt_percent, "phase": self.phase,
               "density_g_cm3": self.density_g_cm3}
        if self.film_on is not None:
            out.update(film_on=self.film_on, film_nm=self.film_nm)
        return out


@dataclasses.dataclass(frozen=True, init=False)
class ElectrodeDesign(Result):
    """An electrode coating's composition and geometry, with its theoretical numbers.

    Give the composition and enough geometry to fix the porosity: any two of
    ``loading_mg_cm2``, ``thickness_um``, ``density_g_cm3`` (the third is derived), or
    ``density_g_cm3`` alone, or ``porosity`` (alone or with loading or thickness). After
    construction every derivable field is filled in (``thickness_um``/``loading_mg_cm2`` stay
    ``None`` only when nothing fixes them).

    Parameters
    ----------
    components : sequence of Component (or dicts with the same keys)
        Their ``wt_percent`` must sum to 100 (±0.01).
    loading_mg_cm2 : float, optional
        Areal mass loading of the dry coating, mg cm⁻².
    thickness_um : float, optional
        Coating thickness (without collector), µm.
    density_g_cm3 : float, optional
        Electrode (coating) density ρ_el, g cm⁻³.
    porosity : float, optional
        ε in (0, 1); if given with a density they must agree.
    collector_material, collector_thickness_um
        The current collector foil (not part of the coating's volume fractions).
    cbd_nanoporosity : float
        Internal porosity of the carbon-binder domain in [0, 1) used by
        ``volume_fractions(cbd_as="domain")`` (default 0.5: the CBD domain is about half solid).
    name : str
        A label for reports.
    """

    components: tuple[Component, ...]
    loading_mg_cm2: float | None = None
    thickness_um: float | None = None
    density_g_cm3: float | None = None
    porosity: float | None = None
    collector_material: str = "Al"
    collector_thickness_um: float = 15.0
    cbd_nanoporosity: float = DEFAULT_CBD_NANOPOROSITY
    name: str = ""

    def __init__(self, components: Iterable[Component | Mapping[str, Any]], *,
                 loading_mg_cm2: float | None = None, thickness_um: float | None = None,
                 density_g_cm3: float | None = None, porosity: float | None = None,
                 collector_material: str = "Al", collector_thickness_um: float = 15.0,
                 cbd_nanoporosity: float = DEFAULT_CBD_NANOPOROSITY, name: str = "") -> None:
        comps = tuple(c if isinstance(c, Component) else Component(**dict(c)) for c in components)
        if not comps:
            raise InputError("an electrode design needs at least one component")
        total = sum(c.wt_percent for c in comps)
        if abs(total - 100.0) > _WT_SUM_TOL:
            listing = ", ".join(f"{c.material} {c.wt_percent:g}" for c in comps)
            raise InputError(f"component wt% sum to {total:g}, not 100 ({listing}); fix the composition "
                             "so the weight percents add up to 100")
        hosts = {c.phase for c in comps}
        for c in comps:
            if c.film_on is not None and c.film_on not in hosts:
                raise InputError(f"component {c.material!r} is a film on phase {c.film_on!r}, which no component "
                                 f"has (phases: {sorted(hosts)}); name the host particles' phase")
        nano = _finite(cbd_nanoporosity, "cbd_nanoporosity")
        if not 0 <= nano < 1:
            raise InputError(f"cbd_nanoporosity must lie in [0, 1), got {nano}")
        coll_h = _finite(collector_thickness_um, "collector_thickness_um")
        if coll_h < 0:
            raise InputError(f"collector_thickness_um must be >= 0 µm, got {coll_h}")
        set_ = object.__setattr__
        set_(self, "components", comps)
        set_(self, "collector_material", str(collector_material))
        set_(self, "collector_thickness_um", coll_h)
        set_(self, "cbd_nanoporosity", nano)
        set_(self, "name", str(name))
        loading, thickness, density, eps = _resolve_geometry(
            _solid_density(comps), loading_mg_cm2, thickness_um, density_g_cm3, porosity)
        set_(self, "loading_mg_cm2", loading)
        set_(self, "thickness_um", thickness)
        set_(self, "density_g_cm3", density)
        set_(self, "porosity", eps)

    # -- theoretical numbers ----------------------------------------------------------------
    @property
    def solid_density_g_cm3(self) -> float:
        """Skeletal density of the solid mixture, ``1/ρ_s = Σ w_i/ρ_i`` (g cm⁻³)."""
        return _solid_density(self.components)

    @property
    def phases(self) -> list[str]:
        """Solid phase names in order of first appearance (without "pore")."""
        return list(dict.fromkeys(c.phase for c in self.components))

    def component_volume_fractions(self) -> dict[str, float]:
        """Volume fraction of each component (by material name) in the coating."""
        specific = {c.material: 0.0 for c in self.components}
        for c in self.components:
            specific[c.material] += c.wt_percent / c.density_g_cm3
        total = sum(specific.values())
        return {k: (1.0 - self.porosity) * v / total for k, v in specific.items()}

    def volume_fractions(self, cbd_as: str = "solid") -> dict[str, float]:
        """Theoretical volume fraction of each phase of the coating, including "pore".

        ``φ_i = (1 − ε)(w_i/ρ_i)/Σ_j(w_j/ρ_j)``, summed over components of the same phase.

        Parameters
        ----------
        cbd_as : {"solid", "domain"}
            "solid": the "cbd" phase is the solid carbon + binder volume (what the weights give).
            "domain": the "cbd" phase is the nanoporous domain a segmentation sees,
            ``φ_cbd,domain = φ_cbd,solid / (1 − cbd_nanoporosity)``; the pore fraction shrinks by
            the same amount (the nanopores are counted inside the domain). Raises if the pores
            cannot hold the expanded domain.

        Returns
        -------
        dict
            phase name → fraction; sums to 1.
        """
        fractions: dict[str, float] = {}
        for material, phi in self.component_volume_fractions().items():
            phase = next(c.phase for c in self.components if c.material == material)
            fractions[phase] = fractions.get(phase, 0.0) + phi
        pore = self.porosity
        if cbd_as == "domain":
            if CBD_PHASE in fractions and self.cbd_nanoporosity > 0:
                solid = fractions[CBD_PHASE]
                domain = solid / (1.0 - self.cbd_nanoporosity)
                pore -= domain - solid
                if pore < 0:
                    raise InputError(
                        f"the CBD domain ({domain:.3f}) with nanoporosity {self.cbd_nanoporosity} does not fit "
                        f"in the pore space (porosity {self.porosity:.3f}); lower cbd_nanoporosity")
                fractions[CBD_PHASE] = domain
        else:
            check_cbd_as(cbd_as)
        fractions[PORE_PHASE] = pore
        return fractions

    def phase_wt_percent(self) -> dict[str, float]:
        """Weight percent of each phase (components of the same phase summed)."""
        out: dict[str, float] = {}
        for c in self.components:
            out[c.phase] = out.get(c.phase, 0.0) + c.wt_percent
        return out

    # -- calendering / new geometries -------------------------------------------------------
    def at_density(self, density_g_cm3: float) -> "ElectrodeDesign":
        """The same coating at another electrode density (constant loading; thickness follows)."""
        return self._regeometry(density_g_cm3=density_g_cm3, loading_mg_cm2=self.loading_mg_cm2)

    def at_porosity(self, porosity: float) -> "ElectrodeDesign":
        """The same coating at another porosity (constant loading; thickness follows)."""
        return self._regeometry(porosity=porosity, loading_mg_cm2=self.loading_mg_cm2)

    def at_thickness(self, thickness_um: float) -> "ElectrodeDesign":
        """The same coating calendered (or expanded) to ``thickness_um`` at constant loading."""
        if self.loading_mg_cm2 is None:
            raise InputError("at_thickness needs the design's loading; give loading_mg_cm2 (or thickness_um)")
        return self._regeometry(thickness_um=thickness_um, loading_mg_cm2=self.loading_mg_cm2)

    def at_ratio(self, ratio: float) -> "ElectrodeDesign":
        """Calender by ratio ``r = 1 − h/h0`` at constant loading, taking this design as h0.

        ``ρ = ρ0/(1 − r)``; ``r`` in [0, 1). Raises if the porosity would drop to zero or below.
        """
        r = _finite(ratio, "calendering ratio")
        if not 0 <= r < 1:
            raise InputError(f"calendering ratio must lie in [0, 1) (thickness reduction 1 − h/h0), got {r}")
        thickness = None if self.thickness_um is None else self.thickness_um * (1.0 - r)
        return self._regeometry(density_g_cm3=self.density_g_cm3 / (1.0 - r), thickness_um=thickness)

    def calendering_ratio_to(self, density_g_cm3: float) -> float:
        """Calendering ratio ``1 − h/h0 = 1 − ρ0/ρ`` that takes this design to ``density_g_cm3``."""
        target = _finite(density_g_cm3, "target density")
        if target < self.density_g_cm3:
            raise InputError(f"target density {target} g/cm³ is below the design's {self.density_g_cm3:.4g}; "
                             "calendering only densifies")
        return 1.0 - self.density_g_cm3 / target

    def _regeometry(self, **geometry: Any) -> "ElectrodeDesign":
        return ElectrodeDesign(self.components, collector_material=self.collector_material,
                               collector_thickness_um=self.collector_thickness_um,
                               cbd_nanoporosity=self.cbd_nanoporosity, name=self.name, **geometry)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON form: the fields plus (read-only, ignored by from_dict) the derived numbers."""
        out = {
            "name": self.name,
            "components": [c.to_dict() for c in self.components],
            "loading_mg_cm2": self.loading_mg_cm2, "thickness_um": self.thickness_um,
            "density_g_cm3": self.density_g_cm3, "porosity": self.porosity,
            "collector_material": self.collector_material, "collector_thickness_um": self.collector_thickness_um,
            "cbd_nanoporosity": self.cbd_nanoporosity,
            "derived": {"solid_density_g_cm3": self.solid_density_g_cm3,
                        "volume_fractions": self.volume_fractions("solid")},
        }
        return to_jsonable(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ElectrodeDesign":
        """Inverse of :meth:`to_dict` (also reads the TOML layout of :func:`load_design`)."""
        data = dict(data)
        if "design" in data and isinstance(data["design"], Mapping) and "components" not in data:
            data = dict(data["design"])
        data.pop("derived", None)
        known = {"components", "loading_mg_cm2", "thickness_um", "density_g_cm3", "porosity",
                 "collector_material", "collector_thickness_um", "cbd_nanoporosity", "name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown design keys {unknown}; allowed: {sorted(known)}")
        if "components" not in data:
            raise InputError("a design needs a 'components' list ([[components]] tables in TOML) "
                             "with material, wt_percent, phase")
        comps = []
        for item in data.pop("components"):
            try:
                comps.append(Component(**dict(item)))
            except TypeError as exc:
                raise InputError(f"bad component {item!r} ({exc}); each needs material, wt_percent, phase "
                                 "and optionally density_g_cm3") from None
        return cls(comps, **data)


def load_design(path: str | Path) -> ElectrodeDesign:
    """Read an :class:`ElectrodeDesign` from a TOML file.

    Layout (top level or under a ``[design]`` table)::

        name = "NCM622 cathode"
        loading_mg_cm2 = 19.8
        density_g_cm3 = 2.3
        collector_material = "Al"
        collector_thickness_um = 15
        [[components]]
        material = "NCM622"
        wt_percent = 96
        phase = "active"
        [[components]]
        material = "carbon_black"
        wt_percent = 2
        phase = "cbd"
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"design file {str(p)!r} does not exist; give the path of a .toml design")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ReadError(f"cannot parse design file {str(p)!r} as TOML: {exc}") from None
    return ElectrodeDesign.from_dict(data)


# -- presets (SCIENCE.md §1) ----------------------------------------------------------------------
def ncm622_cathode(density_g_cm3: float = 2.3) -> ElectrodeDesign:
    """NCM622 : Super P : PVDF = 96 : 2 : 2 wt%, 19.8 mg cm⁻², on 15 µm Al.

    Loading and density fix the thickness: 86.1 µm at 2.3 g cm⁻³ (the publication's rounded
    "85 µm"; 19.8/85 = 2.33 g cm⁻³) and exactly 55 µm at 3.6 g cm⁻³. Carbon black and PVDF
    both map to the phase "cbd" (a segmentation cannot tell them apart).
    """
    comps = (Component("NCM622", 96.0, "active"), Component("carbon_black", 2.0, "cbd"),
             Component("PVDF", 2.0, "cbd"))
    return ElectrodeDesign(comps, loading_mg_cm2=19.8, density_g_cm3=density_g_cm3, collector_material="Al",
                           collector_thickness_um=15.0, name="NCM622 cathode")


def dry_film_cathode(density_g_cm3: float = 3.0, *, loading_mg_cm2: float = 50.0) -> ElectrodeDesign:
    """Dry-film (PTFE-fibrillated) thick cathode: NCM811 : carbon black : PTFE = 96 : 2 : 2 wt%.

    SCIENCE.md §1 names the ingredients and loadings up to ~50 mg cm⁻² but no recipe: the 96:2:2
    split, the 50 mg cm⁻² loading and the 3.0 g cm⁻³ density (→ 167 µm) are assumptions typical of
    dry-processed cathodes. Phases: NCM811 "active", carbon "cbd", PTFE "binder" (fibrils). Al 15 µm.
    """
    comps = (Component("NCM811", 96.0, "active"), Component("carbon_black", 2.0, "cbd"),
             Component("PTFE", 2.0, "binder"))
    return ElectrodeDesign(comps, loading_mg_cm2=loading_mg_cm2, density_g_cm3=density_g_cm3, collector_material="Al",
                           collector_thickness_um=15.0, name="dry-film NCM811 cathode")


#: Uncalendered porosity assumed for the LMP anode (not stated by the source): a loose random
#: packing of spheres in a layer under two particles thick; ≥ 0.45 keeps ε > 0 up to r = 0.45.
LMP_UNCALENDERED_POROSITY = 0.5
LMP_D50_UM = 50.0
LMP_SHELL_NM = 100.0


def shell_mass_fraction(diameter_um: float, shell_nm: float, *, core_density_g_cm3: float,
                        shell_density_g_cm3: float) -> float:
    """Mass fraction of an outer shell of thickness ``shell_nm`` on a sphere of outer ``diameter_um``."""
    radius = _require_pos(diameter_um, "diameter_um") / 2.0
    shell = _require_pos(shell_nm, "shell_nm") * 1e-3
    if shell >= radius:
        raise InputError(f"shell {shell_nm} nm is not thinner than the particle radius {radius} µm")
    v_core = (radius - shell) ** 3
    v_shell = radius ** 3 - v_core
    m_shell = v_shell * shell_density_g_cm3
    return m_shell / (m_shell + v_core * core_density_g_cm3)


def lmp_anode(ratio: float = 0.0, *, uncalendered_porosity: float = LMP_UNCALENDERED_POROSITY) -> ElectrodeDesign:
    """Lithium metal powder anode: Li powder : PVdF-HFP = 95 : 5 wt%, 84 µm uncalendered on 11 µm Cu.

    The Li2CO3 passivation shell (~100 nm) is part of the powder's 95 wt%: it is a component
    of phase "shell" whose mass fraction is that of a 100 nm shell on a D50 = 50 µm sphere
    (outer diameter; ρ_Li 0.534, ρ_Li2CO3 2.11 → 4.56 % of the particle mass, i.e. 4.33 wt% of the
    coating, Li 90.67 wt%). The uncalendered porosity is an assumption (default 0.5, see
    :data:`LMP_UNCALENDERED_POROSITY`); the loading follows from it (≈2.40 mg cm⁻²) and stays
    constant while calendering to ``ratio = 1 − h/h0``.
    """
    li, shell_mat = get_material("Li"), get_material("Li2CO3")
    f_shell = shell_mass_fraction(LMP_D50_UM, LMP_SHELL_NM, core_density_g_cm3=li.density_g_cm3,
                                  shell_density_g_cm3=shell_mat.density_g_cm3)
    comps = (Component("Li", 95.0 * (1.0 - f_shell), "lithium"),
             Component("Li2CO3", 95.0 * f_shell, "shell", film_on="lithium", film_nm=LMP_SHELL_NM),
             Component("PVdF-HFP", 5.0, "binder"))
    base = ElectrodeDesign(comps, thickness_um=84.0, porosity=uncalendered_porosity, collector_material="Cu",
                           collector_thickness_um=11.0, cbd_nanoporosity=0.0, name="LMP anode")
    return base if ratio == 0 else base.at_ratio(ratio)


# -- helpers ----------------------------------------------------------------------------------------
def _finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be finite, got {value!r}")
    return out


def _require_pos(value: Any, name: str) -> float:
    out = _finite(value, name)
    if out <= 0:
        raise InputError(f"{name} must be positive, got {value!r}")
    return out


def _solid_density(components: Iterable[Component]) -> float:
    comps = list(components)
    total = sum(c.wt_percent for c in comps)
    return total / sum(c.wt_percent / c.density_g_cm3 for c in comps)


def _resolve_geometry(rho_s: float, loading: Any, thickness: Any, density: Any,
                      porosity: Any) -> tuple[float | None, float | None, float, float]:
    """Fill in loading (mg cm⁻²), thickness (µm), density (g cm⁻³), porosity from what is given."""
    L = None if loading is None else _require_pos(loading, "loading_mg_cm2")
    h = None if thickness is None else _require_pos(thickness, "thickness_um")
    rho = None if density is None else _require_pos(density, "density_g_cm3")
    eps = None
    if porosity is not None:
        eps = _finite(porosity, "porosity")
        if not 0 < eps < 1:
            raise InputError(f"porosity must lie in (0, 1), got {eps}")
    # ρ [g cm⁻³] = L [mg cm⁻²] / h [µm] × 10  (1 mg cm⁻² / 1 µm = 10 g cm⁻³)
    if L is not None and h is not None and rho is not None:
        derived = 10.0 * L / h
        if abs(derived - rho) > GEOMETRY_RTOL * rho:
            raise InputError(
                f"loading {L} mg/cm², thickness {h} µm and density {rho} g/cm³ disagree "
                f"(loading/thickness = {derived:.4g} g/cm³); give only two of the three")
    elif rho is None and L is not None and h is not None:
        rho = 10.0 * L / h
    if eps is not None:
        from_eps = (1.0 - eps) * rho_s
        if rho is not None and abs(from_eps - rho) > 1e-6 * rho:
            raise InputError(
                f"porosity {eps} and density {rho} g/cm³ disagree (solid density {rho_s:.4g} g/cm³ gives "
                f"porosity {1 - rho / rho_s:.4g}); give one of them")
        rho = from_eps if rho is None else rho
    if rho is None:
        raise InputError("the design's porosity is undetermined: give density_g_cm3, porosity, or both "
                         "loading_mg_cm2 and thickness_um")
    if eps is None:
        eps = 1.0 - rho / rho_s
        if not 0 < eps < 1:
            raise InputError(
                f"electrode density {rho:.4g} g/cm³ is not below the solid density {rho_s:.4g} g/cm³ "
                f"(porosity would be {eps:.4g}); lower the density or check the loading and thickness")
    if L is None and h is not None:
        L = rho * h / 10.0
    elif h is None and L is not None:
        h = 10.0 * L / rho
    return L, h, rho, eps
