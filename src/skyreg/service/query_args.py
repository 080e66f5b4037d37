"""Query-string arguments of the hot JSON endpoints, read without FastAPI's validation layer.

FastAPI validates declared query parameters through pydantic for every request; on the
``/api/v1/ccds``-style lookups that machinery (dependency solving, one validator per
parameter, error collection) cost more CPU than the database lookup it guards. These
endpoints therefore take the raw request and read their few arguments here, with the same
rules and the same answers as the declared parameters had: the last value of a repeated scalar,
``true/false/1/0/yes/no/on/off`` for booleans, integer bounds, ``json|csv|parquet`` formats,
and HTTP 422 naming the parameter otherwise. :func:`documented` writes the matching OpenAPI
parameter objects, so ``/openapi.json`` (and the schemathesis fuzzing of it) still describes
them.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from skyreg.service.errors import ServiceError

_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})
FORMATS = ("json", "csv", "parquet")


class InvalidArgument(ServiceError):
    """A query argument of the wrong type or range (HTTP 422, as FastAPI's validation)."""

    status = 422


class Args:
    """The query arguments of one request."""

    __slots__ = ("_params",)

    def __init__(self, params: QueryParams) -> None:
        self._params = params

    def text(self, name: str) -> str | None:
        values = self._params.getlist(name)
        return values[-1] if values else None

    def texts(self, name: str) -> list[str] | None:
        values = self._params.getlist(name)
        return values or None

    def flag(self, name: str) -> bool:
        value = self.text(name)
        if value is None:
            return False
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise InvalidArgument(f"{name}: Input should be a valid boolean, unable to interpret "
                              "input")

    def integer(self, name: str, low: int, high: int | None = None) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise InvalidArgument(f"{name}: Input should be a valid integer, unable to parse "
                                  "string as an integer") from None
        if number < low:
            raise InvalidArgument(f"{name}: Input should be greater than or equal to {low}")
        if high is not None and number > high:
            raise InvalidArgument(f"{name}: Input should be less than or equal to {high}")
        return number

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in choices:
            raise InvalidArgument(f"{name}: Input should be " + ", ".join(
                f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'")
        return value


def documented(*specs: tuple[str, str, str]) -> dict[str, Any]:
    """OpenAPI ``parameters`` of query arguments: (name, kind, description) with kind one of
    ``text``, ``texts`` (repeatable), ``flag``, ``limit``, ``offset`` and ``format``."""
    schemas: dict[str, dict[str, Any]] = {
        "text": {"type": "string"},
        "texts": {"type": "array", "items": {"type": "string"}},
        "flag": {"type": "boolean", "default": False},
        "limit": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
        "format": {"type": "string", "enum": list(FORMATS), "default": "json"},
    }
    parameters = []
    for name, kind, description in specs:
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False,
                                     "schema": schemas[kind], "description": description}
        if kind == "texts":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return {"parameters": parameters}
