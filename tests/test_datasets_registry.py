"""Sample registry: bundled real samples (shape, voxel size, licence), synthetic demos, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from twinlab.cli import app
from twinlab.datasets import datasets_dir, list_samples, load
from twinlab.datasets.registry import save_sample
from twinlab.design import ncm622_cathode
from twinlab.errors import InputError, ReadError

REAL = ["berea", "superres_nmc", "superres_nmc_sections", "xct_cell"]
runner = CliRunner()


def test_list_samples_describes_every_entry():
    entries = {e["name"]: e for e in list_samples()}
    assert set(REAL) | {"demo_cathode", "demo_cathode_fibsem", "demo_lmp_anode"} <= set(entries)
    for e in entries.values():
        assert e["licence"] and e["provenance"] and e["kind"] in ("real", "synthetic")
    assert entries["berea"]["voxel_size"] == {"dz": 5.345, "dy": 5.345, "dx": 5.345}
    assert entries["superres_nmc"]["voxel_size"] is None  # the source states none


@pytest.mark.parametrize("name", REAL)
def test_real_samples_load_with_declared_shape_and_licence(name):
    entry = next(e for e in list_samples() if e["name"] == name)
    sample = load(name)
    assert list(sample.array.shape) == entry["shape"] and str(sample.array.dtype) == entry["dtype"]
    assert "MIT" in sample.metadata["licence"]
    for f in entry["files"]:
        assert (datasets_dir() / f).is_file()
    folder = datasets_dir() / entry["files"][0].split("/")[0]
    assert (folder / "LICENSE").read_text().startswith("MIT License")
    json.dumps(sample.to_dict())


def test_real_sample_values_match_provenance():
    berea = load("berea")
    assert berea.array.mean() == pytest.approx(0.1987, abs=5e-4)  # porosity stated in the README
    assert berea.voxel_size.as_tuple() == (5.345, 5.345, 5.345)
    nmc = load("superres_nmc")
    values, counts = np.unique(nmc.array, return_counts=True)
    assert values.tolist() == [0, 128] and counts[0] / counts.sum() == pytest.approx(0.602, abs=1e-3)
    assert nmc.voxel_size is None
    xct = load("xct_cell")
    assert set(np.unique(xct.extras["masks"]).tolist()) == {0, 255}
    assert xct.extras["masks"].shape == xct.array.shape
    assert 0.15 < (xct.extras["masks"] == 255).mean() < 0.3


def test_demo_lmp_anode_is_deterministic():
    a, b = load("demo_lmp_anode"), load("demo_lmp_anode")
    assert np.array_equal(a.array, b.array)
    assert a.voxel_size.as_tuple() == (2.0, 2.0, 2.0)
    assert a.extras["particles"].shape == a.array.shape


def test_demo_cathode_and_fibsem():
    s = load("demo_cathode")
    assert s.array.shape == (117, 318, 105) and s.voxel_size.as_tuple() == (0.26, 0.2978, 0.2978)
    design = ncm622_cathode(2.3).volume_fractions(cbd_as="domain")  # the CBD a FIB-SEM image shows
    for name, phi in design.items():
        assert abs(s.metadata["fractions"][name] - phi) < 0.01
    f = load("demo_cathode_fibsem")
    assert f.array.dtype == np.uint16 and np.array_equal(f.extras["phases"], s.array)
    assert f.array.shape == (117, 32 + 318, 105)  # the milled fiducial cap above the field
    assert f.extras["shifts"].shape == (117, 2)
    assert f.metadata["fibsem"]["params"]["fiducial_px"] == 32
    assert [e["shape"] for e in list_samples() if e["name"] == "demo_cathode_fibsem"] == [[117, 350, 105]]


def test_unknown_sample_names_the_available_ones():
    with pytest.raises(InputError, match="available: berea"):
        load("bera")


def test_missing_datasets_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TWINLAB_DATASETS", str(tmp_path / "nowhere"))
    with pytest.raises(ReadError, match="TWINLAB_DATASETS"):
        load("berea")


def test_missing_sample_file_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "berea").mkdir()
    monkeypatch.setenv("TWINLAB_DATASETS", str(tmp_path))
    with pytest.raises(ReadError, match="is missing"):
        load("berea")


def test_save_sample_writes_a_twin_with_truth(tmp_path):
    twin = save_sample("demo_lmp_anode", tmp_path / "lmp.twin.zarr")
    assert set(twin.label_names) >= {"phases", "particles"}
    assert twin.voxel_size.as_tuple() == (2.0, 2.0, 2.0)
    with pytest.raises(InputError, match="states no voxel size"):
        save_sample("superres_nmc", tmp_path / "nmc.twin.zarr")
    with pytest.raises(InputError, match="not a 3D volume"):
        save_sample("xct_cell", tmp_path / "x.twin.zarr", voxel_size=1.0)


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_list():
    res = runner.invoke(app, ["datasets", "list"])
    assert res.exit_code == 0, res.output
    assert "berea" in res.output and "demo_cathode" in res.output
    res = runner.invoke(app, ["datasets", "list", "--json"])
    assert res.exit_code == 0
    assert {e["name"] for e in json.loads(res.output)} >= set(REAL)


def test_cli_show_json():
    res = runner.invoke(app, ["datasets", "show", "superres_nmc", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["shape"] == [128, 128, 128] and info["value_counts"]["128"] > 0
    res = runner.invoke(app, ["datasets", "show", "berea"])
    assert res.exit_code == 0 and "5.345" in res.output


def test_cli_errors_exit_2(tmp_path):
    res = runner.invoke(app, ["datasets", "show", "nope"])
    assert res.exit_code == 2 and "no sample named 'nope'" in res.output
    res = runner.invoke(app, ["datasets", "save", "superres_nmc", str(tmp_path / "a.twin.zarr")])
    assert res.exit_code == 2 and "--voxel-size" in res.output


def test_cli_save(tmp_path):
    out = tmp_path / "nmc.twin.zarr"
    res = runner.invoke(app, ["datasets", "save", "superres_nmc", str(out), "--voxel-size", "0.1,0.1,0.1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["shape"] == [128, 128, 128]


def test_cli_generate(tmp_path):
    out = tmp_path / "lmp.twin.zarr"
    res = runner.invoke(app, ["datasets", "generate", "lmp", str(out), "--ratio", "0.3", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert abs(info["fractions"]["pore"] - info["target_fractions"]["pore"]) < 0.01
    from twinlab.twin import Twin
    assert set(Twin.open(out).label_names) >= {"phases", "particles"}
    res = runner.invoke(app, ["datasets", "generate", "cathode", str(tmp_path / "c.twin.zarr"), "--shape", "4x4"])
    assert res.exit_code == 2 and "--shape" in res.output
    res = runner.invoke(app, ["datasets", "generate", "anode", str(tmp_path / "a.twin.zarr")])
    assert res.exit_code == 2 and "unknown electrode kind" in res.output


def test_save_sample_of_the_fibsem_demo_pads_the_truth_over_its_fiducial_cap(tmp_path):
    twin = save_sample("demo_cathode_fibsem", tmp_path / "c.twin.zarr")
    phases = np.asarray(twin.labels("phases"))
    assert twin.image(0).shape == phases.shape == (117, 350, 105)
    assert not phases[:, :32].any() and np.array_equal(phases[:, 32:], load("demo_cathode").array)
