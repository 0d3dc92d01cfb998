"""The calendering design study on a small generated cathode: every tabulated value is the single analysis
run on that member's twin; units are present; a rerun skips the finished work; the CLI's criteria errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinlab.analyses import conductive, morphology, network, transport
from twinlab.cli import app
from twinlab.datasets import make_cathode
from twinlab.design import ncm622_cathode
from twinlab.design_window import parse_criterion
from twinlab.series import open_series
from twinlab.study import Electrochemistry, member_row, run_study, study_quantities
from twinlab.twin import Twin, create_twin

DENSITIES = [2.6, 2.8, 3.0, 3.2, 3.4]
# The study's machinery (table = single analyses, units, reruns, dask, CLI) on the welded skeleton: at the
# fixture's 2 µm voxels a contact-calendered cathode keeps no pore wider than ~2 voxels above 2.7 g/cm³
# (compaction collapses the largest pores first; calendered NCM cathodes have pore radii of ~1 µm), so its
# members have no pore network to tabulate. The welded skeleton does not shrink pores (README Known
# limits). The contact physics is tested in test_contacts.py and test_mechanics.py.
CALENDER = {"contacts": False}
C_RATES = [1.0, 2.0]
F = 96485.33212


@pytest.fixture(scope="module")
def cathode(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    e = make_cathode(ncm622_cathode(2.3), shape=(16, 32, 16), voxel_size_um=2.0, collector_um=4.0, seed=3)
    return create_twin(folder / "cathode.twin.zarr", e.phases * 60, voxel_size=2.0, labels={"phases": e.phases},
                       design=e.design.to_dict(), thickness_axis="y", collector_side="low")


@pytest.fixture(scope="module")
def study(cathode):
    units = {k: q.unit for k, q in study_quantities(["transport"], strengths_mpa=[100, 150], c_rates=C_RATES).items()}
    criteria = [parse_criterion("q_eff_fraction_2C>=0.8", units), parse_criterion("porosity>=30%", units)]
    start = time.perf_counter()
    result = run_study(cathode, output=cathode.path.parent / "study", densities=DENSITIES, c_rates=C_RATES,
                       criteria=criteria, calender_options=CALENDER)
    return result, time.perf_counter() - start


def test_one_member_per_density(study):
    result, _ = study
    for row, target in zip(result.rows, DENSITIES):  # achieved densities: a whole number of voxel layers
        assert row["density"] == pytest.approx(target, rel=1.0 / (row["thickness"] / 2.0))
    assert all(m["status"] == "analysed" for m in result.members) and not result.calender_skipped
    index = json.loads((Path(result.output) / "series.zarr" / "index.json").read_text())
    assert len(index["steps"]) == 5 and index["settings"]["steps"] == 5  # one incremental run through all


def test_table_values_equal_single_analyses_on_each_member(study, tmp_path):
    """Each member's twin copied and analysed afresh, one analysis at a time, through the analyses' own
    functions; the study row must hold exactly those numbers."""
    result, _ = study
    rows = {r["member"]: r for r in result.rows}
    e = Electrochemistry()
    q0 = 19.8 * 0.96 * 175.0 / 1000.0  # mAh/cm²: loading × NCM622 wt fraction × 175 mAh/g
    for member in open_series(Path(result.output) / "series.zarr"):
        row = rows[member.name]
        copy = Twin.open(shutil.copytree(member.path, tmp_path / member.path.name))
        cal = copy.load_result("calender")
        assert row["density"] == cal["density_g_cm3"] and row["porosity"] == cal["porosity"]
        for s in ("100", "150"):
            assert row[f"crackable_{s}_mpa"] == cal["crackable_volume_pct"][s]
        t = transport.analyze_twin(copy)
        assert row["tortuosity_factor"] == t.tortuosity.tortuosity_factor
        assert row["tortuosity_tau"] == t.tortuosity.tortuosity_tau
        assert row["electronic_conductivity"] == t.conductivity.effective_conductivity_s_m
        assert row["ionic_conductivity"] == pytest.approx(0.95 * t.tortuosity.d_eff_ratio, rel=1e-12)
        m = morphology.analyze_twin(copy)
        contacts = m.interfaces.specific_contact_m2_m3
        assert row["specific_surface"] == contacts["pore|active"]
        assert row["contact_active_cbd"] == contacts["active|cbd"]
        n = network.analyze_twin(copy)
        assert row["mean_coordination"] == n.metrics.mean_coordination
        assert row["mean_pore_radius"] == n.metrics.mean_equivalent_radius_um
        assert row["pore_unresolved_fraction"] == n.metrics.unresolved_pore_fraction
        assert row["connectivity_band_std"] == n.connectivity.get("std")  # None: too few pores for a band
        c = conductive.analyze_twin(copy)
        assert row["activation"] == c.activation and row["largest_cluster_fraction"] == c.largest_cluster_fraction
        h = 198.0 / cal["density_g_cm3"]  # µm: design thickness = loading / density (19.8 mg/cm²)
        assert row["design_thickness"] == pytest.approx(h, rel=1e-9)
        for c_rate in C_RATES:
            current = c_rate * q0 * 10.0  # A/m² (1 mA/cm² = 10 A/m²)
            ld_um = (t.tortuosity.porosity / t.tortuosity.tortuosity_factor) * e.diffusivity_m2_s \
                * e.concentration_mol_m3 * F / ((1 - e.transference_number) * current) * 1e6
            assert row[f"penetration_depth_{c_rate:g}C"] == pytest.approx(ld_um, rel=1e-12)
            assert row[f"q_eff_{c_rate:g}C"] == pytest.approx(q0 * min(1.0, ld_um / h), rel=1e-12)
            assert row[f"q_eff_fraction_{c_rate:g}C"] == pytest.approx(min(1.0, ld_um / h), rel=1e-12)


def test_quantities_change_with_density(study):
    rows = study[0].rows
    porosity = [r["porosity"] for r in rows]
    assert all(a > b for a, b in zip(porosity, porosity[1:]))  # pressing closes pores
    assert rows[0]["q_eff_fraction_2C"] >= rows[-1]["q_eff_fraction_2C"]


def test_table_has_units(study):
    result, _ = study
    with open(result.table_csv, newline="") as fh:
        header, *body = list(csv.reader(fh))
    assert len(body) == len(DENSITIES)
    units = dict(h[:-1].split(" [") for h in header[1:])
    assert units["density"] == "g/cm³" and units["electronic_conductivity"] == "S/m"
    assert units["porosity"] == "1" and units["crackable_100_mpa"] == "%" and units["penetration_depth_2C"] == "µm"
    assert units["q_eff_2C"] == "mAh/cm²" and units["specific_surface"] == "m²/m³"
    data = json.loads(Path(result.table_json).read_text())
    assert all(c["unit"] and c["description"] for c in data["columns"])
    assert [c["key"] for c in data["columns"]] == list(units)
    assert data["rows"][0]["density"] == pytest.approx(float(body[0][1]))
    assert "window" in data and data["settings"]["electrochemistry"]["diffusivity_m2_s"] == 3.2e-10


def test_bruggeman_fit_over_the_members(study):
    result, _ = study
    from twinlab.analyses.transport import fit_bruggeman

    members = open_series(Path(result.output) / "series.zarr")
    pts = [(float(m.load_result("transport")["tortuosity"]["porosity"]),
            float(m.load_result("transport")["tortuosity"]["tortuosity_factor"])) for m in members]
    pts = [p for p in pts if math.isfinite(p[1])]
    assert len(pts) >= 2
    fit = fit_bruggeman([p[0] for p in pts], [p[1] for p in pts])
    assert result.bruggeman["exponent"] == pytest.approx(fit.exponent) and result.bruggeman["count"] == len(pts)


def test_window_reported(study):
    result, _ = study
    w = result.window
    assert [c["key"] for c in w.criteria] == ["q_eff_fraction_2C", "porosity"]
    passing = [r["density"] for r in result.rows if r["q_eff_fraction_2C"] >= 0.8 and r["porosity"] >= 0.3]
    assert (w.low, w.high) == ((min(passing), max(passing)) if passing else (None, None))
    assert result.table().splitlines()[-1] == w.line()


def test_rerun_skips_finished_members(study, cathode):
    result, first_seconds = study
    stamps = {m.name: len(m.provenance) for m in open_series(Path(result.output) / "series.zarr")}
    start = time.perf_counter()
    again = run_study(cathode, output=result.output, densities=DENSITIES, c_rates=C_RATES, report=False,
                      calender_options=CALENDER)
    seconds = time.perf_counter() - start
    assert again.calender_skipped and [m["status"] for m in again.members] == ["skipped"] * 5
    assert {m.name: len(m.provenance) for m in open_series(Path(result.output) / "series.zarr")} == stamps
    assert [r["tortuosity_factor"] for r in again.rows] == [r["tortuosity_factor"] for r in result.rows]
    assert seconds < 0.25 * first_seconds, (seconds, first_seconds)
    print(f"study {first_seconds:.1f} s, rerun {seconds:.3f} s")


def test_member_with_one_missing_analysis_runs_only_that_one(study, tmp_path):
    result, _ = study
    series = shutil.copytree(Path(result.output) / "series.zarr", tmp_path / "series.zarr")
    from twinlab.study import analyse_member

    path = sorted(series.glob("*.twin.zarr"))[0]
    out = analyse_member(str(path), ["transport", "cracks"])
    assert out["status"] == "analysed" and out["analyses"] == ["cracks"]
    assert Twin.open(path).load_result("study")["analyses"][-1] == "cracks"


def test_members_as_dask_tasks_give_the_same_rows(study, tmp_path):
    """Members analysed on a LocalCluster (one worker process) match the in-process rows."""
    result, _ = study
    series = shutil.copytree(Path(result.output) / "series.zarr", tmp_path / "series.zarr")
    for p in series.glob("*.twin.zarr"):  # forget the analyses: the cluster must redo conductive
        twin = Twin.open(p)
        shutil.rmtree(p / "twinlab" / "results" / "study", ignore_errors=True)
        assert "study" not in Twin.open(p).result_names, twin.result_names
    from twinlab.study import _run_members

    done = _run_members([str(p) for p in sorted(series.glob("*.twin.zarr"))], ["conductive"], scheduler=None,
                        workers=1, say=lambda _m: None)
    assert [d["status"] for d in done] == ["analysed"] * 5
    rows = {r["member"]: r for r in result.rows}
    for p in series.glob("*.twin.zarr"):
        again = member_row(Twin.open(p), Electrochemistry(), c_rates=C_RATES)
        assert again["activation"] == rows[again["member"]]["activation"]


# ------------------------------------------------------------------------------------------- CLI
def test_help_documents_every_criterion_with_its_unit():
    res = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for flag, unit in (("--max-crackable", "in %"), ("--min-conductivity", "in S/m"),
                       ("--min-ionic-conductivity", "in S/m"), ("--max-tortuosity-factor", "(unitless)"),
                       ("--min-porosity", "(unitless fraction"), ("--max-porosity", "(unitless fraction"),
                       ("--min-q-eff-fraction", "(unitless fraction"), ("--min-activation", "(unitless"),
                       ("--require", "in the quantity's unit"), ("--densities", "g/cm³"), ("--c-rate", "1/h"),
                       ("--d0", "m²/s"), ("--c0", "mol/m³"), ("--capacity", "mAh/cm²"), ("--strengths", "MPa")):
        assert flag in text, flag
        after = text[text.index(flag):][:260]
        assert unit in after, (flag, unit, after)


@pytest.mark.parametrize("args, message", [
    (["--densities", "2.6:3.0:0.2", "--require", "crackability<=5"], "unknown quantity 'crackability'"),
    (["--densities", "2.6:3.0:0.2", "--max-crackable", "5 S/m"], "unit 'S/m' does not fit this quantity, which is in %"),
    (["--densities", "3.4:2.6:0.2"], "--densities 3.4:2.6:0.2 is an empty range"),
    (["--densities", "2.6:3.0:0.2", "--analyses", "transport", "--min-activation", "0.9"],
     "--min-activation needs 'activation'"),
    (["--densities", "2.6:3.0:0.2", "--calender-option", "windw=32"], "unknown calender option(s) windw;"),
])
def test_bad_criteria_are_one_line_errors(cathode, tmp_path, args, message):
    res = CliRunner().invoke(app, ["study", str(cathode.path), "-o", str(tmp_path / "s"), *args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("twinlab: error:") and message in lines[0], res.output
    assert not (tmp_path / "s" / "series.zarr").exists()  # nothing calendered


def test_study_report_from_real_members(study):
    """The study report of the real run: every study figure computed, as PNG and SVG, window on top."""
    from twinlab.report import STUDY_FIGURES

    result, _ = study
    html = Path(result.report).read_text()
    figures = Path(result.report).parent / "figures"
    for key, _, _ in STUDY_FIGURES:
        assert f'<section id="{key}"><h2>' in html and (figures / f"{key}.png").is_file(), key
        assert (figures / f"{key}.svg").is_file(), key
    assert html.count("data:image/png;base64,") == len(STUDY_FIGURES)
    assert html.index(result.window.line().split(";")[0]) < html.index('<section id="quantities">')


def test_demo_table_ends_with_the_window(study):
    from twinlab.pipeline import DemoRun, SampleRun

    result, _ = study
    run = SampleRun(name="c", twin="c.twin.zarr", series=None, report=None, stages=())
    table = DemoRun(cathode=run, anode=run, ebac={}, seconds=1.0, study=result).table()
    lines = table.splitlines()
    assert lines[lines.index(result.window.line()) + 2].startswith("demo finished")  # the study closes the story


def test_cli_resumes_the_study_and_prints_the_window(study, cathode):
    """The CLI on the same twin and targets reuses the series and the analysed members (no recomputation)
    and prints the table and the design window in one line."""
    result, _ = study
    index = Path(result.output) / "series.zarr" / "index.json"
    stamp = index.stat().st_mtime_ns
    res = CliRunner().invoke(app, ["study", str(cathode.path), "-o", result.output, "--densities", "2.6:3.4:0.2",
                                   "--c-rate", "1,2", "--min-q-eff-fraction", "80%", "--min-porosity", "0.3",
                                   "--calender-option", "contacts=false", "--no-report"])
    assert res.exit_code == 0, res.output
    assert index.stat().st_mtime_ns == stamp
    window_lines = [line for line in res.output.splitlines() if line.startswith("design window:")]
    assert len(window_lines) == 1
    data = json.loads(Path(result.table_json).read_text())
    from twinlab.design_window import design_window, make_criterion

    units = {c["key"]: c["unit"] for c in data["columns"]}
    crit = [make_criterion("porosity", "min", 0.3, units), make_criterion("q_eff_fraction_1C", "min", 0.8, units),
            make_criterion("q_eff_fraction_2C", "min", 0.8, units)]
    assert window_lines[0] == design_window(result.rows, crit, x_key="density", x_unit="g/cm³").line()
    assert [m["status"] for m in data["members"]] == ["skipped"] * 5
    assert [c["key"] for c in data["window"]["criteria"]] == ["porosity", "q_eff_fraction_1C", "q_eff_fraction_2C"]
