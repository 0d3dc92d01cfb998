"""The dask.distributed client that batch work runs on: a LocalCluster, or a running scheduler.

Shared by :mod:`twinlab.batch` (samples as tasks) and :mod:`twinlab.study` (series members as
tasks) so there is one place that decides how a cluster is reached.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def cluster_client(scheduler: str | None = None, *, workers: int = 2, threads_per_worker: int = 1,
                   memory_limit: str = "auto") -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client`` for the scheduler at ``scheduler`` (e.g. from dask-jobqueue or
    dask-gateway), or for a LocalCluster of ``workers`` processes that is closed on exit."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
