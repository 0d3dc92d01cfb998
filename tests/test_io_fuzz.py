"""Readers on bad input (issue 21 items 5, 7, 10): strict raw headers, truncated and colour files,
then a seeded fuzz over every reader: truncations and byte flips of small valid inputs give a clean
TwinlabError or a correct read — never another exception, a hang or a crash."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from twinlab.cli import app
from twinlab.errors import InputError, ReadError, TwinlabError
from twinlab.io import read_volume
from twinlab.twin import create_twin

runner = CliRunner()


# ============================================================================ raw headers
def _raw(tmp_path: Path, header: dict, data: np.ndarray | None = None) -> Path:
    data = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8) if data is None else data
    data.tofile(tmp_path / "v.raw")
    (tmp_path / "v.json").write_text(json.dumps(header))
    return tmp_path / "v.raw"


GOOD = {"shape": [4, 6, 8], "dtype": "uint16", "byte_order": "little", "voxel_size_um": [0.1, 0.1, 0.1]}


@pytest.mark.parametrize("change, message", [
    ({"byte_order": "little-endian"}, 'byte_order \'little-endian\'; it must be exactly "little" or "big"'),
    ({"byte_order": "LITTLE"}, "byte_order 'LITTLE'"),
    ({"shape": [4, 6, 16.5]}, r"shape \[4, 6, 16.5\]; it must be three positive whole numbers"),
    ({"shape": [4, 6, 8.0]}, "three positive whole numbers"),
    ({"shape": [0, 32, 32]}, r"shape \[0, 32, 32\]"),
    ({"shape": [-4, 6, 8]}, r"shape \[-4, 6, 8\]"),
    ({"shape": ["4", 6, 8]}, "three positive whole numbers"),
    ({"shape": [True, 6, 8]}, "three positive whole numbers"),
    ({"shape": [6, 8]}, "three positive whole numbers"),
    ({"offset": -16}, "offset -16; it must be a whole number of bytes >= 0"),
    ({"offset": 2.5}, "offset 2.5"),
    ({"dtype": "object"}, "dtype 'object'; use a numeric type name"),
    ({"dtype": ">u2"}, "dtype '>u2'"),
    ({"dtype": ["uint16"]}, "dtype"),
    ({"dtype": "complex64"}, "dtype 'complex64'"),
    ({"voxel_size_um": "fine"}, "voxel_size_um 'fine'"),
    ({"voxel_size_um": [0.1, 0, 0.1]}, "voxel size dy=0"),
])
def test_raw_header_refused_strictly(tmp_path, change, message):
    """Issue: "little-endian" was read big-endian, 16.5 cut to 16, [0,…] made an empty twin, exit 0."""
    with pytest.raises(InputError, match=message):
        read_volume(_raw(tmp_path, {**GOOD, **change}))


def test_raw_header_not_an_object_or_not_json(tmp_path):
    with pytest.raises(InputError, match="needs at least"):
        read_volume(_raw(tmp_path, [4, 6, 8]))  # type: ignore[arg-type]
    (tmp_path / "v.json").write_text('{"shape": [4, 6, 8], ')
    with pytest.raises(ReadError, match="as JSON"):
        read_volume(tmp_path / "v.raw")


def test_raw_header_huge_shape_is_a_size_error_not_an_overflow(tmp_path):
    """np.prod of [2**40]*3 wraps around in int64; the size check must use exact integers."""
    with pytest.raises(ReadError, match="truncated or the header is wrong"):
        read_volume(_raw(tmp_path, {**GOOD, "shape": [2 ** 40] * 3}))


def test_raw_header_valid_variants_read_correctly(tmp_path):
    data = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    path = tmp_path / "v.raw"
    path.write_bytes(b"\xff" * 10 + data.astype(">u2").tobytes())
    (tmp_path / "v.json").write_text(json.dumps({**GOOD, "byte_order": "big", "offset": 10}))
    np.testing.assert_array_equal(read_volume(path).data.compute(), data)


@pytest.mark.parametrize("change", [{"shape": [-4, 6, 8]}, {"offset": -1}, {"byte_order": "little-endian"}])
def test_raw_header_cli_one_line(tmp_path, change):
    """Issue: a negative shape or offset gave a traceback (exit 1)."""
    result = runner.invoke(app, ["import", str(_raw(tmp_path, {**GOOD, **change})), "-o",
                                 str(tmp_path / "o.twin.zarr")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith("twinlab: error: raw header v.json") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.twin.zarr").exists()


# ============================================================================ TIFF
def test_voxel_size_overrides_a_zero_imagej_spacing(tmp_path, gray_volume):
    """Issue: the README says --voxel-size always overrides, but a zero spacing called the file damaged."""
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, gray_volume, imagej=True, resolution=(25, 25), metadata={"spacing": 0.0, "unit": "um"})
    with pytest.raises(InputError, match=r"s.tif states an unusable voxel size \(voxel size dz=0.0.*--voxel-size"):
        read_volume(path)
    vol = read_volume(path, voxel_size="0.03,0.04,0.04")
    assert vol.voxel_size.as_tuple() == pytest.approx((0.03, 0.04, 0.04))
    np.testing.assert_array_equal(vol.data.compute(), gray_volume)
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "o.twin.zarr"), "--voxel-size", "0.03",
                                 "--json"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("shape", [(5, 20, 24, 3), (20, 24, 3), (5, 20, 24, 4)])
def test_rgb_tiff_is_called_colour_not_truncated(tmp_path, shape):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8), photometric="rgb")
    with pytest.raises(InputError, match=r"rgb.tif is a colour \(RGB/RGBA\) image.*grey-value stack"):
        read_volume(path, voxel_size=1)


@pytest.mark.parametrize("kind", ["contiguous", "imagej", "zlib"])
def test_truncated_tiff_one_error_no_tifffile_log(tmp_path, gray_volume, caplog, kind):
    """Issue: a truncated TIFF printed a tifffile log line before twinlab's error."""
    path = tmp_path / "s.tif"
    options = {"imagej": {"imagej": True}, "zlib": {"compression": "zlib"}, "contiguous": {}}[kind]
    tifffile.imwrite(path, gray_volume, **options)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ReadError, match="truncated"):
        read_volume(path, voxel_size=1).data.compute()
    assert [r for r in caplog.records if r.name.startswith("tifffile")] == []
    assert logging.getLogger("tifffile").filters == []  # the silencing is scoped to the read


