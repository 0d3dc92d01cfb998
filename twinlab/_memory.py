"""Process heap hygiene for out-of-core runs (glibc; a no-op elsewhere).

Chunk-sized buffers freed by dask's worker threads otherwise stay resident: glibc raises its
trim and mmap thresholds with the largest block freed (up to 32 MiB), so each thread's arena
keeps its peak. Out-of-core entry points (``preprocess_to_twin``, ``pipeline.run_sample``)
call :func:`return_freed_heap_promptly` before they start; the pipeline also calls
:func:`release_free_memory` between stages.
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameter number
_TRIM_BYTES = 65536  # what dask.distributed sets for its workers (MALLOC_TRIM_THRESHOLD_)


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def return_freed_heap_promptly() -> None:
    """Give freed heap back to the OS once 64 KiB lie free at an arena's top (process-wide).

    Measured on the bench_preprocess chain (256×512×768, chunks 64): peak RSS above the
    post-import baseline 162 → 91 MiB; the pipeline's conductive stage 0.34 → 0.24 GiB.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)


def release_free_memory() -> None:
    """Trim every arena now (between stages of a long run)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
