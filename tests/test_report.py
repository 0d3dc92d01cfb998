"""The HTML report: every listed figure embedded and saved as PNG; opens cleanly in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from twinlab.datasets import make_cathode
from twinlab.design import ncm622_cathode
from twinlab.pipeline import parse_config, run_sample
from twinlab.report import FIGURES, STUDY_FIGURES, StudyReportData, write_report, write_study_report


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A small cathode through the whole pipeline (labels input) with a two-step calendering series."""
    folder = tmp_path_factory.mktemp("report")
    electrode = make_cathode(ncm622_cathode(2.3), shape=(20, 72, 40), voxel_size_um=1.0, collector_um=3.0, seed=4)
    np.save(folder / "cathode.npy", electrode.phases)
    config = parse_config({
        "name": "cathode", "output": str(folder / "cathode.twin.zarr"),
        "input": {"path": str(folder / "cathode.npy"), "kind": "labels", "voxel_size": 1.0},
        "design": "ncm622", "chunks": 32,
        "analyses": {"run": ["rev", "morphology", "network", "transport", "cracks", "conductive"]},
        "calender": {"densities": [2.8, 3.3], "steps": 2, "analyses": ["conductive"]},
        "report": True,
    })
    run = run_sample(config)
    from twinlab.pipeline import _demo_ebac

    _demo_ebac(Path(run.series))
    return run


def test_report_embeds_every_figure(analysed, tmp_path):
    html_path = write_report(analysed.twin, tmp_path / "r" / "report.html", series=analysed.series)
    html = html_path.read_text()
    for key, title, _ in FIGURES:
        section = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
        assert section, key
        assert "data:image/png;base64," in section.group(1), f"figure {key!r} ({title}) not computed"
        png = tmp_path / "r" / "figures" / f"{key}.png"
        assert png.stat().st_size > 5000
        assert (tmp_path / "r" / "figures" / f"{key}.svg").read_text().lstrip().startswith("<?xml")


def test_pipeline_wrote_its_own_report(analysed):
    assert analysed.report and Path(analysed.report).is_file()


CHROMIUM = pytest.mark.skipif(shutil.which("chromium") is None,
                              reason="Debian chromium not installed (make test installs it)")
HEADLINE_BORDER = (0x1F, 0x6F, 0xB2)  # table.headline's 3 px border colour (report CSS)
APPENDIX_BORDER = (0x7A, 0x3E, 0x9D)  # table.raw's border colour: visible only when the appendix is open


