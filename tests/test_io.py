"""Readers: each format gives the same lazy voxels, the right voxel size, and clear errors."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import tifffile

from twinlab._validation import VoxelSize
from twinlab.errors import InputError, ReadError
from twinlab.io import read_image2d, read_volume


def _assert_volume(vol, expected, voxel):
    assert isinstance(vol.data, da.Array)
    np.testing.assert_array_equal(vol.data.compute(), expected)
    assert vol.voxel_size == pytest.approx(voxel) if isinstance(voxel, tuple) else vol.voxel_size == voxel


def test_tiff_contiguous_imagej_voxel_size(tmp_path, gray_volume):
    path = tmp_path / "stack.tif"
    # ImageJ stores the in-plane size as resolution (pixels per unit) and the slice step as 'spacing'
    tifffile.imwrite(path, gray_volume, imagej=True, resolution=(1 / 0.03722, 1 / 0.03722),
                     metadata={"spacing": 0.0325, "unit": "um"})
    vol = read_volume(path, chunks=8)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    assert vol.voxel_size.as_tuple() == pytest.approx((0.0325, 0.03722, 0.03722), rel=1e-6)
    assert vol.metadata["voxel_size_source"] == "file"
    assert vol.data.chunksize[0] == 8  # lazily chunked, not one block


def test_tiff_ome_voxel_size_in_nm(tmp_path, gray_volume):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, gray_volume, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 37.22, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 37.22,
        "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 32.5, "PhysicalSizeZUnit": "nm"})
    vol = read_volume(path)
    assert vol.voxel_size.as_tuple() == pytest.approx((0.0325, 0.03722, 0.03722), rel=1e-6)


def test_compressed_tiff_reads_page_by_page(tmp_path, gray_volume):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, gray_volume, compression="zlib")
    vol = read_volume(path, voxel_size="0.05,0.04,0.04", chunks=7)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    np.testing.assert_array_equal(vol.data[3:11, 5:9, 2:30].compute(), gray_volume[3:11, 5:9, 2:30])


def test_user_voxel_size_overrides_file_and_units(tmp_path, gray_volume):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, gray_volume, imagej=True, resolution=(10.0, 10.0), metadata={"spacing": 0.2, "unit": "um"})
    vol = read_volume(path, voxel_size="32.5,37.22,37.22", unit="nm")
    assert vol.voxel_size.as_tuple() == pytest.approx((0.0325, 0.03722, 0.03722))
    assert vol.metadata["file_voxel_size_um"]["dz"] == pytest.approx(0.2)


def test_missing_voxel_size_is_an_error(tmp_path, gray_volume):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, gray_volume)
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(path)


def test_truncated_tiff(tmp_path, gray_volume):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, gray_volume)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match="truncated|damaged"):
        read_volume(path, voxel_size=1)


def test_garbage_tiff(tmp_path):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(ReadError, match="TIFF"):
        read_volume(path, voxel_size=1)


def test_2d_tiff_reads_as_one_slice(tmp_path, gray_volume):
    """Issue 22: a single SEM slice is 2D data, read as a (1, y, x) volume marked single_slice."""
    path = tmp_path / "slice.tif"
    tifffile.imwrite(path, gray_volume[0])
    vol = read_volume(path, voxel_size=1)
    assert vol.data.shape == (1, 31, 37) and vol.metadata["single_slice"] is True
    np.testing.assert_array_equal(vol.data.compute()[0], gray_volume[0])


def test_slice_folder_natural_sort(tmp_path, gray_volume):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, sl in enumerate(gray_volume):  # slice_2 must come before slice_10
        tifffile.imwrite(folder / f"slice_{i}.tif", sl)
    vol = read_volume(folder, voxel_size="0.05,0.04,0.04", chunks=5)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    assert len(vol.sources) == gray_volume.shape[0]


def test_png_slice_folder(tmp_path, gray_volume):
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    vol8 = (gray_volume // 16).astype(np.uint8)
    for i, sl in enumerate(vol8):
        Image.fromarray(sl).save(folder / f"img{i:03d}.png")
    vol = read_volume(folder, voxel_size=0.1)
    np.testing.assert_array_equal(vol.data.compute(), vol8)


def test_slice_folder_with_different_shapes(tmp_path, gray_volume):
    folder = tmp_path / "bad"
    folder.mkdir()
    tifffile.imwrite(folder / "a1.tif", gray_volume[0])
    tifffile.imwrite(folder / "a2.tif", gray_volume[1, :-1])
    with pytest.raises(InputError, match="slices differ"):
        read_volume(folder, voxel_size=1)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".nii.gz"])
def test_simpleitk_formats(tmp_path, gray_volume, suffix):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(gray_volume)
    image.SetSpacing((0.04, 0.04, 0.05))  # ITK order is (x, y, z)
    path = tmp_path / f"vol{suffix}"
    sitk.WriteImage(image, str(path))
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    assert vol.voxel_size.as_tuple() == pytest.approx((0.05, 0.04, 0.04))


def test_simpleitk_default_spacing_counts_as_missing(tmp_path, gray_volume):
    import SimpleITK as sitk

    path = tmp_path / "vol.mha"
    sitk.WriteImage(sitk.GetImageFromArray(gray_volume), str(path))
    with pytest.raises(InputError, match="voxel size"):
        read_volume(path)


def test_raw_with_json_header_big_endian(tmp_path, gray_volume):
    path = tmp_path / "vol.raw"
    gray_volume.astype(">u2").tofile(path)
    (tmp_path / "vol.json").write_text(json.dumps({"shape": list(gray_volume.shape), "dtype": "uint16",
                                                   "byte_order": "big", "voxel_size_um": [0.05, 0.04, 0.04]}))
    vol = read_volume(path, chunks=6)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    assert vol.voxel_size == VoxelSize(0.05, 0.04, 0.04)


def test_raw_truncated(tmp_path, gray_volume):
    path = tmp_path / "vol.raw"
    gray_volume[:-1].tofile(path)
    (tmp_path / "vol.json").write_text(json.dumps({"shape": list(gray_volume.shape), "dtype": "uint16"}))
    with pytest.raises(ReadError, match="truncated"):
        read_volume(path, voxel_size=1)


def test_raw_without_header(tmp_path, gray_volume):
    path = tmp_path / "vol.raw"
    gray_volume.tofile(path)
    with pytest.raises(ReadError, match="JSON header"):
        read_volume(path, voxel_size=1)


def test_npy_and_npz(tmp_path, gray_volume):
    np.save(tmp_path / "a.npy", gray_volume)
    np.testing.assert_array_equal(read_volume(tmp_path / "a.npy", voxel_size=1).data.compute(), gray_volume)
    np.savez(tmp_path / "b.npz", im=gray_volume > 2000, other=np.zeros(3))
    vol = read_volume(tmp_path / "b.npz", voxel_size=1, key="im")
    np.testing.assert_array_equal(vol.data.compute(), (gray_volume > 2000).astype(np.uint8))
    with pytest.raises(InputError, match="--key"):
        read_volume(tmp_path / "b.npz", voxel_size=1)


def test_ome_zarr_twin_round_trip(make_twin, gray_volume):
    twin = make_twin(gray_volume, voxel_size=(0.05, 0.04, 0.03))
    vol = read_volume(twin.path)
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    assert vol.voxel_size == VoxelSize(0.05, 0.04, 0.03)
    assert vol.metadata["is_twin"]


def test_unsupported_and_missing(tmp_path):
    (tmp_path / "x.docx").write_text("hello")
    with pytest.raises(InputError, match="unsupported"):
        read_volume(tmp_path / "x.docx", voxel_size=1)
    with pytest.raises(ReadError, match="does not exist"):
        read_volume(tmp_path / "nope.tif", voxel_size=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="without TIFF/PNG"):
        read_volume(tmp_path / "empty", voxel_size=1)


def test_read_image2d_rgb_and_pixel_size(tmp_path, rng):
    rgb = rng.integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "map.tif", rgb, photometric="rgb")
    image, pixel, _ = read_image2d(tmp_path / "map.tif", pixel_size_um=0.05)
    assert image.shape == (20, 30, 3) and pixel == 0.05


def _write_each_lazy_format(tmp_path, vol):
    tifffile.imwrite(tmp_path / "contiguous.tif", vol)
    tifffile.imwrite(tmp_path / "zlib.tif", vol, compression="zlib")
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, sl in enumerate(vol):
        tifffile.imwrite(folder / f"s_{i}.tif", sl)
    vol.tofile(tmp_path / "v.raw")
    (tmp_path / "v.json").write_text(json.dumps({"shape": list(vol.shape), "dtype": str(vol.dtype)}))
    return [tmp_path / "contiguous.tif", tmp_path / "zlib.tif", folder, tmp_path / "v.raw"]


def test_integer_and_negative_indexing_of_lazy_readers(tmp_path, gray_volume):
    """dask pushes integer indices into the block source (x[k] of a file-backed array): they must
    drop their axis as in numpy, negative ones included."""
    for path in _write_each_lazy_format(tmp_path, gray_volume):
        data = read_volume(path, voxel_size="1", chunks=5).data
        for index in (7, -1, (3, slice(2, 9)), (slice(None), 4), (2, 5, 6), (slice(1, 9), slice(None), -2)):
            np.testing.assert_array_equal(np.asarray(data[index]), gray_volume[index], err_msg=f"{path.name} {index}")
