"""Pieces shared by the IVOA routers: DALI parameters from GET and POST, VOTable answers."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from skyreg.service.params import DaliRequest, Params, collect
from skyreg.service.votable import info

VOTABLE = "application/x-votable+xml"


async def dali_params(request: Request) -> Params:
    """Query-string and (for POST) form parameters, by upper-case name."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        pairs += [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    return collect(pairs)


def votable(body: bytes, status: int = 200, media_type: str = VOTABLE) -> Response:
    return Response(body, status_code=status, media_type=media_type)


def note_request(request: Request, dali: DaliRequest) -> None:
    """Hand RUNID and the ignored parameters to the access log (DALI: RUNID is kept in the
    service's logs, also when it came in a POST body)."""
    if dali.runid is not None:
        request.state.runid = dali.runid
    if dali.ignored:
        request.state.ignored = dali.ignored


def request_infos(dali: DaliRequest) -> list[str]:
    """INFO elements of an answer: RUNID echoed, and each parameter that was ignored."""
    infos = [info("RUNID", dali.runid) if dali.runid is not None else ""]
    infos += [info("ignored_parameter", name, f"{name} is not a parameter of this service; "
                   "it was ignored") for name in dali.ignored]
    return [text for text in infos if text]


def documented(*names: str) -> dict[str, Any]:
    """OpenAPI description of DALI parameters (names are case-insensitive, values strings)."""
    return {"parameters": [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "array", "items": {"type": "string"}}, "style": "form",
         "explode": True} for name in names]}
