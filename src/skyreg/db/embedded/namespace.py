"""Running PostgreSQL when we are root: in a user namespace, via ``unshare --user``.

postgres and initdb refuse to run with euid 0. In a new user namespace without a uid mapping,
the process appears as "nobody" and so do the root-owned files, which satisfies postgres's
ownership checks, while the kernel still treats it as their real owner for access. No user is
created and no permission is changed.

Only the server's own programs run in the namespace. Everything else (lock files, the keeper
that stops an idle server) stays in the caller's namespace as root, which may signal the
server: the namespace belongs to root.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

from skyreg.db.embedded.binaries import pg_bin
from skyreg.errors import DatabaseError

_UNSHARE_LOCK = threading.Lock()
_unshare_prefix: list[str] | None = None


def privilege_prefix() -> list[str]:
    """Command prefix that lets PostgreSQL run when we are root: ``unshare --user``.

    Empty for a normal user. The probe (running ``postgres --version`` in a namespace) is
    done once per process.
    """
    if os.geteuid() != 0:
        return []
    advice = "run skyreg as a normal user, or pass a server URL with --db or SKYREG_DATABASE_URL"
    if not sys.platform.startswith("linux"):
        raise DatabaseError(f"PostgreSQL refuses to run as root; {advice}")
    global _unshare_prefix
    with _UNSHARE_LOCK:
        if _unshare_prefix is None:
            unshare = shutil.which("unshare")
            if unshare is None:
                raise DatabaseError(
                    "PostgreSQL refuses to run as root and 'unshare' (util-linux), which "
                    f"would run it in a user namespace, is not installed; {advice}"
                )
            try:
                probe = subprocess.run(
                    [unshare, "--user", str(pg_bin("postgres")), "--version"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                ok, detail = probe.returncode == 0, (probe.stderr or probe.stdout).strip()
            except (OSError, subprocess.SubprocessError) as exc:
                ok, detail = False, str(exc)
            if not ok:
                raise DatabaseError(
                    "PostgreSQL refuses to run as root, and running it in a user namespace "
                    f"failed ('unshare --user': {detail or 'no output'}); user namespaces may "
                    f"be disabled here; {advice}"
                )
            _unshare_prefix = [unshare, "--user"]
        return list(_unshare_prefix)


def check_reachable_without_override(home: Path) -> None:
    """Fail early, and clearly, if the server cannot reach ``home`` without root's powers.

    In the user namespace the server keeps root's identity for file access but loses the
    capability to bypass permissions, so each directory above ``home`` must be searchable
    by its owner when that is root, or by everyone.
    """
    for directory, needed in [*((p, "x") for p in reversed(home.parents)), (home, "rwx")]:
        st = os.stat(directory)
        owner = stat.S_IMODE(st.st_mode) >> 6
        group = (stat.S_IMODE(st.st_mode) >> 3) & 7
        other = stat.S_IMODE(st.st_mode) & 7
        want = 1 if needed == "x" else 7
        if (
            (st.st_uid == 0 and owner & want == want)
            or (st.st_gid == 0 and group & want == want)
            or other & want == want
        ):
            continue
        raise DatabaseError(
            f"as root, the embedded server runs without permission overrides and lacks "
            f"'{needed}' access to {directory} (owner uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}); use a SKYREG_HOME that root owns, or run as a "
            f"normal user"
        )
