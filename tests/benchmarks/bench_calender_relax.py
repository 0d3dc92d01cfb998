"""The demo's calender stages, increment by increment: contact passes, the compaction cap's relaxation
solve and the answers (issues 16/17).

Run (minutes; use the lock for timings):

    flock /tmp/twinlab-bench.lock .venv/bin/python tests/benchmarks/bench_calender_relax.py \
        [--part cathode,anode] [--work /tmp/bench_relax] [--code /work/main]

Builds the demo's two twins once into ``--work`` (the demo configs of ``twinlab.pipeline.demo_configs``
without their calender and analyses), then runs each sample's calender stage as ``make demo`` does
(``pipeline._calender``: the series plus the member analyses) and prints, per increment of
``solve_with_contacts``: passes, CG iterations (all solves, failed ones included), failed passes, and the
relaxation's CG/Newton iterations, start force (the returns' out-of-balance force relative to the
increment's) and failure; then the stage's wall and CPU seconds, total CG, and per target the crackable
volume (> 100 / > 150 MPa), roll pressure, shell-intact fraction and activation. ``--code`` imports twinlab
from another checkout (e.g. main) to measure a peer in the same conditions; keys that checkout does not
report print as "-".
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _twin(cfg, work: Path):
    from twinlab.pipeline import parse_config, run_sample

    twin = work / Path(cfg.output).name
    if not twin.exists():
        raw = {"name": cfg.name, "output": str(twin), "input": _input(cfg), "design": cfg.design,
               "thickness_axis": "y", "collector_side": "low", "chunks": 64, "analyses": {"run": ["rev"]}}
        if cfg.input.kind != "labels":
            raw["segment"] = {"phases": list(cfg.segment.phases)}
        run_sample(parse_config(raw), overwrite=True)
    return twin


def _input(cfg):
    out = {"dataset": cfg.input.dataset}
    if cfg.input.kind == "labels":
        out["kind"] = "labels"
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="cathode,anode")
    ap.add_argument("--work", default="/tmp/bench_relax", help="folder for the demo twins and series")
    ap.add_argument("--code", default=None, help="import twinlab from this checkout instead")
    args = ap.parse_args()
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    import twinlab
    from twinlab.pipeline import _calender, demo_configs
    from twinlab.series import open_series
    from twinlab.twin import Twin

    print(f"twinlab from {Path(twinlab.__file__).parent}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cal = importlib.import_module("twinlab.analyses.mechanics.calender")  # the module, not the function
    infos = []
    orig = cal.solve_with_contacts

    def logged(*a, **k):
        out = orig(*a, **k)
        infos.append(out[3])
        return out

    cal.solve_with_contacts = logged
    keys = ("passes", "cg", "newton", "failed_passes", "relax_cg", "relax_newton", "relax_force", "relax_failed",
            "returned_share", "crushing")
    cathode, anode = demo_configs(work)
    for name, cfg in (("cathode", cathode), ("anode", anode)):
        if name not in args.part.split(","):
            continue
        twin_path = _twin(cfg, work)
        twin = Twin.open(twin_path)
        out = work / f"{name}.series.zarr"
        shutil.rmtree(out, ignore_errors=True)
        infos.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        _calender(twin, cfg.calender, out, twin_path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"== {name}: calender stage {wall:.1f} s wall, {cpu:.1f} CPU-s, {len(infos)} increments, "
              f"CG {sum(i['cg'] for i in infos)}, relaxation CG {sum(i.get('relax_cg', 0) for i in infos)}, "
              f"failed relaxations {sum(i.get('relax_failed', 0) for i in infos)}")
        for n, info in enumerate(infos, 1):
            row = ", ".join(f"{k} {_fmt(info.get(k, '-'))}" for k in keys if k in info)
            print(f"  increment {n}: {row}")
        for member in open_series(out):
            res = member.load_result("calender")
            cond = member.load_result("conductive") if "conductive" in member.result_names else {}
            crack = res["crackable_volume_pct"]
            print(f"  {res['target']} {res['ratio']:.3f} density {res['density_g_cm3']:.3f}: crackable "
                  f"{json.dumps(crack)}, roll pressure {res['roll_pressure_mpa']:.2f} MPa, shells intact "
                  f"{_fmt(res.get('shell_intact_fraction'))}, activation {_fmt(cond.get('activation'))}")


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
