"""Batch on a LocalCluster: failures isolated, resumable, safe under kill -9 and concurrent batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from twinlab.batch import _claim, load_manifest, process_sample, run_batch
from twinlab.errors import InputError
from twinlab.pipeline import is_complete
from twinlab.twin import Twin


def _stack(rng, shape=(24, 40, 40)):
    """Bright spheres in a dark matrix with noise: segments cleanly into two phases."""
    z, y, x = np.indices(shape)
    image = np.full(shape, 60.0)
    for cz, cy, cx in rng.integers(6, 34, size=(6, 3)):
        image[(z - cz % 20) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < 36] = 190.0
    return np.clip(image + rng.normal(0, 6, shape), 0, 255).astype(np.uint8)


def _manifest(tmp_path, rng, n_good=2, bad=True, out="out"):
    lines = [f'output_dir = "{out}"', "[defaults]", 'design = "ncm622"', "report = false",
             "preprocess = { steps = [\"denoise\"], options = { denoise = { method = \"gaussian\" } } }",
             'segment = { phases = ["pore", "active"], particles = false }',
             'analyses = { run = ["morphology"] }']
    for i in range(n_good):
        tifffile.imwrite(tmp_path / f"s{i}.tif", _stack(rng))
        lines += ["[[samples]]", f'name = "s{i}"', f'input = {{ path = "s{i}.tif", voxel_size = "0.05,0.04,0.04" }}']
    if bad:
        good = (tmp_path / "s0.tif").read_bytes()
        (tmp_path / "broken.tif").write_bytes(good[: len(good) // 3])
        lines += ["[[samples]]", 'name = "broken"', 'input = { path = "broken.tif", voxel_size = "1" }']
    path = tmp_path / "batch.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_isolates_a_bad_sample_and_resumes_without_recomputing(tmp_path, rng):
    manifest = _manifest(tmp_path, rng)
    summary = run_batch(manifest, workers=2)
    status = {o.name: o.status for o in summary.outcomes}
    assert status == {"s0": "done", "s1": "done", "broken": "failed"}
    broken = next(o for o in summary.outcomes if o.name == "broken")
    assert "broken.tif" in broken.error and "truncated" in broken.error
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.twin.zarr")) == ["s0.twin.zarr", "s1.twin.zarr"]
    for name in ("s0", "s1"):
        twin = Twin.open(out / f"{name}.twin.zarr")
        assert "phases" in twin.label_names and "morphology" in twin.result_names
    on_disk = json.loads((out / "batch-summary.json").read_text())
    assert on_disk["counts"] == {"done": 2, "failed": 1}
    assert "broken" in (out / "batch-summary.txt").read_text()
    stamp = (out / "s0.twin.zarr" / "zarr.json").stat().st_mtime_ns

    again = run_batch(manifest, workers=2)
    assert {o.name: o.status for o in again.outcomes} == {"s0": "skipped", "s1": "skipped", "broken": "failed"}
    assert (out / "s0.twin.zarr" / "zarr.json").stat().st_mtime_ns == stamp  # nothing recomputed


def test_claims_keep_two_processes_apart_and_stale_claims_are_taken_over(tmp_path):
    claim = tmp_path / "x.claim"
    assert _claim(claim)
    assert not _claim(claim)  # held by a live process (this one)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim.write_text(f"{os.uname().nodename} {dead.stdout.strip()} 0")
    assert _claim(claim)  # its owner is gone


def test_a_sample_claimed_elsewhere_is_not_touched(tmp_path, rng):
    manifest = load_manifest(_manifest(tmp_path, rng, n_good=1, bad=False))
    (manifest.output_dir / ".claims").mkdir(parents=True)
    (manifest.output_dir / ".claims" / "s0.claim").write_text(f"{os.uname().nodename} {os.getpid()} 0")
    outcome = process_sample(manifest.samples[0], str(manifest.output_dir), str(manifest.base))
    assert outcome.status == "claimed-elsewhere"
    assert not (manifest.output_dir / "s0.twin.zarr").exists()


def _start_batch(manifest: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "twinlab", "batch", str(manifest), "--workers", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_kill_9_mid_run_then_restart_completes_everything(tmp_path, rng):
    manifest = _manifest(tmp_path, rng, n_good=4, bad=False)
    out = tmp_path / "out"
    proc = _start_batch(manifest)
    deadline = time.time() + 240
    while time.time() < deadline and not any(is_complete(p) for p in out.glob("*.twin.zarr")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, as a scheduler would
    proc.communicate()  # reap it and close its pipes
    finished_before = [p for p in out.glob("*.twin.zarr") if is_complete(p)]
    assert 1 <= len(finished_before) < 4, "kill landed after the whole batch"
    for p in out.iterdir():  # whatever is at a final name is a valid, complete twin
        if p.name.endswith(".twin.zarr"):
            assert is_complete(p)

    restart = _start_batch(manifest)
    stdout, stderr = restart.communicate(timeout=300)
    assert restart.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    status = {o["name"]: o["status"] for o in summary["outcomes"]}
    assert all(status[p.name.removesuffix(".twin.zarr")] == "skipped" for p in finished_before)
    assert sorted(status.values()).count("done") == 4 - len(finished_before)
    assert all(is_complete(out / f"s{i}.twin.zarr") for i in range(4))


def test_two_concurrent_batches_never_corrupt_a_twin(tmp_path, rng):
    manifest = _manifest(tmp_path, rng, n_good=3, bad=False)
    first, second = _start_batch(manifest), _start_batch(manifest)
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in (first, second)]
    statuses = [o["status"] for s in outs for o in s["outcomes"]]
    assert statuses.count("done") == 3  # every sample computed exactly once between the two
    for i in range(3):
        twin = Twin.open(tmp_path / "out" / f"s{i}.twin.zarr")
        assert twin.labels("phases").max().compute() >= 1


def test_manifest_errors(tmp_path):
    (tmp_path / "m.toml").write_text('output_dir = "o"\n')
    with pytest.raises(InputError, match="no \\[\\[samples\\]\\]"):
        load_manifest(tmp_path / "m.toml")
    (tmp_path / "m.toml").write_text('[[samples]]\nname = "a"\n[[samples]]\nname = "a"\n')
    with pytest.raises(InputError, match="twice"):
        load_manifest(tmp_path / "m.toml")
