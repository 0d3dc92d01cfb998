"""Issue 22 — bring your own data: label volumes, own phase names and materials, 2D slices,
phase-order checks, tortuosity conventions and the particle default, through the CLI."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from twinlab.cli import app
from twinlab.errors import InputError
from twinlab.twin import Twin, create_twin

runner = CliRunner()
README = Path(__file__).parents[1] / "README.md"


def _run(*args: str, ok: bool = True):
    res = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def _one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twinlab: error:"), res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in res.output


def sphere_cathode(n: int = 32, seed: int = 3) -> np.ndarray:
    """(n, n, n) labels 0 pore / 1 active / 2 cbd: overlapping active spheres, a CBD skin around them."""
    rng = np.random.default_rng(seed)
    c = np.arange(n) + 0.5
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    dist = np.full((n, n, n), np.inf)
    for cz, cy, cx in rng.random((14, 3)) * n:
        dist = np.minimum(dist, np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2))
    lab = np.zeros((n, n, n), np.uint8)
    lab[dist < 0.3 * n] = 2
    lab[dist < 0.26 * n] = 1
    return lab


def fibre_mat(shape=(12, 20, 24), every: int = 4) -> np.ndarray:
    """Straight fibres (value 1) along y, the thickness axis, every ``every`` x-columns: 0 pore."""
    lab = np.zeros(shape, np.uint8)
    lab[:, :, ::every] = 1
    return lab


def disc_with_crack(n: int = 96) -> np.ndarray:
    """One (y, x) slice: an active disc (1) of radius 30 cut by a drawn 2-voxel crack (0), CBD ring (2)."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    lab = np.zeros((n, n), np.uint8)
    disc = yy ** 2 + xx ** 2 < 30 ** 2
    lab[disc] = 1
    lab[disc & (np.abs(yy - 0.3 * xx) < 1.0) & (np.abs(xx) < 22)] = 0  # a crack inside, closed at both ends
    lab[(yy ** 2 + xx ** 2 >= 31 ** 2) & (yy ** 2 + xx ** 2 < 34 ** 2)] = 2
    return lab


# ============================================================================ 1: label volumes
def test_import_labels_writes_phases_directly_and_analyze_runs(tmp_path):
    """Issue case 1: a segmented volume had no CLI path (analyze: "has no labels 'phases'")."""
    lab = sphere_cathode()
    raw = np.choose(lab, [7, 3, 5]).astype(np.uint8)  # the lab's own values: 7 pore, 3 active, 5 cbd
    tifffile.imwrite(tmp_path / "vol.tif", raw)
    out = tmp_path / "vol.twin.zarr"
    _run("import", tmp_path / "vol.tif", "-o", out, "--voxel-size", "0.5", "--labels",
         "--phase-map", "7=pore,3=active,5=cbd")
    twin = Twin.open(out)
    stored = np.asarray(twin.labels("phases"))
    table = twin.phases
    np.testing.assert_array_equal(stored, np.choose(lab, [table.value("pore"), table.value("active"),
                                                          table.value("cbd")]))
    step = twin.provenance[0]
    assert step["step"] == "import_labels" and step["params"]["phase_map"] == {"7": "pore", "3": "active", "5": "cbd"}
    assert step["params"]["fractions"]["active"] == pytest.approx(float((lab == 1).mean()))
    res = _run("analyze", out, "--only", "network,transport", "--json")
    result = json.loads(res.stdout)
    assert result["network"]["network"]["num_pores"] > 0
    assert result["transport"]["tortuosity"]["tortuosity_factor"] > 1.0


def test_import_labels_default_map_is_the_default_table(tmp_path):
    lab = sphere_cathode(16)
    np.save(tmp_path / "seg.npy", lab)
    out = tmp_path / "seg.twin.zarr"
    _run("import", tmp_path / "seg.npy", "-o", out, "--voxel-size", "1", "--labels")
    np.testing.assert_array_equal(np.asarray(Twin.open(out).labels("phases")), lab)  # 0 pore, 1 active, 2 cbd


def test_import_labels_value_without_phase_is_refused(tmp_path):
    lab = sphere_cathode(16)
    lab[0, 0, 0] = 9
    np.save(tmp_path / "seg.npy", lab)
    res = _run("import", tmp_path / "seg.npy", "-o", tmp_path / "x.twin.zarr", "--voxel-size", "1", "--labels",
               "--phase-map", "0=pore,1=active,2=cbd", ok=False)
    _one_line_error(res, "[9]", "--phase-map")
    assert not (tmp_path / "x.twin.zarr").exists() and not list(tmp_path.glob(".x.twin.zarr*"))


