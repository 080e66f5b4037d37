"""Run a function over many files on a process pool or a Dask cluster.

Header scanning is CPU-bound Python (astropy header parsing and WCS), so it scales with
processes, not threads. ``executor`` selects the engine:

* ``None`` or ``"process"``: a local process pool of ``jobs`` workers (one per core by default;
  ``jobs=1`` runs in this process, which is simplest to debug);
* a Dask distributed scheduler address (``tcp://host:8786``, ``tls://...``, ``inproc://...``)
  or a ``distributed.Client``: the same work spread over that cluster's workers, for jobs that
  outgrow one machine. The workers need skyreg installed and the files visible at the same paths.

Files travel in small chunks so that per-task overhead stays far below the work of a chunk.
Results are yielded as chunks finish (not in input order).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from typing import Any, TypeVar

from skyreg.errors import SkyregError
from skyreg.ingest.process_pool import process_pool

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Most files per task: enough to amortise a task's cost. Fewer when there are few files,
#: so that every worker gets several tasks (a multi-extension file is already a lot of work).
CHUNK = 16
TASKS_PER_WORKER = 4
DASK_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


class ExecutorError(SkyregError):
    """The requested executor cannot be used."""


def _apply(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    return [function(item) for item in items]


def _chunks(items: Sequence[Item], workers: int) -> list[Sequence[Item]]:
    size = max(1, min(CHUNK, len(items) // (workers * TASKS_PER_WORKER)))
    return [items[start:start + size] for start in range(0, len(items), size)]


def describe(executor: Any, jobs: int | None) -> str:
    """A short description of where the work runs, for summaries."""
    if executor is None or executor == "process":
        workers = jobs or os.cpu_count() or 1
        return "this process" if workers == 1 else f"{workers} local processes"
    if isinstance(executor, str):
        return f"Dask cluster at {executor}"
    info: dict[str, Any] = executor.scheduler_info()
    return f"Dask cluster at {info.get('address', '?')}"


def run(function: Callable[[Item], Result], items: Sequence[Item], *, jobs: int | None = None,
        executor: Any = None) -> Iterator[list[Result]]:
    """Apply ``function`` to every item; yield the results of each finished chunk."""
    if executor is None or executor == "process":
        yield from _run_local(function, items, jobs or os.cpu_count() or 1)
    elif isinstance(executor, str) and not executor.startswith(DASK_SCHEMES):
        raise ExecutorError(
            f"executor {executor!r}: expected 'process' or a Dask scheduler address such as "
            "tcp://127.0.0.1:8786"
        )
    else:
        yield from _run_dask(function, items, executor)


def _run_local(function: Callable[[Item], Result], items: Sequence[Item],
               workers: int) -> Iterator[list[Result]]:
    chunks = _chunks(items, workers)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield _apply(function, chunk)
        return
    with process_pool(min(workers, len(chunks))) as pool:
        futures = [pool.submit(_apply, function, chunk) for chunk in chunks]
        for future in as_completed(futures):
            yield future.result()


def _run_dask(function: Callable[[Item], Result], items: Sequence[Item],
              executor: Any) -> Iterator[list[Result]]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as err:
        raise ExecutorError(
            "a Dask executor needs the 'distributed' package: pip install 'skyreg[dask]'"
        ) from err
    owned = isinstance(executor, str)
    try:
        client = Client(executor, timeout="10s") if owned else executor  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as err:
        raise ExecutorError(f"cannot reach the Dask scheduler at {executor}: {err}") from err
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        chunks = _chunks(items, workers)
        futures = client.map(_apply, [function] * len(chunks), chunks, pure=False)
        for future in dask_completed(futures):  # type: ignore[no-untyped-call]
            yield future.result()
    finally:
        if owned:
            client.close()
