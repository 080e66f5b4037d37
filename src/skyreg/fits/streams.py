"""A FITS file as a forward-only byte stream: plain, or compressed whole (gzip, bzip2).

Archives distribute raw multi-extension files as ``.fits.gz`` (and some as ``.fits.bz2``),
which astropy reads. The header reader only ever moves forward — read a header, step over the
data, read the next header — so one interface covers all three:

- a plain file steps over data with ``seek``: nothing but header blocks is read;
- a compressed file cannot seek (a DEFLATE or bzip2 stream has no index), so stepping over
  data means inflating it and throwing it away. What is never inflated is everything after
  the last header: for gzip, the stored uncompressed size (the trailer's ISIZE field) says
  where the file ends, so the last HDU's data need not be read to know that no HDU follows.

The compression is recognised from the first bytes, as astropy does, not from the file name.
"""

from __future__ import annotations

import bz2
import os
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO, Literal, TypeVar

Compression = Literal["gzip", "bzip2"]
_T = TypeVar("_T")

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
#: Largest piece inflated at once while stepping over data (bounds memory, not speed).
SKIP_CHUNK = 1 << 20
#: Compressed bytes read from the file at once.
READ_CHUNK = 1 << 17
#: zlib's window bits for a gzip wrapper (header parsed, CRC-32 and size checked).
GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Errors the decompressors raise for corrupt input (bz2 raises a bare OSError).
_CORRUPT = (zlib.error, OSError)