def test_import_labels_malformed_phase_map_is_refused(tmp_path):
    np.save(tmp_path / "seg.npy", sphere_cathode(16))
    res = _run("import", tmp_path / "seg.npy", "-o", tmp_path / "x.twin.zarr", "--voxel-size", "1", "--labels",
               "--phase-map", "zero=pore", ok=False)
    _one_line_error(res, "VALUE=PHASE")


def test_import_labels_refuses_grey_values(tmp_path):
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((8, 8, 8)).astype(np.float32))
    res = _run("import", tmp_path / "grey.npy", "-o", tmp_path / "x.twin.zarr", "--voxel-size", "1", "--labels",
               ok=False)
    _one_line_error(res, "non-integer values", "without --labels")


def test_phase_map_without_labels_flag_is_refused(tmp_path):
    np.save(tmp_path / "seg.npy", sphere_cathode(16))
    res = _run("import", tmp_path / "seg.npy", "-o", tmp_path / "x.twin.zarr", "--voxel-size", "1",
               "--phase-map", "0=pore,1=active", ok=False)
    _one_line_error(res, "--labels")


def test_python_api_maps_labels(tmp_path):
    from twinlab.labelmap import import_labels, map_labels

    lab = fibre_mat()
    mapped = map_labels(lab, "0=pore,1=fiber", materials={"fiber": "carbon_fiber"})
    assert mapped.phases["fiber"].material == "carbon_fiber"
    assert mapped.fractions["fiber"] == pytest.approx(float(lab.mean()))
    twin = import_labels(_save_tif(tmp_path / "mat.tif", lab), tmp_path / "mat.twin.zarr", voxel_size=1.0,
                         phase_map={0: "pore", 1: "fiber"}, materials={"fiber": "carbon_fiber"})
    assert twin.phases["fiber"].material == "carbon_fiber"
    assert np.array_equal(np.asarray(twin.labels("phases")) == twin.phases.value("fiber"), lab == 1)


DATASETS = Path(__file__).parents[1] / "datasets"


def test_real_published_label_volumes_import(tmp_path):
    """Real volumes from other labs (datasets/): SuperRes' NMC sections are float32 labels in one
    multi-sample TIFF page (was refused as "truncated"); the XCT cell's hand mask is one 2D slice."""
    out = tmp_path / "sections.twin.zarr"
    res = _run("import", DATASETS / "superres_nmc" / "sem_image_stack.tif", "-o", out, "--voxel-size", "0.1",
               "--labels", "--phase-map", "0=phase0,1=phase1,2=phase2", "--json")
    assert json.loads(res.stdout)["shape"] == [4, 427, 427]
    fractions = Twin.open(out).provenance[0]["params"]["fractions"]
    assert fractions == pytest.approx({"phase0": 0.148, "phase1": 0.555, "phase2": 0.297}, abs=0.0006)  # source's
    mask = tmp_path / "mask.twin.zarr"
    res = _run("import", DATASETS / "xct_cell" / "mask_1.tif", "-o", mask, "--voxel-size", "1", "--labels",
               "--phase-map", "0=pore,255=cell", "--json")
    assert json.loads(res.stdout)["dimensionality"] == "2D (single slice)"
    assert Twin.open(mask).provenance[0]["params"]["fractions"]["cell"] == pytest.approx(0.22, abs=0.03)


def test_pipeline_label_input_uses_the_phase_map(tmp_path):
    from twinlab.pipeline import parse_config, run_sample

    lab = fibre_mat()
    np.save(tmp_path / "mat.npy", (lab * 255).astype(np.uint8))
    config = parse_config({"name": "mat", "output": str(tmp_path / "mat.twin.zarr"),
                           "input": {"path": str(tmp_path / "mat.npy"), "kind": "labels", "voxel_size": 1.0,
                                     "phase_map": "0=pore,255=fiber", "phases": ["fiber:carbon_fiber"]},
                           "analyses": {"run": ["transport"]}, "report": False})
    run = run_sample(config)
    twin = Twin.open(run.twin)
    assert twin.phases["fiber"].material == "carbon_fiber"
    cond = twin.load_result("transport")["conductivity"]
    assert cond["effective_conductivity_s_m"] == pytest.approx(float(lab.mean()) * 5.9e4, rel=1e-3)


