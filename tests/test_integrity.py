"""Damaged twins are refused, never read as fill values; write failures leave nothing behind.

Issue 21 items 4 and 7: integrity records (chunk count + CRC-32 per chunk) written with every
array and checked by every reader; `twinlab info --verify`; a missing array zarr.json; a full
disk, a read-only or forbidden folder → one line, exit 2, the old twin intact.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import zarr.storage._local as zarr_local
from twinlab import _integrity
from twinlab.cli import app
from twinlab.errors import TwinStoreError
from twinlab.twin import Step, Twin, create_twin

runner = CliRunner()
SHAPE = (40, 40, 40)
CHUNK = 16  # a 3 x 3 x 3 chunk grid


@pytest.fixture
def segmented(tmp_path) -> Twin:
    """A two-phase twin: bright spheres (active) in a dark matrix (pore), with labels/phases."""
    z, y, x = np.indices(SHAPE)
    solid = ((z % 20 - 10) ** 2 + (y % 20 - 10) ** 2 + (x % 20 - 10) ** 2) < 49
    rng = np.random.default_rng(0)
    image = (np.where(solid, 3000, 800) + rng.normal(0, 40, SHAPE)).astype(np.uint16)
    labels = solid.astype(np.uint8)  # value 1 is "active" in the default phase table
    return create_twin(tmp_path / "s.twin.zarr", image, voxel_size=0.1, labels={"phases": labels}, chunks=CHUNK)


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x5A
    path.write_bytes(bytes(data))


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert line.startswith("twinlab: error:") and "\n" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)


# ============================================================================ the record
def test_every_array_carries_a_record_that_matches_its_chunk_files(segmented):
    segmented.write_field("c", np.zeros(SHAPE, np.float32), unit="1", step=Step("t", {}), chunks=CHUNK)
    segmented.save_result("r", {"a": 1}, step=Step("t", {}), arrays={"pore.volume": np.arange(5.0)})
    twin = segmented.reload()
    arrays = dict(twin._arrays())
    assert {"image level 0", "labels/phases/0", "twinlab/fields/c", "twinlab/results/r/pore.volume"} <= set(arrays)
    for label, path in arrays.items():
        record = json.loads((path / "zarr.json").read_text())["attributes"][_integrity.RECORD_KEY]
        files = sorted(str(p.relative_to(path)) for p in (path / "c").rglob("*") if p.is_file())
        # every chunk is stored, all-zero ones included (the field is all zeros): the grid says what must exist
        assert record["chunks"] == len(files) == len(record["crc32"]), label
    assert twin.verify() == {"arrays": len(arrays), "chunks": sum(
        json.loads((p / "zarr.json").read_text())["attributes"][_integrity.RECORD_KEY]["chunks"]
        for p in arrays.values()), "without_record": []}
    np.testing.assert_array_equal(twin.read_field("c").compute(), 0)
    np.testing.assert_array_equal(twin.load_result_arrays("r")["pore.volume"], np.arange(5.0))


def test_deleted_label_chunk_is_named_at_open_not_read_as_pore(segmented):
    """Issue: a deleted labels chunk gave porosity 1.0 for that octant (zarr's fill value), exit 0."""
    (segmented.path / "labels/phases/0/c/1/0/2").unlink()
    with pytest.raises(TwinStoreError, match=r"labels/phases/0 is missing chunk c/1/0/2 \(1 of its 27 chunk files\)"):
        segmented.labels("phases")  # refused when the dask array is built, before any work
    result = runner.invoke(app, ["analyze", str(segmented.path), "--only", "morphology"])
    _one_line_error(result, "labels/phases/0", "c/1/0/2")
    assert "morphology" not in segmented.reload().result_names


def test_deleted_image_chunk_is_named_by_segment(segmented):
    """Issue: a deleted image chunk was segmented as pore."""
    (segmented.path / "0/c/0/2/1").unlink()
    result = runner.invoke(app, ["segment", str(segmented.path)])
    _one_line_error(result, "image level 0", "c/0/2/1")


def test_garbled_chunk_is_named_when_decoded(segmented):
    """Issue: a garbled chunk gave a Zstd traceback (exit 1)."""
    _flip(segmented.path / "labels/phases/0/c/2/1/0")
    lazy = segmented.labels("phases")  # the cheap check passes: the file is there
    with pytest.raises(TwinStoreError, match=r"labels/phases/0: chunk c/2/1/0 cannot be decoded"):
        lazy.compute()
    with pytest.raises(TwinStoreError, match=r"chunk c/2/1/0 cannot be decoded"):
        lazy[20:40, 10:30, :].compute()  # a block request spanning chunks still names the bad one
    result = runner.invoke(app, ["analyze", str(segmented.path), "--only", "morphology"])
    _one_line_error(result, "labels/phases/0", "c/2/1/0", "cannot be decoded")


def test_truncated_chunk_is_refused(segmented):
    chunk = segmented.path / "0/c/1/1/1"
    chunk.write_bytes(chunk.read_bytes()[:7])
    with pytest.raises(TwinStoreError, match=r"image level 0: chunk c/1/1/1 cannot be decoded"):
        segmented.image().compute()


def test_one_deleted_and_one_corrupted_chunk(segmented):
    """The must-show: segment and analyze exit 2 naming them; info --verify finds both."""
    (segmented.path / "0/c/2/2/2").unlink()
    _flip(segmented.path / "labels/phases/0/c/0/1/1", at=0.7)
    _one_line_error(runner.invoke(app, ["segment", str(segmented.path)]), "image level 0", "c/2/2/2")
    _one_line_error(runner.invoke(app, ["analyze", str(segmented.path), "--only", "morphology"]),
                    "labels/phases/0", "c/0/1/1")
    result = runner.invoke(app, ["info", str(segmented.path), "--verify"])
    _one_line_error(result, "image level 0: missing chunk c/2/2/2",
                    "labels/phases/0: damaged (checksum differs) chunk c/0/1/1")


def test_verify_finds_a_change_that_still_decodes(segmented):
    """A chunk replaced by another valid chunk decodes fine; only the checksum reveals it."""
    chunks = segmented.path / "labels/phases/0/c"
    shutil.copyfile(chunks / "0/0/0", chunks / "1/1/1")
    assert runner.invoke(app, ["info", str(segmented.path)]).exit_code == 0
    _one_line_error(runner.invoke(app, ["info", str(segmented.path), "--verify"]),
                    "labels/phases/0: damaged (checksum differs) chunk c/1/1/1")


def test_verify_of_a_sound_twin(segmented):
    result = runner.invoke(app, ["info", str(segmented.path), "--verify", "--json"])
    assert result.exit_code == 0, result.output
    verified = json.loads(result.stdout)["verified"]
    levels = segmented.levels
    assert verified["arrays"] == 2 * levels and verified["without_record"] == []
    assert verified["chunks"] >= 2 * 27


def test_missing_array_zarr_json(segmented):
    """Issue: a missing array zarr.json gave a traceback."""
    (segmented.path / "labels/phases/0/zarr.json").unlink()
    _one_line_error(runner.invoke(app, ["analyze", str(segmented.path), "--only", "morphology"]),
                    "labels/phases/0 has no zarr.json")
    (segmented.path / "0/zarr.json").write_text("{not json")
    _one_line_error(runner.invoke(app, ["info", str(segmented.path)]), "image level 0: zarr.json cannot be read")


def test_edited_array_metadata_is_refused(segmented):
    meta_file = segmented.path / "labels/phases/0/zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"] = [40, 40, 32]  # still a valid zarr array, but not the one that was written
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(TwinStoreError, match="does not match its integrity record"):
        segmented.labels("phases")


