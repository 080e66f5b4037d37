"""File checksums for the registry: cheap ones from FITS headers, or a full SHA-256.

"header" mode reuses the FITS checksum convention (CHECKSUM/DATASUM cards, FITS standard
appendix J) instead of reading the file: when every HDU carries CHECKSUM, the value is
``fits-checksum:sha1:<hex>`` where hex is the SHA-1 of the HDUs' CHECKSUM values joined by
newlines (CHECKSUM covers header and data, so any change to the file changes it); failing that,
when every HDU carries DATASUM, ``fits-datasum:sha1:<hex>`` over the DATASUM values (data only).
Otherwise None. The cards are taken as written: verifying them would mean reading the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def header_checksum(headers: Sequence[Mapping[str, Any]]) -> str | None:
    if not headers:
        return None
    for keyword, label in (("CHECKSUM", "fits-checksum"), ("DATASUM", "fits-datasum")):
        values = [h.get(keyword) for h in headers]
        if all(isinstance(v, str) and v.strip() for v in values):
            joined = "\n".join(str(v).strip() for v in values).encode("ascii", "replace")
            return f"{label}:sha1:{hashlib.sha1(joined).hexdigest()}"
    return None


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of the whole file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
