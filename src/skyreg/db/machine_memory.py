"""How much memory this machine lets a server on it use, for sizing the server's settings.

Two places size PostgreSQL memory by the machine: the embedded server's buffer cache
(:mod:`skyreg.db.embedded.cluster`) and the ingest's index builds on a local server
(:mod:`skyreg.ingest.loader`). Both need the same number: the physical memory, or less when
a container's control group caps it (a container sees the host's RAM in ``sysconf``, and a
buffer cache sized to the host would get the server killed by the cgroup's OOM killer).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The memory limits of a control group, cgroup v2 first (``max`` means none).
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                  Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def usable_memory() -> int:
    """Bytes of memory this process may use: physical memory, capped by a cgroup limit;
    0 when the system does not say (not a POSIX system)."""
    try:
        # sysconf says -1 for a value it does not know: that is 0 here too.
        memory = max(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), 0)
    except (ValueError, OSError, AttributeError):
        memory = 0
    for path in _CGROUP_LIMITS:
        with contextlib.suppress(OSError, ValueError):
            limit = int(path.read_text().strip())  # "max" (no limit) raises ValueError
            if limit > 0 and (memory == 0 or limit < memory):
                memory = limit
    return memory
