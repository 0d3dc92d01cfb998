"""Never lose a user's data (issue 21, orchestration side): overwrite only what twinlab wrote, sample
names and relative paths that stay where the manifest says, stale staging cleaned and never opened,
a crash mid-report completed by the rerun, bounded configs, every value checked before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from twinlab._outputs import MARKER, clean_stale, is_replaceable, make_staging, publish
from twinlab.batch import load_manifest, run_batch
from twinlab.cli import app
from twinlab.datasets import make_cathode
from twinlab.design import ncm622_cathode
from twinlab.errors import InputError, OutputExistsError, TwinStoreError
from twinlab.pipeline import is_complete, load_config, parse_config, report_path, run_sample
from twinlab.twin import Twin, create_twin

runner = CliRunner()


@pytest.fixture(scope="module")
def labels_npy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safety")
    electrode = make_cathode(ncm622_cathode(2.3), shape=(16, 40, 24), voxel_size_um=1.0, collector_um=3.0, seed=3)
    np.save(folder / "c.npy", electrode.phases)
    return folder / "c.npy"


def _toml(path: Path, npy: Path, output: str, *, report: bool = False, extra: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""\
        name = "c"
        output = "{output}"
        design = "ncm622"
        chunks = 32
        report = {str(report).lower()}
        input = {{ path = "{npy}", kind = "labels", voxel_size = 1.0 }}
        analyses = {{ run = ["morphology"] }}
        """) + extra)
    return path


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("four years of work")
    return path


def _one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("twinlab: error:"), res.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ================================================================== 1. nothing of the user's is deleted
def test_run_overwrite_refuses_a_user_folder_and_keeps_it(labels_npy, tmp_path):
    out = _user_folder(tmp_path / "c.twin.zarr")
    cfg = _toml(tmp_path / "c.toml", labels_npy, "c.twin.zarr")
    for flags in ([], ["--overwrite"]):  # the refusal says why, instead of suggesting --overwrite
        res = runner.invoke(app, ["run", str(cfg), *flags])
        _one_line_error(res, "not a twinlab twin", "refusing to replace")
    assert (out / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "c.twin.zarr"]  # no work started


def test_run_overwrite_replaces_its_own_twin(labels_npy, tmp_path):
    cfg = load_config(_toml(tmp_path / "c.toml", labels_npy, "c.twin.zarr"))
    first = run_sample(cfg)
    stamp = Twin.open(first.twin).provenance[-1]["time"]
    again = run_sample(cfg, overwrite=True)
    assert not again.skipped and is_complete(again.twin)
    steps = [p["step"] for p in Twin.open(first.twin).provenance]
    assert [p["step"] for p in Twin.open(again.twin).provenance] == steps
    assert Twin.open(again.twin).provenance[-1]["time"] >= stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "c.twin.zarr"]  # old twin and staging gone


@pytest.mark.parametrize("command", ["import", "preprocess"])
def test_import_and_preprocess_overwrite_refuse_a_user_folder(tmp_path, gray_volume, command):
    tifffile.imwrite(tmp_path / "in.tif", gray_volume)
    out = _user_folder(tmp_path / "o.twin.zarr")
    extra = ["--steps", "denoise", "--denoise-method", "gaussian"] if command == "preprocess" else []
    res = runner.invoke(app, [command, str(tmp_path / "in.tif"), "-o", str(out), "--voxel-size", "1",
                              "--overwrite", *extra])
    _one_line_error(res, "not a twinlab twin")
    assert (out / "thesis.txt").is_file() and sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def test_a_file_a_symlink_or_a_twin_holding_a_user_file_is_not_ours(tmp_path, gray_volume):
    twin = create_twin(tmp_path / "t.twin.zarr", gray_volume, voxel_size=1.0)
    assert is_replaceable(twin.path)
    (tmp_path / "f.twin.zarr").write_text("a file")
    (tmp_path / "l.twin.zarr").symlink_to(twin.path)
    for path in (tmp_path / "f.twin.zarr", tmp_path / "l.twin.zarr"):
        assert not is_replaceable(path)
        with pytest.raises(OutputExistsError, match="refusing to replace"):
            create_twin(path, gray_volume, voxel_size=1.0, overwrite=True)
    (twin.path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="refusing to replace"):
        create_twin(twin.path, gray_volume, voxel_size=1.0, overwrite=True)
    assert (twin.path / "notes.txt").is_file() and Twin.open(twin.path).shape == gray_volume.shape


