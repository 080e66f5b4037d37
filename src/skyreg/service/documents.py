"""The IVOA documents the service writes: SIA results, DataLink links, VOSI capabilities.

Result rows come from :mod:`skyreg.service.queries`; this module only lays them out in the
formats the standards define, with the service descriptors pyvo follows
(``record.getdatalink()``, ``record.processed(circle=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from skyreg.service import obscore
from skyreg.service.votable import (
    Field,
    InputParam,
    escape,
    info,
    service_descriptor,
    table_document,
)

SIA_STANDARD_ID = "ivo://ivoa.net/std/SIA#query-2.0"
SODA_STANDARD_ID = "ivo://ivoa.net/std/SODA#sync-1.0"
DATALINK_STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"

#: What the capabilities say about SODA requests with several spatial values.
SODA_NOTE = ("One ID per request (several: MultiValuedParamNotSupported). Several spatial "
             "filters (CIRCLE, POLYGON, POS, repeated or mixed; at most {max_regions}) are "
             "answered with multi-part answers: one multi-extension FITS file with one group of "
             "plane HDUs (IMAGE, and MASK/VARIANCE when the file has them) per filter, EXTVER "
             "= the filter's position in the request, POS = its text; the primary header lists "
             "the filters (POSn) and flags those holding no pixel (NOPIXn). Each cutout is the "
             "bounding rectangle of the pixels whose centres the filter contains, clipped at "
             "the image edge (no masking), at most {max_side} pixels along each axis and "
             "{max_pixels} pixels per request; HTTP 204 when no pixel falls inside any filter; "
             "BAND and TIME keep the image when they overlap its band and exposure, POL "
             "selects nothing (no polarization axis). RESPONSEFORMAT=image/png renders the "
             "image plane of one cutout (STRETCH asinh|linear|sqrt|log, "
             "INTERVAL zscale|minmax|99.5).")


def soda_note(max_regions: int = 50, max_side: int = 4096,
              max_pixels: int = 64 * 1024 * 1024) -> str:
    """What the capabilities and service descriptors say about SODA, with the limits."""
    return SODA_NOTE.format(max_regions=max_regions, max_side=max_side, max_pixels=max_pixels)


OBSCORE_FIELDS = tuple(
    Field(c.name, c.datatype, ucd=c.ucd, utype=c.utype, unit=c.unit, description=c.description,
          id=c.name if c.name == "obs_publisher_did" else None,
          xtype="adql:REGION" if c.name == "s_region" else None)
    for c in obscore.COLUMNS)


def soda_descriptor(base_url: str, id_ref: str | None, id_value: str = "") -> str:
    """The SODA sync service descriptor; its ID comes from the column ``id_ref``."""
    return service_descriptor("soda", SODA_STANDARD_ID, f"{base_url}/soda/sync", [
        InputParam("ID", ucd="meta.id;meta.dataset", ref=id_ref, value=id_value),
        InputParam("CIRCLE", "double", ucd="pos.outline;obs.field", unit="deg", xtype="circle",
                   arraysize="3", description="ra dec radius"),
        InputParam("POLYGON", "double", ucd="pos.outline;obs.field", unit="deg", xtype="polygon",
                   arraysize="*", description="ra1 dec1 ra2 dec2 ..."),
        InputParam("POS", ucd="pos.outline;obs.field",
                   description="CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ..."),
        InputParam("RESPONSEFORMAT", value="image/fits", description="image/fits or image/png"),
    ], "Cutouts (SODA sync) of every plane of the file; several CIRCLE/POLYGON/POS values "
       "give one multi-extension FITS file with a group of HDUs per value (EXTVER = its "
       "position); limits in the VOSI capabilities")


def datalink_descriptor(base_url: str) -> str:
    return service_descriptor("datalink", DATALINK_STANDARD_ID, f"{base_url}/datalink/links", [
        InputParam("ID", ucd="meta.id;meta.main", ref="obs_publisher_did"),
    ], "Links of each image: the file, its cutout service and a PNG preview")


def sia_results(rows: Sequence[Sequence[object]], overflow: bool, base_url: str,
                extra_infos: Sequence[str] = ()) -> bytes:
    """The SIA answer: the ObsCore columns of the rows, and the SODA/DataLink descriptors."""
    width = len(obscore.COLUMNS)
    infos = [info("QUERY_STATUS", "OVERFLOW" if overflow else "OK"),
             info("standardID", SIA_STANDARD_ID), *extra_infos]
    return table_document(OBSCORE_FIELDS, [row[:width] for row in rows], infos=infos,
                          resources=[datalink_descriptor(base_url),
                                     soda_descriptor(base_url, "obs_publisher_did")])


def file_url(base_url: str, dataset_id: str) -> str:
    return f"{base_url}/files?{urlencode({'ID': dataset_id}, quote_via=quote)}"


def preview_url(base_url: str, dataset_id: str) -> str:
    query = urlencode({"ID": dataset_id, "RESPONSEFORMAT": "image/png"}, quote_via=quote)
    return f"{base_url}/soda/sync?{query}"


@dataclass(frozen=True)
class Link:
    """One row of a DataLink table: exactly one of access_url, service_def, error_message."""

    id: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    description: str | None = None
    semantics: str | None = None
    content_type: str | None = None
    content_length: int | None = None


LINK_FIELDS = (
    Field("ID", "char", ucd="meta.id;meta.main", id="ID"),
    Field("access_url", "char", ucd="meta.ref.url"),
    Field("service_def", "char", ucd="meta.ref"),
    Field("error_message", "char", ucd="meta.code.error"),
    Field("description", "char", ucd="meta.note"),
    Field("semantics", "char", ucd="meta.code"),
    Field("content_type", "char", ucd="meta.code.mime"),
    Field("content_length", "long", ucd="phys.size;meta.file", unit="byte"),
)


def datalink_results(links: Sequence[Link], base_url: str, with_cutouts: bool,
                     overflow: bool = False, extra_infos: Sequence[str] = ()) -> bytes:
    """The links table; ``overflow``: more IDs were given than were answered."""
    rows = [(link.id, link.access_url, link.service_def, link.error_message, link.description,
             link.semantics, link.content_type, link.content_length) for link in links]
    resources = [soda_descriptor(base_url, "ID")] if with_cutouts else []
    infos = [info("QUERY_STATUS", "OVERFLOW" if overflow else "OK"),
             info("standardID", DATALINK_STANDARD_ID), *extra_infos]
    return table_document(LINK_FIELDS, rows, infos=infos, resources=resources,
                          table_name="links")


def capabilities(base_url: str, soda_text: str | None = None) -> bytes:
    """VOSI capabilities of the IVOA endpoints (SIA 2.0, DataLink, SODA sync, VOSI)."""
    def capability(standard_id: str, path: str, version: str | None = None,
                   description: str | None = None) -> str:
        role = f' role="std" version="{version}"' if version else ""
        text = f"<description>{escape(description)}</description>" if description else ""
        return (f'<capability standardID="{standard_id}">{text}'
                f'<interface xsi:type="vs:ParamHTTP"{role}>'
                f'<accessURL use="full">{escape(base_url + path)}</accessURL>'
                "</interface></capability>\n")

    body = "".join([
        capability("ivo://ivoa.net/std/VOSI#capabilities", "/sia2/capabilities"),
        capability("ivo://ivoa.net/std/VOSI#availability", "/sia2/availability"),
        capability(SIA_STANDARD_ID, "/sia2/query", "2.0",
                   "Images (CCD files and coadds) whose footprint overlaps POS, exactly"),
        capability(DATALINK_STANDARD_ID, "/datalink/links", "1.1"),
        capability(SODA_STANDARD_ID, "/soda/sync", "1.0", soda_text or soda_note()),
    ])
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">\n'
            + body + "</vosi:capabilities>\n").encode("utf-8")


def availability(available: bool, note: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
            f"<vosi:available>{'true' if available else 'false'}</vosi:available>"
            f"<vosi:note>{escape(note)}</vosi:note></vosi:availability>\n").encode()