def test_map_labels_refuses_a_grey_float_volume():
    from twinlab.labelmap import map_labels

    with pytest.raises(InputError, match="non-integer values"):
        map_labels(np.array([[[0.0, 0.5], [1.0, 2.0]]], np.float32))


def test_map_labels_chunked_equals_whole():
    import dask.array as da

    from twinlab.labelmap import map_labels

    lab = np.choose(sphere_cathode(23), [0, 1000, 70000]).astype(np.int32)  # any integer range
    spec = "0=pore,1000=active,70000=cbd"
    whole = map_labels(lab, spec)
    chunked = map_labels(da.from_array(lab, chunks=(5, 7, 6)), spec)
    np.testing.assert_array_equal(np.asarray(chunked.labels), np.asarray(whole.labels))
    assert chunked.fractions == whole.fractions
    assert whole.fractions["cbd"] == pytest.approx(float((lab == 70000).mean()))


def _save_tif(path: Path, array: np.ndarray) -> Path:
    tifffile.imwrite(path, array)
    return path


# ============================================================================ 2: phase-order check
def _grey_cathode(tmp_path, lab: np.ndarray, *, design=None, name="c") -> Twin:
    """Grey image whose order is pore < active < cbd (the issue's volume), with noise."""
    rng = np.random.default_rng(1)
    grey = np.array([40.0, 120.0, 200.0])[lab]  # pore 40, active 120, cbd 200
    image = np.clip(grey + rng.normal(0, 6, lab.shape), 0, 255).astype(np.uint8)
    return create_twin(tmp_path / f"{name}.twin.zarr", image, voxel_size=0.5, design=design)


def test_swapped_phase_order_warns_against_the_design(tmp_path):
    """Issue case 2: default --phases pore,cbd,active on a pore < active < cbd image → cbd/active swapped."""
    from twinlab.design import ncm622_cathode
    from twinlab.report import write_report

    lab = sphere_cathode()
    twin = _grey_cathode(tmp_path, lab, design=ncm622_cathode().to_dict())
    res = _run("segment", twin.path, "--no-particles", "--json")
    report = json.loads(res.stdout)
    assert report["fractions"]["cbd"] == pytest.approx(float((lab == 1).mean()), abs=0.01)  # the swap itself
    [warning] = report["warnings"]
    assert "swapped" in warning and "pore,active,cbd" in warning
    assert res.stderr.count("twinlab: warning: phase order looks swapped") == 1
    assert Twin.open(twin.path).load_result("segment")["warnings"] == [warning]
    html = write_report(Twin.open(twin.path), tmp_path / "r" / "report.html").read_text()
    assert "phase order looks swapped" in html

    res = _run("segment", twin.path, "--phases", "pore,active,cbd", "--no-particles", "--json")
    assert json.loads(res.stdout)["warnings"] == [] and "warning" not in res.stderr


def test_swap_warning_without_a_design_uses_the_ncm_preset(tmp_path):
    from twinlab.segment import segment_twin

    lab = sphere_cathode()
    twin = _grey_cathode(tmp_path, lab)
    report = segment_twin(twin, particles=False)
    assert len(report.warnings) == 1 and "typical NCM622 cathode" in report.warnings[0]


def test_order_check_stays_quiet_for_a_moderate_miss():
    """A poorly segmented but correctly named CBD (the demo's Dice ≈ 0.2 case) is no swap."""
    from twinlab.segment.order import check_phase_order

    expected = {"pore": 0.40, "active": 0.48, "cbd": 0.12}
    assert check_phase_order({"pore": 0.45, "cbd": 0.05, "active": 0.50}, ["pore", "cbd", "active"],
                             expected=expected) == ()
    [w] = check_phase_order({"pore": 0.40, "cbd": 0.48, "active": 0.12}, ["pore", "cbd", "active"],
                            expected=expected)
    assert "exchanging cbd and active" in w


# ============================================================================ 3: own phase names and materials
def test_segment_accepts_own_phase_names_and_materials(tmp_path):
    """Issue case 3: `segment --phases pore,fiber` said "unknown phase 'fiber'"."""
    lab = fibre_mat()
    image = np.where(lab == 1, 200, 40).astype(np.uint8)
    twin = create_twin(tmp_path / "mat.twin.zarr", image, voxel_size=1.0)
    res = _run("segment", twin.path, "--phases", "pore,fiber", "--phase", "fiber:carbon_fiber", "--json")
    report = json.loads(res.stdout)
    assert report["fractions"]["fiber"] == pytest.approx(float(lab.mean()))
    again = Twin.open(twin.path)
    assert again.phases["fiber"].material == "carbon_fiber"
    assert report["n_particles"] is None and "particles" not in again.label_names  # item 6: fibres
    assert np.array_equal(np.asarray(again.labels("phases")) == again.phases.value("fiber"), lab == 1)


