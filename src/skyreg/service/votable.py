"""VOTable 1.4 documents: result tables, DALI errors and DataLink service descriptors.

Written directly as text rather than through ``astropy.io.votable``'s tree, because that
writer spends ~0.4 ms per row of 40 columns (75-120 ms for a 200-row SIA answer, measured),
far above the service's budget; here a row costs a few microseconds. Only the parts of the
format the service uses are written: one RESOURCE of type "results" holding INFO elements and
one TABLEDATA table, and "meta" resources describing services (``adhoc:service``). The
tests parse every kind of document with astropy, warnings turned into errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"
_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<VOTABLE version="1.4" xmlns="{_NAMESPACE}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
)
_SPECIAL = re.compile(r'[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}

#: NULL marker of integer columns (declared in each FIELD's VALUES element). Every integer
#: the service writes is a count, size or level, never negative; a small marker also keeps
#: clients that scale masked values (pyvo: kB * 1000) clear of integer overflow.
_INT_NULLS = {"short": -1, "int": -1, "long": -1}


def escape(text: str) -> str:
    """Text safe inside an XML element or a double-quoted attribute.

    Characters XML 1.0 cannot hold at all (most control characters) become U+FFFD.
    """
    if _plain(text):
        return text
    return _SPECIAL.sub(lambda m: _ESCAPES.get(m.group(), "\ufffd"), text)


@dataclass(frozen=True)
class Field:
    """One FIELD (or PARAM) of a table."""

    name: str
    datatype: str  # char, short, int, long, double, boolean
    ucd: str | None = None
    utype: str | None = None
    unit: str | None = None
    description: str | None = None
    id: str | None = None
    xtype: str | None = None
    arraysize: str | None = None

    def element(self, tag: str = "FIELD", value: str | None = None, ref: str | None = None
                ) -> str:
        attrs = [f'name="{escape(self.name)}"', f'datatype="{self.datatype}"']
        if self.id:
            attrs.append(f'ID="{escape(self.id)}"')
        if self.arraysize or self.datatype == "char":
            attrs.append(f'arraysize="{self.arraysize or "*"}"')
        for key, attr in (("ucd", self.ucd), ("utype", self.utype), ("unit", self.unit),
                          ("xtype", self.xtype)):
            if attr:
                attrs.append(f'{key}="{escape(attr)}"')
        if value is not None:
            attrs.append(f'value="{escape(value)}"')
        if ref is not None:
            attrs.append(f'ref="{escape(ref)}"')
        inner = ""
        if self.description:
            inner += f"<DESCRIPTION>{escape(self.description)}</DESCRIPTION>"
        if tag == "FIELD" and self.datatype in _INT_NULLS:
            inner += f'<VALUES null="{_INT_NULLS[self.datatype]}"/>'
        return f"<{tag} {' '.join(attrs)}>{inner}</{tag}>" if inner else \
            f"<{tag} {' '.join(attrs)}/>"


def _cells(field: Field, values: Sequence[Any]) -> list[str]:
    """TABLEDATA cell texts of one column.

    The common cases are inlined comprehensions (one type test per cell, no call): a 200-row
    answer of 30 columns is 6,000 cells, and a function call per cell was most of the cost of
    writing it. Text columns are escaped cell by cell only when the column holds a character
    that needs it, which one search over the joined column tells.

    Most double columns of an ObsCore answer repeat a few values (times and exposure of each
    visit, wavelengths of each band), and ``repr`` of a float is the costliest step: such a
    column formats each distinct value once. Not when it holds a zero, because 0.0 and -0.0
    are one key of a dict but print differently.
    """
    kind = field.datatype
    if kind == "double":
        if len(values) >= 16:
            distinct = set(values)
            if 2 * len(distinct) <= len(values) and 0.0 not in distinct:
                printed = {v: _double(v) for v in distinct}
                return [printed[v] for v in values]
        return [repr(v) if v.__class__ is float and v - v == 0.0 else _double(v)
                for v in values]
    if kind in _INT_NULLS:
        null = str(_INT_NULLS[kind])
        return [null if v is None else (str(v) if v.__class__ is int else str(int(v)))
                for v in values]
    if kind == "boolean":
        return ["" if v is None else ("T" if v else "F") for v in values]
    texts = ["" if v is None else (v if v.__class__ is str else str(v)) for v in values]
    if _plain("".join(texts)):
        return texts
    return [escape(text) for text in texts]


def _plain(text: str) -> bool:
    """Whether ``text`` needs no escaping. Printable ASCII without ``&<>"`` (nearly every
    column) is told by C string methods, ~20 times faster than the regular expression, which
    decides the rest."""
    if text.isascii() and text.isprintable():
        return not ("&" in text or "<" in text or ">" in text or '"' in text)
    return _SPECIAL.search(text) is None


def _double(value: Any) -> str:
    if value is None:
        return ""
    number = float(value)
    if math.isfinite(number):
        return repr(number)
    if math.isnan(number):
        return ""
    return "+Inf" if number > 0 else "-Inf"


@lru_cache(maxsize=64)
def _field_elements(fields: tuple[Field, ...]) -> str:
    """The FIELD elements of a table (the same for every answer of an endpoint)."""
    return "".join(field.element() + "\n" for field in fields)


def info(name: str, value: str, text: str | None = None) -> str:
    """An INFO element."""
    body = escape(text) if text else ""
    return f'<INFO name="{escape(name)}" value="{escape(value)}">{body}</INFO>\n'


def table_document(fields: Sequence[Field], rows: Sequence[Sequence[Any]], *,
                   infos: Iterable[str] = (), resources: Iterable[str] = (),
                   table_name: str = "results") -> bytes:
    """A results VOTable: INFO elements, one table, then any "meta" resources."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
    if len(columns) != len(fields):
        raise ValueError("rows do not have one value per field")
    cells = [_cells(field, column) for field, column in zip(fields, columns, strict=True)]
    parts = [_HEADER, '<RESOURCE type="results">\n', *infos,
             f'<TABLE name="{escape(table_name)}">\n']
    parts.append(_field_elements(tuple(fields)))
    parts.append("<DATA><TABLEDATA>\n")
    parts.extend("<TR><TD>" + "</TD><TD>".join(row) + "</TD></TR>\n"
                 for row in zip(*cells, strict=True))
    parts.append("</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n")
    parts.extend(resources)
    parts.append("</VOTABLE>\n")
    return "".join(parts).encode("utf-8")


