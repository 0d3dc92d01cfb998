"""The calendering design study: one twin → a series of calendered members → one table → a window.

:func:`run_study` calenders a twin once, incrementally, through every target density (or ratio),
saving one member twin per target; runs the chosen analyses on every member (members are
independent tasks: in this process, or on a dask.distributed cluster); reads one row per member
from the stored results (:func:`twinlab.quantities.twin_quantities`) and adds the thick-electrode
numbers L_d and Q_eff at the user's C-rates (SCIENCE.md §5); fits the Bruggeman exponent across the
series; checks the user's criteria (:mod:`twinlab.design_window`); writes the table as CSV and JSON
and an HTML report. It is resumable: the calendering is skipped when the series of the same request
exists, and a member analysis already stored in a member is not run again.

Layout of ``output``::

    series.zarr/            the calendered members (density_2.60.twin.zarr, …, index.json)
    calender-request.json   what the series was calendered with (a rerun must match it)
    study.json, study.csv   the table (a row per member, a column per quantity with its unit)
    report/report.html      the study report (figures also as PNG and SVG in report/figures/)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ._results import Result, format_value, text_table, to_jsonable
from .design_window import Criterion, DesignWindow, design_window
from .errors import InputError, OutputExistsError
from .quantities import QUANTITIES, Quantity, crackable_quantity, twin_quantities
from .series import open_series
from .twin import Step, Twin

if TYPE_CHECKING:
    from .analyses.mechanics import CalenderOptions

#: Analyses a study runs on every member by default (``cracks`` is opt-in: a simulated member has no
#: cracks; its crackable volume comes from the calendering itself).
DEFAULT_ANALYSES = ("morphology", "network", "transport", "conductive")
STUDY_ANALYSES = ("morphology", "network", "transport", "conductive", "cracks")
#: Quantities each analysis adds to a row (the calendering adds the rest).
ANALYSIS_QUANTITIES = {
    "morphology": ("specific_surface", "contact_active_cbd"),
    "network": ("mean_coordination", "mean_pore_radius", "pore_unresolved_fraction", "connectivity_band_std"),
    "transport": ("tortuosity_factor", "tortuosity_tau", "d_eff_ratio", "ionic_conductivity", "electronic_conductivity"),
    "conductive": ("activation", "largest_cluster_fraction"),
    "cracks": ("crack_volume",),
}
_CALENDER_QUANTITIES = ("density", "ratio", "thickness", "design_thickness", "porosity", "von_mises_active_mean",
                        "shell_intact_fraction", "contact_collector_rel", "contact_electrolyte_rel")

#: Practical specific capacities of the active materials (mAh per g of active material).
SPECIFIC_CAPACITY_MAH_G: dict[str, tuple[float, str]] = {
    "NCM622": (175.0, "typical 0.1C, 3.0–4.3 V vs Li (e.g. Noh et al., J. Power Sources 233 (2013) 121: ~180)"),
    "NCM811": (200.0, "typical 0.1C, 3.0–4.3 V vs Li (Noh et al. 2013: ~200)"),
    "Li": (3860.0, "theoretical, SCIENCE.md §7"),
}


@dataclass(frozen=True)
class Electrochemistry(Result):
    """Electrolyte and capacity numbers of the thick-electrode limits (SCIENCE.md §5).

    Defaults: 1 M LiPF6 in carbonate solvents at 25 °C after Valøen & Reimers, J. Electrochem.
    Soc. 152 (2005) A882 (PC:EC:DMC 10:27:63): D0 = 3.2e-10 m²/s (their D(c, T) at 1 mol/L,
    298 K), t+ = 0.38, κ0 = 0.95 S/m; C0 = 1 mol/L. The areal capacity Q0 is the design's loading ×
    active mass fraction × the active material's specific capacity
    (:data:`SPECIFIC_CAPACITY_MAH_G`) unless ``capacity_mah_cm2`` is given.
    """

    diffusivity_m2_s: float = 3.2e-10
    concentration_mol_m3: float = 1000.0
    transference_number: float = 0.38
    electrolyte_conductivity_s_m: float = 0.95
    capacity_mah_cm2: float | None = None
    specific_capacity_mah_g: float | None = None
    source: str = "Valøen & Reimers, J. Electrochem. Soc. 152 (2005) A882: 1 M LiPF6, 25 °C"

    def __post_init__(self) -> None:
        for name in ("diffusivity_m2_s", "concentration_mol_m3", "electrolyte_conductivity_s_m"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.transference_number < 1:
            raise InputError(f"transference number t+ must lie in [0, 1), got {self.transference_number}")
        for name in ("capacity_mah_cm2", "specific_capacity_mah_g"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Study(Result):
    """A finished study: the table (``columns``: key/label/unit/description; ``rows``: one dict per
    member, sorted by ``x_key``), the Bruggeman fit, the design window and where everything is."""

    output: str
    x_key: str
    x_unit: str
    columns: tuple[dict, ...]
    rows: tuple[dict, ...]
    bruggeman: dict | None
    window: DesignWindow
    members: tuple[dict, ...]  # name, status ("analysed" | "skipped"), seconds
    settings: dict
    table_csv: str
    table_json: str
    report: str | None
    seconds: float  # calendering, analyses and table; the report's time is in stage_seconds
    calender_skipped: bool = False
    stage_seconds: dict = field(default_factory=dict)  # calender, analyses, table, report (wall s)

    def table(self) -> str:
        """The headline columns as aligned text (every column: ``study.csv``), then the window line."""
        cols = [c for c in self.columns if c["key"] in _TEXT_COLUMNS or c["key"].startswith(("q_eff_fraction_",
                                                                                             "crackable_"))]
        head = tuple(f"{c['key']} [{c['unit']}]" for c in cols)
        body = [tuple(format_value(row.get(c["key"])) for c in cols) for row in self.rows]
        return text_table([head, *body]) + "\n" + self.window.line()


_TEXT_COLUMNS = ("density", "ratio", "porosity", "tortuosity_factor", "electronic_conductivity", "activation",
                 "shell_intact_fraction")


# ====================================================================================== public
def parse_range(text: str, *, what: str) -> list[float]:
    """``"start:stop:step"`` (stop included when on the grid) or ``"a,b,c"`` → sorted targets."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not step > 0:
                raise InputError(f"--{what} {text}: the step must be positive")
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(max(n, 0))]
        else:
            values = sorted(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--{what} takes start:stop:step or comma-separated numbers, e.g. 2.6:3.4:0.2; "
                         f"got {text!r}") from None
    if not values:
        raise InputError(f"--{what} {text} is an empty range (start above stop?); e.g. 2.6:3.4:0.2")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--{what} {text}: every target must be a finite number")
    return values