@pytest.mark.parametrize("given", [5e4, 1e3])
def test_custom_conductivity_is_used_in_the_solve(tmp_path, given):
    """Parallel fibres along the thickness axis: σ_eff = φ_fiber σ_fiber exactly (Voigt bound attained)."""
    lab = fibre_mat()
    np.save(tmp_path / "mat.npy", lab)
    out = tmp_path / "mat.twin.zarr"
    _run("import", tmp_path / "mat.npy", "-o", out, "--voxel-size", "1", "--labels", "--phase-map", "0=pore,1=fiber")
    res = _run("analyze", out, "--only", "transport", "--conductivity", f"fiber={given:g}", "--json")
    cond = json.loads(res.stdout)["transport"]["conductivity"]
    phi = float(lab.mean())
    assert cond["conductivities_s_m"]["fiber"] == given and cond["conductivity_sources"]["fiber"] == "given"
    assert cond["effective_conductivity_s_m"] == pytest.approx(phi * given, rel=1e-3)


def test_material_defaults_only_for_a_known_material(tmp_path):
    from twinlab.analyses import run_analysis
    from twinlab.labelmap import map_labels
    from twinlab.materials import MATERIALS

    lab = fibre_mat()
    phi = float(lab.mean())
    results = {}
    for material in ("carbon_fiber", "mystery_fibre", None):
        mapped = map_labels(lab, "0=pore,1=fiber", materials={"fiber": material} if material else None)
        twin = create_twin(tmp_path / f"{material}.twin.zarr", lab, voxel_size=1.0, phases=mapped.phases,
                           labels={"phases": mapped.labels})
        results[material] = run_analysis("transport", twin)
    known = results["carbon_fiber"].conductivity
    assert known.effective_conductivity_s_m == pytest.approx(phi * MATERIALS["carbon_fiber"].conductivity_s_m,
                                                             rel=1e-3)
    for material in ("mystery_fibre", None):  # no default: the solve says what is missing
        assert results[material].conductivity is None
        assert "no conductivity for phase(s) ['fiber']" in results[material].notes[0]


def test_materials_toml_sets_the_conductivity(tmp_path):
    lab = fibre_mat()
    np.save(tmp_path / "mat.npy", lab)
    out = tmp_path / "mat.twin.zarr"
    _run("import", tmp_path / "mat.npy", "-o", out, "--voxel-size", "1", "--labels", "--phase-map", "0=pore,1=fiber")
    (tmp_path / "m.toml").write_text('[fiber]\nmaterial = "carbon_fiber"\nconductivity_s_m = 2e4\n')
    res = _run("analyze", out, "--only", "transport", "--materials", tmp_path / "m.toml", "--json")
    cond = json.loads(res.stdout)["transport"]["conductivity"]
    assert cond["effective_conductivity_s_m"] == pytest.approx(float(lab.mean()) * 2e4, rel=1e-3)
    (tmp_path / "bad.toml").write_text('[fiber]\nconductivity = 2e4\n')
    _one_line_error(_run("analyze", out, "--only", "transport", "--materials", tmp_path / "bad.toml", ok=False),
                    "conductivity_s_m")


@pytest.mark.parametrize("value, message", [("fibre=5e4", "unknown phase(s) ['fibre']"),
                                            ("fiber=-1", "PHASE=S_PER_M"), ("fiber", "PHASE=S_PER_M")])
def test_bad_conductivity_option_is_one_line(tmp_path, value, message):
    np.save(tmp_path / "mat.npy", fibre_mat())
    out = tmp_path / "mat.twin.zarr"
    _run("import", tmp_path / "mat.npy", "-o", out, "--voxel-size", "1", "--labels", "--phase-map", "0=pore,1=fiber")
    _one_line_error(_run("analyze", out, "--only", "transport", "--conductivity", value, ok=False), message)


def test_bad_phase_name_is_refused():
    from twinlab.phases import parse_phase_materials

    with pytest.raises(InputError, match="non-empty word"):
        parse_phase_materials("fi ber:carbon_fiber")
    with pytest.raises(InputError, match="twice"):
        parse_phase_materials(["fiber:a", "fiber:b"])


