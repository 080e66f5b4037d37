"""The pixel core of a SODA cutout: one registered file, one region, FITS bytes back.

:func:`soda_cutout` is what the web service's SODA endpoint calls for each ``POS`` value. Its
contract:

* ``region`` is a DALI shape string (``CIRCLE``, ``POLYGON``, ``RANGE``; ICRS degrees) or a
  sphgeom region; a malformed or impossible one raises :class:`RegionError` (HTTP 400);
* the cutout is the bounding rectangle, clipped to the image, of the pixels whose centres the
  region contains -- every pixel of the rectangle is returned, as SODA asks (no masking);
* every plane of the file is cut (image, and mask/variance/... HDUs when present, see
  :mod:`skyreg.cutouts.planes`), tile-compressed source HDUs included, each as an
  **uncompressed** image extension with the stamp's exact WCS (the source WCS with CRPIX
  moved, distortion terms kept) after an empty primary HDU that names the source;
* None when no pixel centre of the image lies in the region (HTTP 204 / empty result);
* a file that is missing or not a readable image raises :class:`FileReadError`.

Only the headers and the pixels of the rectangle are read (memory map or tile subsets).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from lsst.sphgeom import Region

from skyreg.cutouts import fits_writer
from skyreg.cutouts.errors import FileReadError
from skyreg.cutouts.geometry import region_box, shifted_wcs
from skyreg.cutouts.planes import LayoutError, PlaneReader, layout_wcs, read_layout
from skyreg.cutouts.regions import parse_region

#: Source header keywords copied to every plane of a cutout when present.
COPIED_KEYWORDS = ("BUNIT", "BAND", "FILTER", "EXPTIME", "FLUXMAG0", "MAGZERO", "TELESCOP",
                   "INSTRUME")


def soda_cutout(path: str | os.PathLike[str], hdu: int, region: str | Region) -> bytes | None:
    """FITS bytes of the cutout of ``region`` from HDU ``hdu`` of ``path`` (see module doc)."""
    shape = parse_region(region, "POS")
    try:
        layout = read_layout(path, hdu)
    except LayoutError as err:
        raise FileReadError(str(path), str(err)) from None
    wcs = layout_wcs(layout)
    box = region_box(shape, wcs, layout.width, layout.height)
    if box is None:
        return None
    x0, y0, x1, y1 = (int(v[0]) for v in (box.x0, box.y0, box.x1, box.y1))
    stamp_wcs = shifted_wcs(wcs, x0, y0, (y1 - y0, x1 - x0))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs_cards = [str(c.image) for c in stamp_wcs.to_header(relax=True).cards
                     if c.keyword not in ("DATE-OBS", "MJD-OBS", "DATEREF", "MJDREFI",
                                          "MJDREFF")]
    card = fits_writer.card
    copied = [card(k, layout.header[k]) for k in COPIED_KEYWORDS
              if k in layout.header and _plain(layout.header[k])]
    provenance = [card("SRCFILE", os.path.basename(os.fspath(path)), "source file"),
                  card("SRCHDU", hdu, "source HDU of the image plane"),
                  card("SRCX0", x0, "source pixel of this (0, 0), x"),
                  card("SRCY0", y0, "source pixel of this (0, 0), y"),
                  card("LTV1", -x0), card("LTV2", -y0)]
    chunks = [fits_writer.primary_hdu([*provenance, card("PLANES", ",".join(
        p.name for p in layout.planes), "planes, one extension each")])]
    reader = PlaneReader(layout)
    try:
        for plane in layout.planes:
            out = np.empty((y1 - y0, x1 - x0), dtype=plane.dtype)
            reader.read_into(plane, out, x0, y0, x1, y1)
            chunks.append(fits_writer.image_hdu(out, [card("EXTNAME", plane.name.upper()),
                                                      *provenance, *copied, *wcs_cards]))
    except (OSError, ValueError) as err:
        raise FileReadError(str(path), f"unreadable pixels: {err}") from None
    finally:
        reader.close()
    return b"".join(chunks)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
