"""Where an embedded server keeps its files: the skyreg home and everything derived from it.

Every skyreg process that uses a home must derive the same paths from it (lock files, socket
directory), whatever spelling of the home it was given; :class:`Layout` is that derivation.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from skyreg.errors import DatabaseError

DATABASE = "skyreg"
SUPERUSER = "postgres"
DEFAULT_PORT = 5432
"""Port of a socket-only server: it only names the socket file (``.s.PGSQL.5432``)."""

# sun_path holds 104 bytes on macOS and 108 on Linux, terminating NUL included.
_MAX_SOCKET_PATH = 103
# The longest socket file name any port gives; a directory that fits it fits every port.
_LONGEST_SOCKET_NAME = ".s.PGSQL.65535"


def default_home() -> Path:
    """Return skyreg's data directory: ``$SKYREG_HOME`` if set, else the platform default.

    The platform default (e.g. ``~/.local/share/skyreg`` on Linux,
    ``~/Library/Application Support/skyreg`` on macOS) keeps data out of the current directory,
    so every skyreg command finds the same registry wherever it is run.
    """
    env = os.environ.get("SKYREG_HOME")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_data_path("skyreg", appauthor=False)


def absolute(path: Path) -> Path:
    """Resolve symlinks so every process derives the same lock files and socket directory."""
    return path.expanduser().resolve()


def socket_name(port: int) -> str:
    """File name of PostgreSQL's Unix socket for ``port``."""
    return f".s.PGSQL.{port}"


@dataclass(frozen=True)
class Layout:
    """The files of one skyreg home (``home`` must already be absolute, see :func:`absolute`)."""

    home: Path

    @property
    def data_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return choose_socket_dir(self.home)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def password_file(self) -> Path:
        """pgpass-format file with the password of TCP connections (``server start --port``)."""
        return self.home / "pgpass"


def choose_socket_dir(home: Path) -> Path:
    """``home/run`` if a socket path in it fits in ``sun_path``, else a short private dir.

    The fallback lives in the temporary directory and is named from a hash of the home, so
    every process using this home agrees on it. A comma is also avoided: libpq would read it
    as a list of hosts.
    """
    preferred = home / "run"
    if _fits(preferred):
        return preferred
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:12]
    candidate = Path(tempfile.gettempdir()) / f"skyreg-{digest}"
    return candidate if _fits(candidate) else Path("/tmp") / f"skyreg-{digest}"


def _fits(directory: Path) -> bool:
    path = os.fsencode(directory / _LONGEST_SOCKET_NAME)
    return len(path) <= _MAX_SOCKET_PATH and b"," not in path


def make_private_dir(path: Path) -> None:
    """Create a 0700 directory in a shared place, refusing one somebody else prepared.

    Anyone can create names in /tmp; if another user made this directory, they could
    intercept the socket, so we insist it is ours and not a symlink.
    """
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create socket directory {path}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise DatabaseError(
            f"socket directory {path} is not a directory owned by you; remove it, "
            f"or set SKYREG_HOME to a shorter path"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def prepare_dirs(layout: Layout) -> None:
    """Create the home (0700) and the socket directory, or say why they cannot be."""
    check_platform()
    home = layout.home
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create skyreg home {home}: {exc}") from exc
    if not os.access(home, os.W_OK | os.X_OK):
        raise DatabaseError(f"skyreg home {home} is not writable")
    socket_dir = layout.socket_dir
    if socket_dir.parent == home:
        try:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create {socket_dir}: {exc}") from exc
    else:
        make_private_dir(socket_dir)


def check_platform() -> None:
    if sys.platform == "win32":
        raise DatabaseError(
            "the embedded PostgreSQL server is not supported on Windows; "
            "pass a server URL with --db or SKYREG_DATABASE_URL"
        )
