"""Issue 18: the demo cathode runs at a voxel size where the CBD is resolved, and passes its design check.

The demo stack (``demo_cathode_fibsem``: 117 × 318 × 105 voxels of 0.26 × 0.2978 × 0.2978 µm, every
artefact of ``render_fibsem`` on, a milled fiducial cap above the field) goes through the demo's own
configuration (:func:`twinlab.pipeline.demo_configs`: the default reconstruction and design check).
The default suite runs a 40-slice crop (the crop's fractions differ from the design by up to 0.04, so
it is scored against its truth); ``--runslow`` runs the whole stack and its design check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from twinlab.datasets import load
from twinlab.pipeline import demo_configs, parse_config, run_sample
from twinlab.twin import Twin

PHASES = {"pore": 0, "active": 1, "cbd": 2}


def _reconstruct(tmp_path, input_cfg: dict) -> Twin:
    """The demo cathode's configuration up to the design check (rev), from ``input_cfg``."""
    cfg = json.loads(json.dumps(demo_configs(tmp_path)[0].model_dump(mode="json")))
    cfg.update(input=input_cfg, calender=None, report=False, output=str(tmp_path / "c.twin.zarr"))
    cfg["analyses"]["run"] = ["rev"]
    run = run_sample(parse_config(cfg), overwrite=True)
    return Twin.open(run.twin), run


def _coating_fractions(lab: np.ndarray) -> np.ndarray:
    coat = lab != 3  # the collector is not coating
    return np.array([(lab[coat] == v).mean() for v in PHASES.values()])


def test_demo_stack_crop_resolves_cbd_with_fractions_of_its_truth(tmp_path):
    sample = load("demo_cathode_fibsem")
    crop = slice(0, 40)
    np.save(tmp_path / "crop.npy", sample.array[crop])
    twin, run = _reconstruct(tmp_path, {"path": str(tmp_path / "crop.npy"),
                                        "voxel_size": list(sample.voxel_size.as_tuple())})
    seg = twin.load_result("segment")
    assert not seg["unresolved_phases"], seg["warnings"]
    pv = seg["refinement"]["partial_volume"]
    assert pv["resolved"] and pv["body_share"] >= 0.35, pv  # measured 0.5 on the whole stack; 0.08 at 0.745 µm
    lab = np.asarray(twin.labels("phases"))
    truth = sample.extras["phases"][crop]
    assert lab.shape == truth.shape  # the fiducial cap was found and cropped
    err = _coating_fractions(lab) - _coating_fractions(truth)
    assert np.abs(err).max() <= 0.02, dict(zip(PHASES, err.round(4)))
    design = twin.load_result("rev")["design"]
    assert design["cbd_as"] == "domain" and not design["not_checkable"]


@pytest.mark.slow
def test_demo_cathode_passes_its_design_check(tmp_path):
    """The whole demo stack: every phase, CBD included, within ±0.02 of the NCM622 design (measured:
    active 0.464 vs 0.465, CBD 0.098 vs 0.100, pore 0.439 vs 0.435; README, Known limits, "CBD needs
    ≤ 0.3 µm voxels")."""
    twin, run = _reconstruct(tmp_path, {"dataset": "demo_cathode_fibsem"})
    design = twin.load_result("rev")["design"]
    assert design["passed"] and not design["not_checkable"], design["message"]
    assert set(design["passed_phases"]) == {"pore", "active", "cbd"}
    assert not run.failed_checks
