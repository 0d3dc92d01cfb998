"""Benchmark of the mechanics solver and of virtual calendering (not collected by pytest).

Run:  .venv/bin/python tests/benchmarks/bench_mechanics.py [--n 128] [--skip-calender]
      [--sizes 64,128,256] [--increment-n 256] [--profile-n 128]

Prints, measured in the same run (the machine is shared: ratios matter, not absolute times):
* multigrid scaling (``preconditioner="multigrid"``): CG iterations and time to a relative residual of
  1e-5 for the porous electrode at each of ``--sizes`` (target ≤ 80 at 128³, growth < 1.5× from
  the smallest to the largest), set-up time, hierarchy memory and bytes per voxel of the solve,
  next to the FFT-pair peer and, up to ``--fft-peer-max``, the FFT-preconditioned solve of the same
  cell in the same run (iterations, time and the multigrid/FFT time ratio);
* one calendering increment at ``--increment-n``³ and its peak RSS (target: fits in 8 GiB);
* the peer: a forward + inverse real 3D FFT of all 6 independent strain components (scipy.fft,
  workers=2), float64 and float32, at the solver's grid size;
* the time per CG iteration (best of `--repeat` fixed-count runs) and its ratio to the peer
  (target ≤ 1.5×), and CG iterations to a relative residual of 1e-5 for a porous electrode with
  zero-stiffness pores;
* a 128³ electrode compressed to 40 % with ``steps=10`` at the calender's default tolerance
  (``--calender-tol`` to change it); the targets 10/20/30/40 % are increment boundaries, which makes
  12 increments (target ≤ 60 s on 2 cores), with ``--preconditioner`` (default multigrid) and, in
  the same run, ``--calender-peer`` (default fft): the time ratio and the largest differences of
  porosity and crackable volume between the two;
* for the increment and the ten-step run, where the time goes: CG solves and iterations, multigrid
  builds, fine-level refreshes and cycles (:class:`SolverCounters`);
* `uptime` load before and after, peak RSS;
* with ``--profile-n``: one multigrid cycle kernel by kernel and level (calls and ms per cycle) and
  one CG iteration (fine operator, vector updates, cycle) against the 6 + 6 FFT pair.
* with ``--iteration-n`` (default 128; 0 skips): issue 16's per-iteration table — one CG iteration of the FFT
  (Lippmann–Schwinger, float32) and of the multigrid solver, with and without the plane contact law's crack
  correction, on the calender's first cracked solve of the cathode (its own grid, materials, cracks and
  right-hand side) and on the welded porous cell's first solve, each against the 6 + 6 float32 FFT pair of the
  same run (``--iteration-k`` iterations a run, best of ``--repeat``).

Measured (2 vCPU shared with 4 other sessions, load 11–22; the machine was never quiet, so CPU
seconds of the process are given where wall time mostly measured the others):

* 64³ ten-step (12 increments × 3 contact passes, profiled): before this session's changes 1258 CG
  iterations, 36 hierarchy builds (24 s), cycles 289 s of 350 s (load 12–13); with shared
  hierarchies across contact passes and warm starts 845 iterations, 202 s (load 11–14). Before
  ``OMP_WAIT_POLICY=PASSIVE`` one 64³ increment took 248 s (cycles 224 s: 1.1 s per cycle against 39
  ms per fine operator application).
* scaling (``--sizes 64,128,256 --fft-peer-max 0``, load 14–22): 56 / 40 iterations at 64³ / 128³;
  hierarchy 70 / 550 MiB (≈ 266 B/voxel), solve ≈ 415 B/voxel. 256³ on a quiet machine (``--sizes
  64,256 --fft-peer-max 0 --skip-cg --increment-n 0 --skip-calender``, load 0.4–1.8): 64³ 56 it in
  3.4 s, 256³ 63 it in 223 s (3.5 s per iteration, 4.0× the FFT pair), 7 levels, hierarchy 4362 MiB,
  peak RSS 9.6 GiB: iterations grow 1.12× from 64³ to 256³ (target < 1.5×, met).
* ten-step 128³ (``--calender-n 128 --calender-peer ''``): two of the 12 increments in 1000 s wall =
  150 CPU-s of the process (load 16–22; stopped), the third not done after 64 more CPU-s: ≈ 70 CPU-s
  per increment, ≈ 850 CPU-s for the run, ≥ 7× the 60 s target on 2 cores.
* one increment (``--increment-n``, 3 contact passes). Traced numpy memory at 64³ (tracemalloc, per
  electrode voxel): 1014 B before the cuts → 816 B without a float64 copy of the old
  stress, without flow directions where nothing is plastic and with the previous contact pass's
  stress and strain freed → 723 B with Newton's strain and stress dropped while CG runs. Peak RSS at
  128³: 1.87 GiB = 958 B/voxel, 67 CG after the first of these cuts; 1.73 GiB = 888 B/voxel, 57 CG
  after all, 184 s at load 16–18 (3 builds 45 s, 57 cycles 121 s); 192³ 4.69 GiB = 711 B/voxel (47
  CG / 3 Newton, 1136 s at load 13–22). About 0.25 GiB of each is interpreter and libraries: ≈ 670 B
  per electrode voxel → 256³ ≈ 10.8 GiB, over the target.
* after the memory cuts of the multigrid and the solver (symmetric coarse stencils, parent masks,
  slabbed first-level build, float32 CG directions and coefficients, CG residual in the right-hand
  side, solution fields in the calender's float32; see :mod:`twinlab.analyses.mechanics._multigrid`):
  traced numpy peak of a 64³ increment 809 → ≈ 500 B/voxel (same script, consecutive runs); peak RSS
  (``--sizes '' --skip-cg --skip-calender --increment-n N`` under ``/usr/bin/time -v``, load 2–3.6):
  128³ 0.97 GiB = 497 B/voxel (33 s, 57 CG / 3 Newton); **256³ 5.68 GiB = 364 B/voxel** (209 s,
  36 CG / 3 Newton, 3 builds 32 s, 36 cycles 141 s): fits in 8 GiB. The 128³ ten-step after the cuts
  (``--sizes '' --skip-cg --increment-n 0 --calender-n 128 --calender-peer ''``, load 2.2–6.3):
  completes in 657 s wall, 631 CPU-s of the process, 846 CG iterations / 36 Newton, 36 builds 53 s,
  846 cycles 537 s, peak RSS 1.05 GiB; ≈ 10× the 60 s target. One 128³ increment, main vs this
  branch in consecutive runs (load 3.5–6): 60.5 vs 57.2 CPU-s, 57 CG / 3 Newton both, same porosity,
  peak RSS 1.60 vs 0.97 GiB.
* cheaper cycle (no application for an unread residual, A z of the K-cycle from the smoother's
  residual, fine Chebyshev degree 4 → 3): ``--profile-n 64`` / ``128`` run against main's code and
  this code back to back (load 1.4–2.2): one cycle 70.6 → 60.9 ms at 64³, 563 → 472 ms at 128³;
  per cycle 9 → 6 fine and 12 → 10 (64³) / 6 → 5 (128³: the K-cycle's second step is skipped
  there) level-1 applications. Where a 128³ cycle goes (this code): level-1 stencil 35 %, fine
  operator 26 %, fine Chebyshev steps 22 %, level 2 9 %, fine restriction + prolongation 10 %,
  levels ≥ 3 and the coarsest solve < 5 %. Solve to 1e-5 (same run): 64³ 56 it 7.3 → 5.2 s, 128³
  40 it 18.8 → 16.2 s (406 ms per iteration = 2.4× the float32 6 + 6 FFT pair, 170 ms, and 1.0× the
  float64 pair; 64³: 93 ms = ≈ 10× the float32 pair, 6.5–8.7 ms: the "≤ 1.5× the FFT pair" of #16
  is not met with the multigrid cycle, which costs ~6 fine operator sweeps plus the coarse levels).
* stop 22, cheaper kernels (residual updates fused into the operator sweeps, one loop per 3 × 3 stencil
  block, restriction as a per-coarse-plane scatter, branch-free prolongation, fewer thread-count
  switches): same iteration counts (56 at 64³, 40 at 128³; a 64³ increment 146 CG / 4 Newton). The
  machine was at load 5–11 throughout, so CPU time is the measure (scratch scripts, old and new code
  alternating): one cycle on one thread 112/100 → 79/77 CPU-ms at 64³, 618 → 428 at 128³; the solve
  to 1e-5 6.3/6.4 → 5.4/4.9 CPU-s at 64³, 40.9 → 31.6 at 128³; the 64³ increment's cycles 46.5 →
  34.9 s (concurrent runs). One thread, CPU-ms per call at 64³ / 128³: fine residual update 1.95 /
  17.3, fine Chebyshev step 0.63 / 9.0, restriction 2.5 / 19.7, prolongation 2.3 / 15.7, level-1
  stencil 2.7 / 29 (10 / 5 per cycle), CG's own float64 application 3.3 / 36, CG vector updates 2.4
  / 33; the 6 + 6 float32 FFT pair on one worker 15.9 / 287. The finest level alone — CG's
  application, 6 cycle applications, 6 Chebyshev steps, the transfers and CG's vector updates — is
  1.6× / 0.9× the pair before any coarse level, a whole iteration ≈ 5.2× / 2.6×: the 1.5× target is
  out of reach at 64³ with this fine smoothing (degree 2: 72 instead of 56 iterations at 64³, 54
  instead of 40 at 128³) and needs ~3× cheaper coarse levels at 128³.
* stop 23, fine Chebyshev degree 3 → 6 (``_multigrid.DEGREE``). Where the calender's CG goes
  (scratch trace of the 64³ ten-step, ``--calender-n 64`` physics: 15 increments × 3 contact passes +
  the cap's relaxation): pass 1 (from zero) 753, pass 2 812, pass 3 610, relaxation 1567 of 3742 CG;
  the warm-started passes and the relaxation converge at half the rate per iteration of a cold solve
  and sit on plateaus (residual flat for 20–50 iterations) — modes the fine smoother removes, not the
  coarse levels: 8 of those solves captured and replayed (same inputs, one process after another,
  load 6–8) took 530 / 407 / 354 / 296 / 256 CG and 30.8 / 24.0 / 24.7 / 20.4 / 21.4 CPU-s with fine
  degree 3 / 4 / 5 / 6 / 8; coarse degree 3, a 2000-node coarsest level, smoothing ratio 30 or 300,
  always two K-cycle steps changed nothing that degree 6 alone does not (degree 8 with ratio 30: 237 CG,
  19.7 CPU-s). The cold elastic solve of the scaling part: 64³ 56 → 47 CG, 4.1 → 4.0 CPU-s; 128³ 40 →
  34 CG, 24.8 → 25.5 CPU-s (one process, both degrees, load 8–9): neutral. The 64³ ten-step (same
  trace, consecutive runs, load 5–8): 3742 → 1699 CG, 60 solves both, 210 → 124 CPU-s without the first
  increment (which carried the new code's numba compilation: 222 → 165 CPU-s with it); pass 1 / 2 / 3
  / relaxation 381 / 442 / 298 / 578 CG; porosity identical, crackable > 100 MPa 3.00 / 21.17 / 38.31 /
  82.81 → 3.06 / 19.55 / 36.55 / 83.38 % at 10 / 20 / 30 / 40 % (the active set's path; ±1.5 points
  was measured for the relaxation tolerance). The 128³ ten-step on main's code (``--sizes '' --skip-cg
  --increment-n 0 --calender-n 128 --calender-peer ''`` under ``/usr/bin/time -v``, load 5–9): now 14
  increments (the cap's sub-steps) with a relaxation each; 10 done in 3376 s wall, 1305 CPU-s
  (stopped) — ≥ 1800 CPU-s in all. Its first 3 increments, both codes side by side (scratch trace, load
  8–10): 668 → 434 CG, 404 → 331 CPU-s (increments 1–2: 370 → 301 CG at the same 236 CPU-s, an
  iteration costs 24 % more at 128³; increment 3: 298 → 133 CG, 168 → 95 CPU-s). Demo cathode
  calender (fresh-clone twin of stop 22, both degrees side by side, load 7–10): 2208 → 1494 CG, 142.7
  → 122.9 CPU-s; at load 1–4 120.7 → 110.9 CPU-s, 167.6 → 158.5 s wall (degree 4 / 5 / 6 in a second such run: 2215 / 1646 / 1494 CG, 136.3 / 125.5 / 123.3
  CPU-s; crackable > 100 MPa at 3.0 g/cm³ 23.4 / 23.7 / 29.6 / 25.4 % for degree 3 / 4 / 5 / 6: the
  active set's path at tol 1e-4). Reverted at stop 23: the slow Hertz test's R = 16 peak pressure came
  out 142.8 vs 181.4 MPa.
* stop 24, degree 6 again. The Hertz failure was the contact flip lock, not the smoother: every pass's
  solve re-solved to 1e-11 gave the same stress; the lock counted the first closing of a voxel open on
  its carried gap, so voxels inside the contact that the second pass's overshoot reopened were frozen
  open at their next closing — holes at zero stress wherever the solver's path put them (degree 6 at the
  centre; degree 3 one 2 voxels off it at R = 16, two at the centre at R = 20: 151 vs 162 MPa). Fixed in
  ``solve_with_contacts``: p0 within 1 % of Hertz for degree 3 and 6, R = 16 and 20, tol 1e-5 … 1e-8.
  Same code, degree 3 vs 6 (scratch trace of the 64³ ten-step, consecutive runs under the bench lock,
  load 1.8–3.9): 2441 → 1725 CG, 152.6 → 130.2 CPU-s, 103.8 → 101.9 s wall (again at load 1.4–2.2:
  146.2 → 128.9 CPU-s, 97.1 → 110.4 s wall — the wall time follows the other users' load); pass 1 / warm passes /
  relaxation 530 / 980 / 931 → 388 / 629 / 708 CG (an iteration costs ~20 % more); porosity identical,
  crackable > 100 MPa 3.02 / 22.70 / 35.29 / 82.61 → 2.97 / 22.10 / 36.56 / 82.70 %. Demo cathode
  calender (stop 23's fresh-clone twin, 3.0 and 3.6 g/cm³, consecutive runs under the bench lock, load
  1.7–1.9): 2358 → 1461 CG, 115.6 → 86.2 CPU-s, 76.0 → 58.8 s wall; crackable > 100 MPa at 3.0 g/cm³
  24.0 → 29.2 %, roll pressure 37.3 → 40.9 MPa (with a converged active set — contact_tol 0.002, 10
  passes, tol 1e-5 — both degrees give 25.2 / 24.7 % and 37.3 / 36.5 MPa: the default passes' path on
  a twin a few particles wide). Tried and dropped: contact passes solved to 10 × tol with the kept pass continued
  to tol (calender bench CG −11 to −30 %, but roll pressure moved up to 8 % on a seed and the Hertz
  contact radius at R = 16 came out 18 % off: the active set decided on a looser solve is another one);
  pass 1 started from the previous increment's displacement carried through the remap (CG +1 to +10 %).
* stop 27, where the ten-step's time goes, contacts or solver: ``--calender-n 128 --calender-peer ''
  --calender-welded`` (``contacts=False``, the welded body issue 17 was filed with; load 2–7, beside
  three other sessions): 12 solves, **179 CG**, 12 Newton, 161 CPU-s (147 user + 14 sys), 384 s wall at
  40 % CPU, peak RSS 1.16 GiB; 64³ 171 CG, 26 s. With the contact interphase (stop 26's code, alone): 70
  solves, 1854 CG, 1122 CPU-s, 630 s. The solver itself is ≈ 80 s of 2-core time for the welded
  ten-step; the contacts' active set (5 passes per increment, each a full solve) is 7× its CG. The FFT
  reference solver's iteration (``--skip-calender --increment-n 0 --sizes '' --preconditioner fft --n N
  --dtypes float32 --maxiter 100``, load 3–5): 1.08× the 6 + 6 FFT pair at 128³ (270 vs 252 ms), 1.9×
  at 64³ (15.5 vs 8.3 ms); the contact law does not touch the operator (a voxel state between solves),
  so an iteration costs the same with and without contacts.
* stop 28, where the welded 128³ ten-step's time goes (``python -m cProfile`` around ``--sizes '' --skip-cg
  --increment-n 0 --calender-n 128 --calender-peer '' --calender-welded``, load 3.3–4.5, beside three
  sessions): 207 s in the calender, 163.6 CPU-s (154.3 user + 9.3 sys) for the process, 179 CG; builds 25.9 s,
  cycles 132.0 s, CG in all 171.4 s. By kernel (wall): level ≥ 1 stencil sweeps 59.3 s, fine operator sweeps
  43.0 s, fine Chebyshev steps 24.3 s, transfers 9.5 s, first-level Galerkin 11.8 s + deeper levels 6.6 s;
  outside the solver the remap's debris test (``np.unique(axis=1)`` on the (particle, piece) pairs) 8.9 s and
  the gathers of the carried state 6.7 s → a 1-D key and one numba gather (``_remap.take_sources``): 12.2 →
  3.6 s and 6.7 → 5.1 s, same 179 CG, porosity and crackable volume (216 s / 157.9 CPU-s at load 1.4–4.5:
  the wall time follows the load). One cycle (``--profile-n 128``, load 2.3–3.4) 820 ms: fine residual
  updates 33 %, level-1 stencil 24 %, fine Chebyshev steps 23 %; a CG iteration 3.1× the float32 FFT pair.
  Per call on one thread (CPU-ms, 128³): level-1 stencil 24, fine residual update 13–15, Chebyshev step
  8.5; with two threads the same CPU and hardly less wall: a plain read streams 17.7 GB/s on one thread and
  17.3 on two while the other sessions run, so the memory-bound kernels gain nothing from the second
  thread on this shared machine. Tried and dropped: keeping the first coarse level's element matrices for
  the second level's products instead of computing them twice (build 1.5–1.9 vs 1.5 CPU-s at 128³, +320 MB);
  fused multiply-adds in the stencil sweep (−6 % CPU, but the float32 cycle's rounding moved an iteration
  count across a test's bound); uint64 indices / one view per block in the stencil sweep (bitwise the same,
  −5 % CPU, within the noise); skipping void nodes in the Chebyshev step (50 % of the fine nodes are void
  at the start, but only 29 % of 16-node chunks and 3.5 % of rows: ≤ 5 % of a cycle). The default ten-step
  (contacts, this code, cProfile, load 3.9–5.6): 70 solves, 1854 CG (as at stop 26), 1972 s, 1253 CPU-s
  (1122 alone at stop 26); builds 175 s, cycles 1556 s, outside CG 97 s (5 %); by kernel the stencil sweeps
  706 s (36 %), fine operator sweeps 488 s, Chebyshev steps 281 s, first-level Galerkin 82 s. ``perf`` on
  the level-1 sweep (one thread): the samples sit in the vectorised (8-wide) block loop on the stencil
  loads — memory-bound: every stored block is read twice (for its node and, transposed, for its
  neighbour one node plane later, out of L2), as much traffic as the full 27-block stencil (full 28 ms,
  symmetric 26 ms, stop 22). Next: read each block once and scatter its transpose into the neighbour's row (planes by
  parity, as the fine sweep's elements), ≈ half the traffic of the kernel that is a third of the run.
* stop 29, the stencil sweep reads each stored block once (``_multigrid._stencil_sweep``: the block's product
  into its node's row and its transpose's into the neighbour's, current/next-plane accumulators). Welded 128³
  ten-step, old and new code back to back under the lock (``/usr/bin/time -v … --calender-welded``, warm numba
  caches): 159.9 → 145.1 CPU-s, 209 → 197 s wall (calender 200 → 179 s, cycles 134.5 → 112.3 s, builds 26.7 /
  26.2 s; load 6.5–7.6); a first pair at load 5.3–12.3: 167.0 → 148.2 CPU-s. Same 179 CG / 12 solves and the
  same porosity and crackable volume at every target; a welded 48³ six-step (two targets): the same 63 CG,
  final stress fields 1.3e-7 apart (relative L2; tol 1e-4). One cycle (``--profile-n 128``, load 6–7, per
  call, two threads): level-1 stencil 41.1 → 28.2 ms, level 2 4.3 → 3.3 ms (the fine kernels moved by
  ±20 % between the two runs: the load); a random level-1 stencil (65 × 64², one thread, alternating, load 7):
  25.1 → 17.2 CPU-ms. The default 64³ ten-step (contacts): 124.7 → 118.5 CPU-s, 75 → 76 solves, 1277 → 1272
  CG (load 5.9–6.5): the contact passes, whose active set does not converge, follow the float32 rounding of
  the reordered sums (crackable volume > 100 MPa 2.0 / 18.8 / 35.5 / 84.5 → 1.9 / 19.0 / 34.0 / 84.5 %, the
  porosity the same). Now (c1, the second welded run): cycles 112 s of 179 s; per 128³ cycle the fine
  residual updates ~48 %, fine Chebyshev ~25 %, level-1 stencil ~21 %; builds 26 s (per 128³ build, CPU:
  first-level Galerkin 0.75 s — computed twice, for level 1 and again for level 2 — level-2 Galerkin 0.43 s,
  stencil assembly 0.16 s, transfer weights 0.11 s of 2.0 s). Tried and dropped: bfloat16 off-diagonal
  blocks on level 1 (see ``_stencil_sweep``), both products in one loop, ``_add_ptkp`` over P8's non-zeros
  only (bitwise the same stencils, 250 → 360 CPU-ms per 64³ build: the dense 8-wide loops vectorise).
* stop 29, the fine level (``_operator._sweep`` in slabs of 32 element planes swept in order, so ``u`` and the
  forces stream through memory once instead of twice; every fine Chebyshev step but the first fused into the
  residual sweep before it, ``tangent_residual(step=…)``; one backward scatter loop per component). Bytes per
  node of an in-place float32 residual: 84 → 48, residual + Chebyshev step 168 → 108. One thread on the sweep
  alone (CPU-ms, ``process_time``, load 6–7): in cache (64³) 6.2 → 5.8 ns per node — the kernel is bound by
  its instruction count there, not by memory (16 and 32-element blocks are slower, 128 no faster; AVX-512
  code no faster). One cycle at 128³ (the solver's hierarchy, ``apply`` on a random masked residual, min of
  6, base and new one after the other, load 7.3–9.2): 512 / 514 → 450 / 447 CPU-ms (−12 %); at 64³ no change (81–89 CPU-ms
  either way, load 3.9–5.5: the working set sits in cache). ``--profile-n 128`` (flock'd, new then base, load
  2.2–2.3): one cycle 492.5 → 464.1 ms, fine level 282.5 → 243.3 ms per cycle (12 residual sweeps 15.6 ms +
  12 Chebyshev steps 8.0 ms → 12 fused sweeps 19.4 ms + 1 step 11.1 ms), CG's own fine operator 30.3 → 26.4 ms;
  one CG iteration 3.19× → 2.95× the float32 FFT pair (1.71× → 1.59× the float64 one). The float64 cycle gives the same vector to
  2e-16 (the float32 cycle on a random, inconsistent residual differs by rounding amplified in near-null
  modes, as base float32 vs float64 does, 2.6e3 relative). Welded 128³ ten-step (``--calender-n 128
  --calender-welded``, base and new run side by side, load 6–7, ~30 % of a core each): 179 CG both, same
  porosity and crackable volume at every target; 194.1 → 183.2 CPU-s (user + sys), cycles 291.6 → 275.5 s
  wall. Elastic solve to 1e-5: 18 / 47 CG at 32³ / 64³ before and after. Default (contacts) 64³ ten-step, side
  by side, load 1.9–4: 1277 → 1265 CG, 121.5 → 118.9 CPU-s, 121.8 → 119.8 s wall (cycles 86.6 → 84.1 s).
* stop 30, the fine level merged with main (stop 29's slabs and fused Chebyshev steps) plus: the ±1 sign folded
  into the generalised forces (``_operator._elements_*``; bitwise the same forces), CG's pᵀAp summed plane by
  plane inside the operator sweep (``apply_tangent_dot``), z·r and z·q in one pass (``_fft_solver._dot_pair``:
  30.7 → 19.5 ms at 128³), the pre-smoothing's first Chebyshev step inside the first residual sweep
  (``tangent_residual(lead=…)``; the 40³ cycle bitwise the same in float64 and float32). Old = main 8c6cf8d, new
  = this branch, both under the lock with warm caches. Welded 128³ ten-step (``/usr/bin/time -v … --calender-n
  128 --calender-welded``), two pairs in opposite order: main 163.2 / 160.4 CPU-s (load 5.2–6.9 / 4.8–5.9), new
  141.5 / 154.4 CPU-s (load 4.5–6.9 / 5.5–5.9): −8.5 % on the means; the same 179 CG, 12 solves and the same
  porosity and crackable volume at every target (wall 8:07 / 4:05 vs 3:48 / 5:33: the load, not the code).
  ``--profile-n 128`` (new then main, load 4.5–6.2): one cycle 817.2 → 554.2 ms, the fine level 12 residual
  sweeps 328.6 ms + 12 Chebyshev steps 196.2 ms → 12 fused sweeps 397.7 ms (no separate step left); a CG
  iteration 890 → 624 ms, 3.47× → 2.12× the float32 FFT pair (1.78× → 1.92× the float64 one: the pair's own
  times moved 257 → 295 and 501 → 326 ms between the runs — compare the cycle times). Default (contacts, the
  passes) 64³ ten-step, one run each (load 3.8–5.5): main 1272 CG / 107.7 CPU-s, main + ``s29-fine`` 1332 /
  126.0, new 1363 / 125.7 (75–76 solves; crackable > 100 MPa 1.9/19.0/34.0/84.5, 2.0/19.4/34.8/83.7,
  2.0/18.9/35.3/84.1 %, the porosity the same): the unconverged passes follow the summation order. Tried and
  dropped: each increment's solve started from the previous increment's solved fluctuation, carried with the
  voxels by the remap (voxel-centre, stiffness-weighted to the nodes), scaled by the strain increments' ratio:
  the start's out-of-balance force is still 0.56–1.3 of the zero start's (the remap's cell rounding moves
  the material by whole voxels); welded 64³ 178 → 165 CG (12 → 13 Newton), 48³ 109 → 105 (the nodes taken
  directly with the voxels: 115).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_mechanics import synth_electrode  # noqa: E402

from twinlab.analyses.mechanics import MechanicsSolver, calender, lame_from_young  # noqa: E402
from twinlab.errors import ConvergenceError  # noqa: E402


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fft_pair_time(shape, dtype, comps=6, reps=3, workers=2) -> float:
    x = np.random.default_rng(0).random((comps, *shape)).astype(dtype)
    sfft.irfftn(sfft.rfftn(x, axes=(1, 2, 3), workers=workers), s=shape, axes=(1, 2, 3), workers=workers)
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        sfft.irfftn(sfft.rfftn(x, axes=(1, 2, 3), workers=workers), s=shape, axes=(1, 2, 3), workers=workers)
        best = min(best, time.perf_counter() - t)
    return best


def fixed_count_time(solver, k: int) -> float:
    """Wall time of ``solve_linear`` stopped after exactly ``k`` CG iterations."""
    t = time.perf_counter()
    try:
        solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=1e-30, maxiter=k)
    except ConvergenceError:  # raised after k iterations, as intended
        pass
    return time.perf_counter() - t


def electrode_cell(n: int, seed=0):
    lab = synth_electrode((n, n, n), n_coll=max(2, n // 20), fraction=0.38, radius=(n / 16, n / 9), seed=seed)
    e = np.array([0, 100e3, 2e3, 70e3]); nu = np.array([0.3, 0.3, 0.3, 0.33])
    cell = np.concatenate([lab, np.full((2, n, n), 4, np.uint8)])  # + roll
    e = np.append(e, 200e3)[cell]; nu = np.append(nu, 0.3)[cell]
    lam, mu = lame_from_young(e, nu)
    return lab, lam, mu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--skip-calender", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dtypes", default="float32,float64", help="solver precisions for the CG part")
    ap.add_argument("--skip-cg", action="store_true")
    ap.add_argument("--maxiter", type=int, default=3000)
    ap.add_argument("--calender-n", type=int, default=128)
    ap.add_argument("--calender-steps", type=int, default=10)
    ap.add_argument("--calender-tol", type=float, default=None, help="Newton tolerance (default: calender's)")
    ap.add_argument("--calender-welded", action="store_true",
                    help="ten-step without the contact interphase (contacts=False: touching particles welded into "
                         "one elastic body, the physics of the 404–431 s figure issue 17 was filed with)")
    ap.add_argument("--repeat", type=int, default=3, help="fixed-count timing pairs (best is reported)")
    ap.add_argument("--sizes", default="64,128,256", help="multigrid scaling sizes ('' to skip)")
    ap.add_argument("--fft-peer-max", type=int, default=128, help="largest size of the FFT peer solve in the "
                    "scaling part")
    ap.add_argument("--increment-n", type=int, default=256, help="size of the one-increment memory check (0 skips)")
    ap.add_argument("--preconditioner", default="multigrid", help="preconditioner of the per-iteration FFT-ratio "
                    "part, the increment and the calendering parts")
    ap.add_argument("--profile-n", type=int, default=0, help="profile one CG iteration and one cycle of the "
                    "multigrid at this size, component by component (0 skips)")
    ap.add_argument("--profile-reps", type=int, default=10, help="cycles timed in the profile")
    ap.add_argument("--iteration-n", type=int, default=128, help="per-CG-iteration table at this size: the FFT "
                    "and multigrid solvers with and without the plane contact law against the FFT pair (0 skips)")
    ap.add_argument("--iteration-k", type=int, default=10, help="CG iterations per timed run of the table")
    ap.add_argument("--calender-peer", default="fft", help="also calender with this preconditioner in the same run "
                    "and print the time ratio ('' to skip)")
    args = ap.parse_args()
    print("load before:", uptime(), flush=True)
    if args.profile_n:
        profile_part(args)
    if args.iteration_n:
        iteration_part(args)
    if args.sizes:
        scaling_part(args)
    if not args.skip_cg:
        cg_part(args)
    if args.increment_n:
        increment_part(args)
    if not args.skip_calender:
        calender_part(args)


def cg_part(args) -> None:
    lab, lam, mu = electrode_cell(args.n)
    shape = lam.shape
    print(f"grid {shape}, porosity {np.mean(lab[2:] == 0):.3f}, pores have zero stiffness", flush=True)
    for dt in args.dtypes.split(","):
        peer6 = fft_pair_time(shape, dt, 6, workers=args.workers)
        peer3 = fft_pair_time(shape, dt, 3, workers=args.workers)
        solver = MechanicsSolver(lam, mu, voxel_size=(1, 1, 1), dtype=dt, workers=args.workers,
                                 preconditioner=args.preconditioner)
        solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=1e-1)  # warm-up (numba compile / caches)
        peer6b = fft_pair_time(shape, dt, 6, workers=args.workers)
        # time per iteration from a fixed iteration count (no convergence needed; the set-up — initial
        # residual and first preconditioner application, about one iteration — is included, so the
        # figure is slightly pessimistic); the best of `--repeat` runs, each next to a peer measurement,
        # so that a burst of other load on the shared machine is discarded rather than averaged in
        k = 40
        fixed, peers = [], [peer6b]
        for _ in range(args.repeat):
            fixed.append(fixed_count_time(solver, k) / k)
            peers.append(fft_pair_time(shape, dt, 6, workers=args.workers))
        per_it_fixed, peer_fixed = min(fixed), min(peers)
        print(f"[{dt}] fixed-count: {per_it_fixed * 1e3:.1f} ms/iteration (samples "
              f"{'/'.join(f'{v * 1e3:.1f}' for v in fixed)}); FFT peer {peer_fixed * 1e3:.1f} ms (samples "
              f"{'/'.join(f'{v * 1e3:.1f}' for v in peers)}) → {per_it_fixed / peer_fixed:.2f}× (target ≤ 1.5×) "
              f"| {uptime()}", flush=True)
        t = time.perf_counter()
        try:
            _, its = solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=1e-5, maxiter=args.maxiter)
        except Exception as exc:  # report a non-converged solve instead of hiding it
            print(f"[{dt}] CG did not reach 1e-5: {exc}", flush=True)
            its = args.maxiter
        el = time.perf_counter() - t
        peer6c = fft_pair_time(shape, dt, 6, workers=args.workers)
        peer = float(np.median([peer6, peer6b, peer6c]))
        per_it = el / its
        print(f"[{dt}] FFT peer (6 fwd + 6 inv, workers={args.workers}): {peer * 1e3:.1f} ms "
              f"(samples {peer6 * 1e3:.1f}/{peer6b * 1e3:.1f}/{peer6c * 1e3:.1f}); 3+3: {peer3 * 1e3:.1f} ms", flush=True)
        print(f"[{dt}] {args.preconditioner} CG to rel. residual 1e-5: {its} iterations, {el:.1f} s, {per_it * 1e3:.1f} ms/iteration = "
              f"{per_it / peer:.2f}× the 6+6 FFT peer (target ≤ 1.5×)", flush=True)
    print("load:", uptime(), f"peak RSS {rss_mib():.0f} MiB", flush=True)


def _solve_to_1e5(lam, mu, preconditioner, dtype, args):
    """(iterations, seconds, solver) of one solve to a relative residual of 1e-5 after a warm-up
    solve (which builds the multigrid hierarchy and compiles, once); iterations None if it failed."""
    t0 = time.perf_counter()
    solver = MechanicsSolver(lam, mu, dtype=dtype, workers=args.workers, preconditioner=preconditioner)
    solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=0.5)
    setup = time.perf_counter() - t0
    t = time.perf_counter()
    try:
        _, its = solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=1e-5, maxiter=args.maxiter)
    except ConvergenceError as exc:
        print(f"  {preconditioner}: {exc}", flush=True)
        return None, time.perf_counter() - t, setup, solver
    return its, time.perf_counter() - t, setup, solver


def scaling_part(args) -> None:
    """Multigrid-preconditioned CG to 1e-5 on the porous electrode at several sizes, and the FFT
    preconditioner (float32, its faster precision) on the same cell in the same run up to
    ``--fft-peer-max``."""
    rows = []
    for n in [int(v) for v in args.sizes.split(",")]:
        lab, lam, mu = electrode_cell(n)
        peer = fft_pair_time(lam.shape, "float32", 6, workers=args.workers)
        its, el, setup, solver = _solve_to_1e5(lam, mu, "multigrid", "float64", args)
        if its is None:
            continue
        voxels = lam.size
        hier = solver._mg.nbytes
        # CG's x, r (in the right-hand side's memory) and q in float64, z and p in the cycle's float32,
        # and L, M, k_hg
        vectors = 3 * voxels * (3 * solver.dtype.itemsize + 2 * solver._mg.dtype.itemsize) + solver._coef.nbytes
        rows.append((n, its))
        print(f"  {lam.shape}: multigrid {its} CG iterations to 1e-5 in {el:.1f} s "
              f"({el / its * 1e3:.0f} ms/iteration = {el / its / peer:.2f}× the 6+6 FFT pair {peer * 1e3:.0f} ms), hierarchy set-up ~{setup:.1f} s "
              f"(incl. first-call compile), {len(solver._mg.levels)} levels, hierarchy {hier / 2**20:.0f} MiB, "
              f"solve {(hier + vectors) / voxels:.0f} B/voxel | peak RSS {rss_mib():.0f} MiB | {uptime()}",
              flush=True)
        del solver
        if n <= args.fft_peer_max:
            fits, fel, _, fsolver = _solve_to_1e5(lam, mu, "fft", "float32", args)
            del fsolver
            if fits is not None:
                print(f"  {lam.shape}: FFT (float32) {fits} CG iterations to 1e-5 in {fel:.1f} s "
                      f"({fel / fits * 1e3:.0f} ms/iteration) → multigrid/FFT time {el / fel:.2f}×, iterations "
                      f"{its / fits:.3f}× | {uptime()}", flush=True)
    if len(rows) >= 2:
        print(f"  iterations grow {rows[-1][1] / rows[0][1]:.2f}× from {rows[0][0]}³ to {rows[-1][0]}³ "
              "(target < 1.5×)", flush=True)


def profile_part(args) -> None:
    """Where one CG iteration and one multigrid cycle spend their time on the porous electrode at
    ``--profile-n``: every kernel the cycle calls is wrapped with a timer, keyed by kernel and level
    (the level's node count), and ``--profile-reps`` cycles are run on CG's first residual; the
    same run times the CG iteration's own parts (fine operator on float32 directions, dots and
    updates) and the FFT pair peer."""
    import numba

    from twinlab.analyses.mechanics import _fft_solver
    from twinlab.analyses.mechanics import _multigrid as mg_mod

    lab, lam, mu = electrode_cell(args.profile_n)
    solver = MechanicsSolver(lam, mu, dtype="float64", workers=args.workers)
    solver.solve_linear([-0.01, 0, 0, 0, 0, 0], rtol=0.5)  # builds the hierarchy, compiles
    mg = solver._mg
    level_of = {lev.nodes: li for li, lev in enumerate(mg.levels)}
    times: dict = {}

    def timed(name, fn, arg):
        def wrapper(*a, **k):
            key = (name, level_of.get(int(np.prod(a[arg].shape[-3:])), -1) if arg is not None else -1)
            t = time.perf_counter()
            out = fn(*a, **k)
            dt = time.perf_counter() - t
            c, s = times.get(key, (0, 0.0))
            times[key] = (c + 1, s + dt)
            return out
        return wrapper

    names = {"_cheb_step": 1, "_sub": 0, "_residual_image": 2, "_axpy": 0, "_dot": 0, "_restrict": 0, "_prolong_add": 0,
             "stencil_apply": 1, "apply_tangent": 0, "stencil_residual": 1, "tangent_residual": 0}
    saved = {n: getattr(mg_mod, n) for n in names if hasattr(mg_mod, n)}  # (an older cycle: fewer kernels)
    saved_coarse = mg.__class__._solve_coarsest
    numba.set_num_threads(args.workers)
    shape = lam.shape
    rng = np.random.default_rng(0)
    r = rng.standard_normal((3, *shape))
    r *= mg.levels[0].mask
    z = np.empty((3, *shape), np.float32)
    mg.apply(r, z)  # warm
    t = time.perf_counter()
    for _ in range(args.profile_reps):
        mg.apply(r, z)
    cycle = (time.perf_counter() - t) / args.profile_reps
    for n in saved:
        setattr(mg_mod, n, timed(n, saved[n], names[n]))
    mg.__class__._solve_coarsest = timed("coarsest solve", saved_coarse, 1)
    try:
        for _ in range(args.profile_reps):
            mg.apply(r, z)
    finally:
        for n in saved:
            setattr(mg_mod, n, saved[n])
        mg.__class__._solve_coarsest = saved_coarse
    # the CG iteration's own parts (as in MechanicsSolver._pcg)
    coef, pvec, active = solver._tangent(None, None)
    p = z.copy()
    q = np.empty((3, *shape))
    x = np.zeros((3, *shape))
    reps = args.profile_reps

    def best(fn):
        fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    t_fine = best(lambda: _fft_solver.apply_tangent_dot(p, coef, pvec, active, solver._q, q))  # with pᵀq
    rr = r.copy()
    t_vec = best(lambda: (_fft_solver._axpy2(x, p, rr, q, 1e-30), _fft_solver._dot_pair(z, rr, q),
                          _fft_solver._xpby(z, p, 0.5)))
    peer = fft_pair_time(shape, "float32", 6, workers=args.workers)
    peer64 = fft_pair_time(shape, "float64", 6, workers=args.workers)
    total = sum(s for _, s in times.values()) / reps
    print(f"profile at {shape} ({len(mg.levels)} levels: {', '.join(str(lev.shape) for lev in mg.levels)}), "
          f"{reps} cycles | {uptime()}", flush=True)
    print(f"  one cycle {cycle * 1e3:.1f} ms (sum of the timed kernels with the timers on {total * 1e3:.1f} ms):",
          flush=True)
    for (name, li), (c, s) in sorted(times.items(), key=lambda kv: -kv[1][1]):
        print(f"    {name:16s} level {li}: {c / reps:5.1f} calls/cycle, {s / reps * 1e3:7.1f} ms/cycle "
              f"({s / c * 1e3:6.2f} ms/call) = {s / reps / cycle * 100:4.1f} %", flush=True)
    it = t_fine + t_vec + cycle
    print(f"  one CG iteration ≈ {it * 1e3:.1f} ms: fine operator {t_fine * 1e3:.1f} ms, dots/updates "
          f"{t_vec * 1e3:.1f} ms, cycle {cycle * 1e3:.1f} ms; 6+6 FFT pair float32 {peer * 1e3:.1f} ms, float64 "
          f"{peer64 * 1e3:.1f} ms → iteration {it / peer:.2f}× (f32) / {it / peer64:.2f}× (f64) the pair", flush=True)


class _Captured(Exception):
    """Raised by :func:`first_cg` to stop a calendering run at its first CG solve."""


def first_cg(n: int, *, welded: bool, workers: int):
    """``(solver, b, theta, normal)`` of the first CG solve of the benchmark's ``n``³ calendering run (the
    calender's own grid, materials and — unless ``welded`` — the plane contact law's cracks, as the solver
    holds them when its Newton calls CG: the first solve with cracks); the run is stopped there."""
    lab = synth_electrode((n, n, n), n_coll=max(2, n // 20), fraction=0.38, radius=(n / 16, n / 9), seed=1, cbd=0.3)
    got = []

    def capture(solver, b, theta, normal, **kw):
        if welded or solver._crack is not None:  # (a solve before the cracked one runs)
            got.append((solver, b.copy(), theta.copy(), normal.copy(), solver._crack))
            raise _Captured

    try:
        with SolverCounters(before_solve=capture):
            calender(lab, ratios=[0.1], steps=1, voxel_size_um=(0.5, 0.5, 0.5), thickness_axis=0,
                     collector_side="low", workers=workers, keep_fields=False, contacts=not welded)
    except _Captured:
        pass
    if not got:
        raise RuntimeError("the calendering run made no CG solve")
    solver, b, theta, normal, crack = got[0]
    solver._crack = crack  # (solve_increment clears it on the way out)
    return solver, b, theta, normal


def _per_iteration(solver, b, theta, normal, k: int, repeat: int) -> float:
    """Seconds per CG iteration of ``solver`` (best of ``repeat`` runs of ``k`` iterations after a warm-up that
    builds its preconditioner), from the right-hand side ``b``."""
    def run(count):
        t = time.perf_counter()
        try:
            _, its = solver._cg(b.copy(), theta, normal, rtol=1e-30, maxiter=count)
        except ConvergenceError as exc:  # raised after `count` iterations, as intended
            its = exc.cg_iterations
        return (time.perf_counter() - t) / max(its, 1)

    run(2)
    return min(run(k) for _ in range(repeat))


def iteration_part(args) -> None:
    """#16's per-iteration cost on the benchmark's calendering grid at ``--iteration-n``: one CG iteration of the
    FFT (Lippmann–Schwinger, float32) and the multigrid solver, with and without the plane contact law's crack
    correction (the cathode's first increment, the solver's own right-hand side), and on the welded porous cell,
    against the 6 + 6 FFT pair measured in the same run."""
    from twinlab.analyses.mechanics import MechanicsSolver as Solver

    n, k = args.iteration_n, args.iteration_k
    rows = {}
    for case, welded in (("cathode, plane contacts", False), ("welded porous", True)):
        mg, b, theta, normal = first_cg(n, welded=welded, workers=args.workers)
        shape = mg.shape
        fft = Solver(mg.lam, mg.mu, voxel_size=mg.h, yield_mpa=mg.sy.reshape(shape), code=mg.code.reshape(shape),
                     dtype="float32", workers=args.workers, preconditioner="fft")
        fft._crack = mg._crack  # the same cracked voxels and correction rows
        b32 = b.astype(np.float32)
        for name, solver, rhs in (("FFT (float32)", fft, b32), ("multigrid", mg, b)):
            law = solver._crack
            with_law = None if law is None else _per_iteration(solver, rhs, theta, normal, k, args.repeat)
            solver._crack = None
            rows[case, name] = (_per_iteration(solver, rhs, theta, normal, k, args.repeat), with_law,
                                0 if law is None else law.index.size)
            solver._crack = law
        del mg, fft
    peer32 = fft_pair_time(shape, "float32", 6, workers=args.workers)
    peer64 = fft_pair_time(shape, "float64", 6, workers=args.workers)
    print(f"per CG iteration at {shape} (best of {args.repeat} runs of {k} iterations; 6 + 6 FFT pair float32 "
          f"{peer32 * 1e3:.1f} ms, float64 {peer64 * 1e3:.1f} ms, same run) | {uptime()}", flush=True)
    print(f"  {'case':24s} {'solver':14s} {'no contact law':>16s} {'plane law':>16s} {'law overhead':>13s} "
          f"{'cracked voxels':>15s}", flush=True)
    for (case, name), (plain, law, m) in rows.items():
        def cell(t):
            return f"{t * 1e3:7.1f} ms {t / peer32:4.2f}×"
        print(f"  {case:24s} {name:14s} {cell(plain):>16s} {cell(law) if law else '–':>16s} "
              f"{f'{law / plain:.2f}×' if law else '–':>13s} {m:15d}", flush=True)
    print("  (× = the iteration over the float32 FFT pair; #16 asks ≤ 1.5×)", flush=True)


class SolverCounters:
    """Counts and times, while active, the linear solves, CG iterations, multigrid builds / fine-level
    refreshes and preconditioner applications of every :class:`MechanicsSolver`, and the calender's voxel
    moves (remaps, with the gathers of the carried state) (wraps the functions; restored on exit): where
    the time of a calendering run goes. ``before_solve(solver, b, theta, normal, **options)``, if given, sees
    every CG solve before it runs (what :func:`first_cg` captures)."""

    def __init__(self, before_solve=None):
        from twinlab.analyses.mechanics import _fft_solver
        from twinlab.analyses.mechanics._multigrid import ElasticMultigrid

        self.before_solve = before_solve

        calender_module = sys.modules["twinlab.analyses.mechanics.calender"]  # (the package exports the function)

        self.targets = [(_fft_solver.MechanicsSolver, "_cg", "solves"), (ElasticMultigrid, "update", "builds"),
                        (ElasticMultigrid, "refresh_fine", "refreshes"), (ElasticMultigrid, "apply", "cycles"),
                        (calender_module, "remap_voxels", "remaps"), (calender_module, "_take", "gathers")]
        self.count = dict.fromkeys([t[2] for t in self.targets] + ["iterations"], 0)
        self.seconds = dict.fromkeys(self.count, 0.0)

    def __enter__(self):
        self.saved = []
        for owner, name, key in self.targets:
            orig = getattr(owner, name)
            self.saved.append((owner, name, orig))

            def timed(*a, _orig=orig, _key=key, **k):
                if _key == "solves" and self.before_solve is not None:
                    self.before_solve(*a, **k)
                t = time.perf_counter()
                try:
                    out = _orig(*a, **k)
                finally:
                    self.seconds[_key] += time.perf_counter() - t
                    self.count[_key] += 1
                if _key == "solves":
                    self.count["iterations"] += out[1]
                return out
            setattr(owner, name, timed)
        return self

    def __exit__(self, *exc):
        for owner, name, orig in self.saved:
            setattr(owner, name, orig)

    def summary(self, total: float) -> str:
        c, s = self.count, self.seconds
        return (f"{c['solves']} CG solves, {c['iterations']} iterations; multigrid: {c['builds']} builds "
                f"{s['builds']:.1f} s (refreshes {c['refreshes']}, {s['refreshes']:.1f} s incl. rebuilds on a changed "
                f"pattern), {c['cycles']} cycles {s['cycles']:.1f} s; CG in all {s['solves']:.1f} s of {total:.1f} s; "
                f"voxel moves: {c['remaps']} remaps {s['remaps']:.1f} s, {c['gathers']} gathers {s['gathers']:.1f} s")


def increment_part(args) -> None:
    """One calendering increment (5 % compression) at --increment-n³: time and peak RSS (≤ 8 GiB)."""
    from _measure import measure

    n = args.increment_n
    lab = synth_electrode((n, n, n), n_coll=max(2, n // 20), fraction=0.38, radius=(n / 16, n / 9), seed=1, cbd=0.3)
    with measure() as m, SolverCounters() as counters:
        series = calender(lab, ratios=[0.05], steps=1, voxel_size_um=(0.5, 0.5, 0.5), thickness_axis=0,
                          collector_side="low", workers=args.workers, keep_fields=False,
                          preconditioner=args.preconditioner)
    st = series.steps[-1]
    print(f"{n}³ calendering increment: {m.seconds:.0f} s, {st.cg_iterations} CG / {st.newton_iterations} Newton, "
          f"peak RSS {m.peak_rss_gib:.2f} GiB = {m.peak_rss_bytes / lab.size:.0f} B/voxel (target ≤ 8 GiB) | "
          f"{uptime()}", flush=True)
    print(f"  {counters.summary(m.seconds)}", flush=True)


def calender_part(args) -> None:
    """The 128³ ten-step compression to 40 % with ``--preconditioner`` and, in the same run, with
    ``--calender-peer``: time, CG iterations and the stress agreement of the final state."""
    n = args.calender_n
    lab = synth_electrode((n, n, n), n_coll=max(2, n // 20), fraction=0.38, radius=(n / 16, n / 9), seed=1, cbd=0.3)
    tol = {} if args.calender_tol is None else {"tol": args.calender_tol}
    runs = {}
    for pc in [args.preconditioner] + ([args.calender_peer] if args.calender_peer else []):
        t = time.perf_counter()

        def progress(done, total, msg):
            print(f"  [{pc}] increment {done}/{total} {msg} at {time.perf_counter() - t:.0f} s | {uptime()}",
                  flush=True)

        with SolverCounters() as counters:
            series = calender(lab, ratios=[0.1, 0.2, 0.3, 0.4], steps=args.calender_steps,
                              voxel_size_um=(0.5, 0.5, 0.5), thickness_axis=0, collector_side="low",
                              workers=args.workers, keep_fields=False, progress=progress, preconditioner=pc,
                              contacts=not args.calender_welded, **tol)
        el = time.perf_counter() - t
        print(f"  [{pc}] {counters.summary(el)}", flush=True)
        runs[pc] = (el, series)
        for st in series.steps:
            print(f"  [{pc}] ratio {st.ratio:.3f} porosity {st.porosity:.3f} crackable>100MPa "
                  f"{st.crackable_volume_pct['100']:.1f}% CG so far {st.cg_iterations} share "
                  f"{st.electrode_strain_share:.3f}")
        print(f"[{pc}] {n}³ calendered ({'welded, no contacts' if args.calender_welded else 'contacts'}) to 40 % in {series.settings['increments']} increments (tol "
              f"{series.settings['tol']:g}, {series.steps[-1].cg_iterations} CG iterations, "
              f"{series.steps[-1].newton_iterations} Newton): {el:.0f} s (target ≤ 60 s on 2 cores, was 404–431 s "
              f"with the FFT preconditioner); peak RSS {rss_mib():.0f} MiB | {uptime()}", flush=True)
    if len(runs) == 2:
        (ea, sa), (eb, sb) = runs.values()
        names = list(runs)
        porosity = max(abs(x.porosity - y.porosity) for x, y in zip(sa.steps, sb.steps))
        crack = max(abs(x.crackable_volume_pct["100"] - y.crackable_volume_pct["100"]) for x, y in zip(sa.steps, sb.steps))
        print(f"{names[0]}/{names[1]} calendering time {ea / eb:.2f}× (same run); largest difference of the "
              f"porosity {porosity:.4f}, of the crackable volume > 100 MPa {crack:.2f} %-points", flush=True)
    print("load after:", uptime())


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