def test_twin_without_records_still_opens(segmented):
    """Twins written before integrity records: no count check, a note from --verify; decode errors still caught."""
    image = segmented.image().compute()
    for _, path in segmented._arrays():
        meta = json.loads((path / "zarr.json").read_text())
        del meta["attributes"][_integrity.RECORD_KEY]
        (path / "zarr.json").write_text(json.dumps(meta))
    (segmented.path / "labels/phases/0/c/0/0/0").unlink()  # undetectable without a record
    twin = Twin.open(segmented.path)
    np.testing.assert_array_equal(twin.image().compute(), image)
    assert twin.verify()["without_record"] == [label for label, _ in twin._arrays()]
    _flip(segmented.path / "0/c/1/0/0")
    with pytest.raises(TwinStoreError, match="c/1/0/0 cannot be decoded"):
        twin.image().compute()


# ============================================================================ write failures
def _fail_writes_after(monkeypatch, n_ok: int, code: int) -> None:
    """zarr's local writer fails with ``code`` after ``n_ok`` successful files, like a filling disk."""
    real = zarr_local._put
    calls = iter(range(1 << 30))

    def put(path, value, *args, **kwargs):
        if next(calls) >= n_ok:
            raise OSError(code, __import__("os").strerror(code), str(path))
        return real(path, value, *args, **kwargs)

    monkeypatch.setattr(zarr_local, "_put", put)


