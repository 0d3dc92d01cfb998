"""The twin store: round trips, independent validation, atomicity, damaged/foreign stores."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import zarr

from twinlab._validation import VoxelSize
from twinlab.errors import InputError, OutputExistsError, TwinStoreError
from twinlab.phases import DEFAULT_PHASES, PhaseTable
from twinlab.twin import SCHEMA_VERSION, Step, Twin, create_twin


def test_round_trip_voxels_metadata_provenance(tmp_path, gray_volume, phase_volume):
    design = {"name": "NCM622", "density_g_cm3": 2.3}
    twin = create_twin(tmp_path / "a.twin.zarr", gray_volume, voxel_size=(0.0325, 0.03722, 0.03722),
                       labels={"phases": phase_volume}, design=design, thickness_axis="x", collector_side="high",
                       step=Step("import", {"input": "stack.tif"}), chunks=16)
    again = Twin.open(tmp_path / "a.twin.zarr")
    np.testing.assert_array_equal(again.image().compute(), gray_volume)
    np.testing.assert_array_equal(again.labels("phases").compute(), phase_volume)
    assert again.voxel_size == VoxelSize(0.0325, 0.03722, 0.03722)
    assert again.phases == DEFAULT_PHASES
    assert again.design == design
    assert (again.thickness_axis, again.collector_side) == (2, "high")
    steps = [p["step"] for p in again.provenance]
    assert steps == ["import", "add_labels"]
    assert again.provenance[0]["params"] == {"input": "stack.tif"}
    assert again.provenance[0]["twinlab_version"]
    assert twin.image().chunksize == (16, 16, 16)


def test_dask_input_is_streamed_not_loaded(tmp_path):
    calls = []

    def block(block_info=None):
        calls.append(block_info[None]["chunk-location"])
        return np.full(block_info[None]["chunk-shape"], 7, dtype=np.uint8)

    lazy = da.map_blocks(block, dtype=np.uint8, chunks=((10, 10, 5), (20,), (20,)))
    twin = create_twin(tmp_path / "lazy.twin.zarr", lazy, voxel_size=1.0, chunks=10)
    assert len(calls) == 3  # one computation per chunk, nothing duplicated
    assert int(twin.image().sum().compute()) == 7 * 25 * 20 * 20


def test_validates_with_ome_zarr_models(make_twin, gray_volume, phase_volume):
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    big = np.tile(gray_volume, (3, 3, 3))  # big enough for a pyramid
    twin = make_twin(big, voxel_size=(0.1, 0.025, 0.025), labels={"phases": np.tile(phase_volume, (3, 3, 3))})
    assert twin.levels >= 2
    image = Image.from_zarr(zarr.open_group(twin.path, mode="r"))
    scales = [d.coordinateTransformations[0].scale for d in image.attributes.ome.multiscales[0].datasets]
    assert scales[0] == [0.1, 0.025, 0.025]
    assert scales[1] == [0.1, 0.05, 0.05]  # anisotropic: in-plane halved first
    label = ImageLabel.from_zarr(zarr.open_group(twin.path / "labels" / "phases", mode="r"))
    names = {p.label_value: p.model_extra.get("name") for p in label.attributes.ome.image_label.properties}
    assert names[0] == "pore" and names[1] == "active"


def test_napari_ome_zarr_reader_gets_scales(make_twin, gray_volume, phase_volume):
    from napari_ome_zarr import napari_get_reader

    twin = make_twin(gray_volume, voxel_size=(0.05, 0.04, 0.03), labels={"phases": phase_volume})
    layers = napari_get_reader(str(twin.path))(str(twin.path))
    kinds = {layer[2]: layer for layer in layers}
    assert set(kinds) == {"image", "labels"}
    for _, kwargs, _ in layers:
        assert list(kwargs["scale"]) == pytest.approx([0.05, 0.04, 0.03])


def test_refuses_existing_output_unless_overwrite(make_twin, tmp_path, gray_volume):
    twin = make_twin(gray_volume)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        create_twin(twin.path, gray_volume, voxel_size=1)
    replaced = create_twin(twin.path, gray_volume[:5], voxel_size=1, overwrite=True)
    assert replaced.shape == (5, 31, 37)


def test_refuses_to_overwrite_a_non_zarr_directory(tmp_path, gray_volume):
    folder = tmp_path / "precious.twin.zarr"
    folder.mkdir()
    (folder / "thesis.tex").write_text("do not delete")
    with pytest.raises(OutputExistsError, match="not a twinlab twin"):
        create_twin(folder, gray_volume, voxel_size=1, overwrite=True)
    assert (folder / "thesis.tex").exists()


def test_nan_voxels_leave_no_twin_behind(tmp_path, gray_volume):
    bad = gray_volume.astype(np.float32)
    bad[5, 5, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        create_twin(tmp_path / "nan.twin.zarr", bad, voxel_size=1, chunks=8)
    assert list(tmp_path.iterdir()) == []  # neither the twin nor a temporary folder


def test_interrupted_write_leaves_nothing_openable(tmp_path):
    def explode(block_info=None):
        if block_info[None]["chunk-location"][0] == 2:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of a write
        return np.ones(block_info[None]["chunk-shape"], dtype=np.uint8)

    lazy = da.map_blocks(explode, dtype=np.uint8, chunks=((4, 4, 4, 4), (8,), (8,)))
    with pytest.raises(KeyboardInterrupt):
        create_twin(tmp_path / "x.twin.zarr", lazy, voxel_size=1, chunks=4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [(0, 1, 1), (1, -2, 1), (float("nan"), 1, 1), (1, 1, float("inf"))])
def test_bad_voxel_size(tmp_path, gray_volume, bad):
    with pytest.raises(InputError, match="positive finite"):
        create_twin(tmp_path / "v.twin.zarr", gray_volume, voxel_size=bad)
    assert not (tmp_path / "v.twin.zarr").exists()


def test_2d_image_refused(tmp_path, gray_volume):
    with pytest.raises(InputError, match="3D"):
        create_twin(tmp_path / "v.twin.zarr", gray_volume[0], voxel_size=1)


def test_open_errors_name_the_problem(tmp_path, make_twin, gray_volume):
    with pytest.raises(TwinStoreError, match="does not exist"):
        Twin.open(tmp_path / "nothing.twin.zarr")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(TwinStoreError, match="not a zarr v3 store"):
        Twin.open(plain)
    foreign = zarr.open_group(tmp_path / "foreign.zarr", mode="w")
    foreign.attrs["hello"] = 1
    with pytest.raises(TwinStoreError, match="not a twinlab twin"):
        Twin.open(tmp_path / "foreign.zarr")
    twin = make_twin(gray_volume)
    meta = json.loads((twin.path / "zarr.json").read_text())
    meta["attributes"]["twinlab"]["schema_version"] = SCHEMA_VERSION + 1
    (twin.path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(TwinStoreError, match="schema version"):
        Twin.open(twin.path)
    (twin.path / "zarr.json").write_text("{ not json")
    with pytest.raises(TwinStoreError, match="damaged"):
        Twin.open(twin.path)


def test_layers_fields_results_are_stored_with_provenance(make_twin, gray_volume, phase_volume):
    twin = make_twin(gray_volume)
    twin.write_labels("phases", phase_volume, phases=PhaseTable.from_names(["pore", "active", "cbd"]),
                      step=Step("segment", {"method": "multiotsu"}))
    twin.write_field("von_mises_mpa", gray_volume.astype(np.float32), unit="MPa", step=Step("calender", {"r": 0.1}))
    twin.save_result("transport", {"tau": float("inf"), "axis": "y"}, step=Step("transport", {"axis": "y"}),
                     arrays={"profile": np.arange(5.0)})
    again = Twin.open(twin.path)
    assert again.label_names == ["phases"] and again.phases.names == ["pore", "active", "cbd"]
    assert again.field_names == ["von_mises_mpa"] and again.result_names == ["transport"]
    assert float(again.load_result("transport")["tau"]) == float("inf")
    np.testing.assert_array_equal(again.load_result_arrays("transport")["profile"], np.arange(5.0))
    np.testing.assert_array_equal(again.read_field("von_mises_mpa").compute(), gray_volume.astype(np.float32))
    assert [p["step"] for p in again.provenance][-3:] == ["segment", "calender", "transport"]
    # replacing a layer keeps exactly one copy and no hidden leftovers
    twin.write_labels("phases", np.zeros_like(phase_volume), step=Step("segment", {}))
    assert again.reload().labels().max().compute() == 0
    assert not [p for p in (twin.path / "labels").iterdir() if p.name.startswith(".")]


def test_labels_must_match_image(make_twin, gray_volume, phase_volume):
    twin = make_twin(gray_volume)
    with pytest.raises(InputError, match="shape"):
        twin.write_labels("phases", phase_volume[:-1], step=Step("x", {}))
    with pytest.raises(InputError, match="integer"):
        twin.write_labels("phases", phase_volume.astype(float), step=Step("x", {}))


def test_write_image_replaces_pyramid_and_voxel_size(make_twin, gray_volume):
    twin = make_twin(gray_volume, voxel_size=(0.1, 0.05, 0.05))
    twin.write_image(gray_volume[::2] // 2, voxel_size=VoxelSize(0.2, 0.05, 0.05), step=Step("resample", {}))
    again = twin.reload()
    assert again.shape == (12, 31, 37) and again.voxel_size.dz == 0.2
    np.testing.assert_array_equal(again.image().compute(), gray_volume[::2] // 2)
