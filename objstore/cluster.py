"""Running a command's tasks on a Dask cluster (the optional ``objstore[dask]`` extra).

``local:N`` starts a ``LocalCluster`` of N worker processes on this machine for the run
(on loopback, no dashboard); any other spec is a scheduler's address
(``tcp://HOST:8786``) that the client joins. A task must be idempotent: a worker lost
mid-task has it run again elsewhere (the scheduler's ``allowed-failures``), and a task
that raises is retried ``RETRIES`` times before its error reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import DsError

RETRIES = 2


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DsError("--dask needs Dask's distributed scheduler: pip install 'objstore[dask]'") from None
    return distributed


def check_spec(spec: str) -> int | None:
    """The worker count of ``local:N`` (None for a scheduler's address); DsError if malformed
    or if Dask's scheduler is not installed, before anything runs."""
    _distributed()
    if not spec.startswith("local:"):
        if "://" not in spec and ":" not in spec:
            raise DsError(f"--dask {spec}: give local:N or a scheduler's address (tcp://HOST:8786)")
        return None
    try:
        workers = int(spec[6:])
    except ValueError:
        workers = 0
    if workers < 1:
        raise DsError(f"--dask {spec}: write local:N with N worker processes, N >= 1")
    return workers


@contextmanager
def open_client(spec: str) -> Iterator[Any]:
    """A client of the cluster ``spec`` names, closed (and a local cluster stopped) after."""
    distributed = _distributed()
    workers = check_spec(spec)
    if workers is not None:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=":0")
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(spec, timeout=30)
    except (OSError, TimeoutError, ValueError) as e:
        raise DsError(f"--dask {spec}: cannot reach the scheduler ({e}); check its address, or use "
                      "local:N for worker processes on this machine") from None
    try:
        yield client
    finally:
        client.close()


def run_tasks(spec: str, fn: Callable[..., Any], calls: list[tuple],
              on_done: Callable[[Any], None] | None = None) -> list[Any]:
    """``fn(*args)`` for each of ``calls`` on the cluster ``spec``; the results in the order of
    ``calls``. ``on_done(result)`` as each task completes, in any order."""
    distributed = _distributed()
    with open_client(spec) as client:
        futures = [client.submit(fn, *args, pure=False, retries=RETRIES) for args in calls]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for fut in distributed.as_completed(futures):
                results[index[fut.key]] = fut.result()
                if on_done is not None:
                    on_done(results[index[fut.key]])
        except BaseException:
            # a task already running is not stopped by cancelling it: wait for it, so nothing
            # writes to the target once the caller gives up its lock (a second Ctrl-C stops waiting)
            client.cancel(futures)
            distributed.wait(futures)
            raise
        return results