# ============================================================================ MetaImage
@pytest.fixture
def metaimage(tmp_path, gray_volume):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(gray_volume)
    image.SetSpacing((0.04, 0.04, 0.05))
    sitk.WriteImage(image, str(tmp_path / "v.mhd"))
    sitk.WriteImage(image, str(tmp_path / "v.mha"))
    return tmp_path


@pytest.mark.parametrize("name", ["v.mhd", "v.mha"])
def test_truncated_metaimage_refused_before_simpleitk_reads(metaimage, monkeypatch, gray_volume, name):
    """Issue: a truncated .mhd data file gave a traceback after SimpleITK allocated the whole image."""
    import SimpleITK as sitk

    data = metaimage / ("v.raw" if name == "v.mhd" else name)
    np.testing.assert_array_equal(read_volume(metaimage / name).data.compute(), gray_volume)
    data.write_bytes(data.read_bytes()[:-100])

    def no_read(*args, **kwargs):
        raise AssertionError("SimpleITK.ReadImage called on a truncated file")

    monkeypatch.setattr(sitk, "ReadImage", no_read)
    with pytest.raises(ReadError, match=f"{data.name} holds .* bytes of image data but {name} declares "
                                        f"{gray_volume.nbytes}; the data file is truncated"):
        read_volume(metaimage / name)
    monkeypatch.undo()
    result = runner.invoke(app, ["import", str(metaimage / name), "-o", str(metaimage / "o.twin.zarr")])
    assert result.exit_code == 2 and "truncated" in result.stderr and "Traceback" not in result.output


# ============================================================================ fuzz
FUZZ_CASES = 30  # per format in the default suite (about 8 s on an idle machine); --runslow: 10x as many
SHAPE = (6, 20, 24)


def _inputs(folder: Path) -> dict[str, tuple[Path, np.ndarray, dict]]:
    """Small valid inputs of every fuzzed format: name → (path, voxels, read_volume kwargs)."""
    rng = np.random.default_rng(7)
    vol = rng.integers(0, 60000, SHAPE, dtype=np.uint16)
    out = {}
    tifffile.imwrite(folder / "ij.tif", vol, imagej=True, resolution=(25, 25), metadata={"spacing": 0.05, "unit": "um"})
    out["tiff-imagej"] = (folder / "ij.tif", vol, {})
    tifffile.imwrite(folder / "z.tif", vol, compression="zlib", tile=(16, 16))
    out["tiff-zlib-tiled"] = (folder / "z.tif", vol, {"voxel_size": 1})
    np.save(folder / "v.npy", vol)
    out["npy"] = (folder / "v.npy", vol, {"voxel_size": 1})
    vol.tofile(folder / "v.raw")
    (folder / "v.json").write_text(json.dumps({"shape": list(SHAPE), "dtype": "uint16", "byte_order": "little",
                                               "offset": 0, "voxel_size_um": [0.05, 0.04, 0.04]}))
    out["raw"] = (folder / "v.raw", vol, {})
    create_twin(folder / "t.twin.zarr", vol, voxel_size=0.05, chunks=8)
    out["ome-zarr-twin"] = (folder / "t.twin.zarr", vol, {})
    _foreign_ome_zarr(folder / "f.zarr", vol)
    out["ome-zarr-v2-foreign"] = (folder / "f.zarr", vol, {})
    return out


