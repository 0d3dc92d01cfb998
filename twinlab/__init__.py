"""twinlab — digital twins of battery electrodes from FIB-SEM / EBAC images."""

__version__ = "0.1.0"

import os as _os

# numba's parallel kernels run on libgomp; its default barrier spins (~0.3 ms) before sleeping. On a
# machine shared with other work (more runnable threads than cores) a spinning waiter burns the time
# slice its partner needs: the multigrid-CG solve at 66 × 64² took 86 s with 2 threads against 15 s
# with 1 (load 11–13 on 2 cores); with passive waiting 2 threads took 14.5 s. Read once, when libgomp
# loads (numba's first parallel call), so it is set here, before any kernel runs; a user's setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