def test_calender_series_is_recognised_and_a_user_folder_is_not(tmp_path, make_twin):
    electrode = make_cathode(ncm622_cathode(2.3), shape=(16, 40, 24), voxel_size_um=1.0, collector_um=2.0, seed=1)
    twin = make_twin(electrode.phases, voxel_size=1.0, labels={"phases": electrode.phases})
    series = tmp_path / "s.series.zarr"
    args = ["calender", str(twin.path), "--ratio", "0.1", "--steps", "1", "--window", "8", "-o", str(series)]
    assert runner.invoke(app, args).exit_code == 0
    first = (series / "index.json").stat().st_mtime_ns
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0  # its own series: replaced
    assert (series / "index.json").stat().st_mtime_ns != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".s.series")]  # no trash, no staging
    (series / "thesis.txt").write_text("mine")  # now it holds something twinlab did not write
    _one_line_error(runner.invoke(app, [*args, "--overwrite"]), "not a twinlab twin or series")
    assert (series / "thesis.txt").is_file()
    user = _user_folder(tmp_path / "u.series.zarr")
    res = runner.invoke(app, ["calender", str(twin.path), "--ratio", "0.1", "--steps", "1", "-o", str(user),
                              "--overwrite"])
    _one_line_error(res, "not a twinlab twin or series")
    assert (user / "thesis.txt").is_file()