def _foreign_ome_zarr(path: Path, vol: np.ndarray) -> None:
    """An NGFF 0.4 store on zarr v2 as other tools write it: no integrity record, no checksums."""
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "micrometer"}
                                                             for a in "zyx"],
                                   "datasets": [{"path": "0", "coordinateTransformations": [
                                       {"type": "scale", "scale": [0.05, 0.04, 0.04]}]}]}]
    group.create_array("0", shape=vol.shape, chunks=(3, 10, 12), dtype=vol.dtype)[...] = vol


def _mutate(path: Path, rng: np.random.Generator) -> str:
    """Truncate or flip bytes of one file of the input (for a raw file: the data or its header)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.suffix == ".raw":
        files = [path, path.with_suffix(".json")]
    else:
        files = [path]
    target = files[rng.integers(len(files))]
    data = bytearray(target.read_bytes())
    if rng.random() < 0.35 or not data:
        cut = int(rng.integers(0, max(len(data), 1)))
        target.write_bytes(bytes(data[:cut]))
        return f"truncate {target.name} to {cut}/{len(data)}"
    flips = []
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(len(data)))
        data[at] ^= int(rng.integers(1, 256))
        flips.append(at)
    target.write_bytes(bytes(data))
    return f"flip {target.name} at {flips}"


def _reference(fmt: str, path: Path, original: np.ndarray) -> np.ndarray | None:
    """What an independent reader makes of the mutated input (None: it refuses it too)."""
    try:
        if fmt == "npy":
            return np.load(path, allow_pickle=False)
        if fmt.startswith("tiff"):
            return np.squeeze(tifffile.imread(path, series=0))
        if fmt == "raw":
            header = json.loads(path.with_suffix(".json").read_text())
            shape, offset = header["shape"], header.get("offset", 0)
            if not (all(type(n) is int and n > 0 for n in shape) and len(shape) == 3 and type(offset) is int
                    and offset >= 0 and header.get("byte_order", "little") in ("little", "big")):
                return None
            dtype = np.dtype(header["dtype"]).newbyteorder("<" if header.get("byte_order") != "big" else ">")
            count = int(np.prod(shape))
            return np.frombuffer(path.read_bytes(), dtype, count=count, offset=offset).reshape(shape)
        if fmt == "ome-zarr-v2-foreign":
            # No checksums, so damage inside a chunk cannot be told from data; zarr's own read is
            # not a reference either: a truncated blosc chunk decodes to uninitialised memory
            # (different on every read). Only the shape is checked; exception hygiene is the point.
            import zarr

            return np.zeros(zarr.open_array(str(path / "0"), mode="r").shape, np.uint8)
    except Exception:
        return None
    return original  # a twin carries checksums: any read must give the written voxels


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _fuzz(tmp_path: Path, n_cases: int) -> dict[str, dict[str, int]]:
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    inputs = _inputs(pristine)
    for fmt, (path, vol, kwargs) in inputs.items():  # the unmutated inputs read back exactly
        np.testing.assert_array_equal(read_volume(path, **kwargs).data.compute(), vol, err_msg=fmt)
    rng = np.random.default_rng(2026)
    outcomes: dict[str, dict[str, int]] = {fmt: {"error": 0, "read": 0} for fmt in inputs}
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        with dask.config.set(scheduler="synchronous"):
            for case in range(n_cases):
                for fmt, (path, vol, kwargs) in inputs.items():
                    work = tmp_path / f"case-{fmt}"
                    shutil.rmtree(work, ignore_errors=True)
                    shutil.copytree(pristine, work)
                    target = work / path.name
                    what = _mutate(target, rng)
                    start = time.perf_counter()
                    signal.alarm(10)
                    try:
                        data = read_volume(target, **kwargs).data.compute()
                    except TwinlabError:
                        outcomes[fmt]["error"] += 1
                        continue
                    except _Hang:
                        pytest.fail(f"{fmt} case {case} ({what}): read took more than 10 s")
                    except Exception as exc:  # the property under test: nothing but TwinlabError escapes
                        pytest.fail(f"{fmt} case {case} ({what}): {type(exc).__name__}: {exc}")
                    finally:
                        signal.alarm(0)
                    assert time.perf_counter() - start < 10
                    reference = _reference(fmt, target, vol)
                    assert reference is not None, f"{fmt} case {case} ({what}): read a file others refuse"
                    if reference.ndim == 2:  # a damaged stack that reads as one image is a (1, y, x) slice
                        reference = reference[None]
                    assert data.shape == reference.shape, f"{fmt} case {case} ({what})"
                    if fmt != "ome-zarr-v2-foreign":
                        np.testing.assert_array_equal(data, reference, err_msg=f"{fmt} case {case} ({what})")
                    outcomes[fmt]["read"] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    for fmt, counts in outcomes.items():  # the fuzz reached both outcomes, not only one
        assert counts["error"] > 0 and counts["read"] + counts["error"] == n_cases, (fmt, counts)
    return outcomes


def test_fuzz_readers(tmp_path):
    print(_fuzz(tmp_path, FUZZ_CASES))


@pytest.mark.slow
def test_fuzz_readers_long(tmp_path):
    print(_fuzz(tmp_path, 10 * FUZZ_CASES))
