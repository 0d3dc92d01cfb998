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
from twinlab.report import FIGURES, write_report


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


def test_pipeline_wrote_its_own_report(analysed):
    assert analysed.report and Path(analysed.report).is_file()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)")
def test_report_opens_in_headless_chromium(analysed, tmp_path):
    html_path = write_report(analysed.twin, tmp_path / "report.html", series=analysed.series)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,3000", f"--screenshot={shot}", html_path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10000, proc.stderr[-2000:]
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not console_errors, console_errors
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # figures and text, not a blank page


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
