"""CalenderOptions is the one owner of calender's physics and solver options: every front end (CLI,
pipeline config, study, napari) refuses an unknown option with the same one-line message, passes a
given option through to the calendering, and knows a new option once it is a field of the dataclass."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import twinlab.analyses.mechanics as mechanics
from twinlab.analyses.mechanics import CalenderOptions, calender
from twinlab.cli import app
from twinlab.datasets import make_cathode
from twinlab.design import ncm622_cathode
from twinlab.errors import InputError
from twinlab.pipeline import parse_config, run_sample, series_dir
from twinlab.series import open_series
from twinlab.study import _calender_options, run_study
from twinlab.twin import create_twin

runner = CliRunner()
UNKNOWN = CalenderOptions.names()[0] + "x"  # a misspelt option


@pytest.fixture(scope="module")
def electrode():
    return make_cathode(ncm622_cathode(2.3), shape=(16, 32, 16), voxel_size_um=2.0, collector_um=4.0, seed=3)


@pytest.fixture(scope="module")
def twin(electrode, tmp_path_factory):
    folder = tmp_path_factory.mktemp("opts")
    return create_twin(folder / "c.twin.zarr", electrode.phases * 60, voxel_size=2.0,
                       labels={"phases": electrode.phases}, design=electrode.design.to_dict(), thickness_axis="y",
                       collector_side="low")


def _message() -> str:
    with pytest.raises(InputError) as err:
        CalenderOptions.from_mapping({UNKNOWN: 16})
    return str(err.value)


def _pipeline_config(npy: Path, out: Path, options: dict) -> dict:
    return {"name": "c", "output": str(out), "design": "ncm622", "chunks": 32, "report": False,
            "input": {"path": str(npy), "kind": "labels", "voxel_size": 2.0},
            "analyses": {"run": []}, "calender": {"ratios": [0.1], "steps": 1, "analyses": [], "options": options}}


def _one_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("twinlab: error:"), res.output
    return lines[0].removeprefix("twinlab: error:").strip()


def test_the_message_names_the_option_and_lists_every_field():
    message = _message()
    assert "\n" not in message and message.startswith(f"unknown calender option(s) {UNKNOWN};")
    assert message.endswith("valid options: " + ", ".join(f.name for f in dataclasses.fields(CalenderOptions)))


def test_every_front_end_refuses_an_unknown_option_with_the_same_line(twin, electrode, tmp_path):
    expected = _message()
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "-o", str(tmp_path / "s"),
                              "--option", f"{UNKNOWN}=16"])
    assert _one_line(res) == expected
    res = runner.invoke(app, ["study", str(twin.path), "--densities", "2.6:3.0:0.2", "-o", str(tmp_path / "st"),
                              "--calender-option", f"{UNKNOWN}=16"])
    assert _one_line(res) == expected
    np.save(tmp_path / "c.npy", electrode.phases)
    with pytest.raises(InputError) as err:
        parse_config(_pipeline_config(tmp_path / "c.npy", tmp_path / "p.twin.zarr", {UNKNOWN: 16}))
    assert str(err.value) == expected
    with pytest.raises(InputError) as err:
        run_study(twin, output=tmp_path / "st2", densities=[2.6], calender_options={UNKNOWN: 16})
    assert str(err.value) == expected
    with pytest.raises(InputError) as err:  # the library's keyword overrides: the same check
        calender(twin, ratios=[0.1], **{UNKNOWN: 16})
    assert str(err.value) == expected
    assert not any(p.name.endswith(".zarr") for p in tmp_path.rglob("*"))  # nothing started


def test_a_bad_value_is_refused_by_the_same_check_everywhere(twin, tmp_path):
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "-o", str(tmp_path / "s"),
                              "--option", "tol=-1"])
    assert _one_line(res) == "tol must be a positive number, got -1"
    with pytest.raises(InputError, match="^tol must be a positive number, got -1$"):
        run_study(twin, output=tmp_path / "st", densities=[2.6], calender_options={"tol": -1})
    with pytest.raises(InputError, match="study itself"):
        run_study(twin, output=tmp_path / "st", densities=[2.6], calender_options={"crack_thresholds_mpa": [50]})
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "-o", str(tmp_path / "s"),
                              "--window", "8", "--option", "window=16"])
    assert _one_line(res) == "calender option window is given twice; give it once"


def _check_member(series: Path, window: int, tol: float) -> None:
    """The options reached the run: recorded in the series settings, and the window cropped every member."""
    settings = json.loads((series / "index.json").read_text())["settings"]
    assert settings["tol"] == tol and settings["window"] == window
    for member in open_series(series):
        shape = member.labels("phases").shape
        assert shape[0] == window and shape[2] == window, shape  # in-plane axes z, x cropped; y the thickness
        step = next(p for p in member.provenance if p["step"] == "calender")
        assert step["params"]["tol"] == tol


def test_an_option_reaches_the_calendering_through_every_front_end(twin, electrode, tmp_path):
    # CLI: its own --window flag and the generic --option
    out = tmp_path / "cli.series.zarr"
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "--steps", "1", "-o", str(out),
                              "--window", "8", "--option", "tol=3e-4"])
    assert res.exit_code == 0, res.output
    _check_member(out, 8, 3e-4)
    # pipeline config
    np.save(tmp_path / "c.npy", electrode.phases)
    cfg = parse_config(_pipeline_config(tmp_path / "c.npy", tmp_path / "p.twin.zarr", {"window": 8, "tol": 2e-4}))
    run_sample(cfg)
    _check_member(series_dir(tmp_path / "p.twin.zarr"), 8, 2e-4)
    # study (its crack strengths are its own and override the defaults)
    study = run_study(twin, output=tmp_path / "study", densities=[2.6], analyses=["morphology"], report=False,
                      strengths_mpa=[120.0], calender_options={"window": 8, "tol": 5e-4})
    _check_member(Path(study.output) / "series.zarr", 8, 5e-4)
    settings = json.loads((Path(study.output) / "series.zarr" / "index.json").read_text())["settings"]
    assert settings["crack_thresholds_mpa"] == [120.0] and settings["keep_fields"] is False
    # napari: the widget's computation takes a CalenderOptions
    from twinlab_napari import _compute

    _compute.calender_layers(str(twin.path), ratios=[0.1], steps=1, output=str(tmp_path / "n.series.zarr"),
                             options=CalenderOptions(window=8, tol=4e-4, keep_fields=False))
    _check_member(tmp_path / "n.series.zarr", 8, 4e-4)


def test_the_default_tolerance_is_the_tighter_one_only_where_membrane_shells_are_decided(electrode):
    """``tol=None``: FILM_TOL where sub-voxel films break at a strength (their intact fraction moves with the
    solver's error), DEFAULT_TOL elsewhere; a given tolerance is kept; the series records the value used (the
    anode's side: ``test_calender_lmp.py``)."""
    from twinlab.analyses.mechanics._options import DEFAULT_TOL, FILM_TOL, tol_used

    assert FILM_TOL < DEFAULT_TOL
    assert tol_used(None, membrane=True) == FILM_TOL and tol_used(None, membrane=False) == DEFAULT_TOL
    assert tol_used(3e-4, membrane=True) == 3e-4
    s = calender(electrode.phases, ratios=[0.05], steps=1, voxel_size_um=2.0, thickness_axis="y",
                 collector_side="low", workers=1)
    assert s.settings["tol"] == DEFAULT_TOL
    with pytest.raises(InputError, match="^tol must be a positive number, got 0$"):
        CalenderOptions(tol=0)


def test_a_new_field_is_all_a_new_option_needs(twin, tmp_path, monkeypatch):
    """Add a field to (a subclass of) CalenderOptions: every front end accepts it, and the calendering
    records it, without another line changed."""
    extended = dataclasses.make_dataclass("Extended", [("new_knob", float, 1.0)], bases=(CalenderOptions,),
                                          frozen=True)
    monkeypatch.setattr(mechanics, "CalenderOptions", extended)
    assert extended.names() == (*CalenderOptions.names(), "new_knob")
    # the pipeline's config check and the study's options take it
    parse_config(_pipeline_config(tmp_path / "c.npy", tmp_path / "p.twin.zarr", {"new_knob": 2.0}))
    assert _calender_options({"new_knob": 2.0}, [100.0]).new_knob == 2.0
    # the CLI passes it to the calendering, which records it with the other options
    out = tmp_path / "s.series.zarr"
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "--steps", "1", "-o", str(out),
                              "--window", "8", "--option", "new_knob=2.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "index.json").read_text())["settings"]["new_knob"] == 2.5
    with pytest.raises(InputError, match="valid options: .*, new_knob$"):
        extended.from_mapping({"new_knb": 1})


def test_options_round_trip_and_keyword_overrides_merge():
    opts = CalenderOptions(tol=1e-5, materials={"active": "NCM622"}, crack_thresholds_mpa=[90, 140])
    assert opts.crack_thresholds_mpa == (90.0, 140.0)
    assert CalenderOptions.from_mapping(opts.to_dict()) == opts
    merged = opts.replace(window=16)
    assert (merged.tol, merged.window, opts.window) == (1e-5, 16, None)
    with pytest.raises(InputError, match="window must be at least 8"):
        opts.replace(window=4)
