"""Pieces shared by the IVOA routers: DALI parameters from GET and POST, VOTable answers."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from skyreg.service.params import Params, collect

VOTABLE = "application/x-votable+xml"


async def dali_params(request: Request) -> Params:
    """Query-string and (for POST) form parameters, by upper-case name."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        pairs += [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    return collect(pairs)


def votable(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=VOTABLE)


def documented(*names: str) -> dict[str, Any]:
    """OpenAPI description of DALI parameters (names are case-insensitive, values strings)."""
    return {"parameters": [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "array", "items": {"type": "string"}}, "style": "form",
         "explode": True} for name in names]}