# ============================================================================ 4: 2D data
def test_single_slice_imports_as_2d_and_3d_analyses_refuse_it(tmp_path):
    """Issue case 4: a single slice was refused by import; now 2D, and 3D-only analyses say so."""
    lab = disc_with_crack()
    tifffile.imwrite(tmp_path / "slice.tif", lab)
    out = tmp_path / "slice.twin.zarr"
    res = _run("import", tmp_path / "slice.tif", "-o", out, "--voxel-size", "0.05", "--labels", "--json")
    summary = json.loads(res.stdout)
    assert summary["shape"] == [1, 96, 96] and summary["dimensionality"] == "2D (single slice)"
    for name in ("network", "transport", "rev", "morphology", "conductive"):
        _one_line_error(_run("analyze", out, "--only", name, ok=False), f"analysis {name!r} needs a 3D volume")
    res = _run("calender", out, "--ratio", "0.1", "-o", tmp_path / "s.series.zarr", ok=False)
    _one_line_error(res, "calendering needs a 3D volume")


def test_single_png_slice_imports_as_2d(tmp_path):
    from PIL import Image

    grey = np.array([40, 200, 120], np.uint8)[disc_with_crack()]
    Image.fromarray(grey).save(tmp_path / "sem.png")
    res = _run("import", tmp_path / "sem.png", "-o", tmp_path / "sem.twin.zarr", "--voxel-size", "0.05", "--json")
    assert json.loads(res.stdout)["shape"] == [1, 96, 96]
    np.testing.assert_array_equal(np.asarray(Twin.open(tmp_path / "sem.twin.zarr").image())[0], grey)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    _one_line_error(_run("import", tmp_path / "rgb.png", "-o", tmp_path / "rgb.twin.zarr", "--voxel-size", "1",
                         ok=False), "colour image")


def test_cracks_run_on_a_2d_twin_through_the_cli(tmp_path):
    """The CLI/twin path accepts the 2D twin and runs the crack analysis (results labelled 2D)."""
    lab = disc_with_crack()
    np.save(tmp_path / "slice.npy", lab)
    out = tmp_path / "slice.twin.zarr"
    _run("import", tmp_path / "slice.npy", "-o", out, "--voxel-size", "0.05", "--labels")
    res = _run("analyze", out, "--only", "cracks")
    assert res.stdout.startswith("2D twin (single slice [1, 96, 96])") and "crack_volume_percent" in res.stdout
    stored = Twin.open(out).load_result("cracks")
    assert stored["n_particles"] >= 1 and "cracks" in Twin.open(out).label_names


def test_crack_volume_finds_a_drawn_crack_in_a_2d_disc():
    from twinlab.analyses.cracks import crack_volume

    lab = disc_with_crack()
    drawn = int(((lab == 0) & ((np.mgrid[:96, :96] - 48) ** 2).sum(0).__lt__(30 ** 2)).sum())
    res = crack_volume(lab[None], voxel_size_um=0.05, crack_width_um=0.2)
    assert res.dimensions == "2D"  # a (1, y, x) slice is a section: areas in µm², not volumes
    assert drawn > 50 and res.crack_volume_um3 / (0.05 ** 2) == pytest.approx(drawn, rel=0.15)


def test_single_slice_denoise_estimates_noise_in_2d_and_zero_estimate_warns(tmp_path):
    from twinlab.preprocess import preprocess_volume

    rng = np.random.default_rng(0)
    noisy = (100 + rng.normal(0, 10, (1, 80, 80))).astype(np.float32)
    res = preprocess_volume(noisy, voxel_size=0.05, steps="denoise", dtype="float32")
    assert res.params["denoise"]["sigma"] == pytest.approx(10, rel=0.2) and res.warnings == ()
    assert np.std(np.asarray(res.image)) < 0.7 * np.std(noisy)
    flat = np.full((1, 40, 40), 7, np.uint16)
    tifffile.imwrite(tmp_path / "flat.tif", flat)
    cli = _run("preprocess", tmp_path / "flat.tif", "-o", tmp_path / "f.twin.zarr", "--voxel-size", "0.05",
               "--steps", "denoise", "--json")
    assert json.loads(cli.stdout)["warnings"][0].startswith("denoise: the noise estimate is 0")
    assert "twinlab: warning: denoise: the noise estimate is 0" in cli.stderr