def study_quantities(analyses: Sequence[str], *, strengths_mpa: Sequence[float], c_rates: Sequence[float]
                     ) -> dict[str, Quantity]:
    """The columns a study with these analyses, crack strengths and C-rates tabulates, in order."""
    keys = list(_CALENDER_QUANTITIES)
    for a in analyses:
        keys += ANALYSIS_QUANTITIES[a]
    out = {k: (QUANTITIES[k] if k in QUANTITIES else _ELECTRO[k]) for k in keys}
    for s in strengths_mpa:
        q = crackable_quantity(s)
        out[q.key] = q
    if "transport" in analyses:
        for c in c_rates:
            for q in electro_quantities(c):
                out[q.key] = q
    return out


def electro_quantities(c_rate: float) -> tuple[Quantity, Quantity, Quantity]:
    """L_d, Q_eff and Q_eff/Q0 at one C-rate."""
    c = f"{float(c_rate):g}C"
    return (Quantity(f"penetration_depth_{c}", f"L_d at {c}", "µm",
                     f"electrolyte penetration depth (ε/τ²) D0 C0 F / ((1 − t+) I) at {c} (SCIENCE.md §5)"),
            Quantity(f"q_eff_{c}", f"Q_eff at {c}", "mAh/cm²", f"deliverable capacity Q0 · min(1, L_d/h) at {c}"),
            Quantity(f"q_eff_fraction_{c}", f"Q_eff/Q0 at {c}", "1", f"deliverable fraction of the capacity at {c}"))


