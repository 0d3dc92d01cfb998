"""The twin reader: claims only twins, returns lazy layers with the twin's scale and phase names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from twinlab.twin import create_twin
from twinlab_napari._reader import napari_get_reader


@pytest.fixture
def twin(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(40, 72, 80), dtype=np.uint8)
    phases = (image // 86).astype(np.uint8)
    return create_twin(tmp_path / "cell.twin.zarr", image, voxel_size=(0.1, 0.025, 0.025),
                       labels={"phases": phases}, chunks=32)


def test_reader_ignores_what_it_does_not_claim(tmp_path):
    assert napari_get_reader(str(tmp_path / "image.tif")) is None
    plain = tmp_path / "plain.zarr"
    zarr.open_group(plain, mode="w")
    assert napari_get_reader(str(plain)) is None  # leave plain OME-Zarr to napari-ome-zarr
    fake = tmp_path / "fake.twin.zarr"
    fake.mkdir()
    assert napari_get_reader(str(fake)) is None  # never raises


def test_reader_layers_are_lazy_with_scale_and_phases(twin):
    layers = napari_get_reader(str(twin.path))(str(twin.path))
    (image, image_kw, kind), (labels, labels_kw, kind2) = layers
    assert (kind, kind2) == ("image", "labels")
    data = image[0] if image_kw["multiscale"] else image
    assert isinstance(data, da.Array)
    assert image_kw["scale"] == pytest.approx((0.1, 0.025, 0.025))
    assert labels_kw["features"]["phase"][:3] == ["pore", "active", "cbd"]
    assert labels_kw["colormap"][1][:3] == pytest.approx((200 / 255, 200 / 255, 200 / 255))


def test_viewer_opens_a_twin(make_napari_viewer, twin):
    viewer = make_napari_viewer()
    viewer.open(str(twin.path), plugin="twinlab-napari")
    assert [layer.name for layer in viewer.layers] == ["cell image", "cell phases"]
    for layer in viewer.layers:
        assert tuple(layer.scale) == pytest.approx((0.1, 0.025, 0.025))
        assert str(layer.units[0]) == "micrometer"


@pytest.fixture
def label_file(tmp_path):
    """A fibre mat segmented elsewhere (0 pore, 1 fibre) with its phase map in a sidecar (issue 22)."""
    import tifffile

    lab = np.zeros((6, 20, 24), np.uint8)
    lab[:, :, ::4] = 1
    path = tmp_path / "mat.labels.tif"
    tifffile.imwrite(path, lab)
    (tmp_path / "mat.labels.tif.phase-map").write_text("0=pore,1=fiber\n")
    return path, lab


def test_reader_maps_a_label_volume_to_phases(label_file, tmp_path):
    path, lab = label_file
    assert napari_get_reader(str(tmp_path / "mat.tif")) is None  # only *.labels.* files are claimed
    [(data, kwargs, kind)] = napari_get_reader(str(path))(str(path))
    assert kind == "labels" and "fiber" in kwargs["features"]["phase"]
    fiber = kwargs["features"]["index"][kwargs["features"]["phase"].index("fiber")]
    assert np.array_equal(np.asarray(data) == fiber, lab == 1)
    assert kwargs["metadata"]["phase_map"] == {0: "pore", 1: "fiber"}
    assert kwargs["metadata"]["note"] == "no voxel size in the file: shown in voxels"


def test_viewer_opens_a_label_volume(make_napari_viewer, label_file):
    path, lab = label_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="twinlab-napari")
    assert [layer.name for layer in viewer.layers] == ["mat.labels.tif phases"]
    assert "fiber" in list(viewer.layers[0].features["phase"])


def test_manifest_validates():
    manifest = Path(__file__).parents[1] / "src" / "twinlab_napari" / "napari.yaml"
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", str(manifest)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