def test_batch_refuses_a_user_folder_at_a_sample_output_before_any_work(labels_npy, tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(f'output_dir = "out"\n[[samples]]\nname = "c"\n'
                        f'input = {{ path = "{labels_npy}", kind = "labels", voxel_size = 1.0 }}\n')
    user = _user_folder(tmp_path / "out" / "c.twin.zarr")
    res = runner.invoke(app, ["batch", str(manifest)])
    _one_line_error(res, "not a twinlab twin")
    assert (user / "thesis.txt").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.twin.zarr"]  # no claims, no summary


def test_publish_keeps_the_old_output_when_the_swap_fails(tmp_path, gray_volume, monkeypatch):
    old = create_twin(tmp_path / "t.twin.zarr", gray_volume, voxel_size=1.0)
    new = make_staging(tmp_path, "t.twin.zarr", "partial")
    real_rename = Path.rename

    def rename(self, target):
        if self == new:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        publish(new, old.path)
    monkeypatch.undo()
    assert Twin.open(old.path).shape == gray_volume.shape  # the old twin is back in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [new.name, "t.twin.zarr"]  # no trash left


# ================================================================== 2. sample names stay inside output_dir
@pytest.mark.parametrize("name", ["../../evil", "/tmp/evil", "", ".hidden", "a/b", "..", "x" * 200, 7])
def test_batch_refuses_names_that_leave_the_output_folder_before_any_work(tmp_path, name):
    manifest = tmp_path / "m.toml"
    value = f'"{name}"' if isinstance(name, str) else str(name)
    manifest.write_text(f'output_dir = "out"\n[[samples]]\nname = {value}\ninput = {{ dataset = "berea" }}\n')
    with pytest.raises(InputError, match="not a plain file name"):
        load_manifest(manifest)
    res = runner.invoke(app, ["batch", str(manifest)])
    _one_line_error(res, "not a plain file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.toml"]  # not even output_dir was made


# ================================================================== 3. relative paths: against the file's folder
def test_batch_run_from_another_folder_writes_where_the_manifest_says_and_skips_on_rerun(labels_npy, tmp_path,
                                                                                        monkeypatch):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "c.npy").write_bytes(labels_npy.read_bytes())
    (project / "batch.toml").write_text(textwrap.dedent("""\
        output_dir = "out"
        [defaults]
        design = "ncm622"
        report = false
        analyses = { run = ["morphology"] }
        [[samples]]
        name = "c"
        input = { path = "data/c.npy", kind = "labels", voxel_size = 1.0 }
        """))
    monkeypatch.chdir(tmp_path)  # run from the manifest's parent folder: `twinlab batch project/batch.toml`
    summary = run_batch(Path("project/batch.toml"), workers=1)
    assert [o.status for o in summary.outcomes] == ["done"]
    twin = project / "out" / "c.twin.zarr"
    assert is_complete(twin) and summary.outcomes[0].twin == str(twin)  # a real, absolute path
    assert Path(summary.output_dir) == project / "out" and (project / "out" / "batch-summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    assert sorted(p.name for p in project.iterdir()) == ["batch.toml", "data", "out"]  # not project/project/out
    stamp = (twin / "zarr.json").stat().st_mtime_ns
    again = run_batch(Path("project/batch.toml"), workers=1)
    assert [o.status for o in again.outcomes] == ["skipped"] and again.outcomes[0].twin == str(twin)
    assert (twin / "zarr.json").stat().st_mtime_ns == stamp


def test_config_paths_are_absolute_and_relative_to_the_config_folder(labels_npy, tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    _toml(tmp_path / "cfg" / "c.toml", labels_npy, "../out/c.twin.zarr")
    monkeypatch.chdir(tmp_path / "cfg")
    cfg = load_config("c.toml")
    assert cfg.output == tmp_path / "out" / "c.twin.zarr" and cfg.output.is_absolute()


# ================================================================== 6. stale staging, crashes
_KILL_AT = textwrap.dedent("""\
    import sys, time
    import twinlab.pipeline as pipeline
    stage = sys.argv[2]
    def hang(*args, **kwargs):
        print("at " + stage, flush=True)
        time.sleep(120)
    setattr(pipeline, "write_report_for" if stage == "report" else "_analyze", hang)
    from twinlab.cli import main
    main(["run", sys.argv[1], "--json"])
    """)


def _run_and_kill_9_at(stage: str, cfg: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILL_AT, str(cfg), stage], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        while not lines or lines[-1] not in ("", f"at {stage}\n"):
            lines.append(proc.stdout.readline())
        assert lines[-1] == f"at {stage}\n", "".join(lines)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_kill_9_during_the_report_then_rerun_writes_the_report(labels_npy, tmp_path):
    cfg = _toml(tmp_path / "c.toml", labels_npy, "c.twin.zarr", report=True)
    _run_and_kill_9_at("report", cfg)
    twin = tmp_path / "c.twin.zarr"
    assert is_complete(twin) and not report_path(twin).exists()  # the crash state of the issue
    res = runner.invoke(app, ["run", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert report_path(twin).is_file() and str(report_path(twin)) in res.output
    assert "<html" in report_path(twin).read_text()[:500].lower()
    again = runner.invoke(app, ["run", str(cfg), "--json"])  # now everything is there: nothing is redone
    assert again.exit_code == 0 and '"skipped": true' in again.output


def test_kill_9_mid_run_leaves_staging_that_is_never_a_twin_and_is_cleaned_by_the_rerun(labels_npy, tmp_path):
    cfg = _toml(tmp_path / "c.toml", labels_npy, "c.twin.zarr")
    _run_and_kill_9_at("morphology", cfg)
    (staging,) = [p for p in tmp_path.iterdir() if p.name.startswith(".c.twin.zarr.run-")]
    staged_twin = staging / "c.twin.zarr"
    assert (staged_twin / "zarr.json").is_file() and (staging / MARKER).is_file()
    for path in (staging, staged_twin):
        with pytest.raises(TwinStoreError, match="staging folder of an unfinished twinlab write"):
            Twin.open(path)
        _one_line_error(runner.invoke(app, ["info", str(path)]), "staging folder")
    assert not is_complete(staged_twin)
    # a live process's staging and a folder without our marker are never touched
    live = make_staging(tmp_path, "c.twin.zarr", "partial")
    (live / MARKER).write_text(f"{os.uname().nodename} 1 0")  # pid 1 is always alive
    user = _user_folder(tmp_path / ".c.twin.zarr.backup")
    res = runner.invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output
    assert is_complete(tmp_path / "c.twin.zarr") and not staging.exists()
    assert live.is_dir() and (user / "thesis.txt").is_file()


def test_clean_stale_removes_only_dead_owners_marked_folders(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    target = tmp_path / "x.twin.zarr"
    folders = {kind: make_staging(tmp_path, target.name, kind) for kind in ("partial", "stream", "run", "old")}
    for folder in folders.values():
        (folder / MARKER).write_text(f"{os.uname().nodename} {dead.stdout.strip()} 0")
    mine = make_staging(tmp_path, target.name, "run")
    other = make_staging(tmp_path, "y.twin.zarr", "run")  # another output's: not this run's business
    (other / MARKER).write_text(f"{os.uname().nodename} {dead.stdout.strip()} 0")
    assert sorted(clean_stale(target)) == sorted(folders.values())
    assert mine.is_dir() and other.is_dir()


# ================================================================== 7. unknown option keys at load time
def test_unknown_preprocess_option_is_refused_when_the_config_is_loaded(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "c"\noutput = "c.twin.zarr"\ninput = { path = "missing.tif" }\n'
                   '[preprocess]\nsteps = ["denoise"]\noptions = { denoise = { metod = "gaussian" } }\n')
    with pytest.raises(InputError, match="options of step 'denoise': unknown option.*metod"):
        load_config(cfg)
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), "metod")


@pytest.mark.parametrize("section, message", [
    ('[segment]\noptions = { sed = 1 }', "segment.options: unknown option(s) sed"),
    ('[analyses]\noptions = { network = { bogus = 1 } }', "analyses.options.network: unknown option(s) bogus"),
    ('[calender]\nratios = [0.1]\noptions = { windw = 16 }', "unknown calender option(s) windw; valid options:"),
])
def test_unknown_options_of_other_stages_are_refused_at_load(tmp_path, section, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'name = "c"\noutput = "c.twin.zarr"\ninput = {{ path = "missing.tif" }}\n{section}\n')
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(cfg)


# ================================================================== 8. bounded configs
def _alias_bomb(levels: int = 9) -> str:
    lines = ['name: c', 'output: c.twin.zarr', 'input: {path: missing.tif}', 'analyses:', '  options:',
             '    unused:', '      l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 30) -> str:
    lines = ['name: c', 'output: c.twin.zarr', 'input: {path: missing.tif}', 'extra:', '  m0: &m0 {a: 1, b: 2}']
    for i in range(1, levels):
        lines.append(f"  m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bomb", [_alias_bomb, _merge_bomb])
def test_yaml_alias_bomb_is_refused_within_1s_and_100MB(tmp_path, bomb):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(bomb())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InputError, match="aliases"):
            load_config(cfg)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 100e6, (seconds, peak)
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), "aliases")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]  # no .run-* folder


