"""Header reading through whole-file compression: the same HDUs from plain, gzip and bzip2.

A compressed file cannot be seeked, so its data are inflated to reach the next header; these
tests pin down that the HDUs found are exactly those of the plain file, that the data after the
last header are not inflated when the gzip trailer gives the size, and that damaged streams are
problems with a reason, never exceptions.
"""

from __future__ import annotations

import bz2
import gzip
import io
import random
from typing import Literal

import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from skyreg.fits.headers import BLOCK, FitsStructureError, RawHdu, iter_hdus
from skyreg.fits.streams import FitsStream

Kind = Literal["plain", "gzip", "bzip2"]


def _fits_bytes(data_sizes: list[int], pad_last: bool = True, noise: bool = False) -> bytes:
    """A primary HDU and one BITPIX=8 image extension per size (bytes of data each).

    The data are a short repeated pattern (compresses very well) or, with ``noise``, random
    bytes (does not compress at all).
    """
    rng = random.Random(5)
    primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
    parts = [primary.tostring().encode("ascii")]
    for i, size in enumerate(data_sizes):
        header = fits.Header([("XTENSION", "IMAGE"), ("BITPIX", 8), ("NAXIS", 1),
                              ("NAXIS1", size), ("PCOUNT", 0), ("GCOUNT", 1),
                              ("EXTNAME", f"E{i}")])
        parts.append(header.tostring().encode("ascii"))
        if noise:
            data = rng.randbytes(size)
        else:
            data = bytes((i * 7 + j) % 251 for j in range(min(size, 4096))) * (size // 4096 + 1)
        padding = -size % BLOCK if (pad_last or i < len(data_sizes) - 1) else 0
        parts.append(data[:size] + b"\0" * padding)
    return b"".join(parts)


def _stored(content: bytes, kind: Kind) -> bytes:
    if kind == "gzip":
        return gzip.compress(content, mtime=0)
    if kind == "bzip2":
        return bz2.compress(content)
    return content


def _read(stored: bytes) -> tuple[list[RawHdu], FitsStream]:
    stream = FitsStream(io.BytesIO(stored), len(stored))
    return list(iter_hdus(stream)), stream


def _layout(hdus: list[RawHdu]) -> list[tuple[int, int, int, int, str]]:
    return [(h.index, h.header_offset, h.data_offset, h.data_size, h.header.text) for h in hdus]


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_compressed_file_gives_the_plain_files_hdus(kind: Kind) -> None:
    content = _fits_bytes([5000, 0, 20000, 2880])
    plain, _ = _read(content)
    hdus, stream = _read(_stored(content, kind))
    assert len(plain) == 5 and _layout(hdus) == _layout(plain)
    assert stream.format == f"fits.{'gz' if kind == 'gzip' else 'bz2'}"


def test_gzip_data_after_the_last_header_is_not_inflated() -> None:
    content = _fits_bytes([3000, 4_000_000])
    hdus, stream = _read(_stored(content, "gzip"))
    assert len(hdus) == 3
    last = hdus[-1]
    # Everything up to the last header is inflated (headers are spread through the file),
    # the last HDU's 4 MB of data are not.
    assert stream.inflated == last.data_offset
    assert last.data_offset < 20_000


def test_plain_file_reads_header_blocks_only() -> None:
    content = _fits_bytes([3000, 4_000_000])
    hdus, stream = _read(content)
    assert stream.inflated == 0
    assert stream.stored_bytes_read == sum(len(h.header.text) for h in hdus)  # headers only


def test_multi_member_gzip_is_read_to_its_end() -> None:
    """Concatenated gzip members: the trailer holds only the last member's size."""
    content = _fits_bytes([3000, 9000, 6000])
    cut = _read(content)[0][2].header_offset  # members split before the third HDU
    stored = gzip.compress(content[:cut], mtime=0) + gzip.compress(content[cut:], mtime=0)
    hdus, stream = _read(stored)
    assert _layout(hdus) == _layout(_read(content)[0])
    assert stream.inflated == len(content)


def test_block_gzip_is_read_to_its_end() -> None:
    """BGZF-style files (many small members, an empty one last) give the plain layout."""
    content = _fits_bytes([30_000, 70_000, 5000])
    pieces = [content[i:i + 65_280] for i in range(0, len(content), 65_280)]
    stored = b"".join(gzip.compress(piece, mtime=0) for piece in [*pieces, b""])
    hdus, stream = _read(stored)
    assert _layout(hdus) == _layout(_read(content)[0]) and len(hdus) == 4
    assert stream.inflated == len(content)


def test_trailer_size_matching_an_earlier_hdu_end_is_not_trusted_blindly() -> None:
    """Two members where the last one's size equals the end of an earlier HDU's data.

    The trailer then points at the end of HDU 1 while two more HDUs follow; the compressed
    bytes left (random data compress not at all) are far more than HDU 1's data could take,
    so the file is read to its end.
    """
    size = 69 * BLOCK  # 198,720 bytes of data per extension
    content = _fits_bytes([size, size, size], noise=True)
    hdu1_end = 2 * BLOCK + size
    split = len(content) - hdu1_end  # the last member holds exactly hdu1_end bytes
    assert split > hdu1_end  # the first member runs on past the end of HDU 1
    stored = gzip.compress(content[:split], mtime=0) + gzip.compress(content[split:], mtime=0)
    hdus, _ = _read(stored)
    assert _layout(hdus) == _layout(_read(content)[0]) and len(hdus) == 4


def test_unpadded_last_hdu_is_accepted_as_in_a_plain_file() -> None:
    content = _fits_bytes([1000, 7000], pad_last=False)
    plain, _ = _read(content)
    hdus, stream = _read(_stored(content, "gzip"))
    assert _layout(hdus) == _layout(plain) and len(hdus) == 3
    assert stream.inflated == hdus[-1].data_offset


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_truncated_compressed_file_is_a_problem(kind: Kind) -> None:
    content = _fits_bytes([100_000, 100_000, 100_000])
    stored = _stored(content, kind)
    with pytest.raises(FitsStructureError) as caught:
        _read(stored[: len(stored) * 2 // 3])
    assert caught.value.reason.startswith("truncated: the ")
    assert "stream ends" in caught.value.reason


def test_corrupt_gzip_is_a_problem() -> None:
    content = _fits_bytes([100_000, 100_000])
    stored = bytearray(_stored(content, "gzip"))
    stored[40:104] = b"\xff" * 64  # inside the first headers' deflate blocks
    with pytest.raises(FitsStructureError) as caught:
        _read(bytes(stored))
    assert caught.value.reason.startswith(("unreadable: corrupt gzip", "truncated: the gzip"))


def test_compressed_text_is_not_fits() -> None:
    with pytest.raises(FitsStructureError, match="not a FITS file"):
        _read(gzip.compress(b"hello world\n" * 300))
    assert _read(gzip.compress(b""))[0] == []


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 9000), min_size=0, max_size=5),
       pad_last=st.booleans(),
       kind=st.sampled_from(["plain", "gzip", "bzip2"]),
       cut=st.floats(0.0, 1.0))
def test_property_same_hdus_and_clean_failures(sizes: list[int], pad_last: bool, kind: Kind,
                                               cut: float) -> None:
    """Whole files give the plain layout; any cut gives the same HDUs or a problem."""
    content = _fits_bytes(sizes, pad_last)
    expected = _layout(_read(content)[0])
    stored = _stored(content, kind)
    assert _layout(_read(stored)[0]) == expected
    partial = stored[: int(len(stored) * cut)]
    try:
        hdus, _ = _read(partial)
    except FitsStructureError as exc:
        assert exc.reason.startswith(("truncated", "unreadable", "not a FITS file")), exc.reason
    else:
        assert _layout(hdus) == expected[: len(hdus)]
        if kind != "plain" and 0 < len(partial) < len(stored):
            # A cut compressed stream lacks its end marker: always a problem.
            raise AssertionError(f"{len(partial)} of {len(stored)} bytes read without error")
