"""Widgets: the plain functions without a viewer, then each widget in a real viewer (Xvfb + Mesa)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from twinlab.datasets import make_lmp_anode
from twinlab.twin import Twin, create_twin
from twinlab_napari import _compute
from twinlab_napari._reader import twin_layers


@pytest.fixture(scope="module")
def anode_labels():
    gen = make_lmp_anode(shape=(20, 40, 40), voxel_size_um=4.0, seed=1)
    return gen.phases, gen.voxel_size


@pytest.fixture
def anode_twin(tmp_path, anode_labels):
    phases, voxel = anode_labels
    return create_twin(tmp_path / "anode.twin.zarr", phases * 30, voxel_size=voxel, labels={"phases": phases},
                       thickness_axis="y", collector_side="low")


@pytest.fixture
def gray_twin(tmp_path):
    rng = np.random.default_rng(3)
    z, y, x = np.indices((24, 40, 40))
    image = np.where((y - 20) ** 2 + (x - 20) ** 2 < 100, 180.0, 50.0) + rng.normal(0, 5, (24, 40, 40))
    return create_twin(tmp_path / "gray.twin.zarr", np.clip(image, 0, 255).astype(np.uint8), voxel_size=0.5)


# ============================================================================ without a viewer
def test_segment_and_save_labels(gray_twin):
    labels = _compute.segment_image(np.asarray(gray_twin.image()), method="multiotsu", phases=["pore", "active"])
    assert set(np.unique(labels)) == {0, 1}
    data, kwargs, kind = _compute.save_labels(str(gray_twin.path), "phases", labels, {"method": "multiotsu"})
    assert kind == "labels" and Twin.open(gray_twin.path).has_labels("phases")


def test_classifier_from_scribbles(gray_twin):
    image = np.asarray(gray_twin.image())
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[:, 2:5, 2:5] = 1  # pore
    scribbles[:, 18:22, 18:22] = 2  # active
    labels = _compute.segment_image(image, method="classifier", phases=["pore", "active"], scribbles=scribbles)
    assert labels[12, 20, 20] == 1 and labels[12, 2, 2] == 0


def test_preview_is_a_slab(gray_twin):
    slab = _compute.preview_preprocess(gray_twin.image(), voxel_size=gray_twin.voxel_size, z=10,
                                       steps=["denoise"], half_depth=3,
                                       options={"denoise": {"method": "gaussian"}})
    assert slab.shape == (7, 40, 40)


def test_cancelled_calender_leaves_the_twin_unchanged(anode_twin):
    before = sorted(p.relative_to(anode_twin.path) for p in anode_twin.path.rglob("*"))
    out = anode_twin.path.parent / "series.zarr"

    def cancel() -> None:
        raise _compute.Cancelled("stop")

    with pytest.raises(_compute.Cancelled):
        _compute.calender_layers(str(anode_twin.path), ratios=[0.2], steps=2, output=str(out), check_cancel=cancel)
    assert not out.exists()
    assert sorted(p.relative_to(anode_twin.path) for p in anode_twin.path.rglob("*")) == before


def test_clusters_and_ebac_functions(anode_twin, tmp_path):
    layers, result = _compute.cluster_layers(str(anode_twin.path))
    assert [kind for _, _, kind in layers] == ["labels", "labels"]
    assert 0 <= result["activation"] <= 1
    image = np.zeros((40, 60), np.float32)
    image[25:, :] = 1.0  # bright near the collector at the bottom
    image[5:10, 10:20] = 1.0  # an isolated bright island
    tifffile.imwrite(tmp_path / "map.tif", image + np.random.default_rng(0).normal(0, 0.02, image.shape))
    layers, result = _compute.ebac_layers(str(tmp_path / "map.tif"), pixel_size_um=0.1, collector_side="bottom")
    assert result["connected_fraction"] == pytest.approx(600 / 650, abs=0.05)


# ============================================================================ in a real viewer
def _run(qtbot, widget, **params):
    for name, value in params.items():
        widget[name].value = value
    widget()
    qtbot.waitUntil(lambda: widget.job.status.value not in ("",) and not widget.job.status.value.endswith("…"),
                    timeout=240_000)
    assert not widget.job.status.value.startswith("error"), widget.job.status.value


def test_widgets_in_a_viewer(make_napari_viewer, qtbot, anode_twin, tmp_path):
    from twinlab_napari import _widgets

    viewer = make_napari_viewer(show=True)  # a shown window on the virtual display: real rendering
    for data, kwargs, kind in twin_layers(anode_twin):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    labels_layer = viewer.layers["anode phases"]

    clusters = _widgets.clusters_widget(viewer)
    _run(qtbot, clusters, labels=labels_layer)
    assert "anode clusters" in viewer.layers and "anode collector-connected" in viewer.layers

    transport = _widgets.transport_widget(viewer)
    _run(qtbot, transport, labels=labels_layer)
    assert "τ²" in transport.job.status.value

    checks = _widgets.checks_widget(viewer)
    _run(qtbot, checks, labels=labels_layer, design="lmp")
    assert checks.job.plot is not None

    calender = _widgets.calender_widget(viewer)
    _run(qtbot, calender, labels=labels_layer, ratios="0.2", steps=2)
    assert "von Mises stress (MPa)" in viewer.layers
    assert any(name.startswith("anode calendered") for name in (layer.name for layer in viewer.layers))
    for layer in viewer.layers:
        layer.visible = layer.name == "von Mises stress (MPa)" or layer.name.startswith("anode calendered")
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    out = Path(tmp_path) / "after_calender.png"
    import imageio.v3 as iio

    iio.imwrite(out, shot)
    assert out.stat().st_size > 0
    rgb = shot[..., :3].astype(float)
    assert rgb.std() > 5 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10  # not blank


def test_segment_and_network_widgets(make_napari_viewer, qtbot, gray_twin):
    from twinlab_napari import _widgets

    viewer = make_napari_viewer()
    for data, kwargs, kind in twin_layers(gray_twin):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    segment = _widgets.segment_widget(viewer)
    _run(qtbot, segment, image=viewer.layers["gray image"], method="multiotsu", phases="pore,active")
    assert "gray phases" in viewer.layers and Twin.open(gray_twin.path).has_labels("phases")
    assert viewer.layers["gray phases"].metadata["twin_path"] == str(gray_twin.path)

    preprocess = _widgets.preprocess_widget(viewer)
    _run(qtbot, preprocess, image=viewer.layers["gray image"], steps="denoise")
    assert "preview" in viewer.layers

    network = _widgets.network_widget(viewer)
    _run(qtbot, network, labels=viewer.layers["gray phases"])
    assert "gray pores" in viewer.layers and "gray throats" in viewer.layers
    assert len(viewer.layers["gray pores"].data) >= 1


def test_ebac_widget(make_napari_viewer, qtbot, tmp_path):
    from twinlab_napari import _widgets

    image = np.full((40, 60), 0.1, np.float32)
    image[25:, :] = 1.0
    tifffile.imwrite(tmp_path / "map.tif", image + np.random.default_rng(1).normal(0, 0.02, image.shape))
    viewer = make_napari_viewer()
    widget = _widgets.ebac_widget(viewer)
    _run(qtbot, widget, path=tmp_path / "map.tif", pixel_size_um=0.1, collector_side="bottom")
    assert "map EBAC" in viewer.layers and widget.job.plot is not None
