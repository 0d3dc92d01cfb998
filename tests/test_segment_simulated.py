"""Must-show: segmentation of simulated FIB-SEM stacks of generated cathodes, scored against truth.

Pipeline: ``make_cathode`` (NCM622 at 3.0 g cm⁻³, CBD as nanoporous domain, 0.5 µm voxels) →
``render_fibsem`` with Poisson + Gaussian noise and the 0.7 px PSF blur (the geometric artefacts —
drift, curtains, shading, shine-through — are off: see the report of issue 5 for their effect)
→ ``preprocess.denoise`` (non-local means) → segmentation → Dice per phase, then the particle
watershed → instance matching (IoU ≥ 0.5) and adjusted Rand index.

Measured (this file's configuration): classifier Dice pore 0.994, active 0.986, CBD 0.92
(held-out slices); multi-Otsu pore 0.991, active 0.968, CBD 0.85; particles: 92 % matched on the
true phases, 77 % on the segmented stack (below the 90 % goal, see the test).
"""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.segment import dice, match_instances, segment_phases, split_particles, train_classifier

TRAIN_SLICES = (4, 16, 28)


@pytest.fixture(scope="module")
def stack():
    gen = pytest.importorskip("twinlab.datasets.generators")
    sim = pytest.importorskip("twinlab.datasets.simulators")
    pre = pytest.importorskip("twinlab.preprocess")
    from twinlab.design import ncm622_cathode

    g = gen.make_cathode(ncm622_cathode(3.0), shape=(32, 48, 48), voxel_size_um=0.5, cbd_as="domain",
                         collector_um=0.0, seed=1)
    artefacts = {**sim.NO_ARTEFACTS, "noise_sigma": 0.02, "shot_noise": 0.02, "blur_sigma_px": 0.7}
    st = sim.render_fibsem(g.phases, voxel_size_um=g.voxel_size, seed=2, **artefacts)
    img = pre.denoise(st.raw, method="nlm", voxel_size=g.voxel_size, patch_distance=3)
    return g, img


@pytest.fixture(scope="module")
def classified(stack):
    """Random-forest labels trained on full truth of 3 of the 32 slices (stand-in for scribbles)."""
    g, img = stack
    scr = np.zeros(g.phases.shape, np.uint8)
    for z in TRAIN_SLICES:
        for k, v in enumerate((0, 2, 1), start=1):
            scr[z][g.phases[z] == v] = k
    return segment_phases(img, classifier=train_classifier(img, scr, sigmas=(0.7, 1.6)))


def _held_out(a: np.ndarray) -> np.ndarray:
    keep = np.ones(a.shape[0], bool)
    keep[list(TRAIN_SLICES)] = False
    return a[keep]


def test_classifier_dice_on_simulated_stack(stack, classified):
    g, _ = stack
    lab = classified
    d = dice(_held_out(lab), _held_out(g.phases))  # scored on the 29 slices not used for training
    assert d[0] >= 0.95 and d[1] >= 0.95, d
    assert d[2] >= 0.85, d


def test_multiotsu_dice_on_simulated_stack(stack):
    g, img = stack
    d = dice(segment_phases(img, method="multiotsu"), g.phases)
    assert d[0] >= 0.95 and d[1] >= 0.95, d
    # thresholds alone: partial-volume voxels at AM/pore borders fall into the CBD gray band
    assert d[2] >= 0.80, d


def test_particles_on_generated_cathode_truth_phases(stack):
    """Watershed of the true active phase vs the generator's particle instances (bimodal 14 µm +
    3 µm NCM, overlapping and faceted, small particles only 6 voxels wide): 73/79 = 92 % matched."""
    g, _ = stack
    inst = split_particles(g.phases, voxel_size_um=g.voxel_size, min_distance_um=1.0)
    m = match_instances(inst, g.particles)
    assert m.fraction_matched >= 0.90, m
    assert m.adjusted_rand_index >= 0.85, m


def test_particles_from_segmented_stack(stack, classified):
    """The same watershed on the *segmented* stack: noise left on the active surface adds distance
    maxima, so fewer particles match. Measured: classifier labels 77 % matched (ARI 0.84),
    multi-Otsu labels 67 % (ARI 0.79) — below the 90 % goal; the floor guards against regressions."""
    g, _ = stack
    inst = split_particles(classified, voxel_size_um=g.voxel_size, min_distance_um=1.0)
    m = match_instances(inst, g.particles)
    assert m.fraction_matched >= 0.72, m
    assert m.adjusted_rand_index >= 0.80, m
