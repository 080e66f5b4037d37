"""Run a stamp plan: in this process, or as Dask tasks of a group of files each.

Each task resolves its files (the scratch cache copies them on first use, per worker), cuts
their stamps and returns the pixel blocks; a file that fails becomes a :class:`FileProblem`
and the other files go on. Results are gathered in the calling process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from skyreg.cutouts.errors import FileReadError, StampRequestError
from skyreg.cutouts.extract import FileStamps, cut_file
from skyreg.cutouts.plan import FileTask, StampPlan
from skyreg.cutouts.planes import LayoutError, local_path
from skyreg.cutouts.results import FileProblem, StampResult
from skyreg.cutouts.scratch import ScratchCache

Progress = Callable[[str, int, int], None]


def resolve(task: FileTask, scratch: ScratchCache | None) -> str:
    """Local path of a task's file: the scratch copy, or the file itself for file:// URIs."""
    if scratch is not None:
        return str(scratch.get(task.uri, task.checksum))
    path = local_path(task.uri)
    if path is None:
        scheme = task.uri.split("://", 1)[0]
        raise FileReadError(task.uri, f"{scheme}:// files are read through a scratch cache: "
                                      "pass scratch= (--scratch DIR)")
    return path


def run_group(tasks: Sequence[FileTask], scratch: ScratchCache | None, sparse: bool
              ) -> tuple[list[FileStamps], list[FileProblem]]:
    """Cut the stamps of a group of files; failures are returned per file."""
    done: list[FileStamps] = []
    problems: list[FileProblem] = []
    for task in tasks:
        try:
            path = resolve(task, scratch)
            done.append(cut_file(task, path, sparse))
        except FileReadError as err:
            problems.append(FileProblem(task.coadd, task.uri, err.reason))
        except LayoutError as err:
            problems.append(FileProblem(task.coadd, task.uri, str(err)))
        except OSError as err:
            problems.append(FileProblem(task.coadd, task.uri,
                                        f"unreadable: {err.strerror or err}"))
        except ValueError as err:  # malformed data fitsio or numpy refuse
            problems.append(FileProblem(task.coadd, task.uri, f"unreadable: {err}"))
    return done, problems


def prefetch_group(tasks: Sequence[FileTask], scratch: ScratchCache) -> list[FileProblem]:
    """Copy a group's files into the scratch cache."""
    problems = []
    for task in tasks:
        try:
            scratch.get(task.uri, task.checksum)
        except FileReadError as err:
            problems.append(FileProblem(task.coadd, task.uri, err.reason))
    return problems


def execute(plan: StampPlan, *, scratch: ScratchCache | None = None, sparse: bool = False,
            mode: str = "trim", executor: Any = None, progress: Progress | None = None
            ) -> StampResult:
    """Cut every planned stamp; ``executor`` is None (here) or a ``distributed.Client``."""
    if mode not in ("trim", "partial"):
        raise StampRequestError(f"mode must be 'trim' or 'partial', got {mode!r}")
    started = time.perf_counter()
    groups = plan.by_patch()
    files: list[FileStamps] = []
    problems: list[FileProblem] = []
    if executor is None:
        for done, group in enumerate(groups):
            if progress is not None:
                progress("cutting stamps", done, len(groups))
            got, failed = run_group(group, scratch, sparse)
            files += got
            problems += failed
    else:
        futures = [executor.submit(run_group, group, scratch, sparse, pure=False)
                   for group in groups]
        from distributed import as_completed

        for done, future in enumerate(as_completed(futures)):  # type: ignore[no-untyped-call]
            if progress is not None:
                progress("cutting stamps", done, len(groups))
            got, failed = future.result()
            files += got
            problems += failed
    if progress is not None:
        progress("cutting stamps", len(groups), len(groups))
    problems.sort(key=lambda p: (p.uri, p.coadd))
    return StampResult(files, problems, mode, len(plan.targets), plan.seconds,
                       time.perf_counter() - started, plan.targets.ra, plan.targets.dec)


def prefetch(plan: StampPlan, scratch: ScratchCache, executor: Any = None) -> list[FileProblem]:
    """Warm the scratch cache with every file of the plan (on each worker with ``executor``)."""
    groups = plan.by_patch()
    if executor is None:
        return [p for group in groups for p in prefetch_group(group, scratch)]
    futures = [executor.submit(prefetch_group, group, scratch, pure=False) for group in groups]
    return [p for future in futures for p in future.result()]
