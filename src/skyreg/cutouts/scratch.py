"""A local scratch cache of coadd files: copy on first use, LRU eviction under a size limit.

Many coadds of a data release processing run are temporary and live on a shared filesystem
or an object store; cutting thousands of stamps from them is faster from a local copy. A
:class:`ScratchCache` keeps such copies in one directory:

* **Keys**: a file's copy is named by the SHA-1 of its URI and checksum, so a changed file
  (new checksum) is a new entry.
* **Atomic fills**: a copy is written to a temporary file in the cache directory and renamed
  into place, so no reader ever sees a partial file, even if the copying process is killed.
* **Several processes**: fills of one entry are serialised by an exclusive ``flock`` on a lock
  file of that entry (the second process waits and then finds the copy); eviction holds a
  cache-wide lock. Removing a copy another process has open or memory-mapped is safe on POSIX:
  its pages stay valid until that process closes it.
* **LRU**: every use sets the copy's modification time; when a fill brings the cache over its
  limit, the least recently used copies are removed until it fits (the file just filled is
  kept even if it alone is larger than the limit).

Sources: ``file://`` URIs and plain paths are copied with the standard library; any other
scheme (``s3://``, ``gs://``, ``https://``, ...) through ``fsspec`` when it and the scheme's
backend (s3fs, gcsfs, aiohttp) are installed, else the file is reported as unreadable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from skyreg.cutouts.errors import FileReadError, StampRequestError
from skyreg.cutouts.planes import local_path

_SUFFIX = ".fits"
_LOCKS = ".locks"


def parse_size(text: str | int | None) -> int | None:
    """Bytes from an int or '500M', '20G', '1.5T' (powers of 1024); None means unlimited."""
    if text is None or isinstance(text, int):
        return text
    value = text.strip().upper().removesuffix("B")
    factors = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    factor = factors.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in factors else value
    try:
        result = int(float(number) * factor)
    except ValueError:
        raise StampRequestError(
            f"scratch size {text!r}: expected bytes or e.g. 500M, 20G") from None
    if result <= 0:
        raise StampRequestError(f"scratch size {text!r} must be > 0")
    return result


class ScratchCache:
    """A directory of local copies of registered files, at most ``max_bytes`` in total."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        try:
            (self.directory / _LOCKS).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StampRequestError(f"scratch directory {self.directory}: "
                                    f"{err.strerror or err}") from None

    def __reduce__(self) -> tuple[type[ScratchCache], tuple[str, int | None]]:
        return (ScratchCache, (str(self.directory), self.max_bytes))

    def entry(self, uri: str, checksum: str | None = None) -> Path:
        """Where the copy of ``uri`` lives (whether or not it is there yet)."""
        digest = hashlib.sha1(f"{uri}\0{checksum or ''}".encode()).hexdigest()
        return self.directory / f"{digest}{_SUFFIX}"

    def get(self, uri: str, checksum: str | None = None) -> Path:
        """The local copy of ``uri``, copied on first use; raises :class:`FileReadError`."""
        target = self.entry(uri, checksum)
        if self._touch(target):
            return target
        with self._lock(target.name):
            if self._touch(target):  # another process filled it while we waited
                return target
            self._fill(uri, target)
        self.evict(keep=target)
        return target

    def contains(self, uri: str, checksum: str | None = None) -> bool:
        return self.entry(uri, checksum).exists()

    def size(self) -> int:
        """Bytes held by the cache's copies."""
        return sum(size for _, size, _ in self._entries())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used copies until the cache fits its limit."""
        if self.max_bytes is None:
            return []
        removed: list[Path] = []
        with self._lock(".evict"):
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            for path, size, _ in entries:
                if total <= self.max_bytes:
                    break
                if keep is not None and path == keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
                total -= size
        return removed

    def _entries(self) -> Iterator[tuple[Path, int, float]]:
        with os.scandir(self.directory) as scan:
            for item in scan:
                if item.name.endswith(_SUFFIX) and not item.name.startswith("."):
                    try:
                        stat = item.stat()
                    except FileNotFoundError:
                        continue
                    yield Path(item.path), stat.st_size, stat.st_mtime

    @staticmethod
    def _touch(path: Path) -> bool:
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        with open(self.directory / _LOCKS / f"{name}.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _fill(self, uri: str, target: Path) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".fill-",
                                             suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                _copy_source(uri, out)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


def _copy_source(uri: str, out: BinaryIO) -> None:
    path = local_path(uri)
    if path is not None:
        try:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out)
        except FileNotFoundError:
            raise FileReadError(uri, "file not found") from None
        except OSError as err:
            raise FileReadError(uri, f"unreadable: {err.strerror or err}") from None
        return
    scheme = uri.split("://", 1)[0]
    try:
        import fsspec
    except ImportError:
        raise FileReadError(uri, f"no reader for {scheme}:// URIs (install fsspec and its "
                                 f"{scheme} backend)") from None
    try:
        with fsspec.open(uri, "rb") as source:
            shutil.copyfileobj(source, out)
    except (ImportError, ValueError) as err:
        raise FileReadError(uri, f"no reader for {scheme}:// URIs ({err})") from None
    except FileNotFoundError:
        raise FileReadError(uri, "file not found") from None
    except OSError as err:
        raise FileReadError(uri, f"unreadable: {err}") from None