def _stack(tmp_path: Path, value: int) -> Path:
    path = tmp_path / f"stack{value}.tif"
    tifffile.imwrite(path, np.full(SHAPE, value, np.uint16))
    return path


def _hidden_leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.mark.parametrize("code, needle", [(errno.ENOSPC, "no space left on the device"),
                                          (errno.EROFS, "read-only file system"),
                                          (errno.EACCES, "permission denied")])
def test_failed_overwrite_keeps_the_old_twin(tmp_path, monkeypatch, code, needle):
    out = tmp_path / "out" / "s.twin.zarr"
    base = ["import", "-o", str(out), "--voxel-size", "0.1", "--chunks", str(CHUNK), "--json"]
    assert runner.invoke(app, [*base[:1], str(_stack(tmp_path, 7)), *base[1:]]).exit_code == 0
    _fail_writes_after(monkeypatch, 5, code)
    result = runner.invoke(app, [*base[:1], str(_stack(tmp_path, 9)), *base[1:], "--overwrite"])
    _one_line_error(result, needle, str(tmp_path / "out"))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.twin.zarr"]  # no partial store
    old = Twin.open(out)
    np.testing.assert_array_equal(old.image().compute(), 7)
    assert old.verify()["without_record"] == [] and _hidden_leftovers(out) == []


def test_disk_full_while_adding_a_layer(segmented, monkeypatch):
    _fail_writes_after(monkeypatch, 3, errno.ENOSPC)
    result = runner.invoke(app, ["segment", str(segmented.path)])
    _one_line_error(result, "no space left on the device")
    monkeypatch.undo()
    twin = Twin.open(segmented.path)
    assert twin.label_names == ["phases"] and _hidden_leftovers(segmented.path) == []
    twin.verify()


def test_read_only_output_folder(tmp_path, monkeypatch):
    """Issue: a read-only output folder gave a traceback. Tests run as root, so EROFS is simulated."""
    import os

    real_mkdir = os.mkdir
    target = tmp_path / "ro"

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(target)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    result = runner.invoke(app, ["import", str(_stack(tmp_path, 3)), "-o", str(target / "s.twin.zarr"),
                                 "--voxel-size", "0.1"])
    _one_line_error(result, "read-only file system", str(target))
    assert not target.exists()


def test_os_errors_that_are_bugs_still_raise(tmp_path, monkeypatch):
    """Only errors the user can fix become one line; anything else keeps its traceback."""
    _fail_writes_after(monkeypatch, 0, errno.EBADF)
    result = runner.invoke(app, ["import", str(_stack(tmp_path, 3)), "-o", str(tmp_path / "s.twin.zarr"),
                                 "--voxel-size", "0.1"])
    assert result.exit_code == 1 and isinstance(result.exception, OSError)
    assert not (tmp_path / "s.twin.zarr").exists()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB file system (needs permission to mount; skipped otherwise)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"twinlab-{uuid.uuid4().hex[:6]}",
                           str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_real_full_disk(tmp_path, small_tmpfs):
    """ENOSPC from a real 1 MiB file system: the small twin fits, the large one does not."""
    out = small_tmpfs / "s.twin.zarr"
    small = _stack(tmp_path, 5)
    assert runner.invoke(app, ["import", str(small), "-o", str(out), "--voxel-size", "0.1", "--json"]).exit_code == 0
    noise = np.random.default_rng(1).integers(0, 65535, (64, 96, 96), dtype=np.uint16)  # 1.2 MB, incompressible
    tifffile.imwrite(tmp_path / "big.tif", noise)
    result = runner.invoke(app, ["import", str(tmp_path / "big.tif"), "-o", str(out), "--voxel-size", "0.1",
                                 "--overwrite", "--json"])
    _one_line_error(result, "no space left on the device")
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["s.twin.zarr"]
    np.testing.assert_array_equal(Twin.open(out).image().compute(), 5)


def test_disk_full_while_replacing_the_image_puts_the_old_levels_back(segmented, monkeypatch):
    """write_image moves the old levels aside before the metadata write; if that write fails they return."""
    import os

    before = segmented.image().compute()
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == segmented.path / "zarr.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        segmented.write_image(before[:, :, ::-1], step=Step("t", {}), chunks=CHUNK)
    monkeypatch.undo()
    twin = Twin.open(segmented.path)
    np.testing.assert_array_equal(twin.image().compute(), before)
    assert _hidden_leftovers(segmented.path) == []
    twin.verify()
