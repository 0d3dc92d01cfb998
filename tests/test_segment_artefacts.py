"""Issue 18: segmentation under FIB-SEM artefacts — shine-through and partial volume.

The full must-show numbers (3.0 and 3.6 g/cm³, 256³ at the FIB voxel size, every artefact on) are
printed by ``tests/benchmarks/bench_segment_artefacts.py``. Here, at a smaller size:

* a generated NCM622 cathode (3.0 g/cm³, 0.3 µm voxels, 56 × 72 × 72) rendered with EVERY artefact of
  ``render_fibsem`` at its default (shine-through, curtains, drift, shading, shot + read noise, PSF)
  and the fiducial cap of automated serial sectioning above the field, registered by the default
  aligner (on the fiducial, cap cropped), preprocessed by the default chain (destripe, NLM), then
  multi-Otsu + :func:`refine_fibsem_labels`; the same at the FIB voxel size (3.6 g/cm³);
* the shine-through law recovered from a stack, and partial-volume rims removed, on small volumes.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.datasets.simulators import FIB_VOXEL_SIZE, NO_ARTEFACTS, render_fibsem
from twinlab.segment import (correct_shine_through, dice, model_from_thresholds, refine_fibsem_labels,
                             resolve_partial_volume, segment_phases)

from _segment_synth import make_electrode

PORE, ACTIVE, CBD = 0, 1, 2


def _fractions(lab):
    return np.array([(lab == v).mean() for v in (PORE, ACTIVE, CBD)])


@pytest.fixture(scope="module")
def cathode():
    from twinlab.datasets.generators import make_cathode
    from twinlab.design import ncm622_cathode
    from twinlab.preprocess import align_slices, preprocess_volume

    g = make_cathode(ncm622_cathode(3.0), shape=(56, 72, 72), voxel_size_um=0.3, cbd_as="domain",
                     collector_um=0.0, seed=1)
    st = render_fibsem(g.phases, voxel_size_um=g.voxel_size, seed=3, fiducial_px=32)  # every artefact on
    aligned, _ = align_slices(st.raw)  # the default: registered on the fiducial, the cap cropped
    assert aligned.shape == g.phases.shape
    img = preprocess_volume(aligned, voxel_size=g.voxel_size, steps=["destripe", "denoise"], dtype="float32").image
    otsu = segment_phases(img, method="multiotsu")
    refined, info = refine_fibsem_labels(img, otsu, (PORE, CBD, ACTIVE))
    return g.phases, otsu, refined, info


def test_refined_segmentation_meets_fractions_and_cbd_dice_at_0p3um(cathode):
    truth, _, refined, _ = cathode
    d = dice(refined, truth)
    # measured: Dice pore 0.957, active 0.971, CBD 0.804; fractions off by 0.008, 0.006, 0.002
    # (with the simulator's own shifts: 0.971 / 0.971 / 0.825)
    assert np.abs(_fractions(refined) - _fractions(truth)).max() <= 0.02
    assert d[CBD] >= 0.80 and d[PORE] >= 0.95 and d[ACTIVE] >= 0.95, d


def test_refinement_fixes_the_cbd_fraction_that_thresholds_overestimate(cathode):
    truth, otsu, refined, info = cathode
    before = abs(_fractions(otsu)[2] - _fractions(truth)[2])
    after = abs(_fractions(refined)[2] - _fractions(truth)[2])
    # measured: multi-Otsu alone 0.021 too much CBD (partial-volume rims), refined 0.001
    assert before > 0.015 and after < 0.5 * before, (before, after)
    assert info["partial_volume"]["to_bright_fraction"] > 0
    assert info["partial_volume"]["mixing_test"]  # CBD resolved: its level 6.4 noise std from a 50/50 mix
    # and wide enough to count: measured 0.60 of the threshold's CBD voxels in bodies wider than the blur
    assert info["partial_volume"]["resolved"] and info["partial_volume"]["body_share"] >= 0.4


def test_fib_voxel_size_dense_cathode_every_artefact():
    """3.6 g/cm³ at the FIB voxel size: here shine-through matters (dense, small pores)."""
    from twinlab.datasets.generators import LogNormalMode, make_cathode
    from twinlab.design import ncm622_cathode
    from twinlab.preprocess import align_slices, preprocess_volume

    # the NCM622 design at 3.6 g/cm³ with only the 3 µm mode: a 3.2 µm cube (98 × 86 × 86 voxels) holds
    # particles; the 14 µm mode needs a ≥ 14.5 µm cube (the 256³ benchmark)
    g = make_cathode(ncm622_cathode(3.6), domain_um=(3.2, 3.2, 3.2), voxel_size_um=FIB_VOXEL_SIZE,
                     modes=(LogNormalMode(3.0, 0.25, 1.0),), cbd_as="domain", collector_um=0.0, seed=1)
    st = render_fibsem(g.phases, voxel_size_um=FIB_VOXEL_SIZE, seed=3, fiducial_px=32)  # every artefact on
    aligned, shifts = align_slices(st.raw)  # the default: registered on the fiducial, the cap cropped
    assert aligned.shape == g.phases.shape
    assert np.sqrt(np.mean((shifts - st.shifts) ** 2)) < 0.06  # measured 0.018 px rms
    img = preprocess_volume(aligned, voxel_size=FIB_VOXEL_SIZE, steps=["destripe", "denoise"], dtype="float32").image
    otsu = segment_phases(img, method="multiotsu")
    refined, info = refine_fibsem_labels(img, otsu, (PORE, CBD, ACTIVE))
    d0, d = dice(otsu, g.phases), dice(refined, g.phases)
    # measured (registered on the fiducial): multi-Otsu 0.959 / 0.995 / 0.954, refined 0.975 / 0.995 / 0.967;
    # fractions within 0.004 (with the true shifts: refined 0.982 / 0.996 / 0.979)
    assert d[PORE] >= 0.95 and d[ACTIVE] >= 0.97 and d[CBD] >= 0.85, d
    assert np.abs(_fractions(refined) - _fractions(g.phases)).max() <= 0.02
    assert d[PORE] >= d0[PORE] + 0.005 and d[CBD] >= d0[CBD] + 0.005, (d0, d)
    assert info["shine_through"]["fitted"]
    assert info["partial_volume"]["resolved"], info["partial_volume"]  # CBD resolved at the FIB voxel size


def test_shine_through_law_is_recovered_and_pore_backs_returned_to_pore():
    phases, _ = make_electrode((96, 80, 80), seed=3)
    kw = {**NO_ARTEFACTS, "noise_sigma": 0.01, "shine_through": 0.8, "shine_depth_um": 0.5}
    st = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1, **kw)
    img = st.raw.astype(np.float32)
    levels = st.grey_levels
    lab = model_from_thresholds([0.5 * (levels["pore"] + levels["cbd"]), 0.5 * (levels["cbd"] + levels["active"])]
                                ).predict(img)
    out, fit = correct_shine_through(img, lab, dark=PORE, mid=CBD, bright=ACTIVE)
    true_decay = 0.5 / FIB_VOXEL_SIZE.dz  # 15.4 slices
    # measured on these small spheres: s 0.70, λ 6.9 slices (pores are short, the tail is poorly sampled);
    # on the generated cathode s 0.82, λ 17.8 for the same law (see the module notes)
    assert fit.fitted and abs(fit.amplitude - 0.8) <= 0.2 and true_decay / 2.5 <= fit.decay_slices <= 2.5 * true_decay
    wrong_before = np.count_nonzero((phases == PORE) & (lab == CBD))
    wrong_after = np.count_nonzero((phases == PORE) & (out == CBD))
    assert wrong_before > 0 and wrong_after <= 0.5 * wrong_before, (wrong_before, wrong_after)
    # some real CBD in front of walls goes too (measured 15.5 k voxels vs 137 k pore backs fixed): net gain
    assert np.count_nonzero(out != phases) < 0.8 * np.count_nonzero(lab != phases)


def test_no_shine_through_no_change():
    phases, _ = make_electrode((48, 64, 64), seed=4)
    st = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1, **{**NO_ARTEFACTS, "noise_sigma": 0.01})
    img = st.raw.astype(np.float32)
    lab = segment_phases(img, method="multiotsu")
    out, fit = correct_shine_through(img, lab, dark=PORE, mid=CBD, bright=ACTIVE)
    assert fit.relabelled_fraction <= 1e-3 and np.count_nonzero(out != lab) <= 1e-3 * lab.size


def test_partial_volume_rims_on_active_pore_edges_are_removed():
    phases, _ = make_electrode((32, 96, 96), seed=5)  # active spheres, CBD in the necks, pore
    blurred = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1,
                            **{**NO_ARTEFACTS, "noise_sigma": 0.005, "blur_sigma_px": 0.7})
    img = blurred.raw.astype(np.float32)
    g = blurred.grey_levels
    lab = model_from_thresholds([0.5 * (g["pore"] + g["cbd"]), 0.5 * (g["cbd"] + g["active"])]).predict(img)
    out, fix = resolve_partial_volume(img, lab, dark=PORE, mid=CBD, bright=ACTIVE)
    from scipy import ndimage as ndi

    # active/pore edges away from any CBD: every mid-grey voxel there is a partial-volume rim
    pv_zone = ~ndi.binary_dilation(phases == CBD, np.ones((1, 5, 5), bool))
    false_before = np.count_nonzero((lab == CBD) & pv_zone)
    false_after = np.count_nonzero((out == CBD) & pv_zone)
    # measured: 5845 → 4637 (−21 %); rims of blurred small spheres (r 6–11 px) are often thicker than the
    # 3 × 3 cross opening tolerates. On the generated cathode the CBD fraction error drops 0.021 → 0.001.
    assert false_before > 0.002 * lab.size and false_after <= 0.85 * false_before, (false_before, false_after)
    assert fix.to_bright_fraction > 0 and fix.to_dark_fraction > 0
    # NOT a net gain here: thin real CBD goes too (measured 4.3 k of 30.4 k CBD voxels) and the total error
    # count is unchanged (16.3 k → 16.5 k); on the generated cathode at 0.3 µm the phase fractions are what
    # improves (CBD +0.021 → −0.001) while the CBD Dice falls (0.870 → 0.825).


def test_partial_volume_at_coarse_voxels_where_the_mid_level_is_a_half_mix():
    """Coarse voxels (the demo's 0.745 µm): the "mid" class is mostly blurred active/pore edges, its level
    within noise of a 50/50 mix, so the grey value cannot tell CBD from a rim: rims go by the 50 % level."""
    phases, _ = make_electrode((32, 96, 96), seed=5)
    phases = np.where(phases == CBD, PORE, phases).astype(np.uint8)  # no CBD at all: every mid voxel is a rim
    st = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1,
                       **{**NO_ARTEFACTS, "noise_sigma": 0.01, "blur_sigma_px": 1.0})
    img = st.raw.astype(np.float32)
    dark, bright = np.median(img[phases == PORE]), np.median(img[phases == ACTIVE])
    lab = model_from_thresholds([dark + 0.3 * (bright - dark), dark + 0.75 * (bright - dark)]).predict(img)
    out, fix = resolve_partial_volume(img, lab, dark=PORE, mid=CBD, bright=ACTIVE)
    assert not fix.mixing_test and fix.separation < 2.0, fix  # measured 0.96 noise std
    assert not fix.resolved and fix.body_share < 0.25, fix  # the "mid phase" is only rims
    # measured: CBD 0.126 → 0.020 (0.032 with the mixing test); active 0.424 → 0.496, the 50 % level 0.505
    assert (out == CBD).mean() <= 0.025
    assert abs((out == ACTIVE).mean() - (img >= 0.5 * (dark + bright)).mean()) <= 0.015


def test_partial_volume_keeps_thick_cbd():
    phases, _ = make_electrode((32, 80, 80), seed=6)
    st = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1, **{**NO_ARTEFACTS, "noise_sigma": 0.005})
    img = st.raw.astype(np.float32)  # no blur: no partial volume, the CBD must stay
    lab = segment_phases(img, method="multiotsu")
    out, _ = resolve_partial_volume(img, lab, dark=PORE, mid=CBD, bright=ACTIVE)
    assert np.count_nonzero((lab == CBD) & (out != CBD)) <= 0.01 * np.count_nonzero(lab == CBD)


def test_segment_twin_reports_an_empty_phase_and_its_refinement(make_twin):
    from twinlab.segment import segment_twin

    phases, _ = make_electrode((24, 48, 48), seed=7)
    st = render_fibsem(phases, voxel_size_um=FIB_VOXEL_SIZE, seed=1, **{**NO_ARTEFACTS, "noise_sigma": 0.01})
    twin = make_twin(st.raw, voxel_size=FIB_VOXEL_SIZE.as_tuple(), thickness_axis="y", collector_side="low")
    report = segment_twin(twin, phases="pore,cbd,active,collector", particles=False)
    assert report.empty_phases == ("collector",) and any("collector" in w for w in report.warnings)
    assert report.refinement is not None and "shine_through" in report.refinement
    step = next(p for p in reversed(twin.reload().provenance) if p["step"] == "segment")
    assert step["params"]["refinement"]["partial_volume"] is not None
    assert twin.load_result("segment")["empty_phases"] == ["collector"]


def test_refinement_refuses_mismatched_shapes():
    from twinlab.errors import InputError

    with pytest.raises(InputError, match="one shape"):
        resolve_partial_volume(np.zeros((4, 5, 6)), np.zeros((4, 5, 5), np.uint8), dark=0, mid=2, bright=1)


def test_failed_checks_are_listed_in_the_result_and_the_report(make_twin, tmp_path):
    from twinlab.analyses.rev import check_design
    from twinlab.design import ncm622_cathode
    from twinlab.report import check_failures, write_report
    from twinlab.twin import Step

    phases, _ = make_electrode((16, 32, 32), seed=8)
    twin = make_twin(phases, labels={"phases": phases})
    assert check_failures(twin) == []
    twin.save_result("segment", {"empty_phases": ["collector"], "warnings": "phase 'collector' is empty"},
                     step=Step("segment_summary", {}))
    design = check_design(phases, ncm622_cathode())  # a random sphere packing is not the NCM622 design
    assert not design.passed
    twin.save_result("rev", {"design": design.to_dict()}, step=Step("rev", {}))
    failed = check_failures(twin)
    assert len(failed) == 2 and "collector" in failed[0] and "FAILED" in failed[1]
    html = write_report(twin, tmp_path / "r" / "report.html").read_text()
    assert "empty phase(s) collector" in html and "design check FAILED" in html


def test_cbd_below_resolution_is_reported_not_checkable(make_twin, tmp_path):
    """The former demo's case: CBD as solid volume (films at necks) at 0.65/0.745 µm voxels, every artefact on.
    Its films are one voxel thick, so no rule can measure the CBD fraction from voxel counts: the
    segmentation records it as unresolved and the design check neither passes nor fails it."""
    from twinlab.analyses.rev import analyze_twin
    from twinlab.datasets.generators import make_cathode
    from twinlab.preprocess import align_slices
    from twinlab.report import check_failures, write_report
    from twinlab.segment import segment_twin

    g = make_cathode(shape=(32, 128, 64), voxel_size_um=(0.65, 0.745, 0.745), collector_um=6.0, seed=0)
    st = render_fibsem(g.phases, voxel_size_um=g.voxel_size, seed=0)
    aligned, _ = align_slices(st.raw, shifts=st.shifts)  # the simulator's own shifts: the kindest registration
    twin = make_twin(aligned, voxel_size=g.voxel_size.as_tuple(), thickness_axis="y", collector_side="low",
                     design=g.design.to_dict())
    report = segment_twin(twin, phases="pore,cbd,active,collector", particles=False)
    assert set(report.unresolved_phases) == {"cbd"} and any("below the resolution" in w for w in report.warnings)
    # the truth itself: 93 % of the demo's CBD voxels vanish under the in-plane 3 × 3 cross opening
    check = analyze_twin(twin, cbd_as="solid", n_samples=4).design
    assert "cbd" in check.not_checkable and "cbd" not in check.passed_phases
    assert check.message.startswith("design check NOT CHECKABLE for cbd") and "below the resolution" in check.message
    assert any("NOT CHECKABLE" in line for line in check_failures(twin))  # listed, never passed silently
    html = write_report(twin, tmp_path / "r" / "report.html").read_text()
    assert "cbd not checkable" in html


def test_design_check_not_checkable_phases():
    from twinlab.analyses.rev import check_design
    from twinlab.design import ncm622_cathode
    from twinlab.errors import InputError

    phases, _ = make_electrode((16, 32, 32), seed=8)
    plain = check_design(phases, ncm622_cathode(), tolerance=0.5)
    skipped = check_design(phases, ncm622_cathode(), tolerance=0.5, unresolved={"cbd": "films one voxel thick"})
    assert plain.passed_phases["cbd"] and "cbd" not in skipped.passed_phases
    assert skipped.not_checkable == {"cbd": "films one voxel thick"} and skipped.segmented == plain.segmented
    assert skipped.message.startswith("design check NOT CHECKABLE for cbd (segmented")
    assert "films one voxel thick; the other phases within ±0.5" in skipped.message
    with pytest.raises(InputError, match="unresolved must map phase names"):
        check_design(phases, ncm622_cathode(), unresolved={"cbd": ""})
