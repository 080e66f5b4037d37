"""Errors the service answers with, and their HTTP status and DALI fault name.

Handlers raise these (or let the registry's own errors through); the app's exception handlers
write them as DALI error documents on the IVOA endpoints (``UsageFault: ...``) and as JSON
(``{"detail": ...}``) on the JSON API. Input errors are 4xx, never 500.
"""

from __future__ import annotations

from skyreg.errors import SkyregError


class ServiceError(SkyregError):
    """An error with a message for the client."""

    status = 400
    fault = "UsageFault"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageFault(ServiceError):
    """The request is malformed or asks for something this service does not do."""


class NotFoundFault(ServiceError):
    """The request names a dataset, CCD, patch or file that is not registered."""

    status = 404
    fault = "NotFoundFault"


class LimitExceeded(UsageFault):
    """The request is well formed but larger than the service's limits allow."""

    status = 413


class TransientFault(ServiceError):
    """The service could not answer now (database down, query timed out)."""

    status = 503
    fault = "TransientFault"


def classify(err: BaseException) -> ServiceError | None:
    """The client-facing error for an exception raised while answering, else None (a bug).

    Registry errors about bad arguments become usage faults, unknown keys not-found faults,
    and database timeouts or lost connections transient faults.
    """
    from skyreg.errors import DatabaseError, InputError, NotFoundError

    if isinstance(err, ServiceError):
        return err
    if isinstance(err, DatabaseError):  # cannot connect, or the connection was lost twice
        return TransientFault("the database is not available; try again later")
    if isinstance(err, NotFoundError):
        return NotFoundFault(str(err))
    if isinstance(err, (InputError, ValueError)) and isinstance(err, SkyregError):
        return UsageFault(str(err))
    if isinstance(err, SkyregError):
        return UsageFault(str(err))
    module = type(err).__module__
    if module.startswith(("psycopg", "sqlalchemy")):
        cause = getattr(err, "orig", None) or err
        name = type(cause).__name__
        if name == "QueryCanceled":
            return TransientFault("the query took longer than the service's time limit; "
                                  "narrow the search")
        if name in ("OperationalError", "ConnectionTimeout", "TimeoutError",
                    "AdminShutdown", "PoolTimeout"):
            return TransientFault("the database is not available; try again later")
    return None