def chromium(html_path: Path, tmp_path: Path, *, height: int, dump_dom: bool = False):
    """Open ``html_path`` in headless Chromium: (screenshot as RGB array, console error lines, DOM or None)."""
    from PIL import Image

    common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
              "--hide-scrollbars", "--force-device-scale-factor=1"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run(common + [f"--window-size=1200,{height}", f"--screenshot={shot}", html_path.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 10000, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    dom = None
    if dump_dom:
        dom = subprocess.run(common + ["--dump-dom", html_path.as_uri()], capture_output=True, text=True,
                             timeout=180).stdout
    return np.asarray(Image.open(shot).convert("RGB")), errors, dom


def colour_rows(pixels: np.ndarray, colour: tuple[int, int, int], run: int = 100) -> np.ndarray:
    """Screenshot rows holding at least ``run`` pixels of exactly ``colour`` (a table's horizontal border)."""
    hits = (pixels == np.asarray(colour, dtype=pixels.dtype)).all(axis=2)
    return np.flatnonzero(hits.sum(axis=1) >= run)


def check_first_screen_and_appendix(html_path: Path, tmp_path: Path) -> np.ndarray:
    """The headline table lies wholly above 900 px, the appendix is collapsed, no console errors."""
    pixels, errors, dom = chromium(html_path, tmp_path, height=12000, dump_dom=True)
    assert not errors, errors
    assert pixels.std() > 10  # figures and text, not a blank page
    rows = colour_rows(pixels, HEADLINE_BORDER)
    assert rows.size >= 2 and rows.max() - rows.min() > 100, rows  # top and bottom border of a real table
    assert rows.max() < 900, f"headline table ends at {rows.max()} px, below the first screen"
    assert colour_rows(pixels, APPENDIX_BORDER, run=20).size == 0  # the raw tables are not rendered
    assert re.search(r'<details id="appendix">\s*<summary>', dom) and "<details id=\"appendix\" open" not in dom
    return pixels


@CHROMIUM
def test_report_opens_in_headless_chromium(analysed, tmp_path):
    html_path = write_report(analysed.twin, tmp_path / "report.html", series=analysed.series)
    check_first_screen_and_appendix(html_path, tmp_path)


@CHROMIUM
def test_study_report_in_headless_chromium(tmp_path):
    html_path = write_study_report(study_data(), tmp_path / "study" / "report.html")
    check_first_screen_and_appendix(html_path, tmp_path)


def test_appendix_check_would_catch_an_open_appendix(tmp_path):
    """The screenshot check is real: the same report with the appendix opened fails it."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed")
    html_path = write_study_report(study_data(), tmp_path / "study" / "report.html")
    opened = html_path.with_name("opened.html")
    opened.write_text(html_path.read_text().replace('<details id="appendix">', '<details id="appendix" open>'))
    with pytest.raises(AssertionError):
        check_first_screen_and_appendix(opened, tmp_path)


def study_data() -> StudyReportData:
    """A hand-built study (the report renders what it is given): 5 densities, two criteria, a window."""
    from twinlab.analyses.transport import fit_bruggeman
    from twinlab.design_window import design_window, parse_criterion

    units = {"density": "g/cm³", "ratio": "1", "porosity": "1", "tortuosity_factor": "1",
             "electronic_conductivity": "S/m", "crackable_100_mpa": "%", "q_eff_fraction_2C": "1",
             "activation": "1", "shell_intact_fraction": "1", "contact_collector_rel": "1",
             "contact_electrolyte_rel": "1"}
    dens = np.array([2.6, 2.8, 3.0, 3.2, 3.4])
    eps = 1 - dens / 4.3
    rows = [{"member": f"density_{d:.2f}", "density": d, "ratio": 1 - 2.6 / d, "porosity": e,
             "tortuosity_factor": e ** -0.6, "electronic_conductivity": sigma, "crackable_100_mpa": 40 * (d - 2.6),
             "q_eff_fraction_2C": min(1.0, 2.2 * e), "activation": 0.5 + 0.1 * i, "shell_intact_fraction": 1 - 0.2 * i,
             "contact_collector_rel": 0.1 * i, "contact_electrolyte_rel": 0.05 * i}
            for i, (d, e, sigma) in enumerate(zip(dens, eps, (0.9, 0.95, 1.1, 1.2, 1.3)))]
    criteria = [parse_criterion("electronic_conductivity>=1", units), parse_criterion("crackable_100_mpa<=25%", units)]
    window = design_window(rows, criteria, x_key="density", x_unit="g/cm³")
    fit = fit_bruggeman(eps, eps ** -0.6)
    x = np.linspace(-1, 1, 50)
    columns = [{"key": k, "label": k, "unit": u, "description": k} for k, u in units.items()]
    return StudyReportData(
        title="calendering study — hand-built", x_key="density", x_unit="g/cm³", columns=columns, rows=rows,
        window=window.to_dict(), window_line=window.line(),
        bruggeman={**fit.to_dict(), "points": [[e, e ** -0.6] for e in eps]},
        band_pdfs={f"{d:.1f} g/cm³": (x.tolist(), np.exp(-x ** 2 / (0.02 * (i + 1))).tolist())
                   for i, d in enumerate(dens[::2])},
        crackable_profiles={f"{d:.1f} g/cm³": {"100": list(np.linspace(10, 40, 10) * d / 3)} for d in dens[-3:]},
        lmp=True, settings={"c_rates": [2.0]}, appendix={"members": [r["member"] for r in rows]})


def test_study_report_figures_png_and_svg(tmp_path):
    html_path = write_study_report(study_data(), tmp_path / "study" / "report.html")
    html = html_path.read_text()
    for key, title, _ in STUDY_FIGURES:
        section = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
        assert section and "data:image/png;base64," in section.group(1), f"figure {key!r} ({title}) not computed"
        assert (tmp_path / "study" / "figures" / f"{key}.png").stat().st_size > 5000
        assert (tmp_path / "study" / "figures" / f"{key}.svg").read_text().lstrip().startswith("<?xml")
    assert "design window: 3–3.2 g/cm³ (2 of 5 members)" in html
    assert "fail</span>: electronic_conductivity 0.9, needs ≥ 1 S/m (off by 0.1)" in html


def test_every_figure_labels_its_axes_with_units(analysed):
    from twinlab.series import open_series
    from twinlab.twin import Twin

    twin, members = Twin.open(analysed.twin), open_series(analysed.series)
    figures = [(key, builder(twin, members)) for key, _, builder in FIGURES]
    figures += [(key, builder(study_data())) for key, _, builder in STUDY_FIGURES]
    for key, fig in figures:
        assert fig is not None, key
        for ax in fig.axes:
            if not ax.axison:
                continue
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert re.search(r"\(.+\)$", label), (key, label)  # "quantity (unit)"


def test_cli_report(analysed, tmp_path):
    from typer.testing import CliRunner

    from twinlab.cli import app

    out = tmp_path / "cli" / "report.html"
    res = CliRunner().invoke(app, ["report", analysed.twin, "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)  # the series was found beside the twin
    assert (out.parent / "figures" / "activation.png").is_file()
    res = CliRunner().invoke(app, ["report", analysed.twin, "--series", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
