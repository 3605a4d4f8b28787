"""Running a command's tasks on a Dask cluster (the optional ``objstore[dask]`` extra).

``local:N`` starts a ``LocalCluster`` of N worker processes on this machine for the run
(on loopback, no dashboard); any other spec is a scheduler's address
(``tcp://HOST:8786``) that the client joins. A task must be idempotent: a worker lost
mid-task has it run again elsewhere (the scheduler's ``allowed-failures``), and a task
that raises is retried ``RETRIES`` times before its error reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .errors import DsError

RETRIES = 2
CONNECT_TIMEOUT = 30.0  # seconds to reach a scheduler before giving up


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
        client = distributed.Client(spec, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        raise DsError(f"--dask {spec}: cannot reach the scheduler ({e}); check its address, or use "
                      "local:N for worker processes on this machine") from None
    try:
        yield client
    finally:
        client.close()


def _unless_stopped(stop: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, unless the run was given up before this task started."""
    import distributed

    if distributed.Event(stop).is_set():
        return None
    return fn(*args)


def run_tasks(spec: str, fn: Callable[..., Any], calls: list[tuple],
              on_done: Callable[[Any], None] | None = None) -> list[Any] | None:
    """``fn(*args)`` for each of ``calls`` on the cluster ``spec``: the results in the order of
    ``calls``, or with ``on_done`` each result to it as its task completes (in any order, and
    none kept). When a task fails (after its retries) or the caller is interrupted, no task
    starts any more, and the ones already running are waited for before the error is
    raised: they cannot be stopped, and nothing may write for a caller that gave up."""
    import uuid

    distributed = _distributed()
    with open_client(spec) as client:
        stop = f"ds-stop-{uuid.uuid4().hex}"
        futures = [client.submit(_unless_stopped, stop, fn, *args, pure=False, retries=RETRIES)
                   for args in calls]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] | None = None if on_done is not None else [None] * len(futures)
        try:
            for fut in distributed.as_completed(futures):
                result = fut.result()
                if results is None:
                    on_done(result)  # type: ignore[misc]
                else:
                    results[index[fut.key]] = result
                fut.release()
        except BaseException:
            with suppress(BaseException):  # a second Ctrl-C stops the waiting, not the error
                distributed.Event(stop, client=client).set()
                distributed.wait([f for f in futures if not f.done()])
            raise
        return results
