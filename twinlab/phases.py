"""The phase table: label value ↔ phase name, colour and material.

Functions take phase *names*; this table turns them into label values. A twin stores
its own table, so a user may renumber or add phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .errors import InputError


@dataclass(frozen=True)
class Phase:
    value: int
    name: str
    color: tuple[int, int, int, int]  # RGBA 0–255
    material: str | None = None  # key into twinlab.materials, if the phase is one material

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "name": self.name, "color": list(self.color), "material": self.material}


@dataclass(frozen=True)
class PhaseTable:
    phases: tuple[Phase, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        values = [p.value for p in self.phases]
        names = [p.name for p in self.phases]
        if len(set(values)) != len(values) or len(set(names)) != len(names):
            raise InputError(f"phase table has repeated values or names: {list(zip(values, names))}")
        for p in self.phases:
            if not 0 <= p.value <= 255:
                raise InputError(f"phase {p.name!r} has value {p.value}; phase values must fit uint8 (0–255)")

    # -- lookups -----------------------------------------------------------------------------
    def value(self, name: str) -> int:
        return self[name].value

    def values(self, names: Iterable[str] | str) -> list[int]:
        if isinstance(names, str):
            names = [names]
        return [self.value(n) for n in names]

    def name(self, value: int) -> str:
        for p in self.phases:
            if p.value == int(value):
                return p.name
        raise InputError(f"no phase has value {value}; known values {[p.value for p in self.phases]}")

    def __getitem__(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise InputError(f"unknown phase {name!r}; this twin has phases {self.names}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self):
        return iter(self.phases)

    def __len__(self) -> int:
        return len(self.phases)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.phases]

    def subset(self, names: Iterable[str]) -> "PhaseTable":
        wanted = list(names)
        return PhaseTable(tuple(self[n] for n in wanted))

    # -- serialisation -----------------------------------------------------------------------
    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.phases]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> "PhaseTable":
        try:
            return cls(tuple(Phase(int(i["value"]), str(i["name"]), tuple(int(c) for c in i["color"]),
                                   i.get("material")) for i in items))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed phase table entry ({exc}); each needs value, name, color") from None

    def with_phases(self, names: Iterable[str], materials: Mapping[str, str | None] | None = None) -> "PhaseTable":
        """This table plus any phase of ``names`` (or of ``materials``) it lacks, with materials set.

        A user's own phase (``fiber``) gets the next free label value and a fallback colour;
        ``materials`` maps phase names to material names (``{"fiber": "carbon_fiber"}``) and
        replaces the material of a phase already in the table. A phase without a known material
        gets no default properties (:func:`twinlab.materials.material_of`).
        """
        materials = dict(materials or {})
        out = list(self.phases)
        for name in [*names, *materials]:
            _check_name(name)
            if name in [p.name for p in out]:
                continue
            value = max((p.value for p in out), default=-1) + 1
            known = next((p for p in DEFAULT_PHASES if p.name == name), None)
            color = known.color if known else _FALLBACK_COLORS[value % len(_FALLBACK_COLORS)]
            out.append(Phase(value, name, color, known.material if known else None))
        out = [Phase(p.value, p.name, p.color, materials[p.name]) if materials.get(p.name) else p for p in out]
        return PhaseTable(tuple(out))

    @classmethod
    def from_names(cls, names: Iterable[str]) -> "PhaseTable":
        """Phases numbered 0, 1, 2, … in the order given, colours and materials from the defaults."""
        out = []
        for value, name in enumerate(names):
            known = next((p for p in DEFAULT_PHASES if p.name == name), None)
            color = known.color if known else _FALLBACK_COLORS[value % len(_FALLBACK_COLORS)]
            out.append(Phase(value, name, color, known.material if known else None))
        return cls(tuple(out))


def parse_phase_materials(specs: Iterable[str] | str | None) -> dict[str, str | None]:
    """``"fiber:carbon_fiber,binder:PVDF"`` (or a list of ``name:material``) → ``{phase: material}``.

    A bare ``name`` declares a phase without a material (no default properties).
    """
    if specs is None:
        return {}
    if isinstance(specs, str):
        specs = [specs]
    out: dict[str, str | None] = {}
    for spec in (part.strip() for item in specs for part in item.split(",")):
        if not spec:
            continue
        name, _, material = (t.strip() for t in spec.partition(":"))
        _check_name(name)
        if name in out:
            raise InputError(f"phase {name!r} is given twice in {spec!r}; give each phase once as NAME:MATERIAL")
        out[name] = material or None
    return out


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise InputError(f"phase name {name!r} must be a non-empty word (letters, digits, _ or -), "
                         "e.g. --phase fiber:carbon_fiber")


_FALLBACK_COLORS = [(31, 119, 180, 255), (255, 127, 14, 255), (44, 160, 44, 255), (214, 39, 40, 255),
                    (148, 103, 189, 255), (140, 86, 75, 255), (227, 119, 194, 255), (127, 127, 127, 255)]

#: The conventional table (DESIGN.md): pore 0, active 1, CBD 2, collector 3, shell 4, Li metal 5, binder 6.
DEFAULT_PHASES = PhaseTable((
    Phase(0, "pore", (0, 0, 0, 0), "electrolyte"),
    Phase(1, "active", (200, 200, 200, 255), "NCM622"),
    Phase(2, "cbd", (60, 160, 60, 255), "CBD"),
    Phase(3, "collector", (220, 140, 40, 255), "Al"),
    Phase(4, "shell", (230, 60, 60, 255), "Li2CO3"),
    Phase(5, "lithium", (120, 170, 230, 255), "Li"),
    Phase(6, "binder", (170, 120, 200, 255), "PVdF-HFP"),
))