# ============================================================================ 5: tortuosity conventions
def test_tortuosity_fields_state_their_convention(tmp_path):
    """Issue case 5: `tortuosity` was τ (porespy's .tortuosity is τ²); the network τ² sat beside the voxel one."""
    from twinlab.pipeline import _TWIN_HEADLINE, summarize
    from twinlab.report import report_notes

    lab = sphere_cathode()
    np.save(tmp_path / "c.npy", lab)
    out = tmp_path / "c.twin.zarr"
    _run("import", tmp_path / "c.npy", "-o", out, "--voxel-size", "0.5", "--labels")
    result = json.loads(_run("analyze", out, "--only", "network,transport", "--json").stdout)

    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    tort_keys = {k for k in keys(result) if "tortuosity" in k} - {"tortuosity"}  # 'tortuosity' = the sub-result
    assert tort_keys == {"tortuosity_factor", "tortuosity_tau", "tortuosity_factor_percolating"}
    for part in (result["transport"]["tortuosity"], result["network"]["tortuosity"]):
        assert part["tortuosity_factor"] == pytest.approx(part["tortuosity_tau"] ** 2)
        assert 0 < part["porosity"] < 1 and "tau^2" in part["convention"]
    net = result["network"]["tortuosity"]
    assert net["estimate"].startswith("pore-network model") and "network estimate" in net["bias_note"]
    # the bias the note states, on this volume: the network reads higher than the voxel reference
    assert net["tortuosity_factor"] > result["transport"]["tortuosity"]["tortuosity_factor"]
    heads = dict(_TWIN_HEADLINE)
    assert heads["tau2_voxel"] == "transport.tortuosity.tortuosity_factor"
    assert heads["tau2_network_est"] == "network.tortuosity.tortuosity_factor"
    assert "network.tortuosity.estimate" in summarize(Twin.open(out))
    assert any("network estimate" in n for n in report_notes(Twin.open(out)))


# ============================================================================ 6: particles follow the material
def test_particles_default_follows_the_material(tmp_path):
    """Issue case 6: particle splitting ran on fibre mats; now only on particulate materials."""
    from twinlab.segment import segment_twin

    lab = sphere_cathode(24)
    image = np.array([40, 200, 120], np.uint8)[lab]
    ncm = segment_twin(create_twin(tmp_path / "a.twin.zarr", image, voxel_size=0.5))
    assert ncm.particle_phase == "active" and ncm.n_particles >= 1 and "particles" in ncm.labels_written
    off = segment_twin(create_twin(tmp_path / "b.twin.zarr", image, voxel_size=0.5), particles=False)
    assert off.n_particles is None and off.labels_written == ("phases",)
    fib = np.where(fibre_mat() == 1, 200, 40).astype(np.uint8)
    twin = create_twin(tmp_path / "f.twin.zarr", fib, voxel_size=1.0)
    res = _run("segment", twin.path, "--phases", "pore,fiber", "--phase", "fiber:carbon_fiber", "--particles",
               ok=False)
    _one_line_error(res, "no phase of ['pore', 'fiber'] is particulate")


# ============================================================================ README
def _readme_section() -> str:
    text = README.read_text()
    start = text.index("### Your own data")
    return text[start:text.index("A whole sample from one config", start)]


def test_readme_own_data_snippet_runs(tmp_path, monkeypatch):
    """The README's label-volume / custom-phase / 2D commands, run line by line through the CLI."""
    section = _readme_section()
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("labels.tif", sphere_cathode())
    tifffile.imwrite("fibres.tif", fibre_mat())
    grey = np.array([40, 200, 120], np.uint8)[disc_with_crack()]
    tifffile.imwrite("slice.tif", grey)
    Path("materials.toml").write_text(toml)
    commands = [line.split("#")[0].strip() for line in bash.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) >= 8 and all(c.startswith("twinlab ") for c in commands)
    for command in commands:
        res = runner.invoke(app, shlex.split(command)[1:])
        assert res.exit_code == 0, f"{command}: {res.output}"
    mat = Twin.open("mat.twin.zarr")
    assert mat.phases["fiber"].material == "carbon_fiber"
    cond = mat.load_result("transport")["conductivity"]
    assert cond["effective_conductivity_s_m"] == pytest.approx(float(fibre_mat().mean()) * 5e4, rel=1e-3)
    assert Twin.open("slice.twin.zarr").shape == (1, 96, 96)
    assert "network" in Twin.open("cathode.twin.zarr").result_names
    assert not math.isnan(Twin.open("cathode.twin.zarr").load_result("transport")["tortuosity"]["tortuosity_factor"])