_ELECTRO = {"ionic_conductivity": Quantity("ionic_conductivity", "effective ionic conductivity", "S/m",
                                           "κ0 · ε/τ² with the electrolyte's bulk conductivity κ0 (transport)")}


def run_study(
    twin: Twin | str | os.PathLike,
    *,
    output: str | os.PathLike,
    densities: Sequence[float] | None = None,
    ratios: Sequence[float] | None = None,
    analyses: Sequence[str] = DEFAULT_ANALYSES,
    strengths_mpa: Sequence[float] = (100.0, 150.0),
    c_rates: Sequence[float] = (1.0,),
    electrochemistry: Electrochemistry | None = None,
    criteria: Sequence[Criterion] = (),
    steps: int | None = None,
    calender_options: CalenderOptions | Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    report: bool = True,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Study:
    """Calender ``twin`` through every target, analyse every member, tabulate, fit, check, report.

    Parameters
    ----------
    densities, ratios : targets in g/cm³, or calendering ratios 1 − h/h0 (give exactly one).
    analyses : subset of :data:`STUDY_ANALYSES` run on every member.
    strengths_mpa : von Mises strengths (MPa) of the crackable volume (NCM yield range 100–150).
    c_rates : C-rates (1/h) of L_d and Q_eff; the current density is ``C · Q0``.
    criteria : design criteria on the table's quantities (:func:`twinlab.design_window.parse_criterion`).
    steps : load increments of the whole compression (default: one per target).
    calender_options : :class:`~twinlab.analyses.mechanics.CalenderOptions` or a mapping of its
        fields (e.g. ``window``, ``dtype``, ``tol``, ``materials``), recorded; the crack thresholds and
        ``keep_fields`` are the study's own.
    scheduler, workers : run the members on dask.distributed: a running scheduler's address, or a
        LocalCluster of ``workers`` processes; neither → in this process, one member after another.
    overwrite : recalender even when ``output`` holds a series of another request.
    """
    start = time.perf_counter()
    say = progress or (lambda _msg: None)
    twin = twin if isinstance(twin, Twin) else Twin.open(twin)
    if (densities is None) == (ratios is None):
        raise InputError("give exactly one of densities (g/cm³) or ratios (1 − h/h0)")
    targets = sorted(float(v) for v in (densities if densities is not None else ratios))
    if not targets:
        raise InputError("the study needs at least one target density or ratio")
    unknown = [a for a in analyses if a not in STUDY_ANALYSES]
    if unknown:
        raise InputError(f"unknown study analysis {unknown[0]!r}; choose from {', '.join(STUDY_ANALYSES)}")
    strengths = [float(s) for s in strengths_mpa]
    if not strengths or not all(s > 0 for s in strengths):
        raise InputError("crack strengths must be positive numbers of MPa, e.g. 100,150")
    rates = [float(c) for c in c_rates]
    if not rates or not all(c > 0 for c in rates):
        raise InputError("C-rates must be positive numbers (1/h), e.g. 1,2")
    columns = study_quantities(analyses, strengths_mpa=strengths, c_rates=rates)
    for c in criteria:
        if c.key not in columns:
            raise InputError(f"criterion {c.text()}: this study does not tabulate {c.key!r} (add the analysis that "
                             f"computes it); it tabulates {', '.join(columns)}")
    electro = electrochemistry or Electrochemistry()
    options = _calender_options(calender_options, strengths)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    series = out / "series.zarr"
    x_key, x_unit = ("density", "g/cm³") if densities is not None else ("ratio", "1")

    # 1. one incremental calendering run through every target (skipped when already done)
    # the source's last provenance entry dates its labels: a rebuilt source twin makes the series stale
    source_state = twin.provenance[-1].get("time") if twin.provenance else None
    request = to_jsonable({"source": str(twin.path), "source_state": source_state, "kind": x_key, "targets": targets,
                           "steps": int(steps or len(targets)), "crack_thresholds_mpa": strengths,
                           "options": options.to_dict()})
    request_path = out / "calender-request.json"
    calender_skipped = False
    if (series / "index.json").is_file() and request_path.is_file():
        if json.loads(request_path.read_text()) == request:
            calender_skipped = True
        elif not overwrite:
            raise OutputExistsError(f"{out} holds a study calendered with other settings; choose another output "
                                    "folder or pass --overwrite to recalender")
    if not calender_skipped:
        from .analyses.mechanics import calender

        say(f"calendering {twin.name} to {len(targets)} {x_key} targets")
        request_path.unlink(missing_ok=True)  # a series without its request is redone on a rerun
        calender(twin, ratios=targets if x_key == "ratio" else None,
                 densities=targets if x_key == "density" else None, steps=int(steps or len(targets)),
                 options=options, output=series, overwrite=True)
        _write_atomic(request_path, json.dumps(request, indent=2))
    stages = {"calender": time.perf_counter() - start}

    # 2. the analyses on every member: independent tasks
    paths = [str(m.path) for m in open_series(series)]
    members = _run_members(paths, list(analyses), scheduler=scheduler, workers=workers, say=say)
    stages["analyses"] = time.perf_counter() - start - sum(stages.values())

    # 3. the table, the Bruggeman fit, the window
    twins = [Twin.open(p) for p in paths]
    rows = [member_row(t, electro, c_rates=rates, columns=columns) for t in twins]
    rows.sort(key=lambda r: r[x_key])
    fit = _bruggeman(twins) if "transport" in analyses else None
    window = design_window(rows, criteria, x_key=x_key, x_unit=x_unit)
    used = [q.to_dict() for k, q in columns.items() if any(r.get(k) is not None for r in rows)]
    settings = {"twin": str(twin.path), "calender": request, "analyses": list(analyses),
                "strengths_mpa": strengths, "c_rates": rates, "electrochemistry": electro.to_dict(),
                "capacity": _capacity(twins[0], electro) if twins else None,
                "thickness_for_q_eff": "design thickness at the member's density (loading/density) when the design "
                                       "has a loading, else the twin's coating thickness"}
    csv_path, json_path = out / "study.csv", out / "study.json"
    study = Study(output=str(out), x_key=x_key, x_unit=x_unit, columns=tuple(used), rows=tuple(rows),
                  bruggeman=fit, window=window, members=tuple(members), settings=settings,
                  table_csv=str(csv_path), table_json=str(json_path), report=None,
                  seconds=round(time.perf_counter() - start, 2), calender_skipped=calender_skipped)
    stages["table"] = time.perf_counter() - start - sum(stages.values())
    _write_atomic(csv_path, _csv(study))
    if report:
        say("writing the study report")
        from .report import write_study_report

        path = write_study_report(study_report_data(study, twins, twin), out / "report" / "report.html")
        study = _replace(study, report=str(path))
        stages["report"] = time.perf_counter() - start - sum(stages.values())
    study = _replace(study, stage_seconds={k: round(v, 2) for k, v in stages.items()})
    _write_atomic(json_path, json.dumps(to_jsonable(study.to_dict()), indent=2))
    return study


def analyse_member(path: str, analyses: Sequence[str]) -> dict[str, Any]:
    """Run on one member twin the ``analyses`` it does not hold yet; each finished analysis is
    recorded at once in the member's ``study`` result, so an interrupted study loses at most one.
    Runs anywhere (this process or a dask worker): it takes and returns plain data."""
    from .analyses import run_analysis

    start = time.perf_counter()
    twin = Twin.open(path)
    done = list(twin.load_result("study")["analyses"]) if "study" in twin.result_names else []
    todo = [a for a in analyses if a not in done]
    for name in todo:
        run_analysis(name, twin)
        done.append(name)
        twin.save_result("study", {"analyses": done}, step=Step("study", {"analyses": done}))
    return {"name": twin.name, "status": "analysed" if todo else "skipped", "analyses": todo,
            "seconds": round(time.perf_counter() - start, 3)}


def member_row(twin: Twin, electro: Electrochemistry, *, c_rates: Sequence[float],
               columns: Mapping[str, Quantity] | None = None) -> dict[str, Any]:
    """One table row from a member's stored results, plus κ_eff, L_d and Q_eff at each C-rate."""
    row: dict[str, Any] = {"member": twin.name, **twin_quantities(twin)}
    if "transport" in twin.result_names:
        tort = twin.load_result("transport")["tortuosity"]
        eps, tf = float(tort["porosity"]), float(tort["tortuosity_factor"])
        row["ionic_conductivity"] = electro.electrolyte_conductivity_s_m * float(tort["d_eff_ratio"])
        cap = _capacity(twin, electro)
        h = row.get("design_thickness") or row.get("thickness")
        for c in c_rates:
            ld_q, qeff_q, frac_q = electro_quantities(c)
            if cap is None or h is None:
                continue
            ld, qeff = thick_electrode_limits(eps, tf, capacity_mah_cm2=cap["capacity_mah_cm2"], thickness_um=h,
                                              c_rate=c, electro=electro)
            row[ld_q.key], row[qeff_q.key], row[frac_q.key] = ld, qeff, qeff / cap["capacity_mah_cm2"]
    if columns is not None:
        row = {"member": row["member"], **{k: row.get(k) for k in columns}}
    return row


def thick_electrode_limits(porosity: float, tortuosity_factor: float, *, capacity_mah_cm2: float,
                           thickness_um: float, c_rate: float, electro: Electrochemistry) -> tuple[float, float]:
    """(L_d in µm, Q_eff in mAh/cm²) at ``c_rate`` (current density ``C · Q0``: 1 mA/cm² = 10 A/m²).

    A non-percolating pore space (τ² = ∞) has L_d = 0 and Q_eff = 0.
    """
    from .analyses.transport import deliverable_capacity, penetration_depth

    if not (math.isfinite(tortuosity_factor) and porosity > 0):
        return 0.0, 0.0
    kw = dict(porosity=porosity, tortuosity_factor=tortuosity_factor, diffusivity_m2_s=electro.diffusivity_m2_s,
              concentration_mol_m3=electro.concentration_mol_m3, transference_number=electro.transference_number,
              current_density_a_m2=c_rate * capacity_mah_cm2 * 10.0)
    ld = penetration_depth(**kw) * 1e6
    return ld, deliverable_capacity(capacity_mah_cm2=capacity_mah_cm2, thickness_um=thickness_um, **kw)


def study_report_data(study: Study, twins: Sequence[Twin], source: Twin | None = None):
    """What the study report shows, read from the members: the table, window and fit, the band
    PDFs of three members (lowest, middle, highest x), the crackable profiles of the three densest
    members and, for LMP members, the activation points."""
    from .report import StudyReportData

    by_x = sorted(twins, key=lambda t: twin_quantities(t).get(study.x_key, 0.0))
    pdfs: dict[str, tuple[list, list]] = {}
    with_net = [t for t in by_x if "network" in t.result_names
                and "connectivity.pdf_x" in t.load_result_arrays("network")]
    for t in _three(with_net):
        a = t.load_result_arrays("network")
        pdfs[_label(t, study)] = (a["connectivity.pdf_x"].tolist(), a["connectivity.pdf_y"].tolist())
    profiles: dict[str, dict[str, list[float]]] = {}
    for t in by_x[-3:]:
        cal = t.load_result("calender")
        if cal.get("von_mises_active_mean_mpa") is not None:
            profiles[_label(t, study)] = {k: [float(v) for v in p] for k, p in cal["crackable_profile_pct"].items()}
    lmp = any(r.get("shell_intact_fraction") is not None for r in study.rows)
    return StudyReportData(
        title=f"calendering study — {source.name if source is not None else Path(study.output).name}",
        x_key=study.x_key, x_unit=study.x_unit, columns=study.columns, rows=study.rows,
        window=study.window.to_dict(), window_line=study.window.line(), bruggeman=study.bruggeman,
        band_pdfs=pdfs, crackable_profiles=profiles, lmp=lmp, settings=study.settings,
        appendix={"members": list(study.members), "settings": study.settings})


# ====================================================================================== helpers
def _run_members(paths: list[str], analyses: list[str], *, scheduler: str | None, workers: int | None,
                 say: Callable[[str], None]) -> list[dict[str, Any]]:
    if scheduler is None and workers is None:
        out = []
        for i, p in enumerate(paths):
            say(f"member {i + 1}/{len(paths)}: {Path(p).name}")
            out.append(analyse_member(p, analyses))
        return out
    from ._cluster import cluster_client

    with cluster_client(scheduler, workers=workers or 2) as client:
        say(f"members on dask.distributed ({client.dashboard_link})")
        futures = [client.submit(analyse_member, p, analyses, pure=False,
                                 key=f"twinlab-member-{Path(p).name}-{uuid.uuid4().hex[:8]}") for p in paths]
        return client.gather(futures)


def _calender_options(given: CalenderOptions | Mapping[str, Any] | None, strengths: list[float]) -> CalenderOptions:
    """The study's calender options: the user's (checked by CalenderOptions) with the study's own
    crack strengths and no fields kept in memory (members are read back from the series)."""
    from .analyses.mechanics import CalenderOptions

    if given is not None and not isinstance(given, CalenderOptions):
        own = {"crack_thresholds_mpa", "keep_fields"} & set(given)
        if own:
            raise InputError(f"calender option(s) {', '.join(sorted(own))} are set by the study itself "
                             "(the crack strengths with --strengths)")
    return CalenderOptions.from_mapping(given).replace(crack_thresholds_mpa=tuple(strengths), keep_fields=False)


def _capacity(twin: Twin, electro: Electrochemistry) -> dict[str, Any] | None:
    """Areal capacity Q0 (mAh/cm²) of the electrode and how it was obtained, or None."""
    if electro.capacity_mah_cm2 is not None:
        return {"capacity_mah_cm2": electro.capacity_mah_cm2, "source": "given"}
    design = twin.design or {}
    loading = design.get("loading_mg_cm2")
    active = [c for c in design.get("components", []) if c["phase"] in ("active", "lithium")]
    if loading is None or not active:
        return None
    mah_mg = 0.0
    sources = []
    for c in active:
        if electro.specific_capacity_mah_g is not None:
            spec, src = electro.specific_capacity_mah_g, "given"
        elif c["material"] in SPECIFIC_CAPACITY_MAH_G:
            spec, src = SPECIFIC_CAPACITY_MAH_G[c["material"]]
        else:
            return None
        mah_mg += c["wt_percent"] / 100.0 * spec / 1000.0
        sources.append(f"{c['material']} {spec:g} mAh/g ({src})")
    return {"capacity_mah_cm2": loading * mah_mg, "loading_mg_cm2": loading, "source": "; ".join(sources)}


def _bruggeman(twins: Sequence[Twin]) -> dict[str, Any] | None:
    """Bruggeman fit over the members whose pore space percolates (τ² finite)."""
    from .analyses.transport import fit_bruggeman

    points, excluded = [], []
    for t in twins:
        if "transport" not in t.result_names:
            continue
        tort = t.load_result("transport")["tortuosity"]
        eps, tf = float(tort["porosity"]), float(tort["tortuosity_factor"])
        (points if math.isfinite(tf) and 0 < eps < 1 else excluded).append((t.name, eps, tf))
    if len(points) < 2:
        return {"note": f"{len(points)} percolating member(s): no fit", "points": [[e, f] for _, e, f in points]}
    fit = fit_bruggeman([e for _, e, _ in points], [f for _, _, f in points])
    return {**fit.to_dict(), "points": [[e, f] for _, e, f in points], "excluded": [n for n, _, _ in excluded]}


def _three(items: list) -> list:
    if len(items) <= 3:
        return items
    return [items[0], items[len(items) // 2], items[-1]]


def _label(twin: Twin, study: Study) -> str:
    q = twin_quantities(twin)
    return f"{q.get(study.x_key, float('nan')):.3g} {'g/cm³' if study.x_key == 'density' else ''}".strip()


def _csv(study: Study) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = [c["key"] for c in study.columns]
    writer.writerow(["member"] + [f"{c['key']} [{c['unit']}]" for c in study.columns])
    for row in study.rows:
        writer.writerow([row["member"]] + ["" if row.get(k) is None else repr(float(row[k])) for k in keys])
    return buf.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)




__all__ = ["DEFAULT_ANALYSES", "Electrochemistry", "SPECIFIC_CAPACITY_MAH_G", "STUDY_ANALYSES", "Study",
           "analyse_member", "member_row", "parse_range", "run_study", "study_quantities",
           "thick_electrode_limits"]