class CompressedStreamError(Exception):
    """The compressed stream ends early (``truncated``) or is corrupt."""

    def __init__(self, reason: str, truncated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated


class FitsStream:
    """Forward-only reads over the FITS bytes of a file, whatever its whole-file compression.

    ``size`` is the length of the FITS bytes when it is known for certain (plain files; None
    for compressed ones). ``position`` counts FITS bytes consumed; ``inflated`` the bytes a
    decompressor produced (the decompressor may have read one input buffer further).
    """

    def __init__(self, raw: BinaryIO, stored_size: int) -> None:
        self._raw = raw
        self.stored_size = stored_size
        self.position = 0
        self.inflated = 0
        self._plain_read = 0
        magic = raw.read(4)
        raw.seek(0)
        self.compression: Compression | None = None
        self.size: int | None = stored_size
        self._gzip: _GzipMembers | None = None
        self._bzip2: bz2.BZ2File | None = None
        if magic[:2] == GZIP_MAGIC:
            self.compression, self.size = "gzip", None
            self._gzip = _GzipMembers(raw, stored_size)
        elif magic[:3] == BZIP2_MAGIC and magic[3:4].isdigit() and magic[3:4] != b"0":
            self.compression, self.size = "bzip2", None
            self._bzip2 = bz2.BZ2File(raw, mode="rb")

    @property
    def format(self) -> str:
        """The stored file's format: ``fits``, ``fits.gz`` or ``fits.bz2``."""
        return {None: "fits", "gzip": "fits.gz", "bzip2": "fits.bz2"}[self.compression]

    @property
    def stored_bytes_read(self) -> int:
        """Bytes read from the file as stored (compressed bytes for gzip and bzip2)."""
        return self._plain_read if self.compression is None else self._raw.tell()

    def read(self, count: int) -> bytes:
        """Up to ``count`` bytes (fewer only at the end of the file)."""
        if self._gzip is not None:
            data = self._guarded(self._gzip.read, count)
        elif self._bzip2 is not None:
            data = self._guarded(self._bzip2.read, count)
        else:
            data = self._raw.read(count)
            self._plain_read += len(data)
        self.position += len(data)
        if self.compression is not None:
            self.inflated += len(data)
        return data

    def skip(self, count: int) -> int:
        """Step over ``count`` bytes; returns how many there were (fewer at the end)."""
        if self.compression is None:
            available = max(0, min(count, self.stored_size - self.position))
            self._raw.seek(self.position + available)
            self.position += available
            return available
        done = 0
        while done < count:
            piece = self.read(min(SKIP_CHUNK, count - done))
            if not piece:
                break
            done += len(piece)
        return done

    def ends_within(self, low: int, high: int) -> bool:
        """Whether the FITS bytes are known to end somewhere in ``[low, high]``, ahead.

        A gzip file says so in its trailer (ISIZE, the uncompressed size of its *last* member
        modulo 2**32). That size is trusted only when it lands in the window and nothing
        suggests that the file holds more than one member: no member has ended yet, the
        current one runs on past this point, and the compressed bytes left could not hold
        more than the bytes up to that size even if nothing compressed at all.
        """
        members = self._gzip
        if members is None or members.isize is None:
            return False
        end = members.isize
        if not low <= end <= high or end <= self.position or members.ended:
            return False
        if not self._guarded(members.continues):
            return False
        left = self.stored_size - members.consumed
        return left <= _worst_case_deflate(end - self.position)

    def _guarded(self, call: Callable[..., _T], *args: int) -> _T:
        try:
            return call(*args)
        except EOFError:
            raise CompressedStreamError(
                f"the {self.compression} stream ends {self.position} bytes into the FITS "
                "data, before its end marker", truncated=True) from None
        except _CORRUPT as exc:
            if self.compression is None:
                raise
            raise CompressedStreamError(
                f"corrupt {self.compression} stream {self.position} bytes into the FITS "
                f"data: {exc}", truncated=False) from None


class _GzipMembers:
    """Inflates a gzip file member after member, knowing where members end.

    zlib parses each member's header and checks its trailer (CRC-32 and size); what the
    standard library's ``GzipFile`` hides and :meth:`FitsStream.ends_within` needs is whether
    a member boundary has been crossed, and how much compressed input has been consumed.
    """

    def __init__(self, raw: BinaryIO, stored_size: int) -> None:
        self._raw = raw
        self.isize = _gzip_isize(raw, stored_size)
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        self._input = b""  # compressed bytes read from the file, not yet consumed by zlib
        self._pushed = b""  # inflated bytes not yet returned (see continues)
        self._finished = False
        #: Members whose end has been reached.
        self.ended = 0

    @property
    def consumed(self) -> int:
        """Compressed bytes consumed so far."""
        return self._raw.tell() - len(self._input)

    def read(self, count: int) -> bytes:
        parts = [self._pushed[:count]]
        self._pushed = self._pushed[count:]
        wanted = count - len(parts[0])
        while wanted > 0:
            piece = self._inflate(wanted)
            if not piece:
                break
            parts.append(piece)
            wanted -= len(piece)
        return b"".join(parts)

    def continues(self) -> bool:
        """Whether the current member holds at least one more byte (kept for the next read)."""
        if self._pushed:
            return True
        ended = self.ended
        self._pushed = self._inflate(1)
        return bool(self._pushed) and self.ended == ended

    def _inflate(self, wanted: int) -> bytes:
        """Up to ``wanted`` bytes; b"" at the end of the file; EOFError if the file is cut."""
        while not self._finished:
            if not self._input:
                self._input = self._raw.read(READ_CHUNK)
            starved = not self._input
            piece = self._inflater.decompress(self._input, wanted)
            if self._inflater.eof:
                self._input = self._inflater.unused_data
                self.ended += 1
                self._next_member()
            else:
                self._input = self._inflater.unconsumed_tail
                if starved and not piece:
                    raise EOFError("compressed stream ended before its end marker")
            if piece:
                return piece
        return b""

    def _next_member(self) -> None:
        """After a member's trailer: the next member, or the end (zero padding allowed)."""
        while True:
            self._input = self._input.lstrip(b"\0")
            if self._input:
                self._inflater = zlib.decompressobj(GZIP_WBITS)
                return
            self._input = self._raw.read(READ_CHUNK)
            if not self._input:
                self._finished = True
                return


def _worst_case_deflate(count: int) -> int:
    """Most compressed bytes ``count`` bytes can take in a gzip member, trailer included.

    DEFLATE falls back to stored blocks (5 bytes per 65,535) when it cannot compress; a block
    begun before this point may code the rest of its bytes a little worse than stored, hence
    the margin of one maximal block.
    """
    return count + count // 8 + 5 * (count // 65_535 + 1) + 65_536 + 8


def _gzip_isize(raw: BinaryIO, stored_size: int) -> int | None:
    """The trailer's ISIZE: uncompressed size of the last member, modulo 2**32."""
    if stored_size < 18:  # a gzip member is at least 10 header + 8 trailer bytes
        return None
    raw.seek(stored_size - 4, os.SEEK_SET)
    (isize,) = struct.unpack("<I", raw.read(4))
    raw.seek(0)
    return int(isize)
