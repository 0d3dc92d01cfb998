"""``twinlab study``: the calendering design study of one twin, ending in a density (or ratio) window."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError
from ._app import app, emit

_CRIT = "Design criterion"


@app.command("study")
def study_cmd(
    twin: Annotated[Path, typer.Argument(help="Input twin (X.twin.zarr) with a 'phases' label image and a design.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Study folder: series.zarr/, study.csv, "
                                         "study.json, report/report.html.")],
    densities: Annotated[Optional[str], typer.Option(help="Target densities in g/cm³: start:stop:step "
                                                     "(e.g. 2.5:4.0:0.1) or a,b,c.")] = None,
    ratios: Annotated[Optional[str], typer.Option(help="Target calendering ratios 1 − h/h0 (unitless): "
                                                  "start:stop:step (e.g. 0:0.4:0.05) or a,b,c.")] = None,
    analyses: Annotated[str, typer.Option(help="Analyses run on every member, comma-separated, from "
                                          "morphology,network,transport,conductive,cracks.")] =
        "morphology,network,transport,conductive",
    strengths: Annotated[str, typer.Option(help="von Mises strengths of the crackable volume in MPa "
                                           "(NCM yield range), comma-separated.")] = "100,150",
    c_rate: Annotated[str, typer.Option("--c-rate", help="C-rates in 1/h of L_d and Q_eff (current density "
                                        "C·Q0), comma-separated.")] = "1",
    steps: Annotated[Optional[int], typer.Option(help="Load increments of the whole compression "
                                                 "(default: one per target).")] = None,
    calender_option: Annotated[Optional[list[str]], typer.Option(
        "--calender-option", help="KEY=VALUE calendering option (twinlab calender's --option: any field of "
        "twinlab.analyses.mechanics.CalenderOptions), e.g. window=32, dtype=float64, tol=1e-4; repeatable.")] = None,
    d0: Annotated[float, typer.Option("--d0", help="Electrolyte diffusivity D0 in m²/s (default: 1 M LiPF6, "
                                      "25 °C, Valøen & Reimers 2005).")] = 3.2e-10,
    c0: Annotated[float, typer.Option("--c0", help="Electrolyte concentration C0 in mol/m³.")] = 1000.0,
    t_plus: Annotated[float, typer.Option("--t-plus", help="Cation transference number t+ (unitless).")] = 0.38,
    kappa0: Annotated[float, typer.Option("--kappa0", help="Bulk electrolyte ionic conductivity in S/m.")] = 0.95,
    capacity: Annotated[Optional[float], typer.Option(help="Areal capacity Q0 in mAh/cm² (default: design "
                                                      "loading × active wt% × specific capacity).")] = None,
    specific_capacity: Annotated[Optional[float], typer.Option(help="Active material's specific capacity in "
                                                               "mAh/g (default: NCM622 175, NCM811 200, Li 3860).")]
        = None,
    max_crackable: Annotated[Optional[str], typer.Option(
        help="Upper limit of the crackable volume in % of the active material (at the first --strengths value), "
        "e.g. 5 or '5 %'.", rich_help_panel=_CRIT)] = None,
    min_conductivity: Annotated[Optional[str], typer.Option(
        help="Lower limit of the effective electronic conductivity in S/m (or mS/cm with the unit), e.g. '1 S/m'.",
        rich_help_panel=_CRIT)] = None,
    min_ionic_conductivity: Annotated[Optional[str], typer.Option(
        help="Lower limit of the effective ionic conductivity κ0·ε/τ² in S/m.", rich_help_panel=_CRIT)] = None,
    max_tortuosity_factor: Annotated[Optional[str], typer.Option(
        help="Upper limit of the tortuosity factor τ² through the thickness (unitless).", rich_help_panel=_CRIT)] = None,
    min_porosity: Annotated[Optional[str], typer.Option(
        help="Lower limit of the porosity (unitless fraction, or % with the unit: '25 %').", rich_help_panel=_CRIT)] = None,
    max_porosity: Annotated[Optional[str], typer.Option(
        help="Upper limit of the porosity (unitless fraction, or %).", rich_help_panel=_CRIT)] = None,
    min_q_eff_fraction: Annotated[Optional[str], typer.Option(
        help="Lower limit of Q_eff/Q0 (unitless fraction, or %) at every --c-rate, e.g. 0.9.",
        rich_help_panel=_CRIT)] = None,
    min_activation: Annotated[Optional[str], typer.Option(
        help="Lower limit of the collector-connected active fraction (unitless, or %).", rich_help_panel=_CRIT)] = None,
    require: Annotated[Optional[list[str]], typer.Option(
        help="Any tabulated quantity: 'KEY<=VALUE UNIT' or 'KEY>=VALUE UNIT' in the quantity's unit (see "
        "study.json columns), e.g. 'mean_pore_radius>=1 µm'; repeatable.", rich_help_panel=_CRIT)] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Run the members on a running dask scheduler "
                                                     "(address, e.g. from dask-jobqueue).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Run the members on a LocalCluster of this many "
                                                   "worker processes (default: in this process).")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML study report.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Recalender when OUTPUT holds a study of other settings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole study as JSON.")] = False,
) -> None:
    """Calender a twin once through every target, analyse every member, tabulate every quantity with its
    unit (study.csv/json), fit the Bruggeman exponent, compute L_d and Q_eff, and print the design window:
    the density (or ratio) range where every criterion holds, with the limiting criterion at each end.
    Resumable: a rerun skips the calendering and the members already analysed."""
    from ..design_window import make_criterion, parse_criterion
    from ..study import Electrochemistry, parse_range, run_study, study_quantities

    if (densities is None) == (ratios is None):
        raise InputError("give exactly one of --densities (g/cm³) or --ratios (1 − h/h0)")
    targets = parse_range(densities if densities is not None else ratios,
                          what="densities" if densities is not None else "ratios")
    names = [a.strip() for a in analyses.split(",") if a.strip()]
    strength_list = parse_range(strengths, what="strengths")
    rates = parse_range(c_rate, what="c-rate")
    columns = study_quantities(_known(names), strengths_mpa=strength_list, c_rates=rates)
    units = {k: q.unit for k, q in columns.items()}
    criteria = []
    simple = [(max_crackable, "max", [f"crackable_{strength_list[0]:g}_mpa"], "--max-crackable"),
              (min_conductivity, "min", ["electronic_conductivity"], "--min-conductivity"),
              (min_ionic_conductivity, "min", ["ionic_conductivity"], "--min-ionic-conductivity"),
              (max_tortuosity_factor, "max", ["tortuosity_factor"], "--max-tortuosity-factor"),
              (min_porosity, "min", ["porosity"], "--min-porosity"), (max_porosity, "max", ["porosity"], "--max-porosity"),
              (min_q_eff_fraction, "min", [f"q_eff_fraction_{c:g}C" for c in rates], "--min-q-eff-fraction"),
              (min_activation, "min", ["activation"], "--min-activation")]
    for value, kind, keys, flag in simple:
        if value is None:
            continue
        for key in keys:
            if key not in units:
                raise InputError(f"{flag} needs {key!r}, which --analyses {analyses} does not compute")
            criteria.append(make_criterion(key, kind, value, units))
    criteria += [parse_criterion(text, units) for text in require or []]
    electro = Electrochemistry(diffusivity_m2_s=d0, concentration_mol_m3=c0, transference_number=t_plus,
                               electrolyte_conductivity_s_m=kappa0, capacity_mah_cm2=capacity,
                               specific_capacity_mah_g=specific_capacity)
    study = run_study(twin, output=output, densities=targets if densities is not None else None,
                      ratios=targets if ratios is not None else None, analyses=names, strengths_mpa=strength_list,
                      c_rates=rates, electrochemistry=electro, criteria=criteria, steps=steps,
                      calender_options=_options(calender_option or []), scheduler=scheduler, workers=workers,
                      report=report, overwrite=overwrite,
                      progress=None if as_json else lambda msg: typer.echo(msg, err=True))
    if as_json:
        emit(study, as_json=True)
        return
    typer.echo(study.table())
    typer.echo(f"table: {study.table_csv}, {study.table_json}" + (f"; report: {study.report}" if study.report else ""))


def _known(names: list[str]) -> list[str]:
    from ..study import STUDY_ANALYSES

    for n in names:
        if n not in STUDY_ANALYSES:
            raise InputError(f"unknown study analysis {n!r}; choose from {', '.join(STUDY_ANALYSES)}")
    return names


def _options(items: list[str]) -> dict:
    """``--calender-option`` KEY=VALUE pairs → the calender options (parsed like ``twinlab calender --option``)."""
    from .cmd_calender import parse_options

    return parse_options(items, "--calender-option")
