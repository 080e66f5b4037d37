"""Stamps as results: Cutout2D-like items, a dict of arrays, a multi-extension FITS file.

A :class:`StampResult` holds the blocks of pixels cut from each file (see
:mod:`skyreg.cutouts.extract`) and builds the per-stamp views on demand, so a request of
20,000 stamps does not pay for 20,000 objects (or WCS copies) unless they are asked for.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from skyreg.cutouts import fits_writer
from skyreg.cutouts.extract import FileStamps, RegionStamp, StampBlock
from skyreg.cutouts.geometry import shifted_wcs
from skyreg.cutouts.plan import CoaddId


@dataclass(frozen=True)
class FileProblem:
    """A planned file that gave no stamps, and why (missing, unreadable, ...)."""

    coadd: CoaddId
    uri: str
    reason: str

    def __str__(self) -> str:
        c = self.coadd
        return (f"{self.uri}: {self.reason} ({c.dataset_type} {c.skymap} tract {c.tract} "
                f"patch {c.patch} band {c.band})")


class Stamp:
    """One stamp: the pixels of one target in one coadd file, with astropy Cutout2D's names.

    ``data`` is the image plane and ``planes`` every plane of the file (``image``, ``mask``,
    ``variance``, ...). With ``mode="trim"`` (default) the arrays hold only the pixels inside
    the file; ``covers`` says which part of the requested box they are (``complete`` when all
    of it). With ``mode="partial"`` they hold the whole requested box, filled with NaN (0 for
    integer planes) outside the image. For region targets ``selection`` marks the pixels the
    region holds; sparse region stamps have 1-D planes, the values of those pixels only, at
    ``pixels`` (x, y in the file).
    """

    __slots__ = (
        "_wcs",
        "coadd",
        "covers",
        "hdu",
        "origin_original",
        "planes",
        "position_original",
        "selection",
        "shape_input",
        "source_wcs",
        "sparse",
        "target",
        "uri",
    )

    def __init__(self, *, target: int, coadd: CoaddId, uri: str, hdu: int,
                 planes: dict[str, npt.NDArray[Any]], origin: tuple[int, int],
                 position: tuple[float, float] | None, shape_input: tuple[int, int],
                 covers: tuple[slice, slice], source_wcs: WCS,
                 selection: npt.NDArray[np.bool_] | None = None, sparse: bool = False) -> None:
        self.target = target
        self.coadd = coadd
        self.uri = uri
        self.hdu = hdu
        self.planes = planes
        self.origin_original = origin
        self.position_original = position
        self.shape_input = shape_input
        self.covers = covers
        self.source_wcs = source_wcs
        self.selection = selection
        self.sparse = sparse
        self._wcs: WCS | None = None

    @property
    def data(self) -> npt.NDArray[Any]:
        """The image plane."""
        return self.planes["image"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.selection.shape if self.sparse and self.selection is not None
                     else self.data.shape)

    @property
    def wcs(self) -> WCS:
        """The stamp's own WCS: the file's, with pixel (0, 0) at ``origin_original``."""
        if self._wcs is None:
            x0, y0 = self.origin_original
            self._wcs = shifted_wcs(self.source_wcs, x0, y0, self.shape[:2])  # type: ignore[arg-type]
        return self._wcs

    @property
    def slices_original(self) -> tuple[slice, slice]:
        """Slices of the source image this stamp's arrays come from (may reach outside)."""
        x0, y0 = self.origin_original
        h, w = self.shape[:2]
        return slice(y0, y0 + h), slice(x0, x0 + w)

    @property
    def bbox_original(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((ymin, ymax), (xmin, xmax)) in the source image, inclusive (as Cutout2D)."""
        rows, cols = self.slices_original
        return (rows.start, rows.stop - 1), (cols.start, cols.stop - 1)

    @property
    def xmin_original(self) -> int:
        return self.origin_original[0]

    @property
    def ymin_original(self) -> int:
        return self.origin_original[1]

    @property
    def position_cutout(self) -> tuple[float, float] | None:
        """The target's pixel position in the stamp (x, y), for position targets."""
        if self.position_original is None:
            return None
        return (self.position_original[0] - self.origin_original[0],
                self.position_original[1] - self.origin_original[1])

    @property
    def complete(self) -> bool:
        """Whether this file holds every pixel of the requested box."""
        rows, cols = self.covers
        return (rows.start, rows.stop, cols.start, cols.stop) == (
            0, self.shape_input[0], 0, self.shape_input[1])

    @property
    def pixels(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
        """(x, y) file pixels of the values of a sparse stamp (None for rectangles)."""
        if not self.sparse or self.selection is None:
            return None
        j, i = np.nonzero(self.selection)
        return i + self.origin_original[0], j + self.origin_original[1]

    @property
    def data_id(self) -> dict[str, Any]:
        return self.coadd._asdict()

    def __repr__(self) -> str:
        c = self.coadd
        return (f"Stamp(target={self.target}, {c.dataset_type} {c.skymap}/{c.tract}/{c.patch}"
                f"/{c.band}, shape={self.shape}, origin={self.origin_original})")


@dataclass
class StampResult:
    """Stamps of a request, per target and covering coadd file; see :class:`Stamp`."""

    files: list[FileStamps]
    problems: list[FileProblem] = field(default_factory=list)
    mode: str = "trim"
    n_targets: int = 0
    plan_seconds: float = 0.0
    cut_seconds: float = 0.0
    ra: npt.NDArray[np.float64] | None = None
    dec: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return sum(f.count for f in self.files)

    def __iter__(self) -> Iterator[Stamp]:
        return iter(self.stamps)

    @property
    def ok(self) -> bool:
        return not self.problems

    @cached_property
    def stamps(self) -> list[Stamp]:
        """Every stamp, sorted by target, then dataset type, band, sky map, tract, patch."""
        items: list[tuple[tuple[Any, ...], Stamp]] = []
        for f in self.files:
            sort_key = (f.coadd.dataset_type, f.coadd.band, f.coadd.skymap, f.coadd.tract,
                        f.coadd.patch)
            for block in f.blocks:
                for k in range(len(block.targets)):
                    stamp = self._block_stamp(f, block, k)
                    items.append(((stamp.target, *sort_key), stamp))
            for region in f.regions:
                stamp = self._region_stamp(f, region)
                items.append(((stamp.target, *sort_key), stamp))
        items.sort(key=lambda item: item[0])
        return [stamp for _, stamp in items]

    def to_list(self) -> list[Stamp]:
        """The stamps as a list of Cutout2D-like items."""
        return list(self.stamps)

    def for_target(self, target: int) -> list[Stamp]:
        """The stamps of one target (its index in the request)."""
        return [s for s in self.stamps if s.target == target]

    def _block_stamp(self, f: FileStamps, block: StampBlock, k: int) -> Stamp:
        req, cov = block.requested, block.covered
        rx0, ry0 = int(req.x0[k]), int(req.y0[k])
        cx0, cy0, cx1, cy1 = int(cov.x0[k]), int(cov.y0[k]), int(cov.x1[k]), int(cov.y1[k])
        h, w = int(req.y1[k]) - ry0, int(req.x1[k]) - rx0
        covers = (slice(cy0 - ry0, cy1 - ry0), slice(cx0 - rx0, cx1 - rx0))
        if self.mode == "partial":
            planes = {name: array[k] for name, array in block.planes.items()}
            origin = (rx0, ry0)
        else:
            planes = {name: array[k][covers] for name, array in block.planes.items()}
            origin = (cx0, cy0)
        return Stamp(target=int(block.targets[k]), coadd=f.coadd, uri=f.uri, hdu=f.hdu,
                     planes=planes, origin=origin,
                     position=(float(block.x[k]), float(block.y[k])), shape_input=(h, w),
                     covers=covers, source_wcs=f.wcs)

    @staticmethod
    def _region_stamp(f: FileStamps, region: RegionStamp) -> Stamp:
        h, w = region.mask.shape
        return Stamp(target=region.target, coadd=f.coadd, uri=f.uri, hdu=f.hdu,
                     planes=region.planes, origin=(int(region.box.x0[0]), int(region.box.y0[0])),
                     position=None, shape_input=(h, w), covers=(slice(0, h), slice(0, w)),
                     source_wcs=f.wcs, selection=region.mask, sparse=region.sparse)

    # -- arrays ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, npt.NDArray[Any]]:
        """Columns of numpy arrays, one row per position stamp (regions: see below).

        Metadata columns: ``target``, ``dataset_type``, ``skymap``, ``tract``, ``patch``,
        ``band``, ``uri``, ``x``/``y`` (target position in the file's pixels),
        ``x0``/``y0`` (file pixel of the stamp's pixel (0, 0)), ``covered`` ((n, 4): the part
        inside the file, x0, y0, x1, y1 in file pixels). Planes: one ``(n, height, width)``
        array per plane with the full requested boxes (fill value outside the file) when all
        stamps have one size, else an object array of 2-D arrays. Region stamps are in the
        same columns (``x``/``y`` NaN) with their planes as object arrays and a ``selection``
        column.
        """
        rows: list[tuple[tuple[Any, ...], int, int, int]] = []  # key, file, block, row
        for i, f in enumerate(self.files):
            for j, block in enumerate(f.blocks):
                for k, target in enumerate(block.targets.tolist()):
                    rows.append(((target, f.coadd.dataset_type, f.coadd.band, f.coadd.skymap,
                                  f.coadd.tract, f.coadd.patch), i, j, k))
            for j, region in enumerate(f.regions):
                rows.append(((region.target, f.coadd.dataset_type, f.coadd.band,
                              f.coadd.skymap, f.coadd.tract, f.coadd.patch), i, -1 - j, 0))
        rows.sort(key=lambda r: r[0])
        n = len(rows)
        out: dict[str, Any] = {
            "target": np.array([r[0][0] for r in rows], dtype=np.int64),
            "dataset_type": np.array([r[0][1] for r in rows], dtype=str),
            "band": np.array([r[0][2] for r in rows], dtype=str),
            "skymap": np.array([r[0][3] for r in rows], dtype=str),
            "tract": np.array([r[0][4] for r in rows], dtype=np.int64),
            "patch": np.array([r[0][5] for r in rows], dtype=np.int64),
            "uri": np.array([self.files[r[1]].uri for r in rows], dtype=str),
        }
        x, y = np.full(n, np.nan), np.full(n, np.nan)
        x0, y0 = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        covered = np.zeros((n, 4), dtype=np.int64)
        names = sorted({name for f in self.files for name in f.plane_names},
                       key=lambda s: (s != "image", s))
        pieces: dict[str, list[Any]] = {name: [] for name in names}
        selection: list[Any] = []
        for row, (_, i, j, k) in enumerate(rows):
            f = self.files[i]
            if j >= 0:
                block = f.blocks[j]
                x[row], y[row] = block.x[k], block.y[k]
                x0[row], y0[row] = block.requested.x0[k], block.requested.y0[k]
                covered[row] = (block.covered.x0[k], block.covered.y0[k], block.covered.x1[k],
                                block.covered.y1[k])
                for name in names:
                    pieces[name].append(block.planes[name][k] if name in block.planes else None)
                selection.append(None)
            else:
                region = f.regions[-1 - j]
                x0[row], y0[row] = int(region.box.x0[0]), int(region.box.y0[0])
                covered[row] = (region.box.x0[0], region.box.y0[0], region.box.x1[0],
                                region.box.y1[0])
                for name in names:
                    pieces[name].append(region.planes.get(name))
                selection.append(region.mask)
        out.update({"x": x, "y": y, "x0": x0, "y0": y0, "covered": covered})
        for name in names:
            values = pieces[name]
            shapes = {None if v is None else v.shape for v in values}
            if len(shapes) == 1 and None not in shapes and values:
                out[name] = np.stack(values)
            else:
                column = np.empty(n, dtype=object)
                column[:] = values
                out[name] = column
        if any(s is not None for s in selection):
            column = np.empty(n, dtype=object)
            column[:] = selection
            out["selection"] = column
        return out

    # -- FITS -----------------------------------------------------------------------------------

    def to_fits(self, path: str | os.PathLike[str] | BinaryIO | None = None) -> bytes | None:
        """Write one multi-extension FITS file: one image HDU per stamp and plane.

        HDUs come in stamp order, planes of a stamp together, ``EXTNAME`` the plane name in
        upper case (``IMAGE``, ``MASK``, ``VARIANCE``; ``SELECTED`` for a region's mask) and
        ``EXTVER`` the stamp number (1-based). Each header carries the stamp's WCS and its
        provenance: ``TARGET``, ``DSTYPE``, ``SKYMAP``, ``TRACT``, ``PATCH``, ``BAND``,
        ``SRCURI``, ``SRCHDU``, ``SRCX0``/``SRCY0`` (source pixel of the stamp's (0, 0)),
        ``LTV1``/``LTV2`` (the same, negated, IRAF-style), ``COMPLETE``, and for positions
        ``OBJX``/``OBJY`` (source pixels) and ``OBJRA``/``OBJDEC``. Sparse region stamps are
        binary tables with columns ``X``, ``Y`` (source pixels) and one per plane. The primary
        header counts the stamps and lists each file that failed (``NPROBLEM``, ``PROBn``).
        Returns the bytes when ``path`` is None.
        """
        if path is None:
            buffer = io.BytesIO()
            self._write(buffer)
            return buffer.getvalue()
        if not isinstance(path, str | os.PathLike):
            self._write(path)
            return None
        temporary = f"{os.fspath(path)}.part"
        try:
            with open(temporary, "wb") as out:
                self._write(out)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return None

    def _write(self, out: BinaryIO) -> None:
        out.write(fits_writer.primary_hdu(self.primary_cards()))
        for _, _, chunk in self.iter_fits_stamps():
            out.write(chunk)

    def primary_cards(self) -> list[str]:
        """Cards of the primary HDU: counts, plane names, and one ``PROBn`` card per file
        that gave no stamps (its URI, reason and data ID), so a reader of the file alone
        knows which stamps are missing and why."""
        names = sorted({name for f in self.files for name in f.plane_names},
                       key=lambda s: (s != "image", s))
        cards = [fits_writer.card("NSTAMPS", len(self.stamps), "stamps in this file"),
                 fits_writer.card("NTARGETS", self.n_targets, "targets requested"),
                 fits_writer.card("PLANES", ",".join(names), "planes per stamp"),
                 fits_writer.card("ORIGIN", "skyreg", "postage stamps"),
                 fits_writer.card("NPROBLEM", len(self.problems), "files that failed")]
        cards += [fits_writer.card(f"PROB{k}", str(problem))
                  for k, problem in enumerate(self.problems, start=1)]
        return cards

    def iter_fits_stamps(self) -> Iterator[tuple[int, Stamp, bytes]]:
        """(stamp number, stamp, its HDUs as bytes) in stamp order -- the extensions of
        :meth:`to_fits`, one stamp at a time (a zip of one file per stamp is built from
        them)."""
        templates: dict[int, list[tuple[str, str]]] = {}
        sources: dict[tuple[str, int, CoaddId], str] = {}
        for number, stamp in enumerate(self.stamps, start=1):
            wcs_cards = templates.get(id(stamp.source_wcs))
            if wcs_cards is None:
                wcs_cards = _wcs_cards(stamp.source_wcs)
                templates[id(stamp.source_wcs)] = wcs_cards
            source_key = (stamp.uri, stamp.hdu, stamp.coadd)
            source = sources.get(source_key)
            if source is None:
                source = sources[source_key] = _source_cards(stamp)
            cards = [source, *self._provenance(stamp, number)]
            x0, y0 = stamp.origin_original
            for keyword, image in wcs_cards:
                if keyword == "CRPIX1":
                    image = fits_writer.card("CRPIX1", float(stamp.source_wcs.wcs.crpix[0]) - x0)
                elif keyword == "CRPIX2":
                    image = fits_writer.card("CRPIX2", float(stamp.source_wcs.wcs.crpix[1]) - y0)
                cards.append(image)
            if stamp.sparse:
                yield number, stamp, _sparse_table(stamp, cards, number)
                continue
            chunks = [fits_writer.image_hdu(array, [fits_writer.card("EXTNAME", name.upper()),
                                                    fits_writer.card("EXTVER", number),
                                                    *cards])
                      for name, array in stamp.planes.items()]
            if stamp.selection is not None:
                chunks.append(fits_writer.image_hdu(
                    stamp.selection.astype(np.uint8),
                    [fits_writer.card("EXTNAME", "SELECTED"), fits_writer.card("EXTVER", number),
                     *cards]))
            yield number, stamp, b"".join(chunks)

    def _provenance(self, stamp: Stamp, number: int) -> list[str]:
        card = fits_writer.card
        x0, y0 = stamp.origin_original
        cards = [card("TARGET", stamp.target, "target index in the request"),
                 card("SRCX0", x0, "source pixel of this (0, 0), x"),
                 card("SRCY0", y0, "source pixel of this (0, 0), y"),
                 card("LTV1", -x0), card("LTV2", -y0),
                 card("COMPLETE", stamp.complete, "all requested pixels present")]
        if stamp.position_original is not None:
            cards += [card("OBJX", stamp.position_original[0], "target x in the source"),
                      card("OBJY", stamp.position_original[1], "target y in the source")]
            if self.ra is not None and self.dec is not None:
                cards += [card("OBJRA", float(self.ra[stamp.target]), "target RA, deg"),
                          card("OBJDEC", float(self.dec[stamp.target]), "target Dec, deg")]
        return cards


def _source_cards(stamp: Stamp) -> str:
    """The card images naming a stamp's source file (the same for all its stamps)."""
    c, card = stamp.coadd, fits_writer.card
    return "".join([card("DSTYPE", c.dataset_type, "dataset type of the source"),
                    card("SKYMAP", c.skymap), card("TRACT", c.tract), card("PATCH", c.patch),
                    card("BAND", c.band), card("SRCURI", stamp.uri, "source file"),
                    card("SRCHDU", stamp.hdu, "source HDU of the image plane")])


def _wcs_cards(wcs: WCS) -> list[tuple[str, str]]:
    """(keyword, card image) of a WCS, formatted once per source WCS by astropy."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = wcs.to_header(relax=True)
    return [(c.keyword, str(c.image)) for c in header.cards
            if c.keyword not in ("DATE-OBS", "MJD-OBS", "DATEREF", "MJDREFI", "MJDREFF")]


def _sparse_table(stamp: Stamp, cards: list[str], number: int) -> bytes:
    from astropy.io import fits

    pixels = stamp.pixels
    assert pixels is not None
    columns = [fits.Column("X", "K", array=pixels[0]), fits.Column("Y", "K", array=pixels[1])]
    for name, values in stamp.planes.items():
        fmt = {"f4": "E", "f8": "D", "i2": "I", "i4": "J", "i8": "K", "u1": "B"}.get(
            values.dtype.kind + str(values.dtype.itemsize), "D")
        columns.append(fits.Column(name.upper(), fmt, array=values))
    table = fits.BinTableHDU.from_columns(columns, name="PIXELS")
    table.header["EXTVER"] = number
    for parsed in fits.Header.fromstring("".join(cards)).cards:
        if parsed.keyword not in table.header:
            table.header.append(parsed)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()[fits_writer.BLOCK:]