def error_document(message: str) -> bytes:
    """A DALI error document: QUERY_STATUS ERROR with the message (``UsageFault: ...``)."""
    return (_HEADER + '<RESOURCE type="results">\n' + info("QUERY_STATUS", "ERROR", message)
            + "</RESOURCE>\n</VOTABLE>\n").encode("utf-8")


@dataclass(frozen=True)
class InputParam:
    """A PARAM of a service descriptor's inputParams GROUP."""

    name: str
    datatype: str = "char"
    ucd: str | None = None
    unit: str | None = None
    xtype: str | None = None
    description: str | None = None
    value: str = ""
    ref: str | None = None
    arraysize: str | None = None


def service_descriptor(resource_id: str, standard_id: str, access_url: str,
                       params: Sequence[InputParam], description: str) -> str:
    """A DataLink service descriptor: ``<RESOURCE type="meta" utype="adhoc:service">``."""
    parts = [f'<RESOURCE type="meta" utype="adhoc:service" ID="{escape(resource_id)}">\n',
             f"<DESCRIPTION>{escape(description)}</DESCRIPTION>\n",
             Field("standardID", "char").element("PARAM", value=standard_id) + "\n",
             Field("accessURL", "char", ucd="meta.ref.url").element("PARAM", value=access_url)
             + "\n",
             '<GROUP name="inputParams">\n']
    for param in params:
        field = Field(param.name, param.datatype, ucd=param.ucd, unit=param.unit,
                      xtype=param.xtype, description=param.description,
                      arraysize=param.arraysize)
        parts.append(field.element("PARAM", value=param.value, ref=param.ref) + "\n")
    parts.append("</GROUP>\n</RESOURCE>\n")
    return "".join(parts)
