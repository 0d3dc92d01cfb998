"""NLM speed: scikit-image denoise_nl_means(fast_mode=True) whole-array vs twinlab's chunked numba NLM.

Same volume (noisy spheres, float32), same parameters (patch 5, distance 6, same h and sigma).
Prints wall and CPU time, throughput ratio, PSNR of both vs the clean volume, our 1 → 2 thread
speed-up, the max chunked-vs-whole difference, peak RSS and the machine load (shared machine).

    .venv/bin/python tests/benchmarks/bench_preprocess_nlm.py [--size 96] [--chunk 49]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import dask
import dask.array as da
import numba
import numpy as np


def spheres(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices((n, n, n))
    out = np.full((n, n, n), 0.2, np.float32)
    for _ in range(int(40 * (n / 96) ** 3)):
        c = rng.uniform(0, n, 3)
        r = rng.uniform(4, 12)
        out[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = rng.choice([0.5, 0.8])
    return out


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - ref) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--chunk", default="49", help="dask chunk edge (odd), or z,y,x edges")
    ap.add_argument("--sigma", type=float, default=0.1)
    args = ap.parse_args()
    from skimage.restoration import denoise_nl_means

    from twinlab.preprocess import denoise

    n = args.size
    clean = spheres(n)
    noisy = (clean + np.random.default_rng(1).normal(0, args.sigma, clean.shape)).astype(np.float32)
    h = 0.8 * args.sigma
    kw = dict(patch_size=5, patch_distance=6, h=h, sigma=args.sigma)
    print(f"volume {n}^3 float32, patch 5, distance 6, h={h}, sigma={args.sigma}; "
          f"load before: {os.getloadavg()}")

    denoise(noisy[:24, :24, :24], **kw)  # JIT warm-up (cached after the first run)
    res = {}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        out, wall, cpu = timed(lambda: denoise(noisy, **kw))
        res[f"whole_{threads}t"] = (out, wall, cpu)
        print(f"ours whole-array, {threads} thread(s): wall {wall:.2f} s  cpu {cpu:.2f} s  "
              f"{wall / n**3 * 1e6:.2f} µs/voxel  load {os.getloadavg()[0]:.1f}")
    chunks = tuple(int(c) for c in args.chunk.split(",")) if "," in args.chunk else int(args.chunk)
    lazy = denoise(da.from_array(noisy, chunks=chunks), **kw)
    chunked_wall = {}
    for threads in (1, 2):
        # 1 worker: dask's synchronous scheduler in this thread, whose numba thread count is set
        # here (numba's count is per calling thread: dask worker threads keep the default of 2)
        numba.set_num_threads(threads)
        scheduler = {"scheduler": "synchronous"} if threads == 1 else {"scheduler": "threads", "num_workers": 2}
        with dask.config.set(**scheduler):
            chunked, wall_c, cpu_c = timed(lambda: lazy.compute())
        chunked_wall[threads] = wall_c
        print(f"ours chunked {lazy.chunks} (dask {threads} worker(s), numba {threads} thread(s)): wall {wall_c:.2f} s  "
              f"cpu {cpu_c:.2f} s  {wall_c / n**3 * 1e6:.2f} µs/voxel  load {os.getloadavg()[0]:.1f}")
    ref, wall_s, cpu_s = timed(lambda: denoise_nl_means(noisy, patch_size=5, patch_distance=6, h=h,
                                                       sigma=args.sigma, fast_mode=True))
    print(f"scikit-image whole-array (1 thread): wall {wall_s:.2f} s  cpu {cpu_s:.2f} s  "
          f"{wall_s / n**3 * 1e6:.2f} µs/voxel  load {os.getloadavg()[0]:.1f}")
    whole2 = res["whole_2t"][0]
    print("--- results")
    print(f"throughput ratio (scikit-image wall / ours chunked wall): {wall_s / wall_c:.2f}x  "
          f"(CPU-time ratio {cpu_s / cpu_c:.2f}x)")
    print(f"throughput ratio vs ours whole 2 threads: {wall_s / res['whole_2t'][1]:.2f}x")
    print(f"speed-up 1 -> 2 threads (whole-array wall): {res['whole_1t'][1] / res['whole_2t'][1]:.2f}x; "
          f"chunked path 1 -> 2 workers: {chunked_wall[1] / chunked_wall[2]:.2f}x")
    print(f"PSNR vs clean: noisy {psnr(noisy, clean):.3f} dB, scikit-image {psnr(ref, clean):.3f} dB, "
          f"ours {psnr(chunked, clean):.3f} dB, difference {psnr(chunked, clean) - psnr(ref, clean):+.3f} dB")
    print(f"max |ours - scikit-image|: {np.abs(chunked - ref).max():.2e}")
    rng = float(noisy.max() - noisy.min())
    print(f"max |chunked - whole| / data range: {np.abs(chunked - whole2).max() / rng:.2e}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