def test_a_recursive_alias_and_an_oversized_config_are_refused(tmp_path):
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("name: c\nloop: &a [1, *a]\n")
    with pytest.raises(InputError, match="refers to itself"):
        load_config(cfg)
    big = tmp_path / "big.toml"
    big.write_text('name = "c"\n' + "#" * (1 << 21) + "\n")
    with pytest.raises(InputError, match="larger than 1024 KiB"):
        load_config(big)


def test_a_moderate_use_of_aliases_still_works(tmp_path, labels_npy):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(f"name: c\noutput: c.twin.zarr\ninput: &in {{path: {labels_npy}, kind: labels, voxel_size: 1.0}}\n"
                   "analyses: {run: [morphology], options: {morphology: {}}}\n")
    assert load_config(cfg).input.path == labels_npy


# ================================================================== 9. every value checked before any work
@pytest.mark.parametrize("extra, message", [
    ('analyses = { run = ["morphology", "porosimetry"] }', "analyses.run: unknown analysis 'porosimetry'"),
    ('segment = { phases = ["pore", "activ"] }', "segment.phases: unknown phase(s) activ"),
    ('calender = { densities = [-3.0] }', "calender.densities.0"),
    ('calender = { ratios = [1.2] }', "calender.ratios.0"),
    ('calender = { ratios = [0.1], analyses = ["conductiv"] }', "calender.analyses: unknown analysis"),
    ('chunks = 0', "chunks"),
    ('thickness_axis = "q"', "thickness_axis"),
    ('collector_side = "middle"', "collector_side"),
    ('design = "ncm999"', "unknown design 'ncm999'"),
    ('preprocess = { steps = ["denoise", "sharpen"] }', "unknown preprocessing step(s) ['sharpen']"),
])
def test_bad_config_values_are_refused_before_any_work(tmp_path, extra, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'name = "c"\noutput = "c.twin.zarr"\ninput = {{ path = "missing.tif" }}\n{extra}\n')
    res = runner.invoke(app, ["run", str(cfg)])  # the input does not even exist: nothing was read
    _one_line_error(res, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize("args, message", [
    (["--thickness-axis", "q"], "axis 'q'"),
    (["--collector-side", "middle"], "collector side 'middle'"),
    (["--chunks", "0"], "chunks must be a positive number"),
    (["--dtype", "float7"], "unknown output dtype"),
    (["--steps", "denoise,sharpen"], "sharpen"),
])
def test_preprocess_options_are_refused_before_the_input_is_read(tmp_path, args, message):
    res = runner.invoke(app, ["preprocess", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.twin.zarr"),
                              *args])
    _one_line_error(res, message)
    assert list(tmp_path.iterdir()) == []


def test_dtype_that_would_clip_is_refused_before_preprocessing(tmp_path, gray_volume, monkeypatch):
    import twinlab.preprocess._pipeline as pre

    tifffile.imwrite(tmp_path / "in.tif", gray_volume)  # uint16
    monkeypatch.setattr(pre, "stream_to_zarr", lambda *a, **k: pytest.fail("preprocessing started"))
    res = runner.invoke(app, ["preprocess", str(tmp_path / "in.tif"), "-o", str(tmp_path / "o.twin.zarr"),
                              "--voxel-size", "1", "--dtype", "int8"])
    _one_line_error(res, "int8 cannot hold the input's uint16", "clipped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_import_chunks_0_is_refused(tmp_path, gray_volume):
    tifffile.imwrite(tmp_path / "in.tif", gray_volume)
    res = runner.invoke(app, ["import", str(tmp_path / "in.tif"), "-o", str(tmp_path / "o.twin.zarr"),
                              "--voxel-size", "1", "--chunks", "0"])
    _one_line_error(res, "chunks must be a positive number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_calender_negative_density_is_refused_before_the_twin_is_read(tmp_path):
    res = runner.invoke(app, ["calender", str(tmp_path / "missing.twin.zarr"), "--density", "-3",
                              "-o", str(tmp_path / "s")])
    _one_line_error(res, "density -3.0 must be a positive number")


def test_analyze_refuses_an_unknown_name_before_running_any(make_twin, phase_volume):
    twin = make_twin(phase_volume, labels={"phases": phase_volume})
    res = runner.invoke(app, ["analyze", str(twin.path), "--only", "morphology,porosimetry"])
    _one_line_error(res, "unknown analysis 'porosimetry'")
    assert "morphology" not in Twin.open(twin.path).result_names


def test_parse_config_checks_voxel_size(tmp_path):
    with pytest.raises(InputError, match="voxel size"):
        parse_config({"name": "c", "output": "c.twin.zarr", "input": {"path": "x.tif", "voxel_size": "-1"}})


# ================================================================== 10. CLI messages
def test_debug_is_accepted_after_the_subcommand(tmp_path):
    res = runner.invoke(app, ["run", str(tmp_path / "missing.toml"), "--debug"])
    assert res.exit_code != 2 and res.exception is not None and "does not exist" in str(res.exception)
    res = runner.invoke(app, ["run", str(tmp_path / "missing.toml")])
    _one_line_error(res, "does not exist")


def test_yaml_syntax_error_is_one_line_with_its_position(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: c\ninput: {path: a.tif\noutput: x\n")
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), "cannot parse bad.yaml", "line ")
