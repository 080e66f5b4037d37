"""IVOA Simple Cone Search 1.03: parameters, and answers written with ``astropy.io.votable``.

Requests carry RA, DEC (ICRS degrees) and SR (radius, degrees), VERB (1: id and position;
2, the default: also the catalog's first :data:`VERB2_COLUMNS` columns; 3: every column) and
DALI's MAXREC. SR = 0 or MAXREC = 0 asks for the metadata only (the table's fields, no
rows). The id, RA and Dec fields carry the UCDs SCS 1.03 requires (``ID_MAIN``,
``POS_EQ_RA_MAIN``, ``POS_EQ_DEC_MAIN``, which pyvo's records read); answers are VOTable 1.1,
the version in which those UCD1 words are valid. An answer cut at MAXREC (or at the service's row
limit) says so with ``INFO name="QUERY_STATUS" value="OVERFLOW"``, as DALI does.

Errors follow SCS 1.03 (with its errata 1 and 3): an ``INFO name="Error"`` directly below
VOTABLE, whose value explains the problem, and an empty RESOURCE; a DALI
``QUERY_STATUS=ERROR`` INFO is added inside it for DALI clients (erratum 1 allows other
INFO elements). pyvo raises ``DALQueryError`` on it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skyreg.catalogs.store import CatalogInfo
from skyreg.service.errors import LimitExceeded, UsageFault
from skyreg.service.params import Params, integer, number, single
from skyreg.service.votable import escape

#: Columns of the catalog (file order) added to id/RA/Dec at VERB=2.
VERB2_COLUMNS = 16
SCS_PARAMETERS = frozenset({"RA", "DEC", "SR", "VERB"})


@dataclass(frozen=True)
class ConeRequest:
    ra: float
    dec: float
    radius: float
    verb: int
    maxrec: int | None


def cone_request(params: Params, max_area_deg2: float) -> ConeRequest:
    """Check RA, DEC, SR, VERB and MAXREC; a bad one is a UsageFault naming it."""
    values: dict[str, float] = {}
    for name in ("RA", "DEC", "SR"):
        text = single(params, name)
        if text is None or not text.strip():
            raise UsageFault(f"{name}: required parameter missing")
        value = number(text, name)
        if not math.isfinite(value):
            raise UsageFault(f"{name}: must be finite, got {text!r}")
        values[name] = value
    ra, dec, radius = values["RA"], values["DEC"], values["SR"]
    if not 0.0 <= ra <= 360.0:
        raise UsageFault(f"RA: {ra} is outside [0, 360] degrees")
    if not -90.0 <= dec <= 90.0:
        raise UsageFault(f"DEC: {dec} is outside [-90, 90] degrees")
    if not 0.0 <= radius <= 180.0:
        raise UsageFault(f"SR: {radius} is outside [0, 180] degrees")
    area = 2.0 * math.pi * (1.0 - math.cos(math.radians(radius))) * (180.0 / math.pi) ** 2
    if area > max_area_deg2:
        raise LimitExceeded(f"SR: a cone of {radius}° covers {area:.1f} deg², more than this "
                            f"service's limit of {max_area_deg2} deg²")
    verb_text = single(params, "VERB")
    verb = 2 if verb_text is None or not verb_text.strip() else integer(verb_text, "VERB", 1, 3)
    maxrec_text = single(params, "MAXREC")
    maxrec = None if maxrec_text is None else integer(maxrec_text, "MAXREC")
    return ConeRequest(ra, dec, radius, verb, maxrec)


def verb_columns(info: CatalogInfo, verb: int) -> list[str]:
    """The columns of an answer at verbosity ``verb``: id, RA, Dec first."""
    first = [info.id_column, info.ra_column, info.dec_column]
    if verb == 1:
        rest: list[str] = []
    elif verb == 2:
        rest = list(info.column_names[:VERB2_COLUMNS])
    else:
        rest = list(info.column_names)
    return list(dict.fromkeys([*first, *rest]))


_UCDS = ("ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN")


def results_document(info: CatalogInfo, frame: pd.DataFrame, overflow: bool) -> bytes:
    """The answer: one results RESOURCE with one TABLE (and OVERFLOW when cut)."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import MaskedColumn, Table

    columns = []
    for name in frame.columns:
        values = frame[name]
        missing = values.isna().to_numpy()
        kind = getattr(values.dtype, "kind", "O")
        if kind == "b":
            columns.append(MaskedColumn(values.to_numpy(), name=str(name)))
        elif kind in "iuf":
            columns.append(MaskedColumn(values.to_numpy(), name=str(name), mask=missing))
        else:  # text, bytes (hex), dates and times (ISO 8601)
            texts = np.array(["" if m else _text(v)
                              for v, m in zip(values, missing, strict=True)], dtype=str)
            columns.append(MaskedColumn(texts, name=str(name), mask=missing))
    table = Table(columns)
    votable = from_table(table, table_id="results")
    # VOTable 1.1: SCS 1.03's UCD1 words are valid there (1.2 and later check UCD1+ words).
    votable.version = "1.1"
    resource = votable.resources[0]
    resource.type = "results"
    resource.infos.append(Info(name="QUERY_STATUS", value="OVERFLOW" if overflow else "OK"))
    fields = resource.tables[0].fields
    for field, ucd in zip(fields[:3], _UCDS, strict=True):
        field.ucd = ucd
    for field in fields:
        if field.name in (info.ra_column, info.dec_column):
            field.unit = "deg"
        if field.datatype in ("char", "unicodeChar"):
            field.arraysize = "*"
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def error_document(message: str) -> bytes:
    """An SCS 1.03 error answer (INFO name="Error" below VOTABLE, and an empty RESOURCE)."""
    text = escape(message)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
            f'<INFO ID="Error" name="Error" value="{text}"/>\n'
            '<RESOURCE type="results">\n'
            f'<INFO name="QUERY_STATUS" value="ERROR">{text}</INFO>\n'
            '</RESOURCE>\n</VOTABLE>\n').encode()
