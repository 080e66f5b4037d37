"""Local process pools whose workers never outlive the process that started them.

A worker of a plain ``ProcessPoolExecutor`` blocks reading its task queue, and after ``fork``
it holds both ends of that pipe itself, so the death of its parent (``kill -9``, the OOM
killer) never wakes it: it would stay for good, with its memory and every descriptor it
inherited — including the parent's database socket, which then keeps the server from noticing
that the client is gone. Each worker therefore

* asks Linux for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and
* on every platform runs a watcher thread that leaves as soon as its parent process has
  changed (the orphan is re-parented), within :data:`WATCH_SECONDS`.

Linux sends the parent-death signal when the *thread* that forked the worker ends. The pools
here are created, used and shut down within one call, so that thread outlives them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

#: How often the portable watcher looks at its parent, seconds.
WATCH_SECONDS = 0.5
#: ``PR_SET_PDEATHSIG`` from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that exit when this process dies.

    On Linux the workers are forked: no re-import of ``__main__`` (which fails for scripts
    read from stdin) and no start-up cost. Workers only compute and leave through
    ``os._exit``, so inherited database connections are never touched.
    """
    context = get_context("fork" if sys.platform == "linux" else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """Pool initializer: make this worker exit when process ``parent`` is gone."""
    if sys.platform == "linux":
        _parent_death_signal(signal.SIGKILL)
    # The parent may have died before the signal was asked for: then it is never sent.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="skyreg-parent-watch",
                     daemon=True).start()


def _parent_death_signal(signum: int) -> None:
    # A failure is not fatal (the watcher thread still ends the worker, only less promptly),
    # so prctl's result is not checked.
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
