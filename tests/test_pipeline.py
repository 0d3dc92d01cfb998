"""`twinlab run`: configs validated, one sample end to end, reruns skipped, failures leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from twinlab.cli import app
from twinlab.datasets import make_cathode
from twinlab.design import ncm622_cathode
from twinlab.errors import InputError
from twinlab.pipeline import PIPELINE_STEP, DemoRun, load_config, parse_config, run_sample, series_dir
from twinlab.twin import Twin


@pytest.fixture(scope="module")
def cathode_npy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe")
    electrode = make_cathode(ncm622_cathode(2.3), shape=(16, 60, 32), voxel_size_um=1.0, collector_um=3.0, seed=5)
    np.save(folder / "c.npy", electrode.phases)
    return folder / "c.npy"


def _config(npy, out, **more):
    return {"name": "c", "output": str(out), "design": "ncm622", "chunks": 32, "report": False,
            "input": {"path": str(npy), "kind": "labels", "voxel_size": 1.0},
            "analyses": {"run": ["morphology", "conductive"]}, **more}


def test_run_then_rerun_is_skipped(cathode_npy, tmp_path):
    out = tmp_path / "c.twin.zarr"
    cfg = parse_config(_config(cathode_npy, out, calender={"ratios": [0.15], "steps": 1, "options": {"window": 16}}))
    run = run_sample(cfg)
    twin = Twin.open(out)
    assert {"morphology", "conductive"} <= set(twin.result_names)
    step = next(p for p in twin.provenance if p["step"] == PIPELINE_STEP)
    assert step["params"]["config"]["calender"]["ratios"] == [0.15]  # reproducible from the twin alone
    assert [s.stage for s in run.stages] == ["reconstruct", "morphology", "conductive", "calender"]
    member = Twin.open(series_dir(out) / "ratio_0.15.twin.zarr")
    assert "conductive" in member.result_names and member.shape[2] == 16
    # the series names its source and members by their final places, not the staging folders
    assert next(p for p in member.provenance if p["step"] == "calender")["params"]["source_twin"] == str(out)
    index = json.loads((series_dir(out) / "index.json").read_text())
    assert [st["twin_path"] for st in index["steps"]] == ["ratio_0.15.twin.zarr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.series.zarr", "c.twin.zarr"]  # no staging left
    again = run_sample(cfg)
    assert again.skipped and Twin.open(out).provenance == twin.provenance
    # the headline rows of the series, as the demo prints them
    (row,) = run.series_summary
    stored = member.load_result("calender")
    assert row["ratio"] == stored["ratio"] and row["crackable_100_mpa_pct"] == stored["crackable_volume_pct"]["100"]
    assert row["crackable_particles_100_mpa_pct"] == stored["crackable_particles_pct"]["100"]  # by particle mean stress
    assert row["crackable_particles_100_mpa_se_pct"] == stored["crackable_particles_se_pct"]["100"]  # its sampling error
    assert row["activation"] == member.load_result("conductive")["activation"]
    table = DemoRun(cathode=run, anode=run, ebac={}, seconds=1.0).table()
    assert str(series_dir(out)) in table and "c calendering series" in table
    assert f"{row['ratio']:.4g}" in table and f"{row['crackable_100_mpa_pct']:.4g}" in table


def test_demo_time_table_counts_every_part(monkeypatch):
    """The demo's parts are consecutive: stages of a sample, the rest of its run as "other", marked parts;
    with the process start they sum to the wall time the user waited, and the table shows each."""
    import time

    import twinlab.pipeline as pipeline
    from twinlab.pipeline import SampleRun, StageTiming

    begin = time.perf_counter()
    clock = pipeline._PartClock(started=time.time() - 2.0)  # the process started 2 s ago
    time.sleep(0.05)
    run = SampleRun(name="c", twin="c.twin.zarr", series=None, report=None,
                    stages=(StageTiming("reconstruct", 0.02, 0.1), StageTiming("report", 0.01, 0.1)))
    clock.sample(run)
    time.sleep(0.03)
    clock.mark("EBAC maps")
    waited = time.perf_counter() - begin
    names = [name for name, _ in clock.parts]
    assert names == ["python start and imports", "c reconstruct", "c report", "c other", "EBAC maps"]
    seconds = dict(clock.parts)
    assert seconds["python start and imports"] == pytest.approx(2.0, abs=0.05)
    assert seconds["c other"] == pytest.approx(0.05 - 0.03, abs=0.02)
    assert sum(seconds.values()) - seconds["python start and imports"] == pytest.approx(waited, abs=1e-3)
    table = DemoRun(cathode=run, anode=run, ebac={}, seconds=waited, parts=tuple(clock.parts)).table()
    lines = table.splitlines()
    assert lines[lines.index(next(line for line in lines if line.startswith("where the time went"))) + 1] \
        .startswith("python start and imports")
    assert lines[-1].split()[:2] == ["total", f"{sum(seconds.values()):.1f}"]


def test_failure_after_calendering_leaves_nothing(cathode_npy, tmp_path, monkeypatch):
    import twinlab.pipeline as pipeline

    out = tmp_path / "c.twin.zarr"
    cfg = parse_config(_config(cathode_npy, out, calender={"ratios": [0.15], "steps": 1, "options": {"window": 16}}))
    analyze = pipeline._analyze

    def fail_on_members(twin, name, options):  # the members' analyses run after the compression
        if "series" in str(twin.path):
            raise InputError("member analysis failed")
        return analyze(twin, name, options)

    monkeypatch.setattr(pipeline, "_analyze", fail_on_members)
    with pytest.raises(InputError, match="member analysis failed"):
        run_sample(cfg)
    assert list(tmp_path.iterdir()) == []


def test_invalid_configs_name_the_field(cathode_npy, tmp_path):
    with pytest.raises(InputError, match="input: .*exactly one of input.path or input.dataset"):
        parse_config({"name": "x", "output": "x.twin.zarr", "input": {}})
    with pytest.raises(InputError, match="calender: .*exactly one of calender.ratios or calender.densities"):
        parse_config(_config(cathode_npy, tmp_path / "x", calender={"steps": 2}))
    with pytest.raises(InputError, match="segment.method"):
        parse_config(_config(cathode_npy, tmp_path / "x", segment={"method": "magic"}))


def test_yaml_config_with_relative_paths(cathode_npy, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.npy").write_bytes(cathode_npy.read_bytes())
    path = tmp_path / "sample.yaml"
    path.write_text("name: c\noutput: out/c.twin.zarr\ninput: {path: data/c.npy, kind: labels, voxel_size: 1.0}\n")
    cfg = load_config(path)
    assert cfg.input.path == tmp_path / "data" / "c.npy" and cfg.output == tmp_path / "out" / "c.twin.zarr"


def test_cli_run_bad_config_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\noutput = "x.twin.zarr"\n[input]\npath = "a.tif"\ndataset = "berea"\n')
    res = CliRunner().invoke(app, ["run", str(path)])
    assert res.exit_code == 2 and "exactly one of input.path or input.dataset" in res.output
    res = CliRunner().invoke(app, ["run", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "does not exist" in res.output
