"""CLI basics: version, help, import/info, one-line errors with exit code 2, --debug."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from twinlab import __version__
from twinlab.cli import app
from twinlab.errors import InputError
from twinlab.twin import Twin

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("import", "info", "analyze"):
        assert command in result.stdout


def test_import_then_info_json(tmp_path, gray_volume):
    tifffile.imwrite(tmp_path / "stack.tif", gray_volume)
    out = tmp_path / "s.twin.zarr"
    result = runner.invoke(app, ["import", str(tmp_path / "stack.tif"), "-o", str(out), "--voxel-size",
                                 "32.5,37.22,37.22", "--unit", "nm", "--thickness-axis", "y", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shape"] == [23, 31, 37]
    assert summary["voxel_size_um"]["dz"] == pytest.approx(0.0325)
    twin = Twin.open(out)
    np.testing.assert_array_equal(twin.image().compute(), gray_volume)
    source = twin.sources[0]
    assert source["path"].endswith("stack.tif") and len(source["sha256"]) == 64

    result = runner.invoke(app, ["info", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["provenance"] == ["import"]
    result = runner.invoke(app, ["info", str(out)])
    assert result.exit_code == 0 and "voxel_size_um" in result.stdout


def test_import_existing_output_needs_overwrite(tmp_path, gray_volume):
    tifffile.imwrite(tmp_path / "stack.tif", gray_volume)
    args = ["import", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "s.twin.zarr"), "--voxel-size", "1"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--voxel-size", "0,1,1"], "positive finite"),
    ([], "states no voxel size"),
    (["--voxel-size", "1,2"], "3 values"),
    (["--voxel-size", "1", "--thickness-axis", "w"], "axis"),
    (["--voxel-size", "1", "--collector-side", "top"], "low' or 'high"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, gray_volume, args, message):
    tifffile.imwrite(tmp_path / "stack.tif", gray_volume)
    out = tmp_path / "s.twin.zarr"
    result = runner.invoke(app, ["import", str(tmp_path / "stack.tif"), "-o", str(out), *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_info_on_a_non_twin_directory(tmp_path):
    (tmp_path / "folder").mkdir()
    result = runner.invoke(app, ["info", str(tmp_path / "folder")])
    assert result.exit_code == 2 and "not a zarr v3 store" in result.stderr


def test_debug_shows_the_exception(tmp_path):
    result = runner.invoke(app, ["--debug", "info", str(tmp_path / "missing.twin.zarr")])
    assert result.exit_code != 0 and result.exception is not None


def test_analyze_unknown_name(make_twin, gray_volume):
    twin = make_twin(gray_volume)
    result = runner.invoke(app, ["analyze", str(twin.path), "--only", "astrology"])
    assert result.exit_code == 2 and "unknown analysis" in result.stderr


def test_errors_are_value_errors_for_library_users():
    assert issubclass(InputError, ValueError)
